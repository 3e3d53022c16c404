"""Account mails through a real SMTP server (aiosmtpd) and the .eml fallback."""

from __future__ import annotations

import email
import email.policy
import html
import logging
import stat
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from server.mail.mailer import (
    EmlMailer,
    MailError,
    SmtpMailer,
    build_mailer,
    parse_smtp_url,
)
from server.mail.messages import AccountMails, public_base_url
from server.observability.metrics import Metrics
from server.settings import Settings
from tests.support.smtp import SmtpServer
from tests.support.tls import TestCA

SENDER = "PetSpark <no-reply@petspark.example>"
BASE = "https://app.petspark.example"
TOKEN = "tok_Ab-9+/=&x<y>"  # characters that must be encoded in a URL and escaped in HTML


def mails() -> AccountMails:
    return AccountMails(sender=SENDER, base_url=BASE + "/")


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    page = message.get_body(preferencelist=("html",))
    assert text is not None and page is not None
    return str(text.get_content()), str(page.get_content())


def link_token(link: str) -> str:
    query = parse_qs(urlsplit(link).query)
    [token] = query["token"]
    return token


def links_in(text: str) -> list[str]:
    return [word for word in text.split() if word.startswith(BASE)]


def test_verify_mail_has_both_parts_and_a_working_link() -> None:
    message = mails().verify_email(to="ana@example.com", name="Ana <script>alert(1)</script>",
                                   token=TOKEN, expires_in_s=86400)
    assert message["Subject"] == "Confirm your PetSpark address"
    assert message["From"] == SENDER
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@petspark.example>")
    assert message.get_content_type() == "multipart/alternative"
    text, page = parts(message)
    [link] = links_in(text)
    assert link.startswith(BASE + "/verify-email?token=")
    assert link_token(link) == TOKEN  # percent-encoded, decodes back exactly
    assert "1 day" in text
    assert f'href="{html.escape(link, quote=True)}"' in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_reset_mail_links_to_the_reset_page() -> None:
    message = mails().reset_password(to="ana@example.com", name="Ana", token=TOKEN,
                                     expires_in_s=3600)
    text, page = parts(message)
    [link] = links_in(text)
    assert link.startswith(BASE + "/reset-password?") and link_token(link) == TOKEN
    assert "1 hour" in text and "signed out" in text
    assert html.escape(link, quote=True) in page


@pytest.mark.parametrize("kind", ["password_changed", "account_deleted"])
def test_notice_mails_carry_no_link_with_a_token(kind: str) -> None:
    message = getattr(mails(), kind)(to="ana@example.com", name="Ana")
    text, page = parts(message)
    assert "token=" not in text + page and "Ana" in text and "Ana" in page


def test_a_display_name_cannot_inject_headers() -> None:
    message = mails().verify_email(to="ana@example.com", name="Ana\r\nBcc: evil@example.com",
                                   token="t", expires_in_s=60)
    raw = bytes(message).decode()
    assert "\nBcc:" not in raw
    assert message["To"].addresses[0].addr_spec == "ana@example.com"


def test_links_default_to_host_and_port_without_public_url() -> None:
    assert public_base_url(Settings(host="0.0.0.0", port=9000)) == "http://127.0.0.1:9000"
    assert public_base_url(Settings(public_url="https://api.example/")) == "https://api.example"


