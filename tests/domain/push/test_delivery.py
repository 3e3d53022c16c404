"""The push worker against real protocol peers on loopback: a Web Push endpoint that
verifies VAPID and decrypts, an FCM OAuth + messages:send server, an HTTP/2 APNs server."""

from __future__ import annotations

import asyncio
from pathlib import Path

from protocol.chat import ChatSend
from protocol.notifications import DevicesList, DevicesRegister, NotificationsPreferences
from protocol.objects import Platform
from protocol.session import Ack
from server.domain.push import store
from server.state import RUNTIME
from tests.domain.conftest import AppClient, cid, make_match, new_user
from tests.domain.push.conftest import (
    APNS_TOKEN,
    FCM_TOKEN,
    db,
    deliveries,
    go_offline,
    ids_pushed,
    metric,
    notify_user,
    providers_with,
    push_service,
    push_settings,
    register_browser,
    wait_final,
    wait_outcome,
)
from tests.support.apns import ApnsServer
from tests.support.fcm import FcmServer
from tests.support.tls import TestCA
from tests.support.waiting import until
from tests.support.webpush import WebPushEndpoint


async def test_offline_user_gets_exactly_one_push_per_device_on_every_platform(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint, fcm_server: FcmServer,
    apns_server: ApnsServer, test_ca: TestCA, tmp_path: Path, database_url: str,
) -> None:
    client = await app_client(**push_settings(), push_providers=providers_with(
        fcm_server, apns_server, test_ca, tmp_path))
    alice = await new_user(client)
    _, laptop = await register_browser(alice, webpush_endpoint)
    _, phone_browser = await register_browser(alice, webpush_endpoint)
    await alice.cmd(DevicesRegister(id=cid(), platform=Platform.FCM, token=FCM_TOKEN))
    await alice.cmd(DevicesRegister(id=cid(), platform=Platform.APNS, token=APNS_TOKEN))
    await go_offline(alice)

    earlier = await notify_user(client, alice.id, kind="lost.alert", title="Lost dog nearby",
                                body="Rex, near the park", data={"alert_id": "a-1"})
    await wait_final(database_url)
    note = await notify_user(client, alice.id, title="It's a match!",
                             body="Rex and Luna like each other",
                             data={"match_id": "m-1", "conversation_id": "c-1", "n": 3})
    assert await wait_outcome(database_url, note.id) == "queued"
    await wait_final(database_url)

    assert webpush_endpoint.errors == [] and fcm_server.errors == [] \
        and apns_server.errors == []
    pushed = ids_pushed(webpush_endpoint)
    for browser in (laptop, phone_browser):
        browser_id = browser.endpoint.rsplit("/", 1)[1]
        assert pushed[(browser_id, earlier.id)] == 1 and pushed[(browser_id, note.id)] == 1
    assert len(webpush_endpoint.delivered) == 4
    last = webpush_endpoint.delivered[-1]
    assert last.payload == {  # decrypted at the endpoint, exactly the contract's shape
        "kind": "match.created", "title": "It's a match!",
        "body": "Rex and Luna like each other",
        "data": {"notification_id": note.id, "match_id": "m-1", "conversation_id": "c-1",
                 "n": "3"},
        "unread_count": 2,
    }
    assert [m["data"]["kind"] for m in fcm_server.delivered] == ["lost.alert", "match.created"]
    fcm_last = fcm_server.delivered[-1]
    assert fcm_last["token"] == FCM_TOKEN
    assert fcm_last["notification"] == {"title": "It's a match!",
                                        "body": "Rex and Luna like each other"}
    assert fcm_last["data"]["unread_count"] == "2"
    assert [r.device_token for r in apns_server.delivered] == [APNS_TOKEN, APNS_TOKEN]
    assert apns_server.delivered[-1].body["aps"]["badge"] == 2
    assert apns_server.delivered[-1].body["data"]["notification_id"] == note.id
    states = [r["state"] for r in await deliveries(database_url, note.id)]
    assert states == ["sent"] * 4
    assert metric(client, "webpush", "sent") == 4
    assert metric(client, "fcm", "sent") == 2 and metric(client, "apns", "sent") == 2


