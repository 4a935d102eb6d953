"""Publish the latest features per entity as the versioned artifact online_features.

spark-submit jobs/export_online.py --date 2026-01-09 [--table profile_daily ...]
Writes <published>/online_features/<version>/ (Parquet per table, manifest.json with
checksums) the way `marquee publish` writes every artifact, and moves `latest`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from feature_store import runtime
from feature_store.features.online import ARTIFACT
from feature_store.publish import PublishError, publish_artifact


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="marquee features export-online", description=__doc__.splitlines()[0]
    )
    runtime.add_common_args(parser)
    parser.add_argument("--date", type=runtime.iso_date, required=True, help="as-of date")
    parser.add_argument("--table", action="append", help="only this feature table (repeatable)")
    return parser.parse_args(argv)


def _main(args: argparse.Namespace) -> int:
    config = runtime.load(args)
    spark = runtime.session(config, args)
    try:
        published = publish_artifact(spark, config, ARTIFACT, as_of=args.date, tables=args.table)
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return runtime.EXIT_FAILED
    state = "unchanged, already published as" if published.reused else "published as"
    print(f"online features as of {args.date}: {state} {published.version} at {published.path}")
    for name, info in published.manifest["tables"].items():
        print(
            f"  {name:<28}{info['rows']:>12,} rows  {_as_of_text(info, args.date)}  "
            f"(feature table version {info['source']['delta_version']})"
        )
    return runtime.EXIT_OK


def _as_of_text(table: dict, snapshot: dt.date) -> str:
    """The table's own as-of date, and how far it lags the snapshot's."""
    as_of = table.get("as_of_date")
    if as_of is None:
        return "no rows within its TTL"
    behind = (snapshot - dt.date.fromisoformat(as_of)).days
    days = f"{behind} day" + ("s" if behind > 1 else "")
    return f"as of {as_of}" + (f" ({days} behind the snapshot)" if behind else "")


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
