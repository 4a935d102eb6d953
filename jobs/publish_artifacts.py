"""Publish model outputs and feature snapshots as versioned, verified folders for serving.

spark-submit jobs/publish_artifacts.py [--artifact recommendations ...] [--date 2026-03-13]
Writes <published>/<artifact>/<version>/ (Parquet + manifest.json) and moves <artifact>/latest.
Default: every artifact whose source table exists, each as of its latest date.
"""

from __future__ import annotations

import argparse
import sys

from feature_store import runtime
from feature_store.publish import ARTIFACTS


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marquee publish", description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument(
        "--artifact",
        action="append",
        choices=sorted(ARTIFACTS),
        help="publish only this artifact (repeatable; default: all with a source table)",
    )
    parser.add_argument(
        "--date", type=runtime.iso_date, help="as-of date (default: each source's latest)"
    )
    parser.add_argument(
        "--table",
        action="append",
        help="online_features: only this feature table (repeatable; default: all)",
    )
    return parser.parse_args(argv)


def _main(args: argparse.Namespace) -> int:
    from feature_store.publish import publish_all

    config = runtime.load(args)
    spark = runtime.session(config, args)
    outcomes = publish_all(spark, config, args.artifact, as_of=args.date, tables=args.table)
    if not outcomes:
        print("error: nothing to publish: no artifact has a source table yet", file=sys.stderr)
        return runtime.EXIT_FAILED
    print(f"{'artifact':<21}{'version':<32}{'rows':>12}  {'model':<24}status")
    for outcome in outcomes:
        if outcome.error:
            print(f"{outcome.artifact:<21}{'-':<32}{'-':>12}  {'-':<24}failed")
            continue
        done = outcome.published
        model = done.manifest["model"] or {}
        label = f"{model['name']} v{model['version']}" if model.get("version") else "-"
        status = "unchanged (same inputs)" if done.reused else "published"
        if done.removed:
            status += f"; removed {', '.join(done.removed)}"
        print(f"{done.artifact:<21}{done.version:<32}{done.manifest['rows']:>12,}  {label:<24}"
              f"{status}")  # fmt: skip
    failed = [o for o in outcomes if o.error]
    for outcome in failed:
        print(f"error: {outcome.error}", file=sys.stderr)
    return runtime.EXIT_FAILED if failed else runtime.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
