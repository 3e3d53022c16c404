"""Sending mail: one ``Mailer`` interface, SMTP or ``.eml`` files.

- ``SmtpMailer`` (``SMTP_URL`` set) sends through aiosmtplib: ``smtps://`` is
  implicit TLS; ``smtp://`` upgrades with STARTTLS when the server offers it, and
  *requires* it when the URL has a user (a password never crosses the network in
  clear text). Certificates are verified.
- ``EmlMailer`` (the embedded default, ``SMTP_URL`` unset) writes each mail as an
  ``.eml`` file under ``DATA_DIR/mail/`` (mode 0600: the links carry tokens) and
  logs one line naming the file and the subject, so sign-up, verification and
  password reset work end to end on a laptop.

``send`` raises ``MailError`` when the mail did not go out; either way it counts
``petspark_mails_total{transport, outcome}``. Logs never carry bodies, tokens or
passwords.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import ssl
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from server.credentials import SmtpTarget, parse_smtp_url
from server.observability.metrics import Metrics
from server.settings import Settings

log = logging.getLogger(__name__)


class MailError(Exception):
    """The mail was not sent (``str`` says why, without secrets)."""


class Mailer(abc.ABC):
    #: ``transport`` label in metrics and logs.
    transport: str

    def __init__(self, *, metrics: Metrics | None = None) -> None:
        self._metrics = metrics

    async def send(self, message: EmailMessage) -> None:
        try:
            await self._send(message)
        except MailError as exc:
            self._count("failed")
            log.warning("mail not sent", extra={
                "transport": self.transport, "subject": message["Subject"], "error": str(exc),
            })
            raise
        self._count("sent")

    def _count(self, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.mails.labels(self.transport, outcome).inc()

    @abc.abstractmethod
    async def _send(self, message: EmailMessage) -> None: ...


class SmtpMailer(Mailer):
    transport = "smtp"

    def __init__(
        self, target: SmtpTarget, *, metrics: Metrics | None = None,
        tls_context: ssl.SSLContext | None = None, timeout_s: float = 30.0,
    ) -> None:
        super().__init__(metrics=metrics)
        self._target = target
        self._tls = tls_context
        self._timeout = timeout_s

    @classmethod
    def from_url(cls, url: str, **kwargs: object) -> SmtpMailer:
        return cls(parse_smtp_url(url), **kwargs)  # type: ignore[arg-type]

    async def _send(self, message: EmailMessage) -> None:
        t = self._target
        if t.implicit_tls:
            start_tls: bool | None = False
        elif t.username is not None:
            start_tls = True  # never send credentials in clear text
        else:
            start_tls = None  # STARTTLS if the server offers it
        try:
            await aiosmtplib.send(
                message, hostname=t.host, port=t.port, username=t.username,
                password=t.password, use_tls=t.implicit_tls, start_tls=start_tls,
                tls_context=self._tls, timeout=self._timeout,
            )
        except aiosmtplib.SMTPException as exc:
            raise MailError(f"SMTP {t.host}:{t.port}: {type(exc).__name__}: "
                            f"{getattr(exc, 'message', '')}".rstrip(": ")) from None
        except (OSError, TimeoutError) as exc:
            raise MailError(f"SMTP {t.host}:{t.port}: {type(exc).__name__}") from None
        log.info("mail sent", extra={
            "transport": self.transport, "subject": message["Subject"],
            "message_id": message["Message-ID"],
        })


class EmlMailer(Mailer):
    transport = "eml"

    def __init__(self, directory: Path, *, metrics: Metrics | None = None) -> None:
        super().__init__(metrics=metrics)
        self.directory = directory

    async def _send(self, message: EmailMessage) -> None:
        name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{uuid.uuid4().hex[:12]}.eml"
        path = self.directory / name
        try:
            await asyncio.to_thread(self._write, path, bytes(message))
        except OSError as exc:
            raise MailError(f"cannot write {path}: {exc.strerror or exc}") from None
        log.info("mail written to file (SMTP_URL is unset)", extra={
            "transport": self.transport, "file": str(path), "subject": message["Subject"],
        })

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # a reader never sees half a mail


def build_mailer(settings: Settings, metrics: Metrics | None = None) -> Mailer:
    """``SmtpMailer`` for ``SMTP_URL``, else ``EmlMailer`` in ``DATA_DIR/mail``."""
    if settings.smtp_url:
        return SmtpMailer(parse_smtp_url(settings.smtp_url), metrics=metrics)
    return EmlMailer(settings.data_path / "mail", metrics=metrics)
