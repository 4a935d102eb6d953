"""The validation gate a feature-table partition passes before it becomes visible.

`build_suite` turns a table's declarations into a Great Expectations suite (not-null,
ranges and allowed values, unique keys, row count near the previous partition's,
freshness). `validate_partitions` judges every date of a range frame in one pass, each
date's verdict what validating it alone would give, writes each date's result JSON, updates
Data Docs once and returns one `ValidationOutcome` per date, whose `summary()` names every
failed check with what was observed; `validate_partition` is its one-date case. Failures
are reported by each expectation's `meta["check"]` statement, not GX's names. How the one
pass works and what it costs: docs/feature-store.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_store.features.definitions import AS_OF, FeatureTable

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd
    from great_expectations.core import ExpectationValidationResult
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

DOCS_DIR = "data_docs"
RESULT_FILE = "validation.json"
STORES_DIR = "gx_stores"  # GX's own expectation and validation stores behind the docs site
_SITE = "marquee"
_DATASOURCE = "marquee_partitions"
_DATES_SOURCE = "marquee_dates"  # pandas: the one-row-per-date summary frames
_EXAMPLES = 3  # example unexpected values kept per failed check
_DOCS_HISTORY = 200  # validation runs listed on the Data Docs index page
_SET_SHOWN = 6  # allowed values spelled out in a check's statement

RULE_NOT_NULL = "not_null"
RULE_RANGE = "range"
RULE_ALLOWED = "allowed"
RULE_UNIQUE_KEY = "unique_key"
RULE_ROW_COUNT = "row_count"
RULE_FRESHNESS = "freshness"
ROW_RULES = frozenset({RULE_NOT_NULL, RULE_RANGE, RULE_ALLOWED, RULE_UNIQUE_KEY})
DATE_RULES = frozenset({RULE_ROW_COUNT, RULE_FRESHNESS})

# Summary frame columns (one row per date).
_ROWS, _LOW, _HIGH = "row_count", "min_rows", "max_rows"
_FRESHEST, _EARLIEST, _LATEST = "max_freshness", "earliest", "latest"

_BOOLEAN_ONLY = {"result_format": "BOOLEAN_ONLY"}
_WITH_EXAMPLES = {"result_format": "BASIC", "partial_unexpected_count": _EXAMPLES}
_NAMING_DATES = {"result_format": "COMPLETE", "unexpected_index_column_names": [AS_OF]}

CheckKey = tuple[str, str]  # (rule, check statement): one expectation, on any date


@dataclasses.dataclass(frozen=True)
class FailedCheck:
    """One expectation that did not hold."""

    expectation: str  # GX expectation type, e.g. expect_column_values_to_be_between
    column: str | None  # the column (or "a, b" for compound keys); None for table checks
    rule: str  # one of the RULE_* kinds
    observed: str  # what was seen, e.g. "3 unexpected of 1,000 rows (e.g. 1.4)"
    detail: str  # the declared check, e.g. "completion_rate_28d values between 0 and 1"

    def describe(self) -> str:
        """The declared check and what was seen."""
        return f"{self.detail}: {self.observed}"


@dataclasses.dataclass(frozen=True)
class ValidationOutcome:
    """The verdict on one partition, and where its evidence was written."""

    table: str
    as_of: dt.date
    success: bool
    evaluated: int
    failed: tuple[FailedCheck, ...]
    result_path: Path
    docs_path: Path

    def summary(self) -> str:
        """The verdict as text: checks passed, or each failed check on its line."""
        head = f"{self.table} {self.as_of.isoformat()}: "
        if self.success:
            return head + f"all {self.evaluated} checks passed"
        lines = [head + f"{len(self.failed)} of {self.evaluated} checks failed"]
        lines += [f"  - {check.describe()}" for check in self.failed]
        return "\n".join(lines)


def result_path(results_dir: str | Path, table: str, as_of: dt.date) -> Path:
    """Where the result JSON of `table` on `as_of` is written."""
    return Path(results_dir).absolute() / table / as_of.isoformat() / RESULT_FILE


# ---------------------------------------------------------------------------- suite


def build_suite(
    table: FeatureTable, *, as_of: dt.date, previous_row_count: int | None
) -> gx.ExpectationSuite:
    """The expectations a partition of `table` for `as_of` must meet, from its declarations."""
    _quiet_great_expectations()
    import great_expectations as gx

    return gx.ExpectationSuite(
        name=table.name,
        expectations=[
            *_value_expectations(table),
            _unique_key_expectation(table, table.keys),
            _row_count_expectation(table, previous_row_count),
            _freshness_expectation(table, as_of),
        ],
        meta={"table": table.name, AS_OF: as_of.isoformat()},
    )


def _expectation(expectation_cls, rule: str, check: str, **kwargs) -> Any:
    return expectation_cls(meta={"rule": rule, "check": check}, **kwargs)


def _value_expectations(table: FeatureTable) -> list[Any]:
    """Not-null unless nullable, declared ranges, allowed values: one per declared rule."""
    import great_expectations.expectations as gxe

    expectations: list[Any] = []
    for col in table.columns:
        if not col.nullable:
            expectations.append(
                _expectation(
                    gxe.ExpectColumnValuesToNotBeNull,
                    RULE_NOT_NULL,
                    f"{col.name} not null",
                    column=col.name,
                )
            )
        if col.min_value is not None or col.max_value is not None:
            expectations.append(
                _expectation(
                    gxe.ExpectColumnValuesToBeBetween,
                    RULE_RANGE,
                    f"{col.name} values {_bounds_text(col.min_value, col.max_value)}",
                    column=col.name,
                    min_value=col.min_value,
                    max_value=col.max_value,
                )
            )
        if col.allowed:
            expectations.append(
                _expectation(
                    gxe.ExpectColumnValuesToBeInSet,
                    RULE_ALLOWED,
                    f"{col.name} values in {_set_text(col.allowed)}",
                    column=col.name,
                    value_set=list(col.allowed),
                )
            )
    return expectations


def _unique_key_expectation(table: FeatureTable, columns: Sequence[str]) -> Any:
    """Unique `columns`: the keys within one partition, or keys + as_of_date over a range
    (the same check, so the same statement)."""
    import great_expectations.expectations as gxe

    check = f"{', '.join(table.keys)} unique per {AS_OF}"
    if len(columns) == 1:
        return _expectation(
            gxe.ExpectColumnValuesToBeUnique, RULE_UNIQUE_KEY, check, column=columns[0]
        )
    return _expectation(
        gxe.ExpectCompoundColumnsToBeUnique, RULE_UNIQUE_KEY, check, column_list=list(columns)
    )


def _row_count_expectation(table: FeatureTable, previous_row_count: int | None) -> Any:
    import great_expectations.expectations as gxe

    low, high, why = row_count_bounds(table, previous_row_count)
    return _expectation(
        gxe.ExpectTableRowCountToBeBetween,
        RULE_ROW_COUNT,
        f"row count {_bounds_text(low, high)} ({why})",
        min_value=low,
        max_value=high,
    )


def _freshness_expectation(table: FeatureTable, as_of: dt.date) -> Any:
    import great_expectations.expectations as gxe

    earliest, latest = freshness_bounds(table, as_of)
    return _expectation(
        gxe.ExpectColumnMaxToBeBetween,
        RULE_FRESHNESS,
        f"max({table.freshness_column}) between {_ts_text(earliest)} and {_ts_text(latest)}"
        f" (at most {table.max_staleness_hours} h before the end of {as_of.isoformat()})",
        column=table.freshness_column,
        min_value=_spark_local(earliest),
        max_value=_spark_local(latest),
    )


def check_key(expectation_config: Any) -> CheckKey:
    """(rule, statement) of an expectation or its configuration (object or JSON dict)."""
    meta = expectation_config["meta"] if isinstance(expectation_config, dict) else None
    if meta is None:
        meta = expectation_config.meta
    return meta["rule"], meta["check"]


def row_count_bounds(
    table: FeatureTable, previous_row_count: int | None
) -> tuple[int, int | None, str]:
    """(min, max or None, reason): at least min_rows, within ±max_row_change of the previous."""
    low, high, why = table.min_rows, None, f"at least {table.min_rows:,}"
    if previous_row_count is not None:
        change = table.max_row_change
        low = max(low, math.ceil(previous_row_count * (1 - change) - 1e-9))
        # min_rows wins over a bound derived from a tiny previous partition
        high = max(low, math.floor(previous_row_count * (1 + change) + 1e-9))
        why += f"; within ±{change:.0%} of the previous {previous_row_count:,}"
    return low, high, why


def freshness_bounds(table: FeatureTable, as_of: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """UTC bounds for max(freshness_column): the end of the as-of day minus the allowed
    staleness, and one day past the end of the as-of day (later means a clock or date bug)."""
    end_of_day = dt.datetime.combine(as_of + dt.timedelta(days=1), dt.time(), dt.UTC)
    return (
        end_of_day - dt.timedelta(hours=table.max_staleness_hours),
        end_of_day + dt.timedelta(days=1),
    )


def _spark_local(moment: dt.datetime) -> dt.datetime:
    # PySpark hands timestamps to Python as naive datetimes in the process's local zone
    # (TimestampType.fromInternal uses datetime.fromtimestamp), and GX compares the column
    # maximum with these bounds in Python, so the bounds use the same frame.
    return moment.astimezone().replace(tzinfo=None)


def _bounds_text(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {low:,g} and {high:,g}"
    if low is not None:
        return f">= {low:,g}"
    return f"<= {high:,g}"


def _set_text(values: Sequence[str]) -> str:
    if len(values) <= _SET_SHOWN:
        return "{" + ", ".join(values) + "}"
    return "{" + ", ".join(values[:_SET_SHOWN]) + f", ... ({len(values)} values)}}"


def _ts_text(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


# ------------------------------------------------------------------------ validation


def validate_partition(
    table: FeatureTable,
    df: DataFrame,
    *,
    as_of: dt.date,
    previous_row_count: int | None,
    results_dir: str | Path,
) -> ValidationOutcome:
    """Validate one partition (the caller caches `df`): the one-date case of
    `validate_partitions`. A frame without `as_of_date` is taken as that date's rows."""
    from pyspark.sql import functions as F

    if AS_OF not in df.columns:
        df = df.withColumn(AS_OF, F.lit(as_of))
    outcomes = validate_partitions(
        table,
        df,
        dates=[as_of],
        previous_row_counts={as_of: previous_row_count},
        results_dir=results_dir,
    )
    return outcomes[as_of]


