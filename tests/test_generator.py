"""The synthetic data set: deterministic, consistent with its hidden truth, and
reconciled line for line by ingestion. The checks read the run's shared generated world
(tests/worlds.py): two history days straight into bronze, two dirty landing days ingested."""

from pathlib import Path

import pyarrow.parquet as pq
from conftest import TEST_KEY
from pyspark.sql import functions as F

from feature_store import lake as lk
from feature_store.privacy import pseudonymize
from feature_store.sources import GENRES, SOURCES
from feature_store.synthetic import generate_bronze, load_manifest
from feature_store.synthetic.landing import REPLACING_KINDS
from feature_store.synthetic.world import ARTWORK_STYLES, WorldParams


def landing_lines(spark, lake_root: str) -> dict[str, list[str]]:
    return {
        source: sorted(r.value for r in spark.read.text(f"{lake_root}/landing/{source}").collect())
        for source in SOURCES
    }


def shown_candidates(sessions, field: str, *keep):
    """One row per title shown in a session: candidate index i, its `field`, the choice."""
    candidates = F.array(
        *[
            F.struct(
                F.lit(i).alias("i"),
                F.col(f"valid_{i}").alias("valid"),
                F.col(f"{field}_{i}").alias(field),
            )
            for i in range(3)
        ]
    )
    exploded = sessions.select(*keep, "chosen", F.explode(candidates).alias("c"))
    return exploded.filter("c.valid").select("*", "c.i", f"c.{field}").drop("c")


def test_ingestion_reconciles_with_the_dirt_the_generator_injected(spark, generated_world):
    result, reports = generated_world.result, generated_world.reports
    manifest = load_manifest(spark, generated_world.lake)["landing_counts"]
    assert manifest == result.landing_counts
    for source in SOURCES:
        injected = manifest[source]
        seen = [s for report in reports for s in report.sources if s.source == source]
        assert sum(s.lines for s in seen) == injected["lines"], source
        assert all(s.balanced for s in seen)
        reasons: dict[str, int] = {}
        for s in seen:
            for reason, n in s.reasons.items():
                reasons[reason] = reasons.get(reason, 0) + n
        expected = {k: v for k, v in injected.items() if k not in ("lines", "late") and v}
        assert reasons == expected, source
    assert manifest["viewing"]["late"] > 0 and manifest["viewing"]["duplicate_of_earlier_day"] > 0


def test_generate_bronze_writes_what_ingestion_keeps_from_the_same_world(
    spark, generated_world, tmp_path
):
    """Benchmarks write bronze directly: the same rows, values and types as the history
    days `generate` wrote to bronze and the ingested landing files, plus exactly the
    records the landing files carried broken."""
    config, result = generated_world.config, generated_world.result
    direct = str(tmp_path / "direct")
    generate_bronze(spark, direct, generated_world.spec, pseudonymization_key=TEST_KEY)
    for source in SOURCES:
        ingested = lk.read_table(spark, lk.Lake(config.lake).bronze(source))
        written = lk.read_table(spark, lk.Lake(direct).bronze(source))
        assert written.schema == ingested.schema, source
        columns = [c for c in ingested.columns if c not in ("ingest_date", "source_file")]
        ingested, written = ingested.select(*columns), written.select(*columns)
        assert ingested.exceptAll(written).count() == 0, source
        broken = sum(result.landing_counts[source].get(kind, 0) for kind in REPLACING_KINDS)
        assert written.exceptAll(ingested).count() == broken, source
    # Ids and member pseudonyms are written without Parquet dictionaries, the rest keep
    # them (Parquet drops a dictionary that saves nothing, as in the ingested lake's
    # smallest files, so the kept ones are checked on the direct lake's larger files).
    for lake_root in (config.lake, direct):
        encoded = dictionary_encoded_columns(lk.Lake(lake_root).bronze("viewing"))
        assert not encoded & {"event_id", "session_id", "account_id", "profile_id"}, lake_root
    encoded = dictionary_encoded_columns(lk.Lake(direct).bronze("viewing"))
    assert {"title_id", "event_type", "device", "region"} <= encoded


def dictionary_encoded_columns(table_path: str) -> set[str]:
    """Columns with a dictionary page in every Parquet file of a table."""
    files = list(Path(table_path).rglob("*.parquet"))
    assert files, f"no Parquet files under {table_path}"
    encoded = []
    for path in files:
        group = pq.ParquetFile(path).metadata.row_group(0)
        columns = (group.column(i) for i in range(group.num_columns))
        encoded.append({c.path_in_schema for c in columns if c.has_dictionary_page})
    return set.intersection(*encoded)


def test_late_events_are_in_bronze_under_their_event_date(spark, generated_world):
    result = generated_world.result
    viewing = lk.read_table(spark, lk.Lake(generated_world.lake).bronze("viewing"))
    late = viewing.filter(F.col("event_date") < F.col("ingest_date")).count()
    # Late arrivals, plus events near midnight UTC that the service delivered in the next file.
    assert late >= result.landing_counts["viewing"]["late"]


