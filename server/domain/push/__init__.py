"""Devices, push preferences and the push outbox worker (PROTOCOL §10.6).

``store`` (plain SQL), ``payload`` (a notification as a push), ``service``
(``PushService``: the commands and the worker), ``handlers``. The providers it sends
through are the resources-level ``server.push`` package.
"""