def validate_partitions(
    table: FeatureTable,
    df: DataFrame,
    *,
    dates: Iterable[dt.date],
    previous_row_counts: dict[dt.date, int | None],
    results_dir: str | Path,
) -> dict[dt.date, ValidationOutcome]:
    """Judge each date's partition of the range frame `df` (rows told apart by
    `as_of_date`, cached by the caller) by that date's suite, in one pass over the range.

    Each date gets what validating its rows alone would give: its own verdict, and a
    result JSON at `<results_dir>/<table>/<date>/validation.json` naming that date's
    failed checks only. The Data Docs site under `<results_dir>/data_docs/` is updated
    once per call. A date's row-count bound comes from `previous_row_counts[date]`
    (None or absent: the table's minimum only). Rows of other dates are not judged."""
    from pyspark.sql import functions as F

    results_dir = Path(results_dir).absolute()  # GX stores refuse relative folders
    dates = sorted(set(dates))
    if not dates:
        return {}
    if AS_OF not in df.columns:
        raise ValueError(f"{table.name}: the frame to validate has no {AS_OF} column")
    suites = {
        d: build_suite(table, as_of=d, previous_row_count=previous_row_counts.get(d)) for d in dates
    }
    configs = _configurations(suites)
    log.info(
        "validating %s %s..%s (%d dates): %d checks each",
        table.name, dates[0], dates[-1], len(dates), len(configs[dates[0]]),
    )  # fmt: skip
    gate = _gate(results_dir)
    rows = df.filter(F.col(AS_OF).isin(dates))
    summary = _date_summary(table, rows, dates, previous_row_counts)
    results = _row_rule_results(gate, table, rows, configs, summary)
    missing_freshness = table.freshness_column not in df.columns
    for d, by_key in _date_rule_results(gate, table, configs, summary, missing_freshness).items():
        results[d].update(by_key)

    validations = {d: _date_validation(table, d, configs[d], results[d], dates) for d in dates}
    outcomes = {d: _write_outcome(table, d, v, results_dir) for d, v in validations.items()}
    _publish(gate, table, suites[dates[-1]], validations)
    for outcome in outcomes.values():
        (log.info if outcome.success else log.warning)("%s", outcome.summary())
    return outcomes