async def test_an_acked_notification_is_never_pushed_and_an_unacked_one_is(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint, database_url: str,
) -> None:
    client = await app_client(**push_settings(push_delay_s=1.0))
    alice = await new_user(client)
    await register_browser(alice, webpush_endpoint)

    seen = await notify_user(client, alice.id, title="seen")
    event = await alice.sock.expect("notification")
    assert event.notification.id == seen.id
    await alice.sock.send(Ack(seq=event.seq))
    assert await wait_outcome(database_url, seen.id) == "acked"

    # The same user, still online, who does not ack: pushed after PUSH_DELAY_S.
    unseen = await notify_user(client, alice.id, title="unseen")
    await alice.sock.expect("notification")
    assert await wait_outcome(database_url, unseen.id) == "queued"
    await until(lambda: len(webpush_endpoint.delivered) == 1, what="the unacked push")
    assert [a.payload["title"] for a in webpush_endpoint.delivered] == ["unseen"]  # type: ignore[index]
    acked = await db(database_url, "SELECT acked_seq FROM stream_acks WHERE user_id = $1",
                     alice.id)
    assert acked[0]["acked_seq"] == event.seq


async def test_an_ack_counts_only_up_to_what_the_socket_was_sent(
    app_client: AppClient, database_url: str,
) -> None:
    client = await app_client(**push_settings())
    alice = await new_user(client)
    note = await notify_user(client, alice.id)
    event = await alice.sock.expect("notification")
    await alice.sock.send(Ack(seq=event.seq + 1000))  # claims events it never got
    await until(lambda: db(database_url, "SELECT 1 FROM stream_acks WHERE user_id = $1 "
                           "AND acked_seq = $2", alice.id, event.seq), what="the ack")
    await notify_user(client, alice.id, title="later")
    later = await alice.sock.expect("notification")
    assert later.seq == event.seq + 1
    rows = await db(database_url, "SELECT acked_seq FROM stream_acks WHERE user_id = $1",
                    alice.id)
    assert rows[0]["acked_seq"] == event.seq
    assert await wait_outcome(database_url, note.id) == "acked"


async def test_a_device_registered_after_the_notification_gets_it(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint, database_url: str,
) -> None:
    client = await app_client(**push_settings(push_delay_s=1.0))
    alice = await new_user(client)
    note = await notify_user(client, alice.id)  # online: waits for an ack that never comes
    _, browser = await register_browser(alice, webpush_endpoint)
    assert await wait_outcome(database_url, note.id) == "queued"
    await until(lambda: len(webpush_endpoint.for_browser(browser)) == 1, what="the push")


async def test_two_nodes_racing_the_outbox_push_each_notification_once(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint, database_url: str,
) -> None:
    settings = push_settings(push_concurrency=4, push_poll_s=0.05)
    node_a, node_b = await app_client(**settings), await app_client(**settings)
    users = [await new_user(node_a if i % 2 else node_b) for i in range(6)]
    for user in users:
        await register_browser(user, webpush_endpoint)
        await go_offline(user)
    webpush_endpoint.hold()
    notes = []
    for round_ in range(4):
        for i, user in enumerate(users):
            notes.append(await notify_user(node_a if i % 2 else node_b, user.id,
                                           title=f"round {round_}"))
    # Both nodes have claimed their fill while the push service is slow to answer.
    await until(lambda: webpush_endpoint.waiting == 8, what="both nodes sending")
    webpush_endpoint.release()
    await wait_final(database_url)
    pushed = ids_pushed(webpush_endpoint)
    assert len(webpush_endpoint.delivered) == len(notes) == 24
    assert set(pushed.values()) == {1}
    assert {nid for _, nid in pushed} == {n.id for n in notes}
    assert metric(node_a, "webpush", "sent") > 0 and metric(node_b, "webpush", "sent") > 0
    assert metric(node_a, "webpush", "sent") + metric(node_b, "webpush", "sent") == 24


