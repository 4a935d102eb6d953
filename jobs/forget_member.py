"""Forget a member: delete an account and its profiles from every table, then vacuum.

spark-submit jobs/forget_member.py --account acc000000042
The request is audited in <lake>/ops/forget_requests without the raw id.
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