Configs = dict[CheckKey, Any]  # one date's expectation configurations, in suite order
Results = dict[CheckKey, "ExpectationValidationResult"]


def _configurations(suites: dict[dt.date, gx.ExpectationSuite]) -> dict[dt.date, Configs]:
    """Each date's expectation configurations in suite order. Row rules read the same on
    every date: their configurations are built once and shared (each build costs ms)."""
    shared: Configs = {}
    configs: dict[dt.date, Configs] = {}
    for as_of, suite in suites.items():
        configs[as_of] = {}
        for expectation in suite.expectations:
            key = check_key(expectation)
            if key[0] not in ROW_RULES:
                configs[as_of][key] = expectation.configuration
                continue
            if key not in shared:
                shared[key] = expectation.configuration
            configs[as_of][key] = shared[key]
    return configs


def _row_rule_results(
    gate: _Gate,
    table: FeatureTable,
    rows: DataFrame,
    configs: dict[dt.date, Configs],
    summary: pd.DataFrame,
) -> dict[dt.date, Results]:
    """Row rules once over the range (pass or fail only), then each failed one again on
    each date's rows: that date's own counts and examples."""
    import great_expectations as gx

    range_suite = gx.ExpectationSuite(
        name=f"{table.name}-range",
        expectations=[
            *_value_expectations(table),
            _unique_key_expectation(table, (*table.keys, AS_OF)),
        ],
    )
    checked = gate.validate(gate.partitions, table.name, rows, range_suite, _BOOLEAN_ONLY)
    row_counts = dict(zip(summary[AS_OF], summary[_ROWS], strict=True))
    results: dict[dt.date, Results] = {d: {} for d in configs}
    failed: set[CheckKey] = set()
    for checked_one in checked.results:
        key = check_key(checked_one.expectation_config)
        if _exception_messages(checked_one.exception_info):  # a missing column: every date
            for d, config in configs.items():
                results[d][key] = _result(config[key], False, error=checked_one.exception_info)
        elif checked_one.success:  # no unexpected row in the range, so none on any date
            for d, config in configs.items():
                results[d][key] = _result(config[key], True, result=_clean(int(row_counts[d])))
        else:
            failed.add(key)
    if failed:
        log.info("%s: %d checks failed over the range; checking each date", table.name, len(failed))
        for d, config in configs.items():
            results[d].update(_rerun_on_date(gate, table, rows, config, failed, d))
    return results


