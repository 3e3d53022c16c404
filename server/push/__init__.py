"""Push to devices off the socket: one ``PushProvider`` per platform (PROTOCOL §10.6).

- ``provider``: the payload, the device address, the result and the interface.
- ``webpush`` (RFC 8030/8291/8292), ``fcm`` (HTTP v1), ``apns`` (HTTP/2, token auth),
  ``log`` (the embedded default): the implementations.
- ``guard``: the server-side request forgery guard for Web Push endpoints (§10.7).
- ``factory``: ``build_push_providers(settings)``.

The outbox worker and the device commands (``server.domain.push``) sit on top of these.
"""