async def test_stopping_a_node_mid_batch_loses_nothing_and_repeats_nothing(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint, database_url: str,
) -> None:
    node_a = await app_client(**push_settings(push_concurrency=3))
    users = [await new_user(node_a) for _ in range(4)]
    for user in users:
        await register_browser(user, webpush_endpoint)
        await go_offline(user)
    webpush_endpoint.hold()
    notes = [await notify_user(node_a, u.id, title=f"n{i}") for i in range(3) for u in users]
    await until(lambda: webpush_endpoint.waiting == 3, what="a batch in flight")
    stopping = asyncio.create_task(push_service(node_a).stop())
    await asyncio.sleep(0)  # (lets stop() begin; what follows waits on conditions)
    assert not stopping.done()  # it waits for the pushes in flight
    webpush_endpoint.release()
    await stopping
    assert len(webpush_endpoint.delivered) == 3
    open_rows = await db(database_url, """
        SELECT (SELECT count(*) FROM push_deliveries WHERE state = 'sent') AS sent,
               (SELECT count(*) FROM push_deliveries WHERE state = 'sending') AS sending,
               (SELECT count(*) FROM push_deliveries WHERE state = 'pending')
             + (SELECT count(*) FROM push_outbox WHERE handled_at IS NULL) AS to_do""")
    # the 3 in flight were recorded as sent before stop() returned; the rest is still to do
    assert dict(open_rows[0]) == {"sent": 3, "sending": 0, "to_do": 9}

    node_b = await app_client(**push_settings())  # the next node (or the restarted one)
    assert node_b is not None
    await wait_final(database_url)
    pushed = ids_pushed(webpush_endpoint)
    assert len(webpush_endpoint.delivered) == 12 and set(pushed.values()) == {1}
    assert {nid for _, nid in pushed} == {n.id for n in notes}


async def test_a_crashed_workers_claim_is_sent_again_after_its_lease(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint, database_url: str,
) -> None:
    client = await app_client(**push_settings())
    service = push_service(client)
    await service.stop()  # this test plays the crashed worker itself
    alice = await new_user(client)
    _, browser = await register_browser(alice, webpush_endpoint)
    await go_offline(alice)
    note = await notify_user(client, alice.id)
    assert await service.decide_due() == 1  # the worker decided the row ...
    assert webpush_endpoint.attempts == []
    pool = client.server.app[RUNTIME].deps.db
    async with pool.acquire() as conn, conn.transaction():  # claimed, then the node died
        claimed = await store.claim_deliveries(conn, 10, lease_s=0.3)
    assert [r["attempts"] for r in claimed] == [1]

    service.lease_s = 60.0
    await service.start()
    await until(lambda: len(webpush_endpoint.for_browser(browser)) == 1, what="the re-send")
    await wait_final(database_url)
    [row] = await deliveries(database_url, note.id)
    assert row["state"] == "sent" and row["attempts"] == 2
    assert len(webpush_endpoint.delivered) == 1


async def test_gone_removes_the_device(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint, fcm_server: FcmServer,
    tmp_path: Path, database_url: str,
) -> None:
    client = await app_client(**push_settings(),
                              push_providers=providers_with(fcm_server, tmp=tmp_path))
    alice = await new_user(client)
    web_id, _ = await register_browser(alice, webpush_endpoint)
    kept_id, kept = await register_browser(alice, webpush_endpoint)
    fcm = (await alice.cmd(DevicesRegister(id=cid(), platform=Platform.FCM,
                                           token=FCM_TOKEN))).device
    webpush_endpoint.respond(410)
    fcm_server.respond("unregistered")
    await notify_user(client, alice.id)
    await wait_final(database_url)
    remaining = [d.id for d in (await alice.cmd(DevicesList(id=cid()))).devices]
    assert remaining == [kept_id] and web_id not in remaining and fcm.id not in remaining
    assert len(webpush_endpoint.for_browser(kept)) == 1
    assert metric(client, "webpush", "gone") == 1 and metric(client, "fcm", "gone") == 1


async def test_429_is_retried_after_retry_after(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint, database_url: str,
) -> None:
    client = await app_client(**push_settings())
    alice = await new_user(client)
    _, browser = await register_browser(alice, webpush_endpoint)
    await go_offline(alice)
    webpush_endpoint.respond(429, retry_after="1")
    note = await notify_user(client, alice.id)

    async def first_refused() -> bool:
        rows = await deliveries(database_url, note.id)
        return bool(rows) and rows[0]["state"] == "pending" and rows[0]["attempts"] == 1

    await until(first_refused, what="the throttled first attempt")
    [row] = await deliveries(database_url, note.id)
    assert (row["next_attempt_at"] - row["updated_at"]).total_seconds() >= 1.0  # honoured
    assert row["reason"] == "throttled"
    await until(lambda: len(webpush_endpoint.for_browser(browser)) == 1, what="the retry")
    await wait_final(database_url)
    [row] = await deliveries(database_url, note.id)
    assert row["state"] == "sent" and row["attempts"] == 2
    assert [a.status for a in webpush_endpoint.attempts] == [429, 201]


