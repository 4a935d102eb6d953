"""Forget a member: erase an account and its profiles everywhere, and suppress them.

spark-submit jobs/forget_member.py --account acc000000042
Every table, the quarantine, landing files and published versions lose the member; the
suppression list keeps them out of later ingests. The request is audited in
<lake>/ops/forget_requests with its suppression token, never the raw id or pseudonym.
Safe to run again when it failed half-way.
"""

from __future__ import annotations

import argparse
import sys

from feature_store import runtime
from feature_store.forget import forget_account


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marquee forget", description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--account", required=True, help="the account's raw id")
    return parser.parse_args(argv)


def _main(args: argparse.Namespace) -> int:
    config = runtime.load(args)
    spark = runtime.session(config, args)
    try:
        report = forget_account(spark, config, args.account)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return runtime.EXIT_USAGE
    print(report.format_table())
    return runtime.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
