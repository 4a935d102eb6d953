"""`marquee`: one command for the platform. Subcommands run the jobs in-process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from feature_store import runtime


def _doctor(argv: list[str]) -> int:
    from feature_store import doctor

    parser = argparse.ArgumentParser(prog="marquee doctor", description="check and warm the set-up")
    runtime.add_common_args(parser)
    parser.add_argument(
        "--warm", action="store_true", help="start Spark with Delta once (caches the jars)"
    )
    parser.add_argument(
        "--maven",
        action="store_true",
        help="fetch Delta's jars with Maven into <state>/jars (fallback)",
    )
    args = parser.parse_args(argv)

    def body(args: argparse.Namespace) -> int:
        config = runtime.load(args)
        if args.maven:
            jars = doctor.fetch_jars_with_maven(Path(config.paths.state_dir) / "jars")
            print("\n".join(str(j) for j in jars))
            print(f"now run with --set spark.jars_dir={Path(config.paths.state_dir) / 'jars'}")
            return runtime.EXIT_OK
        blas = doctor.native_blas_library()
        print(f"native BLAS library: {blas or 'not found (MLlib falls back to Java)'}")
        if args.warm:
            print("\n".join(doctor.warm(config)))
        return runtime.EXIT_OK

    return runtime.run(body, args)


def _commands():
    from jobs import generate_data, ingest_events, run_demo

    return {
        "generate": (generate_data.main, "generate synthetic landing data and its ground truth"),
        "ingest": (ingest_events.main, "ingest one day of landing files into bronze"),
        "demo": (run_demo.main, "generate demo data, ingest every day, print a summary"),
        "doctor": (_doctor, "check Java, Delta jars and native BLAS; --warm caches the jars"),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: marquee <command> [options]\n\ncommands:")
        for name, (_, help_text) in commands.items():
            print(f"  {name:<10}{help_text}")
        return runtime.EXIT_OK if argv and argv[0] in ("-h", "--help") else runtime.EXIT_USAGE
    return commands[argv[0]][0](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
