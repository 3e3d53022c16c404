"""devices.register / unregister / list, push.config and notifications.preferences."""

from __future__ import annotations

import asyncpg

from protocol.notifications import (
    DevicesList,
    DevicesRegister,
    DevicesUnregister,
    NotificationsPreferences,
    PushConfig,
    PushSubscription,
    PushSubscriptionKeys,
)
from protocol.objects import Platform
from tests.domain.conftest import AppClient, cid, new_user
from tests.domain.push.conftest import (
    APNS_TOKEN,
    FCM_TOKEN,
    VAPID_PUBLIC,
    push_settings,
    wire_subscription,
)
from tests.support.webpush import WebPushEndpoint


async def test_register_every_platform_same_token_same_device_moves_to_newest_user(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint, database_url: str,
) -> None:
    client = await app_client(**push_settings())
    alice, bob = await new_user(client), await new_user(client)
    fcm = (await alice.cmd(DevicesRegister(id=cid(), platform=Platform.FCM,
                                           token=FCM_TOKEN))).device
    again = (await alice.cmd(DevicesRegister(id=cid(), platform=Platform.FCM,
                                             token=FCM_TOKEN))).device
    assert again == fcm and fcm.platform is Platform.FCM
    apns = (await alice.cmd(DevicesRegister(id=cid(), platform=Platform.APNS,
                                            token=APNS_TOKEN.upper()))).device
    sub = webpush_endpoint.subscribe()
    web = (await alice.cmd(DevicesRegister(id=cid(), platform=Platform.WEBPUSH,
                                           subscription=wire_subscription(sub)))).device
    listed = (await alice.cmd(DevicesList(id=cid()))).devices
    assert [d.id for d in listed] == [fcm.id, apns.id, web.id]  # oldest first
    assert listed[0].created_at <= listed[2].created_at

    moved = (await bob.cmd(DevicesRegister(id=cid(), platform=Platform.FCM,
                                           token=FCM_TOKEN))).device
    assert moved.id == fcm.id
    assert [d.id for d in (await alice.cmd(DevicesList(id=cid()))).devices] == [apns.id, web.id]
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT token, p256dh, auth FROM devices WHERE id = $1",
                                  web.id)
        apns_token = await conn.fetchval("SELECT token FROM devices WHERE id = $1", apns.id)
    finally:
        await conn.close()
    assert row["token"] == sub.endpoint and row["p256dh"] == sub.keys.p256dh
    assert apns_token == APNS_TOKEN  # stored lower-case


async def test_paging_unregister_and_hidden_devices(app_client: AppClient) -> None:
    client = await app_client(**push_settings())
    alice, bob = await new_user(client), await new_user(client)
    made = [(await alice.cmd(DevicesRegister(id=cid(), platform=Platform.FCM,
                                             token=f"{FCM_TOKEN}{i}"))).device
            for i in range(3)]
    page1 = await alice.cmd(DevicesList(id=cid(), limit=2))
    assert [d.id for d in page1.devices] == [made[0].id, made[1].id]
    page2 = await alice.cmd(DevicesList(id=cid(), limit=2, cursor=page1.next_cursor))
    assert [d.id for d in page2.devices] == [made[2].id] and page2.next_cursor is None

    # another user's device, an unknown id and garbage all answer not_found
    for device_id in (made[0].id, "00000000-0000-4000-8000-000000000000", "nope"):
        error = await bob.error(DevicesUnregister(id=cid(), device_id=device_id))
        assert error.code == "not_found" and error.message == "device_id: no such device"
    assert await alice.cmd(DevicesUnregister(id=cid(), device_id=made[1].id)) is not None
    left = (await alice.cmd(DevicesList(id=cid()))).devices
    assert [d.id for d in left] == [made[0].id, made[2].id]
    assert (await alice.error(DevicesUnregister(id=cid(), device_id=made[1].id))).code \
        == "not_found"


