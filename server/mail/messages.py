"""The account mails (PROTOCOL §9, account routes), each with a plain-text and an HTML part.

Links are built from ``PUBLIC_URL`` (``http://HOST:PORT`` when it is empty, for
development) and carry the token as the ``token`` query parameter, percent-encoded;
in HTML every interpolated value is escaped. A display name goes into the ``To``
header only after control characters are removed (no header injection).

Paths: ``/verify-email?token=…`` and ``/reset-password?token=…`` — the pages that
take the token and call ``POST /api/v1/auth/email/verify`` or
``/api/v1/auth/password/reset``.
"""

from __future__ import annotations

import email.utils
import html
import re
from email.message import EmailMessage
from urllib.parse import urlencode

from server.settings import Settings

VERIFY_EMAIL_PATH = "/verify-email"
RESET_PASSWORD_PATH = "/reset-password"
PRODUCT = "PetSpark"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def public_base_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def token_link(base_url: str, path: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{path}?{urlencode({'token': token})}"


def _clean_name(name: str) -> str:
    return _CONTROL.sub(" ", name).strip()[:100]


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        n, unit = seconds // 86400, "day"
    elif seconds % 3600 == 0:
        n, unit = seconds // 3600, "hour"
    else:
        n, unit = max(1, round(seconds / 60)), "minute"
    return f"{n} {unit}{'' if n == 1 else 's'}"


class AccountMails:
    """Builds the account mails; the account routes (issue #14, second step) send them."""

    def __init__(self, *, sender: str, base_url: str) -> None:
        self.sender = sender
        self.base_url = base_url.rstrip("/")
        _, address = email.utils.parseaddr(sender)
        self._domain = address.rpartition("@")[2] or "localhost"

    @classmethod
    def from_settings(cls, settings: Settings) -> AccountMails:
        return cls(sender=settings.mail_from, base_url=public_base_url(settings))

    def _message(self, *, to: str, name: str, subject: str, text: str, body_html: str
                 ) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = email.utils.formataddr((_clean_name(name), to))
        msg["Subject"] = subject
        msg["Date"] = email.utils.formatdate(usegmt=True)
        msg["Message-ID"] = email.utils.make_msgid(domain=self._domain)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
        msg.set_content(text)
        msg.add_alternative(_page(subject, body_html), subtype="html")
        return msg

    def verify_email(self, *, to: str, name: str, token: str, expires_in_s: int
                     ) -> EmailMessage:
        link = token_link(self.base_url, VERIFY_EMAIL_PATH, token)
        valid = _duration(expires_in_s)
        text = (
            f"Hello {_clean_name(name)},\n\n"
            f"please confirm that {to} is your address for {PRODUCT}:\n\n{link}\n\n"
            f"The link works once and for {valid}. If you did not sign up, ignore this mail.\n"
        )
        body = (
            f"<p>Hello {html.escape(_clean_name(name))},</p>"
            f"<p>please confirm that {html.escape(to)} is your address for {PRODUCT}:</p>"
            f"{_button(link, 'Confirm my address')}"
            f"<p>The link works once and for {valid}. If you did not sign up, ignore this "
            "mail.</p>"
        )
        return self._message(to=to, name=name, subject=f"Confirm your {PRODUCT} address",
                             text=text, body_html=body)

    def reset_password(self, *, to: str, name: str, token: str, expires_in_s: int
                       ) -> EmailMessage:
        link = token_link(self.base_url, RESET_PASSWORD_PATH, token)
        valid = _duration(expires_in_s)
        text = (
            f"Hello {_clean_name(name)},\n\n"
            f"someone asked to reset the password of your {PRODUCT} account. To choose a new "
            f"one, open:\n\n{link}\n\n"
            f"The link works once and for {valid}; every device is signed out when you use it. "
            "If you did not ask, ignore this mail: your password stays as it is.\n"
        )
        body = (
            f"<p>Hello {html.escape(_clean_name(name))},</p>"
            f"<p>someone asked to reset the password of your {PRODUCT} account.</p>"
            f"{_button(link, 'Choose a new password')}"
            f"<p>The link works once and for {valid}; every device is signed out when you "
            "use it. If you did not ask, ignore this mail: your password stays as it is.</p>"
        )
        return self._message(to=to, name=name, subject=f"Reset your {PRODUCT} password",
                             text=text, body_html=body)

    def password_changed(self, *, to: str, name: str) -> EmailMessage:
        text = (
            f"Hello {_clean_name(name)},\n\n"
            f"the password of your {PRODUCT} account was just changed, and your other "
            "devices were signed out.\n\n"
            "If this was not you, use \"Forgot password\" in the app at once to take the "
            "account back.\n"
        )
        body = (
            f"<p>Hello {html.escape(_clean_name(name))},</p>"
            f"<p>the password of your {PRODUCT} account was just changed, and your other "
            "devices were signed out.</p>"
            "<p>If this was not you, use <strong>Forgot password</strong> in the app at once "
            "to take the account back.</p>"
        )
        return self._message(to=to, name=name, subject=f"Your {PRODUCT} password was changed",
                             text=text, body_html=body)

    def account_deleted(self, *, to: str, name: str) -> EmailMessage:
        text = (
            f"Hello {_clean_name(name)},\n\n"
            f"your {PRODUCT} account has been deleted: your profile, pets, listings, posts "
            "and photos are gone, and every device was signed out. Messages you sent stay "
            "in your matches' chats, shown as from a deleted user.\n\n"
            "You can sign up again with this address at any time.\n"
        )
        body = (
            f"<p>Hello {html.escape(_clean_name(name))},</p>"
            f"<p>your {PRODUCT} account has been deleted: your profile, pets, listings, posts "
            "and photos are gone, and every device was signed out. Messages you sent stay in "
            "your matches' chats, shown as from a deleted user.</p>"
            "<p>You can sign up again with this address at any time.</p>"
        )
        return self._message(to=to, name=name, subject=f"Your {PRODUCT} account was deleted",
                             text=text, body_html=body)


def _button(link: str, label: str) -> str:
    href = html.escape(link, quote=True)
    return (
        f'<p><a href="{href}" style="display:inline-block;padding:10px 18px;'
        f'background:#e4572e;color:#ffffff;text-decoration:none;border-radius:6px">'
        f"{html.escape(label)}</a></p>"
        f'<p style="font-size:12px;color:#666">Or paste this link into your browser:<br>'
        f"{html.escape(link)}</p>"
    )


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:sans-serif;line-height:1.5;color:#222">'
        f"{body}<p>— {PRODUCT}</p></body></html>\n"
    )
