"""A real SMTP server on loopback (aiosmtpd's ``Controller``, in its own thread).

``SmtpServer()`` is plain SMTP; with ``ca=`` it offers STARTTLS (``implicit_tls=True``:
TLS from the first byte, as ``smtps://``); with ``credentials=`` it requires AUTH
(only over TLS). Received mails are parsed into ``messages`` with the envelope, and
whether the session was encrypted and authenticated.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.support.services import free_port
from tests.support.tls import TestCA


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    login: str | None


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data if session.authenticated else None
        transport = smtp.transport
        tls = transport is not None and transport.get_extra_info("sslcontext") is not None
        mail = ReceivedMail(
            mail_from=str(envelope.mail_from), rcpt_tos=list(envelope.rcpt_tos),
            message=message, tls=tls,
            login=login.decode() if isinstance(login, bytes) else login,
        )
        with self.server.lock:
            self.server.messages.append(mail)
        return "250 OK"


class SmtpServer:
    def __init__(self, *, ca: TestCA | None = None, implicit_tls: bool = False,
                 credentials: tuple[str, str] | None = None) -> None:
        self.messages: list[ReceivedMail] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.credentials = credentials
        kwargs: dict[str, Any] = {}
        if ca is not None and implicit_tls:
            kwargs["ssl_context"] = ca.server_context()
        elif ca is not None:
            kwargs["tls_context"] = ca.server_context()
            kwargs["require_starttls"] = credentials is not None
        if credentials is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_required"] = True
            kwargs["auth_require_tls"] = True
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, **kwargs
        )

    def _authenticate(self, server: Any, session: Session, envelope: Envelope,
                      mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.credentials is not None:
            user, password = self.credentials
            if auth_data.login.decode() == user and auth_data.password.decode() == password:
                return AuthResult(success=True, auth_data=auth_data.login)
        return AuthResult(success=False, handled=False)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages)} mails received, wanted {count}")
            await asyncio.sleep(0.01)
