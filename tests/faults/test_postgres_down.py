"""Issue 17.3: PostgreSQL cut or stalled (through a TCP proxy the app connects to).

Open sockets stay open (pings answered, heartbeats kept); every command that needs the
database answers ``unavailable`` with ``retry_after_s``; new upgrades get HTTP 503 with
``Retry-After`` (or close 1013 when the credential comes in ``hello``); HTTP routes 503;
one log line when the outage starts and one when it ends, no traceback; afterwards
everything works again and no event is lost or duplicated.
"""

from __future__ import annotations

import logging

import aiohttp
import pytest

from protocol.chat import ChatConversations
from protocol.codes import CloseCode
from protocol.notifications import NotificationsList
from protocol.pets import PetsMine
from protocol.session import Error, Hello
from server.state import RUNTIME
from tests.domain.conftest import cid
from tests.faults.helpers import records, server_errors, stays_alive, until_answering
from tests.gateway.conftest import AppClient
from tests.realtime.test_delivery import seqs
from tests.support import events
from tests.support.auth import register
from tests.support.proxy import TcpProxy
from tests.support.waiting import until
from tests.support.ws import ProtocolSocket, connect, open_session


async def answers_unavailable(sock: ProtocolSocket) -> None:
    for command in (PetsMine(id=cid()), ChatConversations(id=cid()),
                    NotificationsList(id=cid())):
        reply = await sock.request(command, timeout=10)
        assert isinstance(reply, Error), reply
        assert reply.code == "unavailable", reply
        assert reply.retry_after_s is not None and reply.retry_after_s > 0


async def test_postgres_cut_answers_unavailable_and_keeps_sockets(
    app_client: AppClient, pg_proxy: TcpProxy, database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await app_client(database_url=pg_proxy.url_for(database_url), heartbeat_s=0.4,
                              db_connect_timeout_s=1.0, db_command_timeout_s=1.0,
                              event_position_check_s=0.2)
    user = await register(client)
    sock = await open_session(client, user.access_token)
    await events.append(client.app, [user.user_id], 2)
    assert await seqs(sock, 2) == [1, 2]
    caplog.set_level(logging.INFO, logger="server")

    await pg_proxy.cut()
    await answers_unavailable(sock)
    await stays_alive(client, sock, heartbeats=3)  # > 2 x heartbeat_s: no 4002
    await answers_unavailable(sock)

    # New sockets: refused cleanly before the upgrade (header credential) …
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await connect(client, token=user.access_token)
    assert refused.value.status == 503
    assert refused.value.headers is not None and "Retry-After" in refused.value.headers
    # … or closed 1013 "try again later" when the credential comes in the hello.
    late = await connect(client)
    await late.send(Hello(token=user.access_token))
    await late.expect_close(CloseCode.TRY_AGAIN_LATER)
    # HTTP routes: 503 unavailable, with Retry-After.
    resp = await client.post("/api/v1/auth/login",
                             json={"email": user.email, "password": user.password})
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "unavailable"
    assert "Retry-After" in resp.headers
    ready = await client.get("/readyz")
    assert ready.status == 503

    assert len(records(caplog, "database unavailable")) == 1  # one line per outage
    assert server_errors(caplog) == []  # no traceback, no "internal"

    pg_proxy.heal()
    outages = client.app[RUNTIME].deps.outages
    await until_answering(sock, lambda: not outages.is_down("database"), what="recovery")
    assert len(records(caplog, "database available again")) == 1
    assert (await sock.command(PetsMine(id=cid()))).pets == []
    await events.append(client.app, [user.user_id], 2)
    assert await seqs(sock, 2) == [3, 4]  # nothing lost, nothing twice
    await sock.expect_nothing()
    back = await open_session(client, user.access_token, resume_from=2)
    assert await seqs(back, 2) == [3, 4]


async def test_postgres_stall_times_out_to_unavailable_and_keeps_sockets(
    app_client: AppClient, pg_proxy: TcpProxy, database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = await app_client(database_url=pg_proxy.url_for(database_url), heartbeat_s=0.3,
                              db_connect_timeout_s=0.5, db_command_timeout_s=0.5,
                              event_position_check_s=0.2)
    user = await register(client)
    sock = await open_session(client, user.access_token)
    caplog.set_level(logging.INFO, logger="server")

    pg_proxy.stall()  # connections stay open; nothing goes through
    # The command waits up to DB_COMMAND_TIMEOUT_S; meanwhile pings are answered and the
    # socket is kept (its reader does not wait for the command).
    await answers_unavailable(sock)
    await stays_alive(client, sock, heartbeats=3)
    assert server_errors(caplog) == []
    assert len(records(caplog, "database unavailable")) == 1

    pg_proxy.resume()
    outages = client.app[RUNTIME].deps.outages
    await until_answering(sock, lambda: not outages.is_down("database"), what="recovery")

    async def pets_mine_ok() -> bool:
        return not isinstance(await sock.request(PetsMine(id=cid()), timeout=5), Error)

    await until(pets_mine_ok, timeout=10, interval=0.1, what="commands to work again")
    await events.append(client.app, [user.user_id], 1)
    assert await seqs(sock, 1) == [1]
