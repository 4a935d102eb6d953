"""How each stage of the platform grows with members: a log-log fit over bench_platform runs.

Adds up each stage's seconds per run of platform-*.json results at several scales (the
daily path's days and the history's backfills under one name each), fits seconds =
c x accounts^b per stage by least squares on the logs (b near 1: linear; above: worse;
below: fixed cost still weighs) and projects hours at larger member counts from the two
largest scales.

    python bench/scaling.py bench/results/platform-{100000,500000,2000000}x70d-*.json

Writes bench/results/scaling-<UTC time>.json and prints a sizing table (markdown): per
stage, hours measured at each scale and projected beyond, with events per day and memory.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

from run_bench import save_result

PROJECT_AT = (2_000_000, 5_000_000, 10_000_000, 20_000_000)
_DAILY = re.compile(r"^daily\.\d{4}-\d{2}-\d{2}\.")


def stage_group(name: str) -> str:
    """``daily.2026-03-14.ingest`` -> ``daily.ingest``; ``history.a+b`` -> ``history``."""
    if _DAILY.match(name):
        return "daily." + _DAILY.sub("", name)
    return "history" if name.startswith("history.") else name


def grouped_seconds(result: dict) -> dict[str, float]:
    """A run's seconds per stage group, with the whole run as ``total``."""
    groups: dict[str, float] = {}
    for name, stage in result["stages"].items():
        group = stage_group(name)
        groups[group] = groups.get(group, 0.0) + stage["seconds"]
    if "total_seconds" in result:  # a run that stopped early has no total
        groups["total"] = sum(stage["seconds"] for stage in result["stages"].values())
    return groups


def fit(points: list[tuple[int, float]]) -> dict:
    """Least squares of log(seconds) on log(accounts): the exponent b and constant c."""
    xs = [math.log(a) for a, _ in points]
    ys = [math.log(max(s, 1e-3)) for _, s in points]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    b = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    c = math.exp(mean_y - b * mean_x)
    residual = max(abs(y - (math.log(c) + b * x)) for x, y in zip(xs, ys, strict=True))
    return {
        "exponent": round(b, 3),
        "constant": c,
        "max_log_residual": round(residual, 3),
        "growth": "worse than linear" if b > 1.1 else "linear" if b >= 0.9 else "sublinear",
    }


def scaling(results: list[dict]) -> dict:
    """Per stage group: seconds at each scale, the fit and projected hours."""
    by_accounts = {r["spec"]["accounts"]: grouped_seconds(r) for r in results}
    if len(by_accounts) < 2:
        raise SystemExit("need runs at two or more member counts")
    stages: dict[str, dict] = {}
    for group in sorted({g for seconds in by_accounts.values() for g in seconds}):
        points = sorted((a, s[group]) for a, s in by_accounts.items() if group in s)
        if len(points) < 2:
            continue
        figures = fit(points)
        # Projected from the two largest scales: fixed costs flatten the curve at the small
        # end, so the fit over all points would promise too little further out.
        top = fit(points[-2:])
        stages[group] = {
            "seconds": {str(a): round(s, 1) for a, s in points},
            **figures,
            "exponent_at_the_top": top["exponent"],
            "projected_hours": {
                str(n): round(top["constant"] * n ** top["exponent"] / 3600, 2) for n in PROJECT_AT
            },
        }
    return {"accounts": sorted(by_accounts), "stages": stages}


def sizing_table(results: list[dict], fitted: dict) -> str:
    """Markdown: a column per measured scale, then per projected one (marked *); rows of
    events per day, peak memory (measured only) and each stage group's hours."""
    measured = sorted(results, key=lambda r: r["spec"]["accounts"])
    shown = [r["spec"]["accounts"] for r in measured]
    projected = [n for n in PROJECT_AT if n > shown[-1]]
    header = [f"{a:,}" for a in shown] + [f"{n:,}*" for n in projected]
    per_account = measured[-1]["stages"]["generate"]["rows"] / measured[-1]["spec"]["days"]
    per_account /= measured[-1]["spec"]["accounts"]
    events = [r["stages"]["generate"]["rows"] / r["spec"]["days"] for r in measured]
    events += [per_account * n for n in projected]
    lines = [
        "| accounts | " + " | ".join(header) + " |",
        "|---" * (len(header) + 1) + "|",
        "| events per day (bronze rows) | " + " | ".join(f"{e / 1e6:,.1f}M" for e in events) + " |",
    ]
    for name, key in (("driver JVM", "driver_jvm"), ("Python", "python")):
        cells = [f"{r['peak_memory_mib'][key] / 1024:,.1f} GiB" for r in measured]
        lines.append(
            f"| peak memory, {name} | " + " | ".join(cells + ["?"] * len(projected)) + " |"
        )
    for group, figures in fitted["stages"].items():
        cells = [f"{figures['seconds'][str(a)] / 3600:.2f}" for a in shown]
        cells += [f"{figures['projected_hours'][str(n)]:.2f}" for n in projected]
        lines.append(
            f"| {group} (h, b={figures['exponent_at_the_top']}) | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="platform-*.json files")
    args = parser.parse_args(argv)
    results = [json.loads(p.read_text()) for p in args.results]
    for path, result in zip(args.results, results, strict=True):
        if "total_seconds" not in result:
            print(f"{path}: the run did not finish; its stages so far are used")
    out = {"benchmark": "scaling", "runs": [str(p) for p in args.results], **scaling(results)}
    for group, figures in out["stages"].items():
        print(f"{group:<32} b={figures['exponent']:<6} {figures['seconds']}")
    print(sizing_table(results, out))
    print(f"results: {save_result(out, 'scaling')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
