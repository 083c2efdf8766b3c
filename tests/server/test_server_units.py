"""The server's small pure parts: byte ranges, credentials, rate buckets, names, release checks, blobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mcuota.image.interrupt import build_interrupt_image
from mcuota.image.keys import PrivateKey
from mcuota.image.version import ImageVersion
from mcuota.server import credentials
from mcuota.server.blobs import FileBlobStore, MemoryBlobStore
from mcuota.server.errors import BadRequest, Rejected
from mcuota.server.names import check_file_name, check_name
from mcuota.server.ranges import ByteRange, Unsatisfiable, etag_matches, none_match, parse_range
from mcuota.server.ratelimit import TokenBuckets
from mcuota.server.release_check import check_image

pytest_plugins = ["server_fixtures"]

# --- ranges ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-4095", ByteRange(0, 4095)),
    ("bytes=4096-8191", ByteRange(4096, 8191)),
    ("bytes=8192-20000", ByteRange(8192, 9999)),     # clamped to the end
    ("bytes=9000-", ByteRange(9000, 9999)),
    ("bytes=-100", ByteRange(9900, 9999)),
    ("bytes=-20000", ByteRange(0, 9999)),
    ("BYTES = 1-2", ByteRange(1, 2)),
    (None, None),
    ("items=0-1", None),                              # unknown unit: ignored
    ("bytes=0-1,5-6", None),                          # multiple ranges: whole file
    ("bytes=5-1", None),                              # invalid: ignored
    ("bytes=abc", None),
    ("bytes=-", None),
])
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 10000) == expected


@pytest.mark.parametrize("header", ["bytes=10000-", "bytes=10000-10001", "bytes=-0", "bytes=20000-30000"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 10000)


def test_content_range() -> None:
    assert ByteRange(0, 4095).content_range(12280) == "bytes 0-4095/12280"
    assert ByteRange(0, 4095).length == 4096


def test_validators() -> None:
    etag = '"abc"'
    assert etag_matches(None, etag)
    assert etag_matches('"abc"', etag)
    assert not etag_matches('W/"abc"', etag)
    assert not etag_matches('"other"', etag)
    assert not etag_matches("Wed, 21 Oct 2015 07:28:00 GMT", etag)
    assert none_match('"x", "abc"', etag)
    assert none_match("*", etag)
    assert not none_match(None, etag)


# --- credentials and rate limits ----------------------------------------------------------------

def test_secrets_are_random_prefixed_and_hashed() -> None:
    a, b = credentials.new_secret("mcd_"), credentials.new_secret("mcd_")
    assert a != b
    assert a.startswith("mcd_")
    assert len(a) > 40
    assert credentials.matches(a, credentials.digest(a))
    assert not credentials.matches(b, credentials.digest(a))


def test_scopes() -> None:
    assert credentials.normalise_scopes(["admin", "read"]) == "read admin"
    assert credentials.grants("read write", "read")
    assert credentials.grants("admin", "write")
    assert not credentials.grants("read", "write")
    assert not credentials.grants("", "read")
    with pytest.raises(ValueError, match="unknown scope"):
        credentials.normalise_scopes("root")


def test_token_buckets() -> None:
    now = [0.0]
    buckets = TokenBuckets(rate=2, burst=3, clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(0.5)
    assert buckets.take("b") == 0           # another client has its own bucket
    now[0] = 1.0
    assert buckets.take("a") == 0


# --- names --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["", "../etc", "a/b", "a..b", "-x", "x" * 65, "a b", "a\x00b", ".hidden"])
def test_bad_names(bad: str) -> None:
    with pytest.raises(BadRequest):
        check_name(bad, "serial")


@pytest.mark.parametrize("bad", ["../../etc/passwd", "..", "a/b.bin", "%2e%2e", "x\\y"])
def test_bad_file_names(bad: str) -> None:
    with pytest.raises(BadRequest):
        check_file_name(bad)


def test_good_names() -> None:
    assert check_name("SN-0001_a.b", "serial") == "SN-0001_a.b"
    assert check_file_name("app_f407_v1.2.3+4.bin") == "app_f407_v1.2.3+4.bin"


# --- release checks ------------------------------------------------------------------------------

def test_signed_image_is_accepted(image: Callable[..., bytes], signing_key: PrivateKey) -> None:
    checked = check_image(image("1.2.3+7"), board="f407", trusted=[signing_key.public()],
                          require_signatures=True)
    assert (checked.format, str(checked.version), checked.signed) == ("mcuboot", "1.2.3+7", True)
    assert checked.key_hash == signing_key.public().key_hash.hex()


@pytest.mark.parametrize(("build", "code"), [
    ("garbage", "not_an_image"),
    ("truncated", "not_an_image"),
    ("tampered", "tampered"),
    ("unsigned", "unsigned"),
    ("other_key", "untrusted_key"),
    ("other_board", "wrong_board"),
    ("empty", "not_an_image"),
    ("elf", "not_an_image"),
])
def test_rejections(*, build: str, code: str, image: Callable[..., bytes], signing_key: PrivateKey,
                    other_key: PrivateKey, sample: Callable[..., Path]) -> None:
    good = image("1.0.0")
    data = {
        "garbage": b"\x00\x01garbage" * 100,
        "truncated": good[:100],
        "tampered": good[:600] + bytes([good[600] ^ 1]) + good[601:],
        "unsigned": image("1.0.0", key=None),
        "other_key": image("1.0.0", key=other_key),
        "other_board": image("1.0.0", board="nrf52840dk"),
        "empty": b"",
        "elf": sample("mcuboot-f407", "1.0.0", "elf").read_bytes(),
    }[build]
    with pytest.raises(Rejected) as caught:
        check_image(data, board="f407", trusted=[signing_key.public()], require_signatures=True)
    assert caught.value.code == code


def test_board_tlv_matching_board_is_fine(image: Callable[..., bytes], signing_key: PrivateKey) -> None:
    checked = check_image(image("1.0.0", board="f407"), board="f407", trusted=[signing_key.public()],
                          require_signatures=True)
    assert checked.board == "f407"


def test_signatures_required_without_trusted_keys(image: Callable[..., bytes]) -> None:
    with pytest.raises(Rejected, match="no signing key is trusted") as caught:
        check_image(image("1.0.0"), board="f407", trusted=[], require_signatures=True)
    assert caught.value.code == "unsigned"


def test_unsigned_allowed_when_not_required(image: Callable[..., bytes], sample: Callable[..., Path]) -> None:
    checked = check_image(image("1.0.0", key=None), board="f407", trusted=[], require_signatures=False)
    assert not checked.signed
    app = sample("interrupt-f429", "1.1.0", "bin").read_bytes()
    interrupt = build_interrupt_image(app, ImageVersion.parse("1.1.0"))
    checked = check_image(interrupt, board="f429", trusted=[], require_signatures=False)
    assert (checked.format, str(checked.version)) == ("interrupt", "1.1.0")
    with pytest.raises(Rejected, match="carry no signature"):
        check_image(interrupt, board="f429", trusted=[], require_signatures=True)


# --- blobs -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["file", "memory"])
def test_blob_stores(kind: str, tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path / "blobs") if kind == "file" else MemoryBlobStore()
    digest = store.put(b"hello world")
    assert store.put(b"hello world") == digest
    assert store.exists(digest)
    assert store.size(digest) == 11
    assert store.read(digest, 6, 5) == b"world"
    assert b"".join(store.iter_range(digest, 0, 5)) == b"hello"
    other = store.put(b"orphan")
    assert store.sweep([digest]) == [other]
    assert store.exists(digest)
    assert not store.exists(other)


def test_file_blob_store_sweeps_temporaries(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    (store.tmp / "abc.tmp").write_bytes(b"half")
    store.sweep([])
    assert not list(store.tmp.iterdir())
    with pytest.raises(ValueError, match="SHA-256"):
        store.path("../../etc/passwd")
