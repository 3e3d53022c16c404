"""HTTP auth bodies (untagged) and the HTTP error body.

``AuthResponse.user`` always includes ``email``.
"""

from __future__ import annotations

import msgspec

from protocol.codes import ErrorCode
from protocol.objects import User
from protocol.types import (
    DisplayName,
    Email,
    FieldPath,
    LoginPassword,
    Password,
    Timestamp,
    Token,
)


class _Body(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of HTTP bodies: untagged, null optionals omitted."""


class RegisterRequest(_Body, kw_only=True):
    """``POST /api/v1/auth/register``. Email is compared case-insensitively."""

    email: Email
    password: Password
    display_name: DisplayName


class LoginRequest(_Body, kw_only=True):
    """``POST /api/v1/auth/login``."""

    email: Email
    password: LoginPassword
    device_token: Token | None = None
    """The ``device_token`` of an earlier login to this account from this device (apps;
    browsers send the ``petspark_device`` cookie instead): failures by strangers then
    cannot lock this device out (README Authentication, throttling)."""


class RefreshRequest(_Body, kw_only=True):
    """``POST /api/v1/auth/refresh``: spends the refresh token; reusing a spent one
    is 401 and revokes its whole family."""

    refresh_token: Token


class LogoutRequest(_Body, kw_only=True):
    """``POST /api/v1/auth/logout``; the body may also be empty."""

    refresh_token: Token | None = None


class AuthResponse(_Body, kw_only=True):
    """Answer of register (201), login and refresh (200)."""

    user: User
    access_token: Token
    refresh_token: Token
    expires_at: Timestamp
    """When ``access_token`` expires."""
    device_token: Token | None = None
    """Register and login: this device's known-device token, to send with later logins
    (``LoginRequest.device_token``). Not a credential."""


class VerifyEmailRequest(_Body, kw_only=True):
    """``POST /api/v1/auth/email/verify``: the token from the mailed link."""

    token: Token


class ForgotPasswordRequest(_Body, kw_only=True):
    """``POST /api/v1/auth/password/forgot``: always 202 (no enumeration)."""

    email: Email


class ResetPasswordRequest(_Body, kw_only=True):
    """``POST /api/v1/auth/password/reset``: the token from the mailed link and the new
    password; every session of the user is revoked."""

    token: Token
    password: Password


class ChangePasswordRequest(_Body, kw_only=True):
    """``POST /api/v1/auth/password/change`` (authenticated): every other session is
    revoked."""

    current_password: LoginPassword
    password: Password


class DeleteAccountRequest(_Body, kw_only=True):
    """``DELETE /api/v1/account`` (authenticated): the password confirms it."""

    password: LoginPassword


class MeResponse(_Body, kw_only=True):
    """``GET /api/v1/auth/me``."""

    user: User


class ErrorDetail(_Body, kw_only=True):
    code: ErrorCode
    message: str
    """For people; for a field error it starts with the field's path."""
    field: FieldPath | None = None
    """The path of the field at fault (``email``, ``parts[0].etag``, ``variant``) when the
    error is about one field of the body, the query or the form."""


class ErrorBody(_Body, kw_only=True):
    """Every HTTP error: ``{"error": {"code", "message", "field"?}}``."""

    error: ErrorDetail
