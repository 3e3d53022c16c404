"""Issue 17.4: the reader never waits for a command.

While a command of a connection waits (here: a handler that blocks until the test lets it
go; with a real stalled database see ``test_postgres_down``), that connection's ``pong``
and ``ack`` are still handled, so a long wait never closes a live client 4002. Commands
of one connection still run one at a time, in arrival order; at most
``WS_MAX_PENDING_COMMANDS`` wait behind the running one, and one more is answered
``rate_limited`` at once.
"""

from __future__ import annotations

from protocol.chat import ChatConversations
from protocol.pets import PetsMine
from protocol.session import Ack, Error, Ok
from server.state import RUNTIME
from tests.faults.helpers import Gate, stays_alive
from tests.gateway.conftest import AppClient
from tests.support import events
from tests.support.auth import register
from tests.support.waiting import until
from tests.support.ws import open_session


async def test_pong_and_ack_are_handled_while_a_command_waits(app_client: AppClient) -> None:
    gate = Gate()
    client = await app_client(heartbeat_s=0.2, handlers={PetsMine: gate.handler()})
    user = await register(client)
    sock = await open_session(client, user.access_token)
    await events.append(client.app, [user.user_id], 7)  # an ack counts up to what was sent
    assert [(await sock.expect("notification")).seq for _ in range(7)] == list(range(1, 8))
    await sock.send(PetsMine(id="slow"))
    await until(lambda: gate.started == ["slow"], what="the command to start")
    await sock.send(Ack(seq=7))
    (conn,) = list(client.app[RUNTIME].deps.node.hub.connections())
    await until(lambda: conn.acked_seq == 7, what="the ack to be recorded")
    await stays_alive(client, sock, heartbeats=4)  # pongs keep it: no 4002
    gate.open.set()
    reply = await sock.expect("ok")
    assert reply.id == "slow"


async def test_commands_run_in_order_one_at_a_time(app_client: AppClient) -> None:
    gate = Gate()
    client = await app_client(handlers={PetsMine: gate.handler()})
    user = await register(client)
    sock = await open_session(client, user.access_token)
    other = await open_session(client, user.access_token)
    await sock.send(PetsMine(id="a"))
    await sock.send(ChatConversations(id="b"))  # queued behind "a", not started
    await sock.send_raw("{not json")  # answered at once, out of band
    bad = await sock.expect("error")
    assert bad.id is None and bad.code == "bad_request"
    # Another connection is not held up by this one's command.
    assert (await other.command(ChatConversations(id="x"))).conversations == []
    assert gate.started == ["a"]
    await sock.expect_nothing(0.1)
    gate.open.set()
    first, second = await sock.receive(), await sock.receive()
    assert isinstance(first, Ok) and isinstance(second, Ok)
    assert [first.id, second.id] == ["a", "b"]


async def test_a_full_command_queue_answers_rate_limited_at_once(app_client: AppClient) -> None:
    gate = Gate()
    client = await app_client(ws_max_pending_commands=2, handlers={PetsMine: gate.handler()})
    user = await register(client)
    sock = await open_session(client, user.access_token)
    for command_id in ("run", "wait1", "wait2", "over"):
        await sock.send(PetsMine(id=command_id))
    refused = await sock.expect("error")  # while "run" still waits
    assert isinstance(refused, Error)
    assert (refused.id, refused.code) == ("over", "rate_limited")
    assert refused.retry_after_s is not None and refused.retry_after_s > 0
    assert gate.started == ["run"]
    gate.open.set()
    replies = [await sock.receive() for _ in range(3)]
    assert [(r.wire_type(), getattr(r, "id", None)) for r in replies] == [
        ("ok", "run"), ("ok", "wait1"), ("ok", "wait2")]
    assert gate.started == ["run", "wait1", "wait2"]
    await sock.expect_nothing(0.1)


async def test_the_command_worker_ends_when_idle_and_comes_back(app_client: AppClient) -> None:
    client = await app_client(ws_writer_idle_s=0.1)
    user = await register(client)
    sock = await open_session(client, user.access_token)
    await sock.command(ChatConversations(id="c1"))
    (conn,) = list(client.app[RUNTIME].deps.node.hub.connections())
    await until(lambda: conn.worker is None, what="the idle worker to end")
    assert (await sock.command(ChatConversations(id="c2"))).conversations == []
