"""verify_signature from Python: the recorded Plane deliveries, hostile signatures, big bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from pathlib import Path

import pytest
from plane_connector import sign_body, verify_signature

WEBHOOKS = Path(__file__).parent.parent / "fixtures" / "plane-samples" / "webhooks"
RECORDED = sorted(p.name[: -len(".body.json")] for p in WEBHOOKS.glob("*.body.json"))
assert RECORDED, f"no recorded deliveries in {WEBHOOKS}"  # else the parametrized tests skip


def _recorded(name: str) -> tuple[str, bytes, str]:
    meta = json.loads((WEBHOOKS / f"{name}.headers.json").read_text())
    body = (WEBHOOKS / f"{name}.body.json").read_bytes()
    return meta["webhook_secret"], body, meta["headers"]["X-Plane-Signature"]


@pytest.mark.parametrize("name", RECORDED)
def test_real_recorded_delivery_verifies_and_one_changed_byte_fails(name: str) -> None:
    secret, body, signature = _recorded(name)
    assert verify_signature(secret, body, signature)
    assert verify_signature(secret.encode(), body, signature)  # bytes secret, same key
    for at in (0, len(body) // 2, len(body) - 1):
        tampered = body[:at] + bytes([body[at] ^ 0x01]) + body[at + 1 :]
        assert not verify_signature(secret, tampered, signature)
    assert not verify_signature(secret + "x", body, signature)


def test_recordings_exist() -> None:
    assert len(RECORDED) >= 7


@pytest.mark.parametrize(
    "bad",
    [None, "", "   ", "zz" * 32, "ab" * 31, "ab" * 33, "sha256=" + "ab" * 32, "\u00e9" * 64],
)
def test_malformed_signatures_are_false_never_an_exception(bad: str | None) -> None:
    assert verify_signature("k", b"body", bad) is False


def test_matches_python_hmac_for_str_and_bytes_secrets() -> None:
    body = bytes(range(256)) * 300  # over the size where the GIL is released
    for secret in ("plane_wh_" + "0f" * 16, b"\x00\xffbinary"):
        key = secret.encode() if isinstance(secret, str) else secret
        expected = hmac.new(key, body, hashlib.sha256).hexdigest()
        assert sign_body(secret, body) == expected
        assert verify_signature(secret, body, expected)
        assert verify_signature(secret, body, expected.upper())


def test_secret_of_another_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        verify_signature(123, b"x", "ab" * 32)  # type: ignore[arg-type]


def test_threads_verify_large_bodies_concurrently() -> None:
    body = b"x" * (512 * 1024)
    good = sign_body("s", body)
    results: list[bool] = []

    def work() -> None:
        results.extend(verify_signature("s", body, good) for _ in range(20))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 80