async def test_bad_registrations_are_bad_request(
    app_client: AppClient, webpush_endpoint: WebPushEndpoint,
) -> None:
    client = await app_client()  # the default: private endpoints refused
    alice = await new_user(client)
    cases = [
        ('{"type":"devices.register","id":"a","platform":"webpush","token":"x"}',
         "subscription: required for webpush"),
        ('{"type":"devices.register","id":"b","platform":"fcm"}', "token: required for fcm"),
        ('{"type":"devices.register","id":"c","platform":"apns","token":"abc",'
         '"subscription":{"endpoint":"https://x.example","keys":{"p256dh":"a","auth":"b"}}}',
         "subscription: only for webpush"),
    ]
    for raw, message in cases:
        await alice.sock.send_raw(raw)
        error = await alice.sock.expect("error")
        assert error.code == "bad_request" and message in error.message, error
    for platform, token, message in (
        (Platform.FCM, "short", "token: expected an FCM registration token"),
        (Platform.APNS, "zz" * 32, "token: expected an APNs device token"),
        (Platform.APNS, "abc", "token: expected an APNs device token"),
    ):
        error = await alice.error(DevicesRegister(id=cid(), platform=platform, token=token))
        assert error.code == "bad_request" and error.message.startswith(message), error
    sub = wire_subscription(webpush_endpoint.subscribe())  # http://127.0.0.1:…
    error = await alice.error(DevicesRegister(id=cid(), platform=Platform.WEBPUSH,
                                              subscription=sub))
    assert error.code == "bad_request"
    assert error.message == "subscription.endpoint: must be an https URL"
    https_loopback = PushSubscription(endpoint="https://127.0.0.1:8443/push/x", keys=sub.keys)
    error = await alice.error(DevicesRegister(id=cid(), platform=Platform.WEBPUSH,
                                              subscription=https_loopback))
    assert error.message == ("subscription.endpoint: the host must resolve to public "
                             "addresses only")
    bad_keys = PushSubscription(endpoint="https://push.example.com/x",
                                keys=PushSubscriptionKeys(p256dh="AAAA", auth=sub.keys.auth))
    error = await alice.error(DevicesRegister(id=cid(), platform=Platform.WEBPUSH,
                                              subscription=bad_keys))
    assert error.code == "bad_request" and error.message.startswith("subscription.keys.p256dh")
    assert (await alice.cmd(DevicesList(id=cid()))).devices == []


async def test_device_cap_drops_the_least_recently_registered_and_keys_are_idempotent(
    app_client: AppClient,
) -> None:
    client = await app_client(**push_settings(push_max_devices_per_user=2))
    alice = await new_user(client)
    first = (await alice.cmd(DevicesRegister(id=cid(), platform=Platform.FCM,
                                             token=FCM_TOKEN + "1"))).device
    second = (await alice.cmd(DevicesRegister(id=cid(), platform=Platform.FCM,
                                              token=FCM_TOKEN + "2"))).device
    await alice.cmd(DevicesRegister(id=cid(), platform=Platform.FCM, token=FCM_TOKEN + "1"))
    third = (await alice.cmd(DevicesRegister(id=cid(), platform=Platform.FCM,
                                             token=FCM_TOKEN + "3"))).device
    ids = {d.id for d in (await alice.cmd(DevicesList(id=cid()))).devices}
    assert ids == {first.id, third.id}  # "2" was registered least recently
    assert second.id not in ids
    keyed = DevicesRegister(id=cid(), platform=Platform.APNS, token=APNS_TOKEN,
                            idempotency_key="k1")
    one = (await alice.cmd(keyed)).device
    again = (await alice.cmd(DevicesRegister(id=cid(), platform=Platform.APNS,
                                             token="b" * 64, idempotency_key="k1"))).device
    assert again == one  # the key's first result, nothing new


async def test_push_config_and_preferences(app_client: AppClient) -> None:
    configured = await app_client(**push_settings())
    plain = await app_client()
    alice = await new_user(configured)
    assert (await alice.cmd(PushConfig(id=cid()))).webpush_public_key == VAPID_PUBLIC
    bob = await new_user(plain)
    assert (await bob.cmd(PushConfig(id=cid()))).webpush_public_key is None

    prefs = (await alice.cmd(NotificationsPreferences(id=cid()))).preferences
    assert prefs.muted_kinds == [] and prefs.push is True
    prefs = (await alice.cmd(NotificationsPreferences(
        id=cid(), muted_kinds=["chat.message", "post.like", "chat.message"]))).preferences
    assert prefs.muted_kinds == ["chat.message", "post.like"] and prefs.push is True
    prefs = (await alice.cmd(NotificationsPreferences(id=cid(), push=False))).preferences
    assert prefs.muted_kinds == ["chat.message", "post.like"] and prefs.push is False
    assert (await alice.cmd(NotificationsPreferences(id=cid()))).preferences == prefs
    await alice.sock.send_raw('{"type":"notifications.preferences","id":"p",'
                              '"muted_kinds":["Not A Kind"]}')
    error = await alice.sock.expect("error")
    assert error.code == "bad_request" and error.message.startswith("muted_kinds[0]")
    # the other user's preferences are untouched
    assert (await bob.cmd(NotificationsPreferences(id=cid()))).preferences.push is True
