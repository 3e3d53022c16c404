"""VAPID keys (RFC 8292): read ``VAPID_PRIVATE_KEY``, show the public key, make a new one.

``VAPID_PRIVATE_KEY`` is the raw 32-byte P-256 private key in URL-safe base64 (what
most Web Push tools print); a PEM EC key (the text, newlines or ``\\n`` escapes) and
URL-safe base64 DER are accepted too.

Make a key: ``python -m server.push.vapid`` prints ``VAPID_PRIVATE_KEY=…`` and the
public key browsers need as ``applicationServerKey`` (also served by ``push.config``).
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

_SUBJECT = re.compile(r"^(mailto:[^@\s]+@[^@\s]+|https://[^\s/]+(/\S*)?)$")


class VapidKeyError(ValueError):
    """The value is not a P-256 private key in a form we read. Never carries the key."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_vapid_key(value: str) -> ec.EllipticCurvePrivateKey:
    text = value.strip()
    if "-----BEGIN" in text:
        try:
            key = serialization.load_pem_private_key(text.replace("\\n", "\n").encode(), None)
        except (ValueError, TypeError):
            raise VapidKeyError("not a readable PEM private key") from None
    else:
        try:
            raw = b64url_decode(re.sub(r"\s", "", text))
        except (binascii.Error, ValueError):
            raise VapidKeyError("not URL-safe base64") from None
        if len(raw) == 32:
            number = int.from_bytes(raw, "big")
            try:
                return ec.derive_private_key(number, ec.SECP256R1())
            except ValueError:
                raise VapidKeyError("not a valid P-256 private key") from None
        try:
            key = serialization.load_der_private_key(raw, None)
        except (ValueError, TypeError):
            raise VapidKeyError("expected a raw 32-byte key (or PEM or DER)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise VapidKeyError("expected a P-256 (prime256v1) EC key")
    return key


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The uncompressed public point, URL-safe base64 without padding (65 bytes)."""
    return b64url(key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    ))


def subject_is_valid(subject: str) -> bool:
    """RFC 8292 §2.1: a ``mailto:`` address or an ``https:`` URL."""
    return bool(_SUBJECT.match(subject))


def generate_key() -> tuple[str, str]:
    """(private key as VAPID_PRIVATE_KEY wants it, public key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.private_numbers().private_value.to_bytes(32, "big")
    return b64url(raw), public_key_b64(key)


def main() -> None:
    private, public = generate_key()
    print(f"VAPID_PRIVATE_KEY={private}")
    print(f"# public key (applicationServerKey, served by push.config): {public}")


if __name__ == "__main__":
    main()
