"""Agent password hashes: PBKDF2-HMAC-SHA256 with a random salt, stored as one string.

Format: ``pbkdf2_sha256$<iterations>$<salt base64>$<hash base64>`` (standard base64 with padding).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCHEME = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 120_000
SALT_BYTES = 16
HASH_BYTES = 32
# A stored string asking for more work than this is treated as malformed, so a corrupted or
# hostile config cannot stall the event loop on one login.
MAX_ITERATIONS = 10_000_000


def _derive(password: str, salt: bytes, iterations: int, length: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations, length)


def hash_password(password: str, *, iterations: int = DEFAULT_ITERATIONS) -> str:
    """Hash ``password`` with a fresh random salt."""
    if not isinstance(password, str):
        raise TypeError("password must be a str")
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be between 1 and {MAX_ITERATIONS}, got {iterations}")
    salt = os.urandom(SALT_BYTES)
    digest = _derive(password, salt, iterations, HASH_BYTES)
    b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    return f"{SCHEME}${iterations}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; False for a wrong password or a malformed hash."""
    try:
        scheme, iter_text, salt_b64, hash_b64 = stored.split("$")
        if scheme != SCHEME or not iter_text.isdigit():
            return False
        iterations = int(iter_text)
        if not 1 <= iterations <= MAX_ITERATIONS:
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(hash_b64, validate=True)
        if not salt or not expected:
            return False
        actual = _derive(password, salt, iterations, len(expected))
    except Exception:  # noqa: BLE001 - any malformed input (wrong types, bad base64, bad text) is a mismatch
        return False
    return hmac.compare_digest(actual, expected)
