"""Generate the synthetic streaming service's landing files and ground truth.

spark-submit jobs/generate_data.py --accounts 2000000 --days 30
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys

from feature_store import runtime
from feature_store.synthetic import GenerationSpec, generate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marquee generate", description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("--accounts", type=int, help="number of accounts (households)")
    parser.add_argument("--titles", type=int, help="catalogue size")
    parser.add_argument("--days", type=int, help="days of activity")
    parser.add_argument("--start-date", type=dt.date.fromisoformat, help="first day, YYYY-MM-DD")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--dirty-share", type=float, help="share of records made dirty")
    parser.add_argument("--late-share", type=float, help="share of events arriving 1-3 days late")
    parser.add_argument("--sessions-per-day", type=float, help="mean sessions per profile per day")
    parser.add_argument("--landing-compression", choices=("none", "gzip"))
    parser.add_argument(
        "--landing-days",
        type=int,
        help="only the last N days as landing files, the days before straight into bronze",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser.parse_args(argv)


def spec_from(args: argparse.Namespace, defaults) -> GenerationSpec:
    def pick(name: str):
        value = getattr(args, name)
        return getattr(defaults, name) if value is None else value

    days, landing_days = pick("days"), pick("landing_days")
    return GenerationSpec(
        seed=pick("seed"),
        accounts=pick("accounts"),
        titles=pick("titles"),
        days=days,
        start_date=pick("start_date"),
        dirty_share=pick("dirty_share"),
        late_share=pick("late_share"),
        sessions_per_day=pick("sessions_per_day"),
        landing_compression=pick("landing_compression"),
        history_days=max(0, days - landing_days) if landing_days else 0,
    )


def _main(args: argparse.Namespace) -> int:
    config = runtime.load(args)
    spec = spec_from(args, config.generator)
    spark = runtime.session(config, args)
    result = generate(
        spark, config.lake, spec, pseudonymization_key=config.privacy.pseudonymization_key
    )
    if args.json:
        print(
            json.dumps(
                {
                    "spec": {**dataclasses.asdict(spec), "start_date": str(spec.start_date)},
                    "landing_counts": result.landing_counts,
                    "seconds_by_stage": result.seconds_by_stage,
                },
                indent=2,
            )
        )
    else:
        print(f"generated {spec.accounts:,} accounts x {spec.days} days into {config.lake}/landing")
        for source, counts in result.landing_counts.items():
            dirty = sum(v for k, v in counts.items() if k not in ("lines", "late"))
            print(
                f"  {source:<14}{counts['lines']:>14,} lines  {dirty:>9,} dirty"
                f"  {counts['late']:>9,} late"
            )
    return runtime.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
