from tests.support.peers import (  # noqa: F401 - fixtures
    apns_server,
    fcm_server,
    smtp_server,
    test_ca,
    webpush_endpoint,
)
