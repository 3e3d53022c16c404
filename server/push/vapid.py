"""VAPID keys (RFC 8292): read ``VAPID_PRIVATE_KEY``, show the public key, make a new one.

``VAPID_PRIVATE_KEY`` is the raw 32-byte P-256 private key in URL-safe base64 (what
most Web Push tools print); a PEM EC key (the text, newlines or ``\\n`` escapes) and
URL-safe base64 DER are accepted too.

Make a key: ``python -m server.push.vapid`` prints ``VAPID_PRIVATE_KEY=…`` and the
public key browsers need as ``applicationServerKey`` (also served by ``push.config``).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from server.credentials import (
    VapidKeyError,
    b64url,
    b64url_decode,
    load_vapid_key,
    public_key_b64,
    subject_is_valid,
)

__all__ = ["VapidKeyError", "b64url", "b64url_decode", "generate_key", "load_vapid_key",
           "public_key_b64", "subject_is_valid"]


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