async def test_eml_fallback_writes_a_parseable_private_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    mailer = build_mailer(Settings(data_dir=str(tmp_path)), metrics)
    assert isinstance(mailer, EmlMailer)
    message = mails().reset_password(to="ana@example.com", name="Ana", token=TOKEN,
                                     expires_in_s=3600)
    with caplog.at_level(logging.INFO, logger="server.mail"):
        await mailer.send(message)
    [path] = list((tmp_path / "mail").glob("*.eml"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == "Reset your PetSpark password"
    assert parsed["To"].addresses[0].addr_spec == "ana@example.com"
    text, _ = parts(parsed)
    assert link_token(links_in(text)[0]) == TOKEN
    [record] = [r for r in caplog.records if r.name == "server.mail.mailer"]
    assert vars(record)["file"] == str(path)
    assert vars(record)["subject"] == "Reset your PetSpark password"
    assert TOKEN not in record.getMessage() + str(vars(record))
    assert metrics.registry.get_sample_value(
        "petspark_mails_total", {"transport": "eml", "outcome": "sent"}) == 1


async def test_eml_fallback_that_cannot_write_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    metrics = Metrics()
    mailer = EmlMailer(blocker / "mail", metrics=metrics)
    with pytest.raises(MailError):
        await mailer.send(mails().password_changed(to="a@example.com", name="A"))
    assert metrics.registry.get_sample_value(
        "petspark_mails_total", {"transport": "eml", "outcome": "failed"}) == 1


async def test_smtp_delivers_both_parts(smtp_server: SmtpServer) -> None:
    metrics = Metrics()
    mailer = build_mailer(Settings(smtp_url=f"smtp://127.0.0.1:{smtp_server.port}"), metrics)
    assert isinstance(mailer, SmtpMailer)
    await mailer.send(mails().verify_email(to="ana@example.com", name="Ana", token=TOKEN,
                                           expires_in_s=86400))
    [mail] = await smtp_server.wait_for(1)
    assert mail.mail_from == "no-reply@petspark.example"
    assert mail.rcpt_tos == ["ana@example.com"]
    assert not mail.tls  # the server offered no STARTTLS
    assert mail.message["Subject"] == "Confirm your PetSpark address"
    text, page = parts(mail.message)
    assert link_token(links_in(text)[0]) == TOKEN
    assert "Confirm my address" in page
    assert metrics.registry.get_sample_value(
        "petspark_mails_total", {"transport": "smtp", "outcome": "sent"}) == 1


async def test_smtp_upgrades_with_starttls_and_logs_in(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    server = SmtpServer(ca=ca, credentials=("mailer", "s3cret:/@"))
    server.start()
    try:
        url = f"smtp://mailer:s3cret%3A%2F%40@localhost:{server.port}"
        mailer = SmtpMailer(parse_smtp_url(url), tls_context=ca.client_context())
        await mailer.send(mails().password_changed(to="ana@example.com", name="Ana"))
        [mail] = await server.wait_for(1)
    finally:
        server.stop()
    assert mail.tls and mail.login == "mailer"


async def test_smtps_is_tls_from_the_first_byte(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    server = SmtpServer(ca=ca, implicit_tls=True)
    server.start()
    try:
        mailer = SmtpMailer(parse_smtp_url(f"smtps://localhost:{server.port}"),
                            tls_context=ca.client_context())
        await mailer.send(mails().account_deleted(to="ana@example.com", name="Ana"))
        [mail] = await server.wait_for(1)
    finally:
        server.stop()
    assert mail.tls and mail.message["Subject"] == "Your PetSpark account was deleted"


async def test_credentials_never_go_out_without_tls(smtp_server: SmtpServer) -> None:
    """The server offers no STARTTLS: with a user in the URL the mailer refuses to log in."""
    metrics = Metrics()
    mailer = SmtpMailer(parse_smtp_url(f"smtp://u:pw@127.0.0.1:{smtp_server.port}"),
                        metrics=metrics)
    with pytest.raises(MailError):
        await mailer.send(mails().password_changed(to="a@example.com", name="A"))
    assert smtp_server.messages == []
    assert metrics.registry.get_sample_value(
        "petspark_mails_total", {"transport": "smtp", "outcome": "failed"}) == 1


async def test_an_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    server = SmtpServer(ca=TestCA(tmp_path / "ca"), implicit_tls=True)
    server.start()
    try:
        mailer = SmtpMailer(parse_smtp_url(f"smtps://localhost:{server.port}"))
        with pytest.raises(MailError):
            await mailer.send(mails().password_changed(to="a@example.com", name="A"))
    finally:
        server.stop()
    assert server.messages == []


async def test_an_unreachable_server_is_a_clear_error() -> None:
    from tests.support.services import free_port

    mailer = SmtpMailer(parse_smtp_url(f"smtp://127.0.0.1:{free_port()}"), timeout_s=5)
    with pytest.raises(MailError, match=r"127\.0\.0\.1"):
        await mailer.send(mails().password_changed(to="a@example.com", name="A"))


def test_smtp_urls() -> None:
    t = parse_smtp_url("smtp://mail.example.com")
    assert (t.host, t.port, t.implicit_tls, t.username) == ("mail.example.com", 587, False, None)
    t = parse_smtp_url("smtps://u%40x:p%3Aw@mail.example.com")
    assert (t.port, t.implicit_tls, t.username, t.password) == (465, True, "u@x", "p:w")
    assert parse_smtp_url("smtp://relay:25").port == 25
