"""Online features: the latest feature row per entity, for serving systems.

:func:`latest_per_key` picks, for an as-of date, each table's newest row per key among
the partitions still within the table's TTL. `marquee features export-online` (and
`marquee publish online_features`) publish those rows as the versioned artifact
``online_features`` through :mod:`feature_store.publish`: staged, checksummed, renamed
into place whole, pulled and verified with :mod:`feature_store.serving`.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from feature_store.features.definitions import AS_OF, FeatureTable

ARTIFACT = "online_features"


def latest_per_key(rows: DataFrame, table: FeatureTable, *, as_of: dt.date) -> DataFrame:
    """Each key's newest row with as_of_date in [as_of - ttl, as_of]."""
    oldest = as_of - dt.timedelta(days=table.ttl_days)
    newest_first = Window.partitionBy(*table.keys).orderBy(F.col(AS_OF).desc())
    return (
        rows.filter((F.col(AS_OF) >= F.lit(oldest)) & (F.col(AS_OF) <= F.lit(as_of)))
        .withColumn("_n", F.row_number().over(newest_first))
        .filter(F.col("_n") == 1)
        .drop("_n")
    )
