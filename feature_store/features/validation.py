"""The validation gate a feature-table partition passes before it becomes visible.

`build_suite` turns a table's declarations into a Great Expectations suite: not-null
unless nullable, declared ranges and allowed values, unique keys within the
partition, a row count near the previous partition's, and a fresh enough maximum of
the freshness column. `validate_partition` runs that suite against the (cached)
partition DataFrame through a GX 1.x checkpoint, writes the result JSON and updates
the Data Docs site, and returns a `ValidationOutcome` whose `summary()` names every
failed check with what was observed.

Each expectation carries `meta = {"rule": <kind>, "check": <readable statement>}`;
failures are reported through that statement rather than GX's expectation names.

Cost on Spark: GX bundles aggregate metrics (null counts, unexpected counts, min/max,
row count) into one Spark job per domain, but fetches example unexpected values with
one Spark job per column-map expectation, passing or not (~170 jobs for profile_daily).
So the checkpoint runs with `partial_unexpected_count=0` (about ten jobs in all), and
examples are fetched afterwards for the failed checks only, then written into the
stored result and its Data Docs page. The suite holds one expectation per declared
rule and nothing that another implies (one row-count expectation carries both the
minimum and the day-over-day bound). Key uniqueness is a window over the keys (one
shuffle): the dearest check.

Timestamps: the freshness bounds are computed in UTC and handed to GX in the frame
PySpark returns timestamps in (naive local time of the Python process).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import json
import logging
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from feature_store.features.definitions import AS_OF, FeatureTable

if TYPE_CHECKING:
    import great_expectations as gx
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

DOCS_DIR = "data_docs"
RESULT_FILE = "validation.json"
STORES_DIR = "gx_stores"  # GX's own expectation and validation stores behind the docs site
_SITE = "marquee"
_DATASOURCE = "marquee_partitions"
_EXAMPLES = 3  # example unexpected values kept per failed check
_DOCS_HISTORY = 200  # validation runs listed on the Data Docs index page
_SET_SHOWN = 6  # allowed values spelled out in a check's statement

RULE_NOT_NULL = "not_null"
RULE_RANGE = "range"
RULE_ALLOWED = "allowed"
RULE_UNIQUE_KEY = "unique_key"
RULE_ROW_COUNT = "row_count"
RULE_FRESHNESS = "freshness"


@dataclasses.dataclass(frozen=True)
class FailedCheck:
    """One expectation that did not hold."""

    expectation: str  # GX expectation type, e.g. expect_column_values_to_be_between
    column: str | None  # the column (or "a, b" for compound keys); None for table checks
    rule: str  # one of the RULE_* kinds
    observed: str  # what was seen, e.g. "3 unexpected of 1,000 rows (e.g. 1.4)"
    detail: str  # the declared check, e.g. "completion_rate_28d values between 0 and 1"

    def describe(self) -> str:
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
        head = f"{self.table} {self.as_of.isoformat()}: "
        if self.success:
            return head + f"all {self.evaluated} checks passed"
        lines = [head + f"{len(self.failed)} of {self.evaluated} checks failed"]
        lines += [f"  - {check.describe()}" for check in self.failed]
        return "\n".join(lines)


# ---------------------------------------------------------------------------- suite


def build_suite(
    table: FeatureTable, *, as_of: dt.date, previous_row_count: int | None
) -> gx.ExpectationSuite:
    """The expectations a partition of `table` for `as_of` must meet, from its declarations."""
    _quiet_great_expectations()
    import great_expectations as gx
    import great_expectations.expectations as gxe

    expectations: list[Any] = []

    def add(expectation_cls, rule: str, check: str, **kwargs) -> None:
        meta = {"rule": rule, "check": check}
        expectations.append(expectation_cls(meta=meta, **kwargs))

    for col in table.columns:
        if not col.nullable:
            add(
                gxe.ExpectColumnValuesToNotBeNull,
                RULE_NOT_NULL,
                f"{col.name} not null",
                column=col.name,
            )
        if col.min_value is not None or col.max_value is not None:
            add(
                gxe.ExpectColumnValuesToBeBetween,
                RULE_RANGE,
                f"{col.name} values {_bounds_text(col.min_value, col.max_value)}",
                column=col.name,
                min_value=col.min_value,
                max_value=col.max_value,
            )
        if col.allowed:
            add(
                gxe.ExpectColumnValuesToBeInSet,
                RULE_ALLOWED,
                f"{col.name} values in {_set_text(col.allowed)}",
                column=col.name,
                value_set=list(col.allowed),
            )

    keys = list(table.keys)
    key_check = f"{', '.join(keys)} unique per {AS_OF}"
    if len(keys) == 1:
        add(gxe.ExpectColumnValuesToBeUnique, RULE_UNIQUE_KEY, key_check, column=keys[0])
    else:
        add(gxe.ExpectCompoundColumnsToBeUnique, RULE_UNIQUE_KEY, key_check, column_list=keys)

    low, high, why = row_count_bounds(table, previous_row_count)
    add(
        gxe.ExpectTableRowCountToBeBetween,
        RULE_ROW_COUNT,
        f"row count {_bounds_text(low, high)} ({why})",
        min_value=low,
        max_value=high,
    )

    earliest, latest = freshness_bounds(table, as_of)
    add(
        gxe.ExpectColumnMaxToBeBetween,
        RULE_FRESHNESS,
        f"max({table.freshness_column}) between {_ts_text(earliest)} and {_ts_text(latest)}"
        f" (at most {table.max_staleness_hours} h before the end of {as_of.isoformat()})",
        column=table.freshness_column,
        min_value=_spark_local(earliest),
        max_value=_spark_local(latest),
    )

    return gx.ExpectationSuite(
        name=table.name,
        expectations=expectations,
        meta={"table": table.name, AS_OF: as_of.isoformat()},
    )


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
    """Validate one partition (the caller caches `df`), write the result JSON to
    `<results_dir>/<table>/<as_of>/validation.json`, update the Data Docs site under
    `<results_dir>/data_docs/`, and return the verdict."""
    results_dir = Path(results_dir).absolute()  # GX stores refuse relative folders
    suite = build_suite(table, as_of=as_of, previous_row_count=previous_row_count)
    log.info("validating %s %s: %d checks", table.name, as_of, len(suite.expectations))
    result_json = _run_gate(table, df, suite, as_of=as_of, results_dir=results_dir)

    result_path = results_dir / table.name / as_of.isoformat() / RESULT_FILE
    _write_json_atomically(result_path, result_json)

    failed = tuple(_failed_check(r) for r in result_json["results"] if not r.get("success", False))
    outcome = ValidationOutcome(
        table=table.name,
        as_of=as_of,
        success=bool(result_json["success"]) and not failed,
        evaluated=len(result_json["results"]),
        failed=failed,
        result_path=result_path,
        docs_path=results_dir / DOCS_DIR / "index.html",
    )
    (log.info if outcome.success else log.warning)("%s", outcome.summary())
    return outcome


def _run_gate(
    table: FeatureTable,
    df: DataFrame,
    suite: gx.ExpectationSuite,
    *,
    as_of: dt.date,
    results_dir: Path,
) -> dict:
    """Run the checkpoint (result JSON as a dict). Two passes keep Spark jobs few: the
    checkpoint counts unexpected values without fetching any (GX would otherwise run one
    Spark job per column-map expectation, passing or not), then examples are fetched for
    the failed map checks only and written into the stored result and its Data Docs page."""
    _quiet_great_expectations()
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.exceptions import DataContextError

    context = gx.get_context(mode="ephemeral", project_config=_context_config(results_dir))
    # persist=False: the caller has cached the partition; GX would otherwise persist it again.
    source = context.data_sources.add_spark(name=_DATASOURCE, persist=False)
    batch_definition = source.add_dataframe_asset(
        name=table.name
    ).add_batch_definition_whole_dataframe("partition")
    # The suite store is a folder shared by runs: replace this table's suite. (delete + add,
    # not add_or_update, which compares every expectation with every other: seconds.)
    with contextlib.suppress(DataContextError):
        context.suites.delete(suite.name)
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{table.name}-partition", data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{table.name}-gate",
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="data_docs", site_names=[_SITE])],
            result_format={"result_format": "BASIC", "partial_unexpected_count": 0},
        )
    )
    batch_parameters = {"dataframe": df}
    checkpoint_result = checkpoint.run(
        batch_parameters=batch_parameters,
        run_id=gx.RunIdentifier(run_name=f"{table.name}-{as_of.isoformat()}"),
    )
    ((key, result),) = checkpoint_result.run_results.items()

    failed_maps = [
        r
        for r in result.results
        if not r.success
        and not _exception_messages(r.exception_info)
        and (r.result or {}).get("unexpected_count")
    ]
    if failed_maps:
        log.info("fetching examples for %d failed checks", len(failed_maps))
        again = batch_definition.get_batch(batch_parameters=batch_parameters).validate(
            gx.ExpectationSuite(
                name=f"{table.name}-examples",
                expectations=[copy.copy(r.expectation_config.to_domain_obj()) for r in failed_maps],
            ),
            result_format={"result_format": "BASIC", "partial_unexpected_count": _EXAMPLES},
        )
        for first, second in zip(failed_maps, again.results, strict=True):
            first.result["partial_unexpected_list"] = (second.result or {}).get(
                "partial_unexpected_list", []
            )
        context.validation_results_store.set(key, result)
        context.build_data_docs(site_names=[_SITE], resource_identifiers=[key])
    return result.to_json_dict()


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
