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
        print(doctor.manifest_signing_report(config))
        if args.warm:
            print("\n".join(doctor.warm(config)))
        return runtime.EXIT_OK

    return runtime.run(body, args)


def _features(argv: list[str]) -> int:
    """`marquee features list|describe|build|validate`."""
    from feature_store.features.definitions import describe
    from feature_store.features.tables import REGISTRY

    usage = (
        "usage: marquee features <list | describe NAME | build | validate> [options]\n"
        "  list              the declared feature tables\n"
        "  describe NAME     keys, TTL, inputs, checks and columns of one table\n"
        "  build             build, validate and commit tables (--date D | --start/--end)\n"
        "  validate          re-run the checks on stored partitions (--date D)\n"
        "  export-online     write the latest features per entity for serving (--date D)"
    )
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return runtime.EXIT_OK if argv else runtime.EXIT_USAGE
    action, rest = argv[0], argv[1:]
    if action == "list":
        print(f"{'table':<28}{'entity':<9}{'keys':<34}{'ttl':>5}{'lookback':>10}{'columns':>9}")
        for t in REGISTRY:
            print(
                f"{t.name:<28}{t.entity.name:<9}{', '.join(t.keys):<34}{t.ttl_days:>4}d"
                f"{t.lookback_days:>9}d{len(t.columns):>9}"
            )
        return runtime.EXIT_OK
    if action == "describe":
        if len(rest) != 1:
            print("usage: marquee features describe NAME", file=sys.stderr)
            return runtime.EXIT_USAGE
        try:
            print(describe(REGISTRY.get(rest[0])))
        except KeyError as exc:
            print(f"error: {exc.args[0]}", file=sys.stderr)
            return runtime.EXIT_USAGE
        return runtime.EXIT_OK
    if action == "build":
        from jobs import build_features

        return build_features.main(rest)
    if action == "validate":
        from jobs import validate_features

        return validate_features.main(rest)
    if action == "export-online":
        from jobs import export_online

        return export_online.main(rest)
    print(usage, file=sys.stderr)
    return runtime.EXIT_USAGE


def _dispatch(group: str, actions: dict, argv: list[str]) -> int:
    """Run `marquee GROUP ACTION ...`: ACTION's main with the rest of the arguments."""
    if not argv or argv[0] not in actions:
        print(f"usage: marquee {group} <action> [options]\n\nactions:")
        for name, (_, help_text) in actions.items():
            print(f"  {name:<21}{help_text}")
        return runtime.EXIT_OK if argv and argv[0] in ("-h", "--help") else runtime.EXIT_USAGE
    return actions[argv[0]][0](argv[1:])


def _recs(argv: list[str]) -> int:
    """`marquee recs train|benchmark-movielens|recommend`."""
    from jobs import recs_movielens, train_recommender

    actions = {
        "train": (
            train_recommender.main,
            "train, evaluate and register the recommender as of --date; batch-score to Delta",
        ),
        "benchmark-movielens": (
            recs_movielens.benchmark_main,
            "every component, the ensemble and popularity on a MovieLens folder",
        ),
        "recommend": (
            recs_movielens.recommend_main,
            "train the ensemble on a ratings file, write each user's top K as CSV",
        ),
    }
    return _dispatch("recs", actions, argv)


def _churn(argv: list[str]) -> int:
    """`marquee churn train`."""
    from jobs import train_churn

    actions = {
        "train": (
            train_churn.main,
            "train, evaluate and register the churn model as of --date; score accounts",
        ),
    }
    return _dispatch("churn", actions, argv)


def _artwork(argv: list[str]) -> int:
    """`marquee artwork train|evaluate`."""
    from jobs import train_artwork

    actions = {
        "train": (
            train_artwork.main,
            "train the artwork policies as of --date, register the served one, write its table",
        ),
        "evaluate": (
            train_artwork.evaluate_main,
            "every policy's play rate off-policy on the held-out days before --date",
        ),
    }
    return _dispatch("artwork", actions, argv)


