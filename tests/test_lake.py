import datetime as dt

import pytest

from feature_store.lake import slice_predicate


def test_slice_predicate_writes_equality_and_in_terms():
    predicate = slice_predicate(
        {"ingest_date": dt.date(2026, 1, 5), "source": ("viewing", "ratings")}
    )
    assert predicate == "ingest_date = DATE'2026-01-05' AND source IN ('viewing', 'ratings')"


@pytest.mark.parametrize(
    "values, message",
    [
        ({"source": "x' OR '1'='1"}, "must be a date or identifier"),
        ({"source": ("viewing", "a b")}, "must be a date or identifier"),
        ({"source": ()}, "empty tuple"),
        ({"bad column": "viewing"}, "unsafe column name"),
    ],
)
def test_slice_predicate_refuses_free_text(values, message):
    with pytest.raises(ValueError, match=message):
        slice_predicate(values)
