"""Pull a published artifact version, verified file by file, into a local folder.

marquee pull recommendations [--version V | --latest] --to /srv/marquee/recommendations-v
marquee pull recommendations --list
Refuses (exit 1, nothing left at --to) a partial, corrupted or unknown version, a version
holding a symbolic link, and a manifest not signed by the key publish.trusted_public_key
names (default: the local publisher's). No Spark: this is what serving hosts run.
"""

from __future__ import annotations

import argparse
import sys

from feature_store import runtime, serving, signing


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="marquee pull", description=__doc__.splitlines()[0])
    runtime.add_common_args(parser)
    parser.add_argument("artifact", help="e.g. recommendations, churn_scores, online_features")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", help="this version (see --list)")
    which.add_argument("--latest", action="store_true", help="the version latest names (default)")
    which.add_argument("--list", action="store_true", help="list the versions and exit")
    parser.add_argument("--to", help="destination folder (must be absent or empty)")
    parser.add_argument(
        "--from", dest="root", help="published root (default: paths.published from config)"
    )
    args = parser.parse_args(argv)
    if not args.list and not args.to:
        parser.error("--to DIR is required (or --list)")
    return args


def _list(root: str, artifact: str) -> int:
    if not serving.artifact_dir(root, artifact).is_dir():
        raise serving.UnknownArtifactError(artifact, None, f"nothing published under {root}")
    try:
        latest = serving.latest_version(root, artifact)
    except serving.ArtifactError:
        latest = None  # a malformed pointer: list the versions all the same
    for version in serving.list_versions(root, artifact):
        folder = serving.artifact_dir(root, artifact) / version
        try:
            manifest = serving.load_manifest(folder, artifact=artifact, version=version)
            about = f"as of {manifest['as_of_date']}  {manifest['rows']:>12,} rows"
        except serving.ManifestError as exc:
            about = f"unusable: {exc.problem}"
        print(f"{'*' if version == latest else ' '} {version:<32}{about}")
    return runtime.EXIT_OK


def _main(args: argparse.Namespace) -> int:
    config = runtime.load(args)
    root = args.root or config.paths.published
    try:
        if args.list:
            return _list(root, args.artifact)
        public_key = signing.trusted_public_key(config)
        pulled = serving.pull(root, args.artifact, args.to, args.version, public_key=public_key)
    except (serving.ArtifactError, OSError) as exc:  # OSError: e.g. --to is not writable
        print(f"error: {exc}", file=sys.stderr)
        return runtime.EXIT_FAILED
    state = "copied and verified" if pulled.copied else "already present and verified"
    print(f"{pulled.artifact} {pulled.version}: {pulled.manifest['rows']:,} rows, "
          f"{len(pulled.manifest['files'])} files {state} at {pulled.path}")  # fmt: skip
    return runtime.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return runtime.run(_main, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
