from __future__ import annotations

import os
import stat

import pytest

from migrate.keys import (
    KeyFileError,
    generate_signing_key,
    generate_symmetric_key,
    key_id,
    load_private_key,
    load_public_key,
    load_symmetric_key,
    public_key_id,
)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_signing_key_pair_files(tmp_path) -> None:
    key = generate_signing_key(tmp_path / "sign")
    assert mode(tmp_path / "sign") == 0o600 and mode(tmp_path / "sign.pub") == 0o644
    assert (tmp_path / "sign").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (tmp_path / "sign.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    loaded = load_private_key(tmp_path / "sign")
    assert public_key_id(loaded.public_key()) == public_key_id(key.public_key())
    assert public_key_id(load_public_key(tmp_path / "sign.pub")) == public_key_id(key.public_key())


def test_symmetric_key_file_hex_and_raw(tmp_path) -> None:
    key = generate_symmetric_key(tmp_path / "k")
    assert mode(tmp_path / "k") == 0o600
    assert (tmp_path / "k").read_text().strip() == key.hex()
    assert load_symmetric_key(tmp_path / "k") == key
    raw = tmp_path / "raw"
    raw.write_bytes(bytes(range(32)))
    raw.chmod(0o600)
    assert load_symmetric_key(raw) == bytes(range(32))


def test_key_ids_differ_and_do_not_reveal_keys() -> None:
    a, b = bytes(32), bytes(31) + b"\x01"
    assert key_id(a) != key_id(b) and len(key_id(a)) == 16
    assert a.hex()[:16] not in key_id(a)


def test_secret_key_readable_by_others_is_refused(tmp_path) -> None:
    generate_symmetric_key(tmp_path / "k")
    generate_signing_key(tmp_path / "s")
    for name in ("k", "s"):
        (tmp_path / name).chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_symmetric_key(tmp_path / "k")
    with pytest.raises(KeyFileError, match="mode 0644"):
        load_private_key(tmp_path / "s")


@pytest.mark.parametrize(("content", "loader", "message"), [
    (b"zz" * 32, load_symmetric_key, "hex digits"),
    (b"ab" * 20, load_symmetric_key, "20-byte key"),
    (b"not pem", load_private_key, "not an unencrypted PEM private key"),
    (b"not pem", load_public_key, "not a PEM public key"),
])
def test_malformed_key_files(tmp_path, content, loader, message) -> None:
    path = tmp_path / "bad"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match=message):
        loader(path)


def test_missing_key_file(tmp_path) -> None:
    with pytest.raises(KeyFileError, match="cannot read key file"):
        load_symmetric_key(tmp_path / "nope")


def test_other_key_algorithms_are_refused(tmp_path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="Ed25519"):
        load_private_key(path)
