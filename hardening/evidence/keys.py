"""The Ed25519 signing key that seals verification runs (``hardening keys init``).

The key directory holds ``signing.key`` (PKCS#8 PEM, mode 0600, owner only) and ``signing.pub``
(the public key to hand to the audit officer). A key that anyone but its owner can read is refused:
whoever can read it can forge evidence. ``keys init --force`` retires the old public key into
``retired/`` so that runs sealed before the rotation still verify.

The directory is ``$HARDENING_KEY_DIR``, else ``$XDG_CONFIG_HOME/hardening/keys``, else
``~/.config/hardening/keys``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hardening.errors import HardeningError
from hardening.files import write_atomic

PRIVATE = "signing.key"
PUBLIC = "signing.pub"
RETIRED = "retired"
ALGORITHM = "ed25519"


class SigningKeyError(HardeningError):
    """A signing key that is missing, unreadable, or readable by others."""


def default_dir() -> Path:
    """Where the signing key lives unless ``--dir`` says otherwise."""
    env = os.environ.get("HARDENING_KEY_DIR")
    if env:
        return Path(env)
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "hardening" / "keys"


def fingerprint(public: Ed25519PublicKey) -> str:
    """``sha256:<hex>`` of the raw 32-byte public key: what the audit officer compares."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def public_b64(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_from_b64(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


@dataclass(frozen=True)
class SigningKey:
    """A usable private key and where it came from."""

    private: Ed25519PrivateKey
    path: Path

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def sign(self, data: bytes) -> str:
        return base64.b64encode(self.private.sign(data)).decode()


def verify_signature(public: Ed25519PublicKey, data: bytes, signature_b64: str) -> bool:
    try:
        public.verify(base64.b64decode(signature_b64, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def init(directory: Path, force: bool = False) -> SigningKey:
    """Make a new key pair; refuses to overwrite one unless ``force`` (then retires the old one)."""
    private_path = directory / PRIVATE
    if private_path.exists() and not force:
        raise SigningKeyError(f"{private_path}: a signing key exists already (use --force to replace it; "
                        "runs sealed with the old key stay verifiable)")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    old_public = directory / PUBLIC
    if old_public.exists():
        _retire(directory, old_public)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_atomic(private_path, pem, 0o600)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    write_atomic(old_public, pub, 0o644)
    return SigningKey(key, private_path)


def _retire(directory: Path, public_path: Path) -> None:
    public = load_public(public_path)
    retired = directory / RETIRED
    retired.mkdir(exist_ok=True)
    target = retired / (fingerprint(public).removeprefix("sha256:")[:16] + ".pub")
    write_atomic(target, public_path.read_bytes(), 0o644)


def check_private_mode(path: Path) -> None:
    """Refuse a private key that is not a regular file owned by us with no group/other access."""
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise SigningKeyError(f"{path}: not a regular file")
    if info.st_mode & 0o077:
        raise SigningKeyError(f"{path}: mode {stat.S_IMODE(info.st_mode):04o} lets others read the signing "
                        f"key; refusing it (chmod 600 {path}, or replace it: hardening keys init --force)")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise SigningKeyError(f"{path}: owned by uid {info.st_uid}, not by the user sealing the evidence")


def load_private(directory: Path | None = None) -> SigningKey | None:
    """The signing key, or None when there is none; raises when it exists but must not be used."""
    path = (directory or default_dir()) / PRIVATE
    if not path.exists():
        return None
    check_private_mode(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError(f"{path}: not a readable private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path}: not an Ed25519 key")
    return SigningKey(key, path)


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SigningKeyError(f"{path}: not a readable public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path}: not an Ed25519 public key")
    return key


def trusted(directory: Path | None = None, extra: tuple[Path, ...] = ()) -> dict[str, Ed25519PublicKey]:
    """Public keys to trust, by fingerprint: the key directory's current and retired keys, plus
    any given with ``--key``."""
    directory = directory or default_dir()
    paths = [*extra]
    if (directory / PUBLIC).exists():
        paths.append(directory / PUBLIC)
    if (directory / RETIRED).is_dir():
        paths.extend(sorted((directory / RETIRED).glob("*.pub")))
    keys = [load_public(p) for p in paths]
    return {fingerprint(k): k for k in keys}