def test_no_raw_member_id_or_pii_is_left_anywhere_in_bronze(spark, generated_world):
    lake = lk.Lake(generated_world.lake)
    truth_accounts = lk.read_table(spark, f"{lake.ground_truth}/accounts")
    raw = (
        truth_accounts.select(F.col("account_id").alias("v"))
        .unionByName(
            lk.read_table(spark, f"{lake.ground_truth}/profiles").select(
                F.col("profile_id").alias("v")
            )
        )
        .unionByName(truth_accounts.select(F.col("email").alias("v")))
        .unionByName(truth_accounts.select(F.col("full_name").alias("v")))
    )
    for source in SOURCES:
        table = lk.read_table(spark, lake.bronze(source))
        strings = [f.name for f in table.schema.fields if f.dataType.simpleString() == "string"]
        values = table.select(F.explode(F.array(*[F.col(c) for c in strings])).alias("v"))
        assert values.join(raw, "v").count() == 0, source
        # Whole values only: a hex pseudonym may contain "acc" and digits by chance.
        leaked = values.filter(F.col("v").rlike(r"^acc\d{9}(-p\d)?$|@example\.com"))
        assert leaked.count() == 0, source
    # ... and the pseudonyms are the keyed hashes of the raw ids (so joins still work).
    expected = truth_accounts.select(
        pseudonymize(F.col("account_id"), TEST_KEY).alias("account_id")
    )
    bronze_accounts = lk.read_table(spark, lake.bronze("accounts")).select("account_id").distinct()
    matched = bronze_accounts.join(expected, "account_id").count()
    assert matched == bronze_accounts.count() > 0.8 * generated_world.spec.accounts


def test_profiles_choose_titles_of_their_favourite_genres(spark, generated_world):
    truth = lk.Lake(generated_world.lake).ground_truth
    sessions = lk.read_table(spark, f"{truth}/sessions").filter(F.col("chosen") >= 0)
    titles = lk.read_table(spark, f"{truth}/titles").select("title_id", "genres")
    shown = shown_candidates(sessions, "title_id", F.col("top_genres")[0].alias("g")).select(
        "g", "title_id", (F.col("i") == F.col("chosen")).alias("picked")
    )
    favourite = F.array_contains(
        F.col("genres"), F.element_at(F.array(*map(F.lit, GENRES)), F.col("g") + 1)
    )
    shares = {
        r["picked"]: r["share"]
        for r in shown.join(titles, "title_id")
        .groupBy("picked")
        .agg(F.avg(favourite.cast("double")).alias("share"))
        .collect()
    }
    # Among the titles a profile was shown, the one it picked is far more often of its
    # favourite genre than the ones it passed over.
    assert shares[True] > 1.5 * shares[False], shares


def test_cancelled_accounts_stop_watching_and_cancel_on_their_day(spark, generated_world):
    lake = lk.Lake(generated_world.lake)
    accounts = lk.read_table(spark, f"{lake.ground_truth}/accounts")
    sessions = lk.read_table(spark, f"{lake.ground_truth}/sessions")
    after = sessions.join(accounts.select("account_idx", "cancel_day"), "account_idx").filter(
        F.col("day") >= F.col("cancel_day")
    )
    assert after.count() == 0
    # the history days' cancels went straight to bronze, the landing days' through ingestion
    cancels = lk.read_table(spark, lake.bronze("subscriptions")).filter(
        F.col("event_type") == "cancel"
    )
    truth_cancels = accounts.filter(F.col("cancel_day").isNotNull()).count()
    assert truth_cancels > 0
    assert abs(cancels.count() - truth_cancels) <= 0.1 * truth_cancels + 3  # dirt changes a few


def test_artwork_click_through_follows_segment_appeal(spark, generated_world):
    sessions = lk.read_table(spark, f"{lk.Lake(generated_world.lake).ground_truth}/sessions")
    shown = shown_candidates(sessions, "artwork_style", "segment")
    ctr = (
        shown.groupBy("segment", F.col("artwork_style").alias("style"))
        .agg(
            F.avg((F.col("chosen") == F.col("i")).cast("double")).alias("ctr"),
            F.count(F.lit(1)).alias("n"),
        )
        .filter(F.col("n") >= 30)
        .collect()
    )
    appeal = WorldParams.draw(generated_world.spec.seed).artwork_appeal
    pairs = [(appeal[r["segment"]][r["style"]], r["ctr"]) for r in ctr]
    assert len(pairs) >= 10 and len(ARTWORK_STYLES) == 6
    import numpy as np

    correlation = np.corrcoef(np.array(pairs).T)[0, 1]
    assert correlation > 0.3, correlation


def test_ground_truth_is_saved_beside_the_data(spark, generated_world):
    truth = Path(generated_world.lake) / "ground_truth"
    assert {"accounts", "profiles", "titles", "title_regions", "sessions", "manifest.json"} <= {
        p.name for p in truth.iterdir()
    }
    manifest = load_manifest(spark, generated_world.lake)
    seed = generated_world.spec.seed
    assert manifest["spec"]["seed"] == seed
    assert manifest["world"] == WorldParams.draw(seed).__dict__