def _rerun_on_date(
    gate: _Gate,
    table: FeatureTable,
    rows: DataFrame,
    configs: Configs,
    keys: set[CheckKey],
    as_of: dt.date,
) -> Results:
    """The checks `keys` of the date's own suite on that date's rows, with examples."""
    import great_expectations as gx
    from pyspark.sql import functions as F

    again = gx.ExpectationSuite(
        name=f"{table.name}-{as_of.isoformat()}-rerun",
        expectations=[configs[key].to_domain_obj() for key in configs if key in keys],
    )
    on_date = rows.filter(F.col(AS_OF) == F.lit(as_of))
    checked = gate.validate(gate.partitions, table.name, on_date, again, _WITH_EXAMPLES)
    return {check_key(r.expectation_config): r for r in checked.results}


def _clean(row_count: int) -> dict:
    """The result of a row rule that passed on a date: no unexpected value in its rows."""
    return {
        "element_count": row_count,
        "unexpected_count": 0,
        "unexpected_percent": 0.0 if row_count else None,
        "partial_unexpected_list": [],
    }


def _date_summary(
    table: FeatureTable,
    rows: DataFrame,
    dates: list[dt.date],
    previous_row_counts: dict[dt.date, int | None],
) -> pd.DataFrame:
    """One row per date: its row count and freshness maximum (one Spark aggregation) and
    the bounds its suite sets, timestamps in PySpark's local frame like the suite's."""
    import pandas as pd
    from pyspark.sql import functions as F

    measures = [F.count(F.lit(1)).alias(_ROWS)]
    if table.freshness_column in rows.columns:
        measures.append(F.max(table.freshness_column).alias(_FRESHEST))
    seen = {r[AS_OF]: r.asDict() for r in rows.groupBy(AS_OF).agg(*measures).collect()}
    counts = [row_count_bounds(table, previous_row_counts.get(d)) for d in dates]
    freshness = [freshness_bounds(table, d) for d in dates]
    return pd.DataFrame(
        {
            AS_OF: pd.Series(dates, dtype=object),
            _ROWS: pd.array([seen.get(d, {}).get(_ROWS, 0) for d in dates], dtype="Int64"),
            _LOW: pd.array([low for low, _, _ in counts], dtype="Int64"),
            _HIGH: pd.array([high for _, high, _ in counts], dtype="Int64"),
            _FRESHEST: pd.to_datetime([seen.get(d, {}).get(_FRESHEST) for d in dates]),
            _EARLIEST: pd.to_datetime([_spark_local(early) for early, _ in freshness]),
            _LATEST: pd.to_datetime([_spark_local(late) for _, late in freshness]),
        }
    )


