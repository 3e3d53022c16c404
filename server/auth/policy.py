"""Account field rules: how emails are normalised, what a password and a display name must be.

Each check returns the normalised value or raises ``InvalidField`` naming the
field, which the HTTP layer answers 400 ``bad_request``.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from server.errors import BadRequest

EMAIL_MAX = 254
PASSWORD_MIN = 8
PASSWORD_MAX = 128
DISPLAY_NAME_MAX = 60

# Deliberately loose (RFC 5322 is not worth enforcing): one @, no spaces, a dot in
# the domain, no empty labels. Whether the address works is the mail server's question.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


class InvalidField(BadRequest):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def normalise_email(raw: str) -> str:
    """Trimmed and lower-cased: the form stored, compared and rate-limited on."""
    return raw.strip().lower()


def check_email(raw: str) -> str:
    email = normalise_email(raw)
    if len(email) > EMAIL_MAX:
        raise InvalidField("email", f"at most {EMAIL_MAX} characters")
    if not _EMAIL.match(email):
        raise InvalidField("email", "expected an email address")
    return email


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list (``common_passwords.txt``: the 10,000 most common passwords of
    8+ characters from breach corpora, lower case), read once from the package — no
    network, ever."""
    text = resources.files("server.auth").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def is_common_password(password: str) -> bool:
    """Case-insensitive: ``Password1`` is as guessable as ``password1``."""
    return password.lower() in common_passwords()


def check_password(password: str, email: str, field: str = "password") -> str:
    """A new password's rules, for every route that sets one (register, reset, change):
    8..128 characters, not the email, not one of the most common passwords."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidField(field, f"expected {PASSWORD_MIN}..{PASSWORD_MAX} characters")
    if normalise_email(password) == email:
        raise InvalidField(field, "must not be the email address")
    if is_common_password(password):
        raise InvalidField(field, "too common: it is on lists of breached passwords that "
                                  "attackers try first; choose another")
    return password


def check_display_name(raw: str) -> str:
    name = raw.strip()
    if not 1 <= len(name) <= DISPLAY_NAME_MAX:
        raise InvalidField("display_name", f"expected 1..{DISPLAY_NAME_MAX} characters")
    return name
