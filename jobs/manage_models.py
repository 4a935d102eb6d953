"""Promote, roll back and list registered models: `marquee models promote|rollback|list`.

    marquee models promote churn --version 3   # gate, then champion -> v3 (exit 1: refused)
    marquee models rollback churn              # champion -> the champion before it
    marquee models list [NAME] [--json]        # versions, aliases, data window, key metrics

The gates are `paths.registry_policy` (mlflow/registry.yaml); every alias change goes to
the audit table `<lake>/registry/model_aliases`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from feature_store import runtime


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"marquee models {prog}", description=description)
    runtime.add_common_args(parser)
    return parser


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def _error(message: object, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def promote_main(argv: list[str] | None = None) -> int:
    parser = _parser(
        "promote", "make a version the challenger and, if it passes the gate, champion"
    )
    parser.add_argument("name", help="registered model, e.g. churn")
    parser.add_argument("--version", required=True, help="the version to promote")
    parser.add_argument("--actor", default=_actor(), help="who promotes (default: login name)")

    def body(args: argparse.Namespace) -> int:
        from feature_store.lake import Lake
        from feature_store.registry import store
        from feature_store.registry.audit import AuditLog
        from feature_store.registry.policy import load_policy
        from feature_store.registry.promotion import promote

        config = runtime.load(args)
        policy = load_policy(config.paths.registry_policy).for_model(args.name)
        client = store.client_for(config)
        try:  # before Spark starts: a typo costs no session
            store.model_version(client, args.name, args.version)
        except store.RegistryError as exc:
            return _error(exc, runtime.EXIT_USAGE)
        audit = AuditLog(runtime.session(config, args), Lake(config.lake).registry_audit)
        try:
            decision = promote(client, policy, args.version, audit=audit, actor=args.actor)
        except store.RegistryError as exc:
            return _error(exc, runtime.EXIT_FAILED)
        print(decision.format())
        if decision.passed:
            return runtime.EXIT_OK
        failed = "; ".join(f"{c.name}: {c.reason}" for c in decision.failures)
        return _error(f"{args.name} v{args.version} not promoted: {failed}", runtime.EXIT_FAILED)

    return runtime.run(body, parser.parse_args(argv))


def rollback_main(argv: list[str] | None = None) -> int:
    parser = _parser("rollback", "restore the champion before the current one (audit trail)")
    parser.add_argument("name", help="registered model, e.g. churn")
    parser.add_argument("--reason", default="", help="why, recorded in the audit table")
    parser.add_argument("--actor", default=_actor(), help="who rolls back (default: login name)")

    def body(args: argparse.Namespace) -> int:
        from feature_store.lake import Lake
        from feature_store.registry import store
        from feature_store.registry.audit import AuditLog
        from feature_store.registry.promotion import rollback

        config = runtime.load(args)
        client = store.client_for(config)
        try:
            store.aliases(client, args.name)
        except store.RegistryError as exc:
            return _error(exc, runtime.EXIT_USAGE)
        audit = AuditLog(runtime.session(config, args), Lake(config.lake).registry_audit)
        try:
            done = rollback(client, args.name, audit=audit, actor=args.actor, note=args.reason)
        except store.RegistryError as exc:
            return _error(exc, runtime.EXIT_FAILED)
        print(f"{done.model}: champion v{done.from_version} -> v{done.to_version} ({done.reason})")
        return runtime.EXIT_OK

    return runtime.run(body, parser.parse_args(argv))


def list_main(argv: list[str] | None = None) -> int:
    parser = _parser("list", "registered models: versions, aliases, data window, key metrics")
    parser.add_argument("name", nargs="?", help="one registered model (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def body(args: argparse.Namespace) -> int:
        from feature_store.registry import store
        from feature_store.registry.listing import format_listing, list_models
        from feature_store.registry.policy import load_policy

        config = runtime.load(args)
        policy = load_policy(config.paths.registry_policy)
        try:
            listings = list_models(store.client_for(config), policy, args.name)
        except store.RegistryError as exc:
            return _error(exc, runtime.EXIT_USAGE)
        if args.json:
            out = {m.model: [v.as_dict() for v in m.versions] for m in listings}
            print(json.dumps(out, indent=2, sort_keys=True))
        else:
            print(format_listing(listings))
        return runtime.EXIT_OK

    return runtime.run(body, parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    """``promote|rollback|list ...``: the action, then its own arguments."""
    argv = sys.argv[1:] if argv is None else argv
    actions = {"promote": promote_main, "rollback": rollback_main, "list": list_main}
    if not argv or argv[0] not in actions:
        print(f"usage: manage_models <{' | '.join(actions)}> ...", file=sys.stderr)
        return runtime.EXIT_USAGE
    return actions[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