def _dates_suite() -> gx.ExpectationSuite:
    """Row count and freshness of each date as checks on the summary frame's rows."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    def at_least(column: str, bound: str, rule: str, **kwargs) -> Any:
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=column, column_B=bound, or_equal=True, meta={"rule": rule}, **kwargs
        )

    either_missing = {"ignore_row_if": "either_value_is_missing"}
    return gx.ExpectationSuite(
        name="partition-dates",
        expectations=[
            at_least(_ROWS, _LOW, RULE_ROW_COUNT),
            at_least(_HIGH, _ROWS, RULE_ROW_COUNT, **either_missing),  # no previous: no bound
            # no rows or only nulls: no maximum, which fails as GX's column max does
            gxe.ExpectColumnValuesToNotBeNull(column=_FRESHEST, meta={"rule": RULE_FRESHNESS}),
            at_least(_FRESHEST, _EARLIEST, RULE_FRESHNESS, **either_missing),
            at_least(_LATEST, _FRESHEST, RULE_FRESHNESS, **either_missing),
        ],
    )


def _date_rule_results(
    gate: _Gate,
    table: FeatureTable,
    configs: dict[dt.date, Configs],
    summary: pd.DataFrame,
    missing_freshness: bool,
) -> dict[dt.date, Results]:
    """Each date's row-count and freshness results: GX checks the summary frame (pandas,
    a row per date) and names the dates it found unexpected."""
    checked = gate.validate(gate.dates, table.name, summary, _dates_suite(), _NAMING_DATES)
    failing: dict[str, set[dt.date]] = {rule: set() for rule in DATE_RULES}
    errors: dict[str, dict] = {}
    for checked_one in checked.results:
        rule = checked_one.expectation_config.meta["rule"]
        if _exception_messages(checked_one.exception_info):
            errors[rule] = checked_one.exception_info
        unexpected = (checked_one.result or {}).get("unexpected_index_list") or []
        failing[rule] |= {row[AS_OF] for row in unexpected}
    if missing_freshness:
        errors[RULE_FRESHNESS] = _missing_column_error(table.freshness_column)

    results: dict[dt.date, Results] = {}
    for record in summary.to_dict("records"):
        as_of = record[AS_OF]
        observed = {
            RULE_ROW_COUNT: int(record[_ROWS]),
            RULE_FRESHNESS: _python_timestamp(record[_FRESHEST]),
        }
        results[as_of] = {}
        for key, config in configs[as_of].items():
            rule = key[0]
            if rule in errors:
                results[as_of][key] = _result(config, False, error=errors[rule])
            elif rule in DATE_RULES:
                success = as_of not in failing[rule]
                results[as_of][key] = _result(
                    config, success, result={"observed_value": observed[rule]}
                )
    return results


def _python_timestamp(value: Any) -> dt.datetime | None:
    import pandas as pd

    return None if pd.isna(value) else value.to_pydatetime()


def _missing_column_error(column: str) -> dict:
    # GX's own words for an expectation on a column the batch lacks
    message = f'Error: The column "{column}" in BatchData does not exist.'
    return {"raised_exception": True, "exception_message": message, "exception_traceback": None}


def _result(
    config: Any, success: bool, *, result: dict | None = None, error: dict | None = None
) -> ExpectationValidationResult:
    from great_expectations.core import ExpectationValidationResult

    return ExpectationValidationResult(
        success=success,
        expectation_config=config,
        result=result or {},
        exception_info=error
        or {"raised_exception": False, "exception_message": None, "exception_traceback": None},
    )


# ---------------------------------------------------------------- results and Data Docs


def _date_validation(
    table: FeatureTable, as_of: dt.date, configs: Configs, results: Results, dates: list[dt.date]
) -> tuple[Any, Any]:
    """(run id, suite validation result) of one date, its results in suite order."""
    import great_expectations as gx
    from great_expectations.core import ExpectationSuiteValidationResult

    ordered = [results[key] for key in configs]
    passed = sum(1 for r in ordered if r.success)
    now = dt.datetime.now(dt.UTC)
    run_id = gx.RunIdentifier(run_name=f"{table.name}-{as_of.isoformat()}", run_time=now)
    validation = ExpectationSuiteValidationResult(
        success=passed == len(ordered),
        results=ordered,
        suite_name=table.name,
        statistics={
            "evaluated_expectations": len(ordered),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(ordered) - passed,
            "success_percent": 100.0 * passed / len(ordered) if ordered else None,
        },
        meta={
            "table": table.name,
            AS_OF: as_of.isoformat(),
            "run_id": run_id.to_json_dict(),
            "validation_time": now.isoformat(),
            "great_expectations_version": gx.__version__,
            "active_batch_definition": {
                "datasource_name": _DATASOURCE,
                "data_asset_name": table.name,
                "data_connector_name": "fluent",
                "batch_identifiers": {AS_OF: as_of.isoformat()},
            },
            # one pass judged these dates together; this result is this date's share
            "validated_with": {
                "first": dates[0].isoformat(),
                "last": dates[-1].isoformat(),
                "dates": len(dates),
            },
        },
        batch_id=f"{_DATASOURCE}-{table.name}",
    )
    return run_id, validation


def _write_outcome(
    table: FeatureTable, as_of: dt.date, run: tuple[Any, Any], results_dir: Path
) -> ValidationOutcome:
    _, validation = run
    payload = validation.to_json_dict()
    path = result_path(results_dir, table.name, as_of)
    _write_json_atomically(path, payload)
    failed = tuple(_failed_check(r) for r in payload["results"] if not r.get("success", False))
    return ValidationOutcome(
        table=table.name,
        as_of=as_of,
        success=bool(payload["success"]) and not failed,
        evaluated=len(payload["results"]),
        failed=failed,
        result_path=path,
        docs_path=results_dir / DOCS_DIR / "index.html",
    )


def _publish(
    gate: _Gate,
    table: FeatureTable,
    suite: gx.ExpectationSuite,
    validations: dict[dt.date, tuple[Any, Any]],
) -> None:
    """Store each date's result and the table's latest suite behind the Data Docs site,
    then render their pages and the index once."""
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )
    from great_expectations.exceptions import DataContextError

    context = gate.context
    suite_id = ExpectationSuiteIdentifier(name=table.name)
    keys = []
    for run_id, validation in validations.values():
        key = ValidationResultIdentifier(
            expectation_suite_identifier=suite_id,
            run_id=run_id,
            batch_identifier=validation.batch_id,
        )
        context.validation_results_store.set(key, validation)
        keys.append(key)
    # The suite store is a folder shared by runs: replace this table's suite. (delete + add,
    # not add_or_update, which compares every expectation with every other: seconds.)
    with contextlib.suppress(DataContextError):
        context.suites.delete(table.name)
    context.suites.add(suite)
    context.build_data_docs(site_names=[_SITE], resource_identifiers=[*keys, suite_id])


# ------------------------------------------------------------------------- GX context


@dataclasses.dataclass
class _Gate:
    """A GX context for one results folder with its Spark and pandas sources, kept for
    the process: every table and call reuses it."""

    context: Any
    partitions: Any  # Spark frames: the partitions
    dates: Any  # pandas frames: the per-date summaries
    _batches: dict[tuple[str, str], Any] = dataclasses.field(default_factory=dict)

    def validate(
        self, source: Any, asset: str, frame: Any, suite: gx.ExpectationSuite, result_format: dict
    ) -> Any:
        """Run `suite` on `frame` (no checkpoint, nothing stored)."""
        batches = self._batches.get((source.name, asset))
        if batches is None:
            batches = source.add_dataframe_asset(name=asset).add_batch_definition_whole_dataframe(
                "whole"
            )
            self._batches[(source.name, asset)] = batches
        batch = batches.get_batch(batch_parameters={"dataframe": frame})
        return batch.validate(suite, result_format=result_format)


_GATES: dict[Path, _Gate] = {}


def _gate(results_dir: Path) -> _Gate:
    gate = _GATES.get(results_dir)
    if gate is None:
        _quiet_great_expectations()
        import great_expectations as gx

        context = gx.get_context(mode="ephemeral", project_config=_context_config(results_dir))
        gate = _Gate(
            context,
            # persist=False: the caller has cached the frame; GX would otherwise persist it again.
            partitions=context.data_sources.add_spark(name=_DATASOURCE, persist=False),
            dates=context.data_sources.add_pandas(name=_DATES_SOURCE),
        )
        _GATES[results_dir] = gate
    return gate


def _context_config(results_dir: Path):
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    def files(kind: str) -> dict:
        return {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(results_dir / STORES_DIR / kind),
        }

    defaults = InMemoryStoreBackendDefaults()
    stores = dict(defaults.stores)
    # Suites and results live in files so the Data Docs index keeps every table's latest
    # suite and the run history (GX drops site pages whose source is not in its stores).
    stores[defaults.expectations_store_name] = {
        "class_name": "ExpectationsStore",
        "store_backend": files("expectations"),
    }
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": files("validations"),
    }
    return DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        data_docs_sites={
            _SITE: {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(results_dir / DOCS_DIR),
                },
                "site_index_builder": {
                    "class_name": "DefaultSiteIndexBuilder",
                    "show_how_to_buttons": False,
                    "validation_results_limit": _DOCS_HISTORY,
                },
            }
        },
        analytics_enabled=False,  # GX 1.24 sends nothing anyway; say so explicitly
        progress_bars=ProgressBarsConfig(globally=False),  # no tqdm bars on stderr
    )


def _quiet_great_expectations() -> None:
    """Great Expectations' loggers at WARNING (it logs a lot at INFO, even on import),
    unless the application configured them itself. Call before importing it."""
    logger = logging.getLogger("great_expectations")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


def _write_json_atomically(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(payload, out, indent=2, sort_keys=True, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- reading


def _failed_check(result: dict) -> FailedCheck:
    config = result.get("expectation_config") or {}
    kwargs = config.get("kwargs") or {}
    meta = config.get("meta") or {}
    etype = config.get("type") or config.get("expectation_type") or "unknown"
    column = kwargs.get("column")
    if column is None and "column_list" in kwargs:
        column = ", ".join(kwargs["column_list"])
    rule = meta.get("rule", etype)
    return FailedCheck(
        expectation=etype,
        column=column,
        rule=rule,
        observed=_observed_text(result, rule),
        detail=meta.get("check", etype),
    )


def _observed_text(result: dict, rule: str) -> str:
    errors = _exception_messages(result.get("exception_info"))
    if errors:
        return "could not be evaluated: " + "; ".join(errors)
    body = result.get("result") or {}
    if "unexpected_count" in body:
        count = body.get("unexpected_count") or 0
        total = body.get("element_count")
        what = "null" if rule == RULE_NOT_NULL else "unexpected"
        text = f"{count:,} {what}" + (f" of {total:,} rows" if total is not None else "")
        examples = list(
            dict.fromkeys(  # distinct, in order
                _value_text(e) for e in body.get("partial_unexpected_list") or [] if e is not None
            )
        )
        if examples:
            text += " (e.g. " + ", ".join(examples) + ")"
        return text
    if "observed_value" in body:
        value = body["observed_value"]
        if isinstance(value, str):  # GX serialises a timestamp maximum as ISO text
            return f"observed {value.replace('T', ' ')}"
        return f"observed {_value_text(value)}"
    return "failed"


def _exception_messages(info: dict | None) -> list[str]:
    """First lines of the errors GX caught for one expectation: either flat
    ({"raised_exception": ..., "exception_message": ...}) or one entry per failed metric."""
    if not info:
        return []
    entries = [info] if "raised_exception" in info else list(info.values())
    messages = [
        str(e.get("exception_message") or "error").strip().splitlines()[0]
        for e in entries
        if isinstance(e, dict) and (e.get("raised_exception") or e.get("exception_message"))
    ]
    return list(dict.fromkeys(messages))


def _value_text(value: Any) -> str:
    if isinstance(value, dict):
        return "(" + ", ".join(_value_text(v) for v in value.values()) + ")"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
