"""HMAC-SHA256 signatures of webhook bodies (GitHub's ``X-Hub-Signature-256`` and alike)."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["secret_bytes", "sign", "verify"]


def secret_bytes(secret: str | bytes) -> bytes:
    """The secret as the bytes HMAC keys on (a str is UTF-8); an empty one is refused."""
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("the webhook secret must not be empty")
    return key


def sign(secret: str | bytes, body: bytes, *, prefix: str = "sha256=") -> str:
    """The signature header value a sender computes for ``body``: ``sha256=<hex>``."""
    return prefix + hmac.new(secret_bytes(secret), body, hashlib.sha256).hexdigest()


def verify(key: bytes, body: bytes, signature: str | None, prefix: str) -> bool:
    """Whether ``signature`` is ``prefix`` + the hex HMAC-SHA256 of ``body`` (constant time)."""
    if signature is None:
        return False
    expected = prefix + hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.strip().encode("utf-8", "replace"))
