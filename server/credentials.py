"""Parsing the credentials and URLs that settings name: VAPID keys, the FCM service
account, the APNs auth key, the SMTP URL and sender.

Pure functions (no I/O beyond reading a named file, no network): ``server.settings``
checks them at start so a bad value stops the process with one line naming the
variable, and the push providers and the mailer use the same parsers. Errors never
carry the secret itself.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"

# --- VAPID (Web Push) ---------------------------------------------------------------

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



# --- FCM service account -------------------------------------------------------------

class ServiceAccountError(ValueError):
    """The credentials file cannot be used. The message names what is wrong, not the key."""


class ServiceAccount(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    project_id: str
    private_key_id: str
    private_key: str
    client_email: str
    token_uri: str = GOOGLE_TOKEN_URI


def load_service_account(path: str | Path) -> ServiceAccount:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ServiceAccountError(f"cannot read the file ({exc.strerror or exc})") from None
    try:
        account = msgspec.json.decode(raw, type=ServiceAccount)
    except msgspec.ValidationError as exc:
        raise ServiceAccountError(f"not a service-account JSON ({exc})") from None
    except msgspec.DecodeError:
        raise ServiceAccountError("not JSON") from None
    if account.type != "service_account":
        raise ServiceAccountError(f"type is {account.type!r}, expected 'service_account'")
    if not account.token_uri.startswith(("https://", "http://")):
        raise ServiceAccountError("token_uri: expected an http(s) URL")
    private_key(account)
    return account


def private_key(account: ServiceAccount) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(account.private_key.encode(), None)
    except (ValueError, TypeError):
        raise ServiceAccountError("private_key: not a readable PEM key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ServiceAccountError("private_key: expected an RSA key")
    return key



# --- APNs auth key -------------------------------------------------------------------

class ApnsKeyError(ValueError):
    """The key file cannot be used (the message never carries the key)."""


def load_apns_key(path: str | Path) -> ec.EllipticCurvePrivateKey:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ApnsKeyError(f"cannot read the file ({exc.strerror or exc})") from None
    try:
        key = serialization.load_pem_private_key(data, None)
    except (ValueError, TypeError):
        raise ApnsKeyError("not a PEM private key (the .p8 file from Apple)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
        key.curve, ec.SECP256R1
    ):
        raise ApnsKeyError("expected a P-256 EC key (the .p8 file from Apple)")
    return key



# --- SMTP ------------------------------------------------------------------------------

class SmtpUrlError(ValueError):
    pass


class SmtpTarget(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int
    implicit_tls: bool
    username: str | None = None
    password: str | None = None


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://[user:pass@]host[:port]`` (587 by default) or ``smtps://…`` (465)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise SmtpUrlError("expected smtp://[user:pass@]host:port or smtps://…")
    try:
        port = parts.port
    except ValueError:
        raise SmtpUrlError("expected a port 1..65535") from None
    if not parts.hostname:
        raise SmtpUrlError("expected a host: smtp://[user:pass@]host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise SmtpUrlError("expected no path or query: smtp://[user:pass@]host:port")
    implicit = parts.scheme == "smtps"
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and username is None:
        raise SmtpUrlError("a password needs a user")
    return SmtpTarget(
        host=parts.hostname, port=port or (465 if implicit else 587), implicit_tls=implicit,
        username=username, password=password,
    )


def sender_address(mail_from: str) -> str | None:
    """The bare address of ``MAIL_FROM``, or None when it has none."""
    if "\n" in mail_from or "\r" in mail_from:
        return None
    _, address = email.utils.parseaddr(mail_from)
    local, at, domain = address.rpartition("@")
    return address if at and local and domain else None
