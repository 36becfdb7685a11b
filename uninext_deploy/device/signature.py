"""Bundle signatures: Ed25519 over the exact bytes of ``manifest.json`` (which holds every file's size and sha256,
so the signature covers every file), stored raw (64 bytes) in ``manifest.json.sig``. Keys are PEM files, PKCS#8
private and SubjectPublicKeyInfo public: what OpenSSL reads, so anyone can check a bundle without our code:

    openssl pkeyutl -verify -pubin -inkey signing.pub.pem -rawin -in manifest.json -sigfile manifest.json.sig

The host signs and checks with ``cryptography``; bundles ship this file verbatim (run.py imports ``cryptography``
only when asked to check a signature), and the C++ runner checks the same signature with OpenSSL.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

SIGNATURE = "manifest.json.sig"
MANIFEST = "manifest.json"


class SignatureError(Exception):
    """A bundle's signature is missing, wrong or unreadable, or a key file is unusable (one line, with the fix)."""


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise SignatureError("checking a signature needs the cryptography package: pip install cryptography") from None
    return serialization, ed25519, InvalidSignature


def _read_key(path: str | Path, private: bool):
    serialization, ed25519, _ = _crypto()
    kind = "private" if private else "public"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read the {kind} key {path}: {exc.strerror}; pass the PEM file "
                             "`uninext-deploy keygen` wrote") from None
    try:
        key = (serialization.load_pem_private_key(data, password=None) if private else
               serialization.load_pem_public_key(data))
    except (ValueError, TypeError) as exc:
        hint = " (encrypted keys are not supported)" if private and b"ENCRYPTED" in data else ""
        raise SignatureError(f"{path} is not a PEM {kind} key{hint}: {str(exc).splitlines()[0][:120]}; pass the "
                             f"{'signing.pem' if private else 'signing.pub.pem'} file `uninext-deploy keygen` wrote") from None
    expected = ed25519.Ed25519PrivateKey if private else ed25519.Ed25519PublicKey
    if not isinstance(key, expected):
        raise SignatureError(f"{path} is not an Ed25519 key, bundles are signed with Ed25519; make a key pair with "
                             "`uninext-deploy keygen`")
    return key


def fingerprint(public_key) -> str:
    """The first 16 hex digits of the sha256 of the raw public key: how people tell keys apart."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(path: str | Path):
    return _read_key(path, private=True)


def sign(folder: Path, private_key) -> str:
    """Sign ``folder``/manifest.json with ``private_key`` (from :func:`load_private_key`); the key's fingerprint."""
    folder = Path(folder)
    (folder / SIGNATURE).write_bytes(private_key.sign((folder / MANIFEST).read_bytes()))
    return fingerprint(private_key.public_key())


def check(folder: Path, public_key_path: str | Path) -> str:
    """Raise SignatureError unless ``folder``/manifest.json carries a valid signature by the key at
    ``public_key_path``; the key's fingerprint."""
    _, _, invalid = _crypto()
    key = _read_key(public_key_path, private=False)
    folder = Path(folder)
    if not (folder / SIGNATURE).is_file():
        raise SignatureError(f"{folder} is not signed (no {SIGNATURE}) but a public key was given; use a bundle made "
                             "with `bundle --sign-key`, or drop --public-key to accept unsigned bundles")
    try:
        key.verify((folder / SIGNATURE).read_bytes(), (folder / MANIFEST).read_bytes())
    except invalid:
        raise SignatureError(f"{MANIFEST} is not signed by the key {public_key_path} (fingerprint {fingerprint(key)}): "
                             "the manifest was changed or signed with another key; do not run it") from None
    except OSError as exc:
        raise SignatureError(f"cannot read {folder / MANIFEST}: {exc.strerror}; re-copy the bundle") from None
    return fingerprint(key)


PRIVATE_KEY, PUBLIC_KEY = "signing.pem", "signing.pub.pem"


def keygen(folder: Path) -> tuple[Path, Path, str]:
    """A new Ed25519 key pair in ``folder`` (the private key readable by its owner only); refuses to replace
    existing keys. (private path, public path, fingerprint)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    folder = Path(folder)
    private, public = folder / PRIVATE_KEY, folder / PUBLIC_KEY
    for path in (private, public):
        if path.exists():
            raise SignatureError(f"{path} exists; keys are never overwritten: pass another --out, or move it away")
    folder.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    staged = folder / f".{PRIVATE_KEY}.tmp"
    with open(staged, "xb", opener=lambda p, flags: os.open(p, flags, 0o600)) as f:
        f.write(pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    staged.rename(private)
    return private, public, fingerprint(key.public_key())
