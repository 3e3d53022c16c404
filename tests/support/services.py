"""The PostgreSQL and Redis the tests run against: ``server.resources.dev_services``
(shared with ``bench/``) with the tests' variables, ``TEST_DATABASE_URL`` /
``DATABASE_URL`` and ``TEST_REDIS_URL`` / ``REDIS_URL``."""

from __future__ import annotations

from server.resources.dev_services import (
    RedisProcess,
    Service,
    create_database,
    delete_prefix,
    drop_database,
    free_port,
    postgres_server,
    redis_server,
    with_database,
)

__all__ = [
    "RedisProcess",
    "Service",
    "create_database",
    "delete_prefix",
    "drop_database",
    "free_port",
    "postgres_server",
    "redis_server",
    "with_database",
]
