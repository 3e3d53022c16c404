"""§10.7 variables: names, defaults and the one-line errors for bad combinations."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.push.vapid import generate_key
from server.settings import SettingsError, load_settings
from tests.support.apns import ApnsServer
from tests.support.fcm import FcmServer
from tests.support.tls import TestCA


def test_defaults_match_the_contract() -> None:
    s = load_settings({})
    assert (s.push_delay_s, s.push_max_attempts) == (10, 8)
    assert s.smtp_url is None and s.vapid_private_key is None
    assert s.fcm_credentials_file is None and s.apns_key_file is None
    assert s.push_allow_private_endpoints is False
    assert s.fcm_endpoint == "https://fcm.googleapis.com"
    assert s.apns_endpoint == "https://api.push.apple.com"


def test_a_full_configuration_loads(tmp_path: Path) -> None:
    fcm, apns = FcmServer(), ApnsServer(TestCA(tmp_path / "ca"))
    fcm.base_url = "https://oauth2.googleapis.com"  # not started: only its files are used
    s = load_settings({
        "SMTP_URL": "smtps://mailer:p%40ss@smtp.example.com:465",
        "MAIL_FROM": "PetSpark <no-reply@petspark.example>",
        "PUSH_DELAY_S": "2.5", "PUSH_MAX_ATTEMPTS": "3",
        "VAPID_PRIVATE_KEY": generate_key()[0], "VAPID_SUBJECT": "mailto:ops@petspark.example",
        "FCM_CREDENTIALS_FILE": str(fcm.write_credentials(tmp_path / "sa.json")),
        "APNS_KEY_FILE": str(apns.write_key(tmp_path / "AuthKey.p8")),
        "APNS_KEY_ID": "KEY1234567", "APNS_TEAM_ID": "TEAM123456",
        "APNS_TOPIC": "com.petspark.app",
        "APNS_ENDPOINT": "https://api.sandbox.push.apple.com",
        "PUSH_ALLOW_PRIVATE_ENDPOINTS": "true",
    })
    assert (s.push_delay_s, s.push_max_attempts, s.push_allow_private_endpoints) == (
        2.5, 3, True)


@pytest.mark.parametrize(("env", "line"), [
    ({"SMTP_URL": "mail.example.com:25"}, "SMTP_URL='mail.example.com:25': expected smtp://"),
    ({"SMTP_URL": "smtp://u:hunter2@mail.example.com:99999"},
     "SMTP_URL='smtp://u:***@mail.example.com:99999': expected a port"),
    ({"SMTP_URL": "smtp://:587"}, "SMTP_URL='smtp://:587': expected a host"),
    ({"MAIL_FROM": "nobody"}, "MAIL_FROM='nobody': expected an address"),
    ({"VAPID_PRIVATE_KEY": "not-a-key"}, "VAPID_PRIVATE_KEY=***: "),
    ({"VAPID_PRIVATE_KEY": "AAAA" * 11}, "VAPID_PRIVATE_KEY=***: "),
    ({"VAPID_SUBJECT": "mailto:a@b.example"}, "VAPID_SUBJECT is set without"),
    ({"FCM_CREDENTIALS_FILE": "/nonexistent/sa.json"},
     "FCM_CREDENTIALS_FILE='/nonexistent/sa.json': cannot read the file"),
    ({"FCM_ENDPOINT": "fcm.googleapis.com"}, "FCM_ENDPOINT='fcm.googleapis.com': expected"),
    ({"APNS_ENDPOINT": "https://"}, "APNS_ENDPOINT='https://': expected"),
    ({"APNS_KEY_ID": "K", "APNS_TEAM_ID": "T"},
     "APNs is half configured: APNS_KEY_FILE, APNS_TOPIC unset"),
    ({"APNS_KEY_FILE": "/nonexistent/k.p8", "APNS_KEY_ID": "K", "APNS_TEAM_ID": "T",
      "APNS_TOPIC": "com.x"}, "APNS_KEY_FILE='/nonexistent/k.p8': cannot read the file"),
    ({"ENVIRONMENT": "production", "SECRET_KEY": "s" * 40,
      "PUSH_ALLOW_PRIVATE_ENDPOINTS": "true"}, "PUSH_ALLOW_PRIVATE_ENDPOINTS=true: not allowed"),
    ({"ENVIRONMENT": "production", "SECRET_KEY": "s" * 40, "SMTP_URL": "smtp://m.example:25"},
     "PUBLIC_URL is unset"),
    ({"PUBLIC_URL": "api.petspark.example"}, "PUBLIC_URL='api.petspark.example': expected"),
    ({"PUSH_MAX_ATTEMPTS": "0"}, "PUSH_MAX_ATTEMPTS='0': expected an integer 1..100"),
])
def test_bad_values_stop_with_one_line(env: dict[str, str], line: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    message = str(info.value)
    assert message.startswith(line), message
    assert "\n" not in message and "hunter2" not in message


def test_vapid_needs_a_valid_subject() -> None:
    key = generate_key()[0]
    with pytest.raises(SettingsError, match="VAPID_SUBJECT is unset"):
        load_settings({"VAPID_PRIVATE_KEY": key})
    with pytest.raises(SettingsError, match="VAPID_SUBJECT='ops': expected mailto"):
        load_settings({"VAPID_PRIVATE_KEY": key, "VAPID_SUBJECT": "ops"})


def test_a_wrong_key_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "sa.json").write_text('{"type": "service_account"}')
    with pytest.raises(SettingsError, match="not a service-account JSON"):
        load_settings({"FCM_CREDENTIALS_FILE": str(tmp_path / "sa.json")})
    (tmp_path / "k.p8").write_text("hello")
    with pytest.raises(SettingsError, match="not a PEM private key"):
        load_settings({"APNS_KEY_FILE": str(tmp_path / "k.p8"), "APNS_KEY_ID": "K",
                       "APNS_TEAM_ID": "T", "APNS_TOPIC": "com.x"})


def test_secrets_are_masked_in_the_summary() -> None:
    key = generate_key()[0]
    s = load_settings({"SMTP_URL": "smtp://mailer:hunter2@smtp.example.com:587",
                       "VAPID_PRIVATE_KEY": key, "VAPID_SUBJECT": "mailto:a@b.example"})
    shown = repr(s) + str(s.summary())
    assert "hunter2" not in shown and key not in shown
    assert s.summary()["smtp_url"] == "smtp://mailer:***@smtp.example.com:587"
    assert s.summary()["vapid_private_key"] == "***"