def _forecast(argv: list[str]) -> int:
    """`marquee forecast train`."""
    from jobs import train_forecast

    actions = {
        "train": (
            train_forecast.main,
            "backtest, train and register the regional forecast as of --date; CDN plan",
        ),
    }
    return _dispatch("forecast", actions, argv)


def _models(argv: list[str]) -> int:
    """`marquee models promote|rollback|list`."""
    from jobs import manage_models

    actions = {
        "promote": (
            manage_models.promote_main,
            "NAME --version V: gate the version (mlflow/registry.yaml), then champion",
        ),
        "rollback": (manage_models.rollback_main, "NAME: restore the previous champion"),
        "list": (manage_models.list_main, "[NAME]: versions, aliases, data window, key metrics"),
    }
    return _dispatch("models", actions, argv)


def _submit(argv: list[str]) -> int:
    from feature_store.submit import main as submit_main

    return submit_main(argv)


def _airflow(argv: list[str]) -> int:
    """`marquee airflow [--config F] [--set K=V] -- AIRFLOW ARGS`: Airflow on .marquee/airflow."""
    from feature_store.airflow_local import airflow_cli

    # marquee's own options, if any, come before "--"; everything else is Airflow's.
    own, airflow_args = (
        ([], argv) if "--" not in argv else (argv[: argv.index("--")], argv[argv.index("--") + 1 :])
    )
    parser = argparse.ArgumentParser(prog="marquee airflow", description=_airflow.__doc__)
    runtime.add_common_args(parser)
    args = parser.parse_args(own)
    return runtime.run(lambda a: airflow_cli(runtime.load(a), airflow_args), args)


def _mlflow_ui(argv: list[str]) -> int:
    """`marquee mlflow-ui [--port P]`: the MLflow UI on the configured store."""
    import subprocess

    from feature_store.tracking import tracking_uri

    parser = argparse.ArgumentParser(prog="marquee mlflow-ui", description=_mlflow_ui.__doc__)
    runtime.add_common_args(parser)
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)

    def body(args: argparse.Namespace) -> int:
        uri = tracking_uri(runtime.load(args))
        mlflow = Path(sys.executable).parent / "mlflow"
        command = [str(mlflow), "ui", "--backend-store-uri", uri, "--port", str(args.port)]
        return subprocess.run(command, check=False).returncode

    return runtime.run(body, args)


def _commands():
    from jobs import (
        forget_member,
        generate_data,
        ingest_events,
        publish_artifacts,
        pull_artifact,
        run_demo,
    )

    return {
        "generate": (generate_data.main, "generate synthetic landing data and its ground truth"),
        "ingest": (ingest_events.main, "ingest one day of landing files into bronze"),
        "demo": (run_demo.main, "the whole platform through Airflow on demo data (make run)"),
        "features": (_features, "feature tables: list, describe, build, validate, export-online"),
        "recs": (_recs, "recommendations: train, benchmark-movielens, recommend"),
        "churn": (_churn, "churn prediction: train"),
        "forecast": (_forecast, "regional popularity forecasts and the CDN plan: train"),
        "artwork": (_artwork, "personalized artwork: train, evaluate (off-policy)"),
        "models": (_models, "model registry: promote (gated), rollback, list"),
        "forget": (forget_member.main, "erase a member everywhere, keep them out (--account ID)"),
        "publish": (publish_artifacts.main, "write versioned, checksummed artifacts for serving"),
        "pull": (pull_artifact.main, "fetch a published artifact version, verified, into --to"),
        "submit": (_submit, "run a job of jobs/ through spark-submit (--master for a cluster)"),
        "airflow": (_airflow, "Airflow's CLI on .marquee/airflow: airflow standalone, backfill"),
        "mlflow-ui": (_mlflow_ui, "the MLflow UI on the configured tracking store"),
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
