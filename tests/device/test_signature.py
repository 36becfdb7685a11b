"""Bundle signatures: Ed25519 over manifest.json, PEM keys, checked with the same words on host and device, and in
a format OpenSSL verifies without our code."""

import json
import shutil
import stat
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from uninext_deploy.device.signature import SIGNATURE, SignatureError, check, keygen, load_private_key, sign


@pytest.fixture
def signed(tmp_path):
    private, public, fingerprint = keygen(tmp_path / "keys")
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"schema": 3, "files": {"model.onnx": {"sha256": "ab"}}}))
    assert sign(folder, load_private_key(private)) == fingerprint
    return folder, private, public, fingerprint


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path):
    private, public, fingerprint = keygen(tmp_path)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and len(fingerprint) == 16
    assert b"BEGIN PRIVATE KEY" in private.read_bytes() and b"BEGIN PUBLIC KEY" in public.read_bytes()
    with pytest.raises(SignatureError, match="signing.pem exists; keys are never overwritten"):
        keygen(tmp_path)


def test_a_signed_manifest_checks_and_any_change_is_refused(signed):
    folder, _, public, fingerprint = signed
    assert check(folder, public) == fingerprint and len((folder / SIGNATURE).read_bytes()) == 64
    manifest = folder / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"ab"', '"cd"'))  # another file's checksum slipped in
    with pytest.raises(SignatureError, match=f"manifest.json is not signed by the key .* \\(fingerprint {fingerprint}\\)"):
        check(folder, public)


def test_another_key_an_unsigned_bundle_and_unusable_keys_are_refused(signed, tmp_path):
    folder, private, public, _ = signed
    _, other, _ = keygen(tmp_path / "other")
    with pytest.raises(SignatureError, match="is not signed by the key"):
        check(folder, other)
    (folder / SIGNATURE).unlink()
    with pytest.raises(SignatureError, match="is not signed \\(no manifest.json.sig\\) but a public key was given"):
        check(folder, public)
    with pytest.raises(SignatureError, match="is not a PEM public key"):
        check(folder, private)  # the private key where the public one belongs
    p256 = tmp_path / "p256.pem"
    p256.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(SignatureError, match="p256.pem is not an Ed25519 key, bundles are signed with Ed25519"):
        check(folder, p256)
    with pytest.raises(SignatureError, match="cannot read the private key .*missing.pem"):
        load_private_key(tmp_path / "missing.pem")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_verifies_our_signature_without_our_code(signed):
    folder, _, public, _ = signed
    result = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(public), "-rawin", "-in",
                             str(folder / "manifest.json"), "-sigfile", str(folder / SIGNATURE)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout
