"""Process configuration: one frozen ``Settings`` parsed once from the environment.

Every field maps to the environment variable of the same name in upper case
(``port`` ← ``PORT``). Each field's ``description`` states its unit and meaning;
``config/example.env`` is checked against this module by the tests, so the two
cannot drift apart. Tests build ``Settings(...)`` directly.

A bad value stops the process at start with one line naming the variable and
what it expected (``PORT='abc': expected an integer 1..65535``); see
``SettingsError`` and ``server.__main__``.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from server.credentials import (
    ApnsKeyError,
    ServiceAccountError,
    SmtpUrlError,
    VapidKeyError,
    load_apns_key,
    load_service_account,
    load_vapid_key,
    parse_smtp_url,
    sender_address,
    subject_is_valid,
)

Environment = Literal["development", "production"]
SameSite = Literal["lax", "strict", "none"]
LogLevel = Literal["debug", "info", "warning", "error"]
LiveMedia = Literal["p2p", "livekit"]


def _doc(description: str, **constraints: Any) -> Meta:
    return Meta(description=description, **constraints)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the server reads from the environment. Immutable after start."""

    # --- process -----------------------------------------------------------------
    environment: Annotated[
        Environment,
        _doc("`development` (default; relaxed cookie flags, generated dev key allowed) or "
             "`production` (SECRET_KEY required, Secure cookies, HSTS)."),
    ] = "development"
    host: Annotated[str, _doc("Interface to listen on.")] = "127.0.0.1"
    port: Annotated[int, _doc("TCP port to listen on.", ge=1, le=65535)] = 8080
    metrics_token: Annotated[
        str, _doc("Bearer token `GET /metrics` requires (`Authorization: Bearer ...`; "
                  "without it 401). Empty: /metrics is open in development and 404 in "
                  "production.")
    ] = ""
    log_level: Annotated[LogLevel, _doc("Lowest log level written (JSON lines on stderr).")] = (
        "info"
    )
    data_dir: Annotated[
        str,
        _doc("Folder for the embedded database, local uploads and the development key."),
    ] = "./var"
    shutdown_timeout_s: Annotated[
        float, _doc("Seconds in-flight HTTP requests get to finish on SIGTERM.", gt=0, le=300)
    ] = 10.0
    shutdown_spread_s: Annotated[
        float,
        _doc("Seconds over which open WebSockets are closed 1001 on shutdown, so clients "
             "do not reconnect in one stampede.", ge=0, le=60),
    ] = 1.0

    # --- backends ------------------------------------------------------------------
    database_url: Annotated[
        str | None,
        _doc("PostgreSQL DSN. Unset: an embedded PostgreSQL in DATA_DIR/postgres (single node)."),
    ] = None
    db_pool_min: Annotated[int, _doc("Smallest PostgreSQL pool size.", ge=0, le=100)] = 2
    db_pool_max: Annotated[int, _doc("Largest PostgreSQL pool size.", ge=1, le=500)] = 20
    db_command_timeout_s: Annotated[
        float, _doc("Seconds one PostgreSQL query may take before it is cancelled and the "
                    "command answers `unavailable` (a stalled database).", gt=0, le=600)
    ] = 10.0
    db_connect_timeout_s: Annotated[
        float, _doc("Seconds to open a PostgreSQL connection (or wait for a free pooled one) "
                    "before the command answers `unavailable`.", gt=0, le=120)
    ] = 5.0
    migrate_on_start: Annotated[
        bool, _doc("Apply pending migrations before serving (`serve` only).")
    ] = True
    redis_url: Annotated[
        str | None,
        _doc("Redis URL for cross-node fan-out, presence and rate limits. Unset: in-process "
             "broker (single node only)."),
    ] = None
    redis_cluster_nodes: Annotated[
        str | None,
        _doc("Seed nodes `host:port,host:port` of a Redis Cluster for the broker: sharded "
             "pub/sub (SPUBLISH/SSUBSCRIBE), each channel on the shard owning its slot. "
             "Needs REDIS_URL, which still holds presence, routes, rate limits and "
             "sessions. Unset: the broker uses REDIS_URL."),
    ] = None
    redis_prefix: Annotated[
        str, _doc("Prefix of every Redis key and channel, so deployments can share a Redis.")
    ] = "petspark:"
    broker_start_timeout_s: Annotated[
        float, _doc("Seconds start-up waits for the broker subscription before serving anyway "
                    "(it keeps retrying in the background).", gt=0, le=60)
    ] = 5.0
    s3_bucket: Annotated[
        str | None, _doc("S3 bucket for uploads. Unset: objects on local disk under DATA_DIR.")
    ] = None
    s3_endpoint_url: Annotated[
        str | None, _doc("S3-compatible endpoint URL (unset: AWS).")
    ] = None
    s3_region: Annotated[str, _doc("S3 region used for SigV4 signing.")] = "us-east-1"
    s3_access_key_id: Annotated[str | None, _doc("S3 access key id (secret).")] = None
    s3_secret_access_key: Annotated[str | None, _doc("S3 secret access key (secret).")] = None
    s3_path_style: Annotated[
        bool, _doc("Use path-style S3 addressing (most self-hosted S3 servers need it).")
    ] = False

    # --- uploads -----------------------------------------------------------------------
    public_url: Annotated[
        str,
        _doc("Public base URL of this server (e.g. https://api.petspark.example), used in "
             "local-storage URLs and as the base of the links in account mails. Empty: "
             "root-relative file URLs (/api/v1/files/...) and mail links to "
             "http://HOST:PORT (development only)."),
    ] = ""
    upload_max_bytes: Annotated[
        int, _doc("Largest upload through POST /api/v1/uploads, bytes (every purpose but "
                  "avatar).", ge=1024)
    ] = 10_485_760
    upload_avatar_max_bytes: Annotated[
        int, _doc("Largest avatar upload (any flow), bytes.", ge=1024)
    ] = 5_242_880
    upload_large_max_bytes: Annotated[
        int, _doc("Largest upload through the presigned and multipart flows, bytes (every "
                  "purpose but avatar).", ge=1024)
    ] = 31_457_280
    upload_max_pixels: Annotated[
        int, _doc("Largest image accepted, pixels (width x height); more is refused 413 "
                  "before decoding (decompression bombs).", ge=1024)
    ] = 40_000_000
    upload_thumbnail_px: Annotated[
        int, _doc("Longest side of the thumbnail stored beside each image, pixels.",
                  ge=16, le=2048)
    ] = 320
    upload_part_bytes: Annotated[
        int, _doc("Part size of resumable multipart uploads, bytes (S3 needs at least 5 MiB).",
                  ge=5_242_880, le=104_857_600)
    ] = 8_388_608
    upload_presign_ttl_s: Annotated[
        int, _doc("Seconds a presigned form or part URL stays valid.", ge=1, le=86400)
    ] = 900
    upload_url_ttl_s: Annotated[
        int, _doc("Seconds a download URL returned by GET /api/v1/uploads/{id} stays valid.",
                  ge=1, le=604800)
    ] = 300
    upload_abandon_grace_s: Annotated[
        int, _doc("Seconds after a presign expires before an upload never completed is "
                  "deleted (and before /complete refuses it).", ge=0)
    ] = 3600
    upload_cleanup_interval_s: Annotated[
        float, _doc("Seconds between sweeps for abandoned uploads.", gt=0)
    ] = 300.0
    upload_per_hour: Annotated[
        int, _doc("Uploads (direct, presign and multipart starts) per user per hour.", ge=1)
    ] = 60
    upload_bytes_per_day: Annotated[
        int, _doc("Bytes a user may upload in any 24 hours.", ge=1024)
    ] = 524_288_000
    upload_process_concurrency: Annotated[
        int, _doc("Images decoded at once per process (bounds memory: each may take "
                  "4 bytes x UPLOAD_MAX_PIXELS).", ge=1, le=64)
    ] = 2

    # --- HTTP & auth -----------------------------------------------------------------
    allowed_origins: Annotated[
        tuple[str, ...],
        _doc("Comma-separated browser origins allowed for CORS, cookie auth and the "
             "cookie-authenticated WebSocket upgrade."),
    ] = ()
    cookie_samesite: Annotated[
        SameSite,
        _doc("SameSite of the session cookie: `lax` (default; the web app is served from the "
             "same site as the API), `strict`, or `none` for a front end on another site "
             "(the cookie is then always Secure, so the API must be reached over https or "
             "on localhost; see README \"Cross-site front ends\")."),
    ] = "lax"
    secret_key: Annotated[
        Annotated[str, Meta(min_length=32)] | None,
        _doc("Signing/encryption key, at least 32 characters (secret). Unset: a development "
             "key is generated and kept in DATA_DIR, with a warning; required in production."),
    ] = None
    previous_secret_key: Annotated[
        Annotated[str, Meta(min_length=32)] | None,
        _doc("The key before the last rotation (secret): tokens it signed stay valid until they "
             "expire."),
    ] = None
    access_token_ttl_s: Annotated[
        int, _doc("Lifetime of an access token, seconds.", ge=30, le=86400)
    ] = 900
    refresh_token_ttl_s: Annotated[
        int, _doc("Lifetime of a refresh token family, seconds.", ge=300, le=31_536_000)
    ] = 2_592_000
    auth_login_max_failures: Annotated[
        int, _doc("Failed logins allowed per (email, client address) pair, and per known "
                  "device, per AUTH_LOGIN_WINDOW_S (README Authentication: throttling).", ge=1)
    ] = 5
    auth_login_window_s: Annotated[
        int, _doc("Window of every failed-login limit, seconds.", ge=1)
    ] = 900
    auth_login_address_max_failures: Annotated[
        int, _doc("Failed logins allowed per client address, whatever the emails, per window "
                  "(high: many people share an office or carrier address).", ge=1)
    ] = 100
    auth_login_email_max_failures: Annotated[
        int, _doc("Failed logins allowed per email from clients without a known-device token, "
                  "per window; beyond it only devices that signed in to the account before, "
                  "or the password reset link, get in.", ge=1)
    ] = 20
    auth_device_ttl_s: Annotated[
        int, _doc("Lifetime of a known-device token (issued at every login), seconds.",
                  ge=3600, le=63_072_000)
    ] = 31_536_000
    password_hash_concurrency: Annotated[
        int, _doc("argon2id hashes run at once per process.", ge=1, le=64)
    ] = 2
    password_hash_queue: Annotated[
        int, _doc("Password checks that may wait for a hashing slot per process; beyond it "
                  "503 `unavailable` with Retry-After.", ge=0, le=100_000)
    ] = 64
    auth_register_per_hour: Annotated[
        int, _doc("Registrations allowed per client address per hour.", ge=1)
    ] = 20
    password_hash_time_cost: Annotated[
        int, _doc("argon2id iterations (tests lower it).", ge=1, le=20)
    ] = 3
    password_hash_memory_kib: Annotated[
        int, _doc("argon2id memory, KiB (tests lower it).", ge=8, le=4_194_304)
    ] = 65536
    max_request_bytes: Annotated[
        int, _doc("Largest JSON request body, bytes (uploads have their own caps).", ge=1024)
    ] = 65536
    trust_forwarded_for: Annotated[
        bool,
        _doc("Take the client address from X-Forwarded-For (only behind a trusted proxy)."),
    ] = False
    api_contact_email: Annotated[
        str,
        _doc("E-mail address named as the API's contact in /openapi.json and /asyncapi.json. "
             "Empty: the address of MAIL_FROM."),
    ] = ""

    http_header_timeout_s: Annotated[
        float, _doc("Seconds a connection has to deliver a complete request head, counted "
                    "from when it opened or its previous response ended (so it also closes "
                    "idle keep-alive connections: keep it above a proxy's upstream "
                    "keep-alive, nginx's is 60 s). WebSockets are not affected once open.",
                    gt=0, le=3600)
    ] = 75.0
    http_body_timeout_s: Annotated[
        float, _doc("Longest wait for the next bytes of a request body (JSON and uploads), "
                    "seconds; past it 408 and the connection is closed.", gt=0, le=3600)
    ] = 30.0

    # --- WebSocket gateway -----------------------------------------------------------
    hello_timeout_s: Annotated[
        float, _doc("Seconds a new socket has to authenticate with `hello`.", gt=0, le=300)
    ] = 10.0
    heartbeat_s: Annotated[
        float, _doc("Seconds between server pings; silence for twice this closes 4002.",
                    gt=0, le=600)
    ] = 25.0
    ws_max_message_bytes: Annotated[
        int, _doc("Largest inbound frame, bytes; larger closes 1009.", ge=1024, le=16_777_216)
    ] = 65536
    ws_rate_per_s: Annotated[
        float, _doc("Sustained inbound commands per second per connection.", gt=0)
    ] = 20.0
    ws_rate_burst: Annotated[
        int, _doc("Token-bucket burst of inbound commands per connection.", ge=1)
    ] = 50
    ws_frames_per_s: Annotated[
        float, _doc("Sustained inbound frames per second per connection, of every kind "
                    "(commands, pong, ack, WebSocket pings, bad frames); beyond it frames are "
                    "dropped (commands answered `rate_limited`).", gt=0)
    ] = 200.0
    ws_frames_burst: Annotated[
        int, _doc("Token-bucket burst of inbound frames per connection.", ge=1)
    ] = 400
    ws_abuse_s: Annotated[
        float, _doc("Seconds over which a socket's refused frames are measured: a window opens "
                    "at a refused frame, and a refusal after it ends with more than "
                    "WS_ABUSE_REFUSED_FRACTION of its frames refused closes 4029.", gt=0)
    ] = 10.0
    ws_abuse_refused_fraction: Annotated[
        float, _doc("Share of a WS_ABUSE_S window's inbound frames that, refused, makes the "
                    "socket an abuser (closed 4029).", gt=0, lt=1)
    ] = 0.5
    ws_outbox_bytes: Annotated[
        int, _doc("Bytes queued for one slow client before it is closed 4008.", ge=4096)
    ] = 1_048_576
    ws_handshakes_per_address: Annotated[
        int, _doc("Sockets one client address may hold open at once before their `hello` "
                  "(unauthenticated), per node; beyond it the upgrade is refused with 429.",
                  ge=1, le=100_000)
    ] = 50
    ws_max_connections_per_user: Annotated[
        int, _doc("Open sockets per user; a new one beyond this closes the user's oldest "
                  "with 4010 (see docs/protocol.md).", ge=1, le=1000)
    ] = 10
    token_expiry_grace_s: Annotated[
        float, _doc("Seconds after access-token expiry before the socket is closed 4009.", ge=0)
    ] = 5.0
    ws_writer_idle_s: Annotated[
        float, _doc("Seconds a socket's writer task waits for more output after a reply before "
                    "it ends (an idle socket holds no task).", gt=0, le=60)
    ] = 1.0
    ws_max_pending_commands: Annotated[
        int, _doc("Commands one socket may have waiting behind the one running; more are "
                  "answered `rate_limited` at once (see docs/protocol.md).", ge=1, le=1000)
    ] = 16
    ws_close_timeout_s: Annotated[
        float, _doc("Seconds a socket being closed gets to take its queued frames and close "
                    "frame; then its transport is cut (a client that stopped reading).",
                    gt=0, le=60)
    ] = 5.0

    # --- durable events ----------------------------------------------------------------
    event_retention_days: Annotated[
        int, _doc("Days durable events are kept for resume.", ge=1, le=3650)
    ] = 30
    event_position_check_s: Annotated[
        float, _doc("Seconds between each node's check of its users' latest seq against the "
                    "database (fills gaps left by dropped pub/sub messages).", gt=0, le=300)
    ] = 2.0

    # --- lost & found ------------------------------------------------------------------
    lost_fanout_poll_s: Annotated[
        float, _doc("Seconds between each node's safety-net look for lost-alert fan-out jobs "
                    "(a new job wakes every node's runner at once; this finds jobs left by "
                    "a crash or whose wake-up was lost).",
                    gt=0, le=300)
    ] = 5.0
    lost_inline_fanout_max: Annotated[
        int, _doc("Watchers up to which a lost alert (or its resolution) is sent inside the "
                  "report's own transaction; beyond it, a durable fan-out job sends it in "
                  "batches (0: always a job). It bounds how long one report holds its "
                  "recipients' stream rows locked.", ge=0, le=100_000)
    ] = 2000
    lost_reports_per_day: Annotated[
        int, _doc("lost.report alerts one user may raise per 24 hours (all sockets and "
                  "nodes; a resend with the same idempotency_key is not counted).", ge=1)
    ] = 10
    pets_create_per_day: Annotated[
        int, _doc("pets.create profiles one user may create per 24 hours.", ge=1)
    ] = 20

    # --- adoption, community, safety ------------------------------------------------------
    posts_create_per_hour: Annotated[
        int, _doc("Posts one user may publish per hour (posts.create; then rate_limited).",
                  ge=1, le=100_000)
    ] = 30
    posts_comment_per_hour: Annotated[
        int, _doc("Comments one user may write per hour (posts.comment).", ge=1, le=100_000)
    ] = 120
    reports_create_per_hour: Annotated[
        int, _doc("New reports one user may file per hour (reports.create; returning an open "
                  "report again does not count).", ge=1, le=100_000)
    ] = 20
    adoption_listings_per_day: Annotated[
        int, _doc("Adoption listings one user may create per 24 hours (adoption.list_pet).",
                  ge=1, le=100_000)
    ] = 20
    adoption_applications_per_day: Annotated[
        int, _doc("Adoption applications one user may submit per 24 hours (adoption.apply).",
                  ge=1, le=100_000)
    ] = 30

    # --- admin -------------------------------------------------------------------------
    flags_refresh_s: Annotated[
        float, _doc("Seconds between each node's reload of the feature flags it caches (a "
                    "change reaches every node at once through the broker; this bounds how "
                    "late one whose broker message was lost arrives).", gt=0, le=3600)
    ] = 30.0

    # --- push & mail -------------------------------------------------------------------
    smtp_url: Annotated[
        str | None,
        _doc("SMTP server for account mails: smtp://[user:pass@]host:port (STARTTLS when the "
             "server offers it; required when a user is given) or smtps://[user:pass@]host:port "
             "(implicit TLS). Unset: each mail is written as an .eml file under DATA_DIR/mail/ "
             "and logged."),
    ] = None
    mail_from: Annotated[
        str, _doc("From address of account mails, e.g. `PetSpark <no-reply@petspark.example>`.")
    ] = "no-reply@localhost"
    push_delay_s: Annotated[
        float, _doc("Seconds a notification waits for a socket of the user to ack its event "
                    "before it is pushed.", ge=0, le=3600)
    ] = 10.0
    push_max_attempts: Annotated[
        int, _doc("Attempts per push and device on 429, 5xx or network errors before it is "
                  "dropped (and counted).", ge=1, le=100)
    ] = 8
    vapid_private_key: Annotated[
        str | None,
        _doc("Web Push VAPID key (secret): the raw 32-byte P-256 private key in URL-safe "
             "base64 (PEM also accepted); `python -m server.push.vapid` makes one. Unset: "
             "Web Push pushes are logged, not sent."),
    ] = None
    vapid_subject: Annotated[
        str | None,
        _doc("Contact for Web Push services, mailto:… or https://… (required with "
             "VAPID_PRIVATE_KEY)."),
    ] = None
    fcm_credentials_file: Annotated[
        str | None,
        _doc("Path of the Firebase service-account JSON for FCM HTTP v1. Unset: FCM pushes are "
             "logged, not sent."),
    ] = None
    fcm_endpoint: Annotated[
        str, _doc("Base URL of the FCM API (tests point it at a loopback server).")
    ] = "https://fcm.googleapis.com"
    apns_key_file: Annotated[
        str | None,
        _doc("Path of the APNs auth key (.p8, token-based). APNS_KEY_FILE, APNS_KEY_ID, "
             "APNS_TEAM_ID and APNS_TOPIC go together; unset: APNs pushes are logged, not sent."),
    ] = None
    apns_key_id: Annotated[str | None, _doc("Key ID of the APNs auth key.")] = None
    apns_team_id: Annotated[str | None, _doc("Apple developer team ID (the JWT issuer).")] = None
    apns_topic: Annotated[str | None, _doc("APNs topic: the app's bundle ID.")] = None
    apns_endpoint: Annotated[
        str, _doc("APNs host URL (https://api.sandbox.push.apple.com for development builds).")
    ] = "https://api.push.apple.com"
    push_allow_private_endpoints: Annotated[
        bool, _doc("Also allow http and loopback/private Web Push endpoints (tests only: "
                   "otherwise any user could make the server call internal addresses).")
    ] = False

    # --- push delivery -------------------------------------------------------------------
    push_poll_s: Annotated[
        float, _doc("Seconds between each node's look at the push outbox for work written on "
                    "other nodes or left by a crashed one (rows written on this node wake it "
                    "at once).", gt=0, le=300)
    ] = 5.0
    push_retry_base_s: Annotated[
        float, _doc("Delay before the first retry of a push the provider refused for now "
                    "(429, 5xx, network) without a Retry-After, seconds; it doubles per attempt "
                    "(jittered) up to one hour.", gt=0, le=3600)
    ] = 2.0
    push_concurrency: Annotated[
        int, _doc("Pushes in flight at once per node.", ge=1, le=1000)
    ] = 50
    push_max_devices_per_user: Annotated[
        int, _doc("Devices a user may have registered; registering one more removes the one "
                  "registered least recently.", ge=1, le=1000)
    ] = 20
    push_register_per_hour: Annotated[
        int, _doc("devices.register calls per user per hour.", ge=1)
    ] = 60
    ack_flush_s: Annotated[
        float, _doc("Seconds a node gathers its sockets' acks before writing each user's "
                    "highest acked seq to PostgreSQL, where every node's push worker reads it "
                    "(keep it well below PUSH_DELAY_S).", gt=0, le=60)
    ] = 0.5

    # --- accounts ------------------------------------------------------------------------
    email_verify_ttl_s: Annotated[
        int, _doc("Seconds an e-mail verification link stays valid.", ge=60, le=2_592_000)
    ] = 86_400
    password_reset_ttl_s: Annotated[
        int, _doc("Seconds a password-reset link stays valid.", ge=60, le=86_400)
    ] = 3600
    email_verify_per_hour: Annotated[
        int, _doc("Verification mails a user may ask for per hour.", ge=1)
    ] = 5
    password_forgot_per_hour: Annotated[
        int, _doc("Password-reset requests per email address per hour (known or not).", ge=1)
    ] = 5
    password_forgot_per_address_per_hour: Annotated[
        int, _doc("Password-reset requests per client address per hour.", ge=1)
    ] = 20

    # --- live streaming --------------------------------------------------------------
    live_media: Annotated[
        LiveMedia,
        _doc("How live video travels: `p2p` (the host's client sends WebRTC to each viewer, "
             "signalled through the socket; capped at LIVE_P2P_MAX_VIEWERS) or `livekit` "
             "(LiveKit rooms; needs LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET)."),
    ] = "p2p"
    live_p2p_max_viewers: Annotated[
        int, _doc("Viewers one p2p stream admits (the host uploads once per viewer).",
                  ge=1, le=64)
    ] = 8
    live_host_grace_s: Annotated[
        float, _doc("Seconds a live stream survives its host having no socket anywhere "
                    "before it is ended.", gt=0, le=3600)
    ] = 30.0
    live_token_ttl_s: Annotated[
        int, _doc("Seconds a LiveKit access token handed out by live.start/live.join is "
                  "valid.", ge=60, le=86400)
    ] = 3600
    livekit_url: Annotated[
        str | None,
        _doc("LiveKit server URL the clients connect to (wss://…), with LIVE_MEDIA=livekit."),
    ] = None
    livekit_api_key: Annotated[
        str | None, _doc("LiveKit API key: the issuer of access tokens and webhooks.")
    ] = None
    livekit_api_secret: Annotated[
        str | None, _doc("LiveKit API secret (secret): signs access tokens, verifies webhooks.")
    ] = None
    live_ice_servers: Annotated[
        tuple[str, ...],
        _doc("Comma-separated STUN/TURN URLs handed to p2p clients for their WebRTC peer "
             "connections (empty: clients use their own)."),
    ] = ()
    live_sweep_s: Annotated[
        float, _doc("Seconds between each node's sweep of live streams (host grace, the "
                    "viewer counts live.list sorts by).", gt=0, le=300)
    ] = 2.0
    live_start_per_hour: Annotated[
        int, _doc("live.start commands per user per hour.", ge=1)
    ] = 10
    live_chat_per_minute: Annotated[
        int, _doc("live.chat messages per user per stream per minute.", ge=1)
    ] = 30
    live_reactions_per_minute: Annotated[
        int, _doc("live.react commands per user per stream per minute.", ge=1)
    ] = 300

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def __repr__(self) -> str:
        return f"Settings({self.summary()!r})"

    __str__ = __repr__

    def summary(self) -> dict[str, Any]:
        """The settings as a loggable dict, secrets masked and DSN passwords removed."""
        out: dict[str, Any] = {}
        for f in msgspec.structs.fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS and value:
                value = "***"
            elif f.name in ("database_url", "redis_url", "smtp_url") and value:
                value = redact_url(value)
            out[f.name] = value
        return out


SECRET_FIELDS = frozenset(
    {"secret_key", "previous_secret_key", "s3_access_key_id", "s3_secret_access_key",
     "vapid_private_key", "livekit_api_secret", "metrics_token"}
)


class SettingsError(Exception):
    """A variable had a value the server cannot use. ``str(exc)`` is the one line to print."""


def redact_url(url: str) -> str:
    """``postgresql://u:pw@h/db`` → ``postgresql://u:***@h/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def env_name(field_name: str) -> str:
    return field_name.upper()


def describe_expected(annotation: Any) -> str:
    """A short human phrase for what a field accepts, used in error lines."""
    base, meta = _unwrap(annotation)
    if get_origin(base) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(base))
    args = [a for a in get_args(base) if a is not type(None)]
    if args and get_origin(base) is not tuple and get_origin(base) is not Annotated:
        return describe_expected(args[0])  # Optional[X]
    parts = []
    if "gt" in meta:
        parts.append(f"> {meta['gt']}")
    if "ge" in meta:
        parts.append(f"≥ {meta['ge']}")
    if "lt" in meta:
        parts.append(f"< {meta['lt']}")
    if "le" in meta:
        parts.append(f"≤ {meta['le']}")
    bounds = ""
    if "ge" in meta and "le" in meta:
        bounds = f" {meta['ge']}..{meta['le']}"
    elif parts:
        bounds = " " + " and ".join(parts)
    if base is bool:
        return "true or false"
    if base is int:
        return f"an integer{bounds}"
    if base is float:
        return f"a number{bounds}"
    if base is str:
        if "min_length" in meta:
            return f"a string of at least {meta['min_length']} characters"
        return "a string"
    if get_origin(base) is tuple:
        return "a comma-separated list"
    return str(base)


def _unwrap(annotation: Any) -> tuple[Any, dict[str, Any]]:
    meta: dict[str, Any] = {}
    if get_origin(annotation) is Annotated:
        base, *extras = get_args(annotation)
        for extra in extras:
            if isinstance(extra, Meta):
                for key in ("ge", "gt", "le", "lt", "min_length"):
                    value = getattr(extra, key)
                    if value is not None:
                        meta[key] = value
        return base, meta
    return annotation, meta


def _raw_value(field: msgspec.structs.FieldInfo, raw: str) -> Any:
    base, _ = _unwrap(field.type)
    args = [a for a in get_args(base) if a is not type(None)]
    is_optional = type(None) in get_args(base)
    if is_optional and raw.strip() == "":
        return None
    if get_origin(base) is tuple:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if (args and get_origin(args[0]) is Literal) or get_origin(base) is Literal:
        return raw.strip().lower()
    return raw.strip()


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Build Settings from an environment mapping; raise SettingsError naming the variable."""
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(Settings):
        name = env_name(field.name)
        if name not in environ:
            continue
        raw = environ[name]
        try:
            one = msgspec.convert(
                {field.name: _raw_value(field, raw)}, _single_field_struct(field), strict=False
            )
            values[field.name] = getattr(one, "value")  # noqa: B009 - dynamic one-field struct
        except msgspec.ValidationError:
            shown = "***" if field.name in SECRET_FIELDS else raw
            raise SettingsError(
                f"{name}={shown!r}: expected {describe_expected(field.type)}"
            ) from None
    settings = Settings(**values)
    _check_cross_field(settings)
    return settings


_single_cache: dict[str, type[msgspec.Struct]] = {}


def _single_field_struct(field: msgspec.structs.FieldInfo) -> type[msgspec.Struct]:
    """A one-field Struct so msgspec validates a single value with the field's constraints."""
    cls = _single_cache.get(field.name)
    if cls is None:
        cls = msgspec.defstruct("One", [("value", field.type)], rename={"value": field.name})
        _single_cache[field.name] = cls
    return cls


def parse_cluster_nodes(value: str) -> list[tuple[str, int]]:
    """``host:port,host:port`` → [(host, port)]; ValueError with the bad item."""
    nodes = []
    for item in value.split(","):
        item = item.strip()
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {item!r}")
        nodes.append((host, int(port)))
    if not nodes:
        raise ValueError("no cluster node given")
    return nodes


def _check_cross_field(settings: Settings) -> None:
    if settings.db_pool_min > settings.db_pool_max:
        raise SettingsError(
            f"DB_POOL_MIN={settings.db_pool_min}: expected at most DB_POOL_MAX "
            f"({settings.db_pool_max})"
        )
    if settings.is_production and not settings.secret_key:
        raise SettingsError("SECRET_KEY is unset: expected a key of at least 32 characters "
                            "in production")
    for origin in settings.allowed_origins:
        if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
            raise SettingsError(
                f"ALLOWED_ORIGINS={','.join(settings.allowed_origins)!r}: expected origins "
                "like https://app.example.com (scheme and host, no path)"
            )
    s3_keys = (settings.s3_access_key_id, settings.s3_secret_access_key)
    if any(s3_keys) and not all(s3_keys):
        raise SettingsError("S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY: expected both or neither")
    if settings.redis_cluster_nodes is not None:
        if not settings.redis_url:
            raise SettingsError("REDIS_CLUSTER_NODES needs REDIS_URL (presence, routes, rate "
                                "limits and sessions stay on it)")
        try:
            parse_cluster_nodes(settings.redis_cluster_nodes)
        except ValueError as exc:
            raise SettingsError(f"REDIS_CLUSTER_NODES={settings.redis_cluster_nodes!r}: "
                                f"{exc}") from None
    _check_push_and_mail(settings)
    _check_live(settings)


def _check_live(settings: Settings) -> None:
    livekit = {"LIVEKIT_URL": settings.livekit_url, "LIVEKIT_API_KEY": settings.livekit_api_key,
               "LIVEKIT_API_SECRET": settings.livekit_api_secret}
    if settings.live_media == "livekit" and not all(livekit.values()):
        missing = ", ".join(name for name, value in livekit.items() if not value)
        raise SettingsError(f"LIVE_MEDIA=livekit: {missing} unset (expected the LiveKit "
                            "deployment's URL, API key and secret)")
    url = settings.livekit_url
    if url and not url.startswith(("ws://", "wss://", "http://", "https://")):
        raise SettingsError(f"LIVEKIT_URL={url!r}: expected a URL like wss://livekit.example")
    for ice in settings.live_ice_servers:
        if not ice.startswith(("stun:", "stuns:", "turn:", "turns:")):
            raise SettingsError(f"LIVE_ICE_SERVERS: {ice!r} is not a stun:/turn: URL")


def _check_push_and_mail(settings: Settings) -> None:
    if settings.public_url and not settings.public_url.startswith(("http://", "https://")):
        raise SettingsError(f"PUBLIC_URL={settings.public_url!r}: expected an http(s) URL")
    if settings.smtp_url:
        try:
            parse_smtp_url(settings.smtp_url)
        except SmtpUrlError as exc:
            raise SettingsError(f"SMTP_URL={redact_url(settings.smtp_url)!r}: {exc}") from None
        if settings.is_production and not settings.public_url:
            raise SettingsError("PUBLIC_URL is unset: expected the public base URL for the "
                                "links in mails when SMTP_URL is set in production")
    if sender_address(settings.mail_from) is None:
        raise SettingsError(f"MAIL_FROM={settings.mail_from!r}: expected an address like "
                            "'PetSpark <no-reply@example.com>'")
    contact = settings.api_contact_email
    if contact and sender_address(contact) != contact:
        raise SettingsError(f"API_CONTACT_EMAIL={contact!r}: expected a bare address like "
                            "api@example.com")
    if settings.vapid_private_key:
        try:
            load_vapid_key(settings.vapid_private_key)
        except VapidKeyError as exc:
            raise SettingsError(f"VAPID_PRIVATE_KEY=***: {exc}; expected a raw 32-byte P-256 "
                                "key in URL-safe base64 (or PEM)") from None
        if not settings.vapid_subject:
            raise SettingsError("VAPID_SUBJECT is unset: expected a mailto: or https: contact "
                                "with VAPID_PRIVATE_KEY")
    elif settings.vapid_subject:
        raise SettingsError("VAPID_SUBJECT is set without VAPID_PRIVATE_KEY: expected both or "
                            "neither")
    if settings.vapid_subject and not subject_is_valid(settings.vapid_subject):
        raise SettingsError(f"VAPID_SUBJECT={settings.vapid_subject!r}: expected "
                            "mailto:someone@example.com or an https:// URL")
    for name, url in (("FCM_ENDPOINT", settings.fcm_endpoint),
                      ("APNS_ENDPOINT", settings.apns_endpoint)):
        if not _is_base_url(url):
            raise SettingsError(f"{name}={url!r}: expected a base URL like https://host[:port]")
    if settings.fcm_credentials_file:
        try:
            load_service_account(settings.fcm_credentials_file)
        except ServiceAccountError as exc:
            raise SettingsError(
                f"FCM_CREDENTIALS_FILE={settings.fcm_credentials_file!r}: {exc}"
            ) from None
    apns = {"APNS_KEY_FILE": settings.apns_key_file, "APNS_KEY_ID": settings.apns_key_id,
            "APNS_TEAM_ID": settings.apns_team_id, "APNS_TOPIC": settings.apns_topic}
    if any(apns.values()) and not all(apns.values()):
        missing = ", ".join(name for name, value in apns.items() if not value)
        raise SettingsError(f"APNs is half configured: {missing} unset (APNS_KEY_FILE, "
                            "APNS_KEY_ID, APNS_TEAM_ID and APNS_TOPIC go together)")
    if settings.apns_key_file:
        try:
            load_apns_key(settings.apns_key_file)
        except ApnsKeyError as exc:
            raise SettingsError(f"APNS_KEY_FILE={settings.apns_key_file!r}: {exc}") from None
    if settings.push_allow_private_endpoints and settings.is_production:
        raise SettingsError("PUSH_ALLOW_PRIVATE_ENDPOINTS=true: not allowed in production "
                            "(tests only)")


def _is_base_url(url: str) -> bool:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not (
        parts.query or parts.fragment or parts.username
    )


def resolve_secret_key(settings: Settings) -> tuple[str, bool]:
    """The signing key and whether it was generated for development.

    Unset ``SECRET_KEY`` in development: a random key is generated once and kept
    in ``DATA_DIR/dev-secret-key`` (mode 0600) so sessions survive restarts.
    """
    if settings.secret_key:
        return settings.secret_key, False
    path = settings.data_path / "dev-secret-key"
    if path.exists():
        return path.read_text().strip(), True
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key, True


def settings_fields() -> list[tuple[str, Any, str]]:
    """(ENV_NAME, default, description) for every setting, in declaration order."""
    info = msgspec.inspect.type_info(Settings)
    assert isinstance(info, msgspec.inspect.StructType)
    out = []
    for field in info.fields:
        extra = getattr(field.type, "extra_json_schema", None) or {}
        out.append((env_name(field.name), field.default, str(extra.get("description", ""))))
    return out
