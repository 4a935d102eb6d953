"""Ingest one day of landing files into bronze Delta tables, with reconciliation.

spark-submit jobs/ingest_events.py --date 2026-01-05 [--json]
Exit code 1, with a one-line error, when the day is refused (quarantine share above
the threshold) or another ingest of the same date committed first (re-run it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from feature_store import runtime
from feature_store.ingest import IngestError, ingest_date


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marquee ingest", description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument(
        "--date", type=dt.date.fromisoformat, required=True, help="file date, YYYY-MM-DD"
    )
    parser.add_argument("--source", action="append", help="only this source (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the reconciliation as JSON")
    return parser.parse_args(argv)


def _main(args: argparse.Namespace) -> int:
    config = runtime.load(args)
    spark = runtime.session(config, args)
    try:
        report = ingest_date(spark, config, args.date, args.source)
    except IngestError as exc:
        if exc.report is not None:
            print(exc.report.to_json() if args.json else exc.report.format_table())
        print(f"error: {exc}", file=sys.stderr)
        return runtime.EXIT_FAILED
    print(report.to_json() if args.json else report.format_table())
    return runtime.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