async def test_5xx_is_retried_with_backoff_then_dropped_and_counted(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint, database_url: str,
) -> None:
    client = await app_client(**push_settings(push_max_attempts=3))
    alice = await new_user(client)
    await register_browser(alice, webpush_endpoint)
    await go_offline(alice)
    webpush_endpoint.respond(500, times=5)
    note = await notify_user(client, alice.id)
    await wait_final(database_url)
    [row] = await deliveries(database_url, note.id)
    assert row["state"] == "dropped" and row["attempts"] == 3
    assert [a.status for a in webpush_endpoint.attempts] == [500, 500, 500]
    assert metric(client, "webpush", "retry") == 3
    assert metric(client, "webpush", "dropped") == 1


async def test_muted_kinds_and_push_off_are_not_pushed(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint, database_url: str,
) -> None:
    client = await app_client(**push_settings())
    alice = await new_user(client)
    await register_browser(alice, webpush_endpoint)
    await alice.cmd(NotificationsPreferences(id=cid(), muted_kinds=["lost.alert"]))
    await go_offline(alice)
    muted = await notify_user(client, alice.id, kind="lost.alert", data={"alert_id": "a"})
    other = await notify_user(client, alice.id, kind="match.created")
    assert await wait_outcome(database_url, muted.id) == "muted"
    assert await wait_outcome(database_url, other.id) == "queued"
    await wait_final(database_url)
    assert [a.payload["kind"] for a in webpush_endpoint.delivered] == [  # type: ignore[index]
        "match.created"]
    # muted kinds still reach the inbox
    rows = await db(database_url, "SELECT count(*) AS n FROM notifications WHERE user_id = $1",
                    alice.id)
    assert rows[0]["n"] == 2

    sock = await alice.connect()
    await sock.command(NotificationsPreferences(id="p", push=False))
    await sock.close()
    off = await notify_user(client, alice.id, kind="match.created")
    assert await wait_outcome(database_url, off.id) == "push_off"
    assert len(webpush_endpoint.delivered) == 1


async def test_chat_pushes_collapse_per_conversation_with_the_unread_badge(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint, database_url: str,
) -> None:
    client = await app_client(**push_settings())
    alice, bob = await new_user(client, "Alice"), await new_user(client, "Bob")
    match = await make_match(alice, await alice.pet(), bob, await bob.pet())
    await register_browser(bob, webpush_endpoint)
    await go_offline(bob)
    await push_service(client).stop()  # both messages wait in the outbox
    for i, body in enumerate(("are you there?", "hello??")):
        await alice.cmd(ChatSend(id=cid(), conversation_id=match.conversation_id,
                                 client_msg_id=f"m{i}", body=body))
    await push_service(client).start()
    await wait_final(database_url)
    rows = await db(database_url, "SELECT o.outcome, n.kind FROM push_outbox o JOIN "
                    "notifications n ON n.id = o.notification_id WHERE o.user_id = $1 "
                    "AND n.kind = 'chat.message' ORDER BY o.id", bob.id)
    assert [r["outcome"] for r in rows] == ["collapsed", "queued"]
    chat = [a for a in webpush_endpoint.delivered
            if (a.payload or {}).get("kind") == "chat.message"]
    assert len(chat) == 1
    payload = chat[0].payload
    assert payload is not None
    assert payload["title"] == "New message from Alice" and payload["body"] == "hello??"
    assert payload["data"]["conversation_id"] == match.conversation_id
    assert payload["unread_count"] == 3  # the match and both messages are unread
    assert chat[0].headers["Topic"]  # the conversation's collapse key, for the push service


async def test_without_provider_settings_pushes_are_logged_and_counted(
    app_client: AppClient, database_url: str,
) -> None:
    client = await app_client()
    alice = await new_user(client)
    device = (await alice.cmd(DevicesRegister(id=cid(), platform=Platform.FCM,
                                              token=FCM_TOKEN))).device
    await go_offline(alice)
    note = await notify_user(client, alice.id)
    assert await wait_outcome(database_url, note.id) == "queued"
    await wait_final(database_url)
    [row] = await deliveries(database_url, note.id)
    assert row["device_id"] == device.id
    assert (row["state"], row["provider"], row["reason"]) == ("sent", "log", "logged")
    assert metric(client, "log", "logged") == 1
