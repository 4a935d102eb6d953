"""The key that signs published manifests, and the public key that pulls trust.

Publishing signs every manifest with an Ed25519 private key kept apart from the
artifacts (`publish.signing_key_file`, by default generated once under
``<state_dir>/secrets/``, mode 0600). A serving host trusts the publisher's public key
(`publish.trusted_public_key`, which `marquee doctor` prints); `serving.verify` and
`serving.pull` refuse a manifest that is unsigned, altered after signing, or signed by
any other key. The signature covers the whole manifest, so every file's sha256 with it:
whoever edits a file must also edit the manifest, and cannot sign the result.

No Spark here: serving hosts import this module for the pull command.
"""

from __future__ import annotations

import base64
import logging
import os
import uuid
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from feature_store import serving
from feature_store.config import Config, ConfigError, manifest_signing_key_file

log = logging.getLogger(__name__)


class SigningKeyError(ConfigError):
    """The signing key cannot be read, or no public key is configured to trust."""


def signing_key(config: Config) -> Ed25519PrivateKey:
    """The private key that signs manifests, generated on first use (mode 0600)."""
    path = manifest_signing_key_file(config)
    if not path.is_file():
        _create_key_file(path)
    if path.stat().st_mode & 0o077:
        log.warning("the manifest signing key %s is readable by others: chmod 600 it", path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 private key")
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key beside ``path`` and link it into place: a concurrent first
    publish either wins or reads the winner's complete key, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
        log.info("generated the manifest signing key %s", path)
    except FileExistsError:
        pass  # another process created it first: theirs is used
    finally:
        tmp.unlink(missing_ok=True)


def public_key_text(key: Ed25519PrivateKey) -> str:
    """The base64 of the key's 32-byte public half (what `publish.trusted_public_key` holds)."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def trusted_public_key(config: Config) -> str:
    """The public key pulls verify manifests with: the configured one, else the public
    half of the local signing key. Never creates a key: nothing signed can match it."""
    if config.publish.trusted_public_key:
        return config.publish.trusted_public_key
    if not manifest_signing_key_file(config).is_file():
        raise SigningKeyError(
            "no public key to verify published manifests with: set publish.trusted_public_key "
            "to the publisher's (`marquee doctor` prints it on the publishing host)"
        )
    return public_key_text(signing_key(config))


def sign(manifest: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``manifest`` with its signature (any earlier one replaced)."""
    unsigned = {k: v for k, v in manifest.items() if k != serving.SIGNATURE}
    signature = key.sign(serving.signed_bytes(unsigned))
    return {
        **unsigned,
        serving.SIGNATURE: {
            "algorithm": serving.SIGNATURE_ALGORITHM,
            "key_id": serving.key_id(public_key_text(key)),
            "value": base64.b64encode(signature).decode(),
        },
    }
