"""Per-user limits on creating things hold across sockets and nodes (issue #17 item 11):
``lost.report`` and ``pets.create`` here; posts, reports, listings, live streams and
devices have theirs in their areas' tests. A resend with the same idempotency key is
answered with the original and never counted."""

from __future__ import annotations

from protocol.lost import LostReport
from protocol.objects import Species
from protocol.pets import PetsCreate
from protocol.types import Location
from tests.domain.conftest import AppClient, User, cid
from tests.support.auth import register
from tests.support.ws import open_session


def report(key: str) -> LostReport:
    return LostReport(id=cid(), description="Grey cat", location=Location(lat=52.5, lng=13.4),
                      radius_m=500, idempotency_key=key)


async def test_lost_reports_are_limited_per_user_across_nodes(app_client: AppClient) -> None:
    node_a = await app_client(lost_reports_per_day=2)
    node_b = await app_client(lost_reports_per_day=2)
    reg = await register(node_a)
    on_a = User(node_a, reg, await open_session(node_a, reg.access_token))
    on_b = User(node_b, reg, await open_session(node_b, reg.access_token))
    first = (await on_a.cmd(report("r1"))).alert
    await on_b.cmd(report("r2"))
    refused = await on_b.error(report("r3"))
    assert refused.code == "rate_limited" and refused.retry_after_s
    assert "lost.report" in refused.message
    # The resend of a recorded report is answered with the original, even now.
    assert (await on_a.cmd(report("r1"))).alert.id == first.id
    other = await register(node_a)
    someone = User(node_a, other, await open_session(node_a, other.access_token))
    await someone.cmd(report("r1"))  # another user's budget


async def test_pets_create_is_limited_per_user(app_client: AppClient) -> None:
    client = await app_client(pets_create_per_day=1)
    reg = await register(client)
    user = User(client, reg, await open_session(client, reg.access_token))
    create = PetsCreate(id=cid(), name="Rex", species=Species.DOG, idempotency_key="p1")
    pet = (await user.cmd(create)).pet
    refused = await user.error(PetsCreate(id=cid(), name="Luna", species=Species.CAT))
    assert refused.code == "rate_limited" and refused.retry_after_s
    again = PetsCreate(id=cid(), name="Rex", species=Species.DOG, idempotency_key="p1")
    assert (await user.cmd(again)).pet.id == pet.id
