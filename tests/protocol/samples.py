"""One realistic instance of every message and result type, for round-trip tests."""

from __future__ import annotations

from datetime import UTC, date, datetime

import msgspec

from protocol import (
    admin,
    chat,
    flags,
    live,
    lost,
    matching,
    notifications,
    pets,
    presence,
    session,
    uploads,
)
from protocol.base import Empty, Message, Result
from protocol.codes import ErrorCode
from protocol.objects import (
    Alert,
    AlertStatus,
    Candidate,
    ChatMessage,
    Conversation,
    Device,
    LiveChatMessage,
    LiveMedia,
    LiveStream,
    Match,
    MediaAccess,
    MediaKind,
    MediaRole,
    Notification,
    Pet,
    Platform,
    Preferences,
    PresenceState,
    ReactionKind,
    Role,
    Sex,
    Sighting,
    Species,
    StreamStatus,
    Upload,
    UploadPurpose,
    UploadStatus,
    User,
    Watch,
)
from protocol.types import Location

T0 = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
HERE = Location(lat=52.52, lng=13.405)

PET = Pet(
    id="p1",
    owner_id="u1",
    name="Rex",
    species=Species.DOG,
    breed="Beagle",
    sex=Sex.MALE,
    birth_date=date(2022, 5, 1),
    bio="Good boy",
    photo_ids=["up1"],
    location=HERE,
)
BARE_PET = Pet(id="p2", owner_id="u2", name="Tom", species=Species.CAT, photo_ids=[])
MATCH = Match(
    id="m1", pet_ids=["p1", "p2"], user_ids=["u1", "u2"], conversation_id="c1", created_at=T0
)
MESSAGE = ChatMessage(
    id="msg1",
    conversation_id="c1",
    sender_id="u1",
    client_msg_id="6f1c",
    body="hi",
    attachment_ids=[],
    created_at=T0,
)
EDITED = msgspec.structs.replace(MESSAGE, body="hello", edited_at=T0)
CONVERSATION = Conversation(
    id="c1",
    member_ids=["u1", "u2"],
    match_id="m1",
    last_message=MESSAGE,
    unread_count=2,
    last_activity_at=T0,
    closed=False,
)
NOTIFICATION = Notification(
    id="n1",
    kind="match",
    title="New match",
    body="Rex likes Tom",
    data={"match_id": "m1"},
    created_at=T0,
)
ALERT = Alert(
    id="a1",
    owner_id="u1",
    pet_id="p1",
    description="Lost near the park",
    location=HERE,
    radius_m=2000,
    status=AlertStatus.OPEN,
    photo_ids=["up2"],
    created_at=T0,
)
SIGHTING = Sighting(
    id="s1",
    alert_id="a1",
    reporter_id="u2",
    location=HERE,
    note="by the lake",
    photo_ids=[],
    created_at=T0,
)
WATCH = Watch(id="w1", location=HERE, radius_m=5000)
UPLOAD = Upload(
    id="up1",
    owner_id="u1",
    purpose=UploadPurpose.PET_PHOTO,
    content_type="image/jpeg",
    size=12345,
    status=UploadStatus.PENDING,
    created_at=T0,
)
HOST = User(id="u1", display_name="Ana", role=Role.USER)
STREAM = LiveStream(
    id="s1", host=HOST, pet_id="p1", title="Rex at the beach", status=StreamStatus.LIVE,
    viewer_count=3, started_at=T0, media=LiveMedia(kind=MediaKind.P2P, max_viewers=8),
)
ENDED_STREAM = LiveStream(
    id="s2", host=HOST, title="Nap time", status=StreamStatus.ENDED, viewer_count=0,
    started_at=T0, ended_at=T0,
    media=LiveMedia(kind=MediaKind.LIVEKIT, url="wss://lk.example", room="live-s2"),
)
P2P_HOST = MediaAccess(kind=MediaKind.P2P, role=MediaRole.HOST, host_id="u1", max_viewers=8,
                       ice_servers=["stun:stun.example:3478"])
LIVEKIT_VIEW = MediaAccess(kind=MediaKind.LIVEKIT, role=MediaRole.VIEWER, host_id="u1",
                           url="wss://lk.example", room="live-s2", identity="u2",
                           token="eyJ.x.y", expires_at=T0)
LIVE_CHAT = LiveChatMessage(id="lc1", stream_id="s1", sender=HOST, body="hi all",
                            created_at=T0)

ADMIN_USER = admin.AdminUser(
    id="u2", display_name="Tom", role=Role.USER, email="tom@example.com",
    email_verified=False, created_at=T0, banned_at=T0, ban_reason="spam",
)
MODERATION_ITEM = admin.ModerationItem(
    id="i1", kind=admin.ModerationKind.MESSAGE, target_id="msg1",
    status=admin.ModerationStatus.RESOLVED, reasons=["spam", "harassment"], report_count=3,
    created_at=T0, resolved_at=T0, decision=admin.ModerationDecision.REJECT,
    decision_reason="spam", decided_by="u1", preview={"body": "", "sender_id": "u3"},
)
FLAG = flags.Flag(key="new_feed", enabled=True, rollout_percent=25, updated_at=T0)

CLIENT_SAMPLES: list[Message] = [
    session.Hello(token="tok", resume_from=41, client="petspark-web/2.3.0"),
    session.Hello(),
    session.Pong(),
    session.Ack(seq=57),
    session.AuthRefresh(id="c0", token="new-access-token"),
    pets.PetsCreate(
        id="c1",
        name="Rex",
        species=Species.DOG,
        breed="Beagle",
        sex=Sex.MALE,
        birth_date=date(2022, 5, 1),
        bio="Good boy",
        photo_ids=["up1"],
        location=HERE,
        idempotency_key="k1",
    ),
    pets.PetsUpdate(id="c2", pet_id="p1", name="Rexy", breed=None, location=HERE),
    pets.PetsMine(id="c3"),
    matching.PreferencesUpdate(
        id="c4",
        species=[Species.DOG, Species.CAT],
        min_age_years=1,
        max_age_years=None,
        max_distance_km=50,
    ),
    matching.DiscoveryCandidates(id="c5", pet_id="p1", limit=10, cursor="cur"),
    matching.Swipe(
        id="c6", pet_id="p1", target_pet_id="p2", direction=matching.SwipeDirection.LIKE
    ),
    matching.MatchesList(id="c7", cursor="cur", limit=5),
    matching.MatchesUnmatch(id="c8", match_id="m1"),
    chat.ChatConversations(id="c9"),
    chat.ChatHistory(id="c10", conversation_id="c1", before="msg9", limit=30),
    chat.ChatSend(id="c17", conversation_id="c1", client_msg_id="uuid", body="hi"),
    chat.ChatReadCommand(id="c11", conversation_id="c1", message_id="msg1"),
    chat.ChatTypingCommand(id="c12", conversation_id="c1"),
    chat.ChatEdit(id="c13", message_id="msg1", body="hello"),
    chat.ChatDelete(id="c14", message_id="msg1"),
    notifications.NotificationsList(id="c15", unread_only=True, limit=10),
    notifications.NotificationsRead(id="c16", ids=["n1", "n2"]),
    notifications.NotificationsRead(id="c16b", all=True),
    notifications.DevicesRegister(id="c18", platform=Platform.FCM, token="push-token"),
    notifications.DevicesRegister(
        id="c18b", platform=Platform.WEBPUSH, idempotency_key="k9",
        subscription=notifications.PushSubscription(
            endpoint="https://push.example.com/send/abc",
            keys=notifications.PushSubscriptionKeys(p256dh="BNc1", auth="tBHI"),
        ),
    ),
    notifications.DevicesUnregister(id="c18c", device_id="d1"),
    notifications.DevicesList(id="c18d", limit=10),
    notifications.PushConfig(id="c18e"),
    notifications.NotificationsPreferences(id="c18f", muted_kinds=["chat.message"], push=True),
    notifications.NotificationsPreferences(id="c18g"),
    lost.LostReport(
        id="c19",
        pet_id="p1",
        description="Lost near the park",
        location=HERE,
        radius_m=2000,
        photo_ids=["up2"],
        idempotency_key="k2",
    ),
    lost.LostUpdate(id="c20", alert_id="a1", radius_m=3000),
    lost.LostResolve(id="c21", alert_id="a1"),
    lost.LostNearby(id="c22", location=HERE, radius_m=10_000, limit=20),
    lost.LostSightingCommand(id="c23", alert_id="a1", location=HERE, note="by the lake"),
    lost.LostSightings(id="c24", alert_id="a1"),
    lost.LostWatch(id="c25", location=HERE, radius_m=5000),
    lost.LostUnwatch(id="c26", watch_id="w1"),
    lost.LostWatches(id="c27"),
    presence.PresenceQuery(id="c28", user_ids=["u2", "u3"]),
    admin.AdminUsers(id="c29", query="rex", role=Role.ADMIN, banned=False, limit=20),
    admin.AdminBan(id="c30", user_id="u2", reason="spam"),
    admin.AdminUnban(id="c31", user_id="u2"),
    admin.AdminSetRole(id="c32", user_id="u2", role=Role.ADMIN),
    admin.AdminModerationQueue(id="c33", kind=admin.ModerationKind.UPLOAD,
                               status=admin.ModerationStatus.RESOLVED, cursor="cur"),
    admin.AdminModerationDecide(id="c34", item_id="i1",
                                decision=admin.ModerationDecision.REJECT, reason="nudity"),
    admin.AdminAnalytics(id="c35", from_=date(2026, 11, 1), to=date(2026, 11, 30)),
    admin.AdminAudit(id="c36", actor_id="u1", action="admin.ban", target_id="u2"),
    flags.AdminFlagsSet(id="c37", key="new_feed", enabled=True, rollout_percent=25),
    flags.AdminFlagsList(id="c38"),
    flags.FlagsGet(id="c39"),
    live.LiveStart(id="c29", title="Rex at the beach", pet_id="p1", idempotency_key="k3"),
    live.LiveEnd(id="c30", stream_id="s1"),
    live.LiveList(id="c31", cursor="cur", limit=10),
    live.LiveJoin(id="c32", stream_id="s1"),
    live.LiveLeave(id="c33", stream_id="s1"),
    live.LiveChatCommand(id="c34", stream_id="s1", body="hi all"),
    live.LiveReact(id="c35", stream_id="s1", kind=ReactionKind.PAW),
    live.LiveSignalCommand(id="c36", stream_id="s1", to="u2",
                           data={"type": "offer", "sdp": "v=0..."}),
]

SERVER_SAMPLES: list[Message] = [
    session.Welcome(
        session_id="s1", user_id="u1", last_seq=57, heartbeat_s=25, resumed=True, server_time=T0
    ),
    session.Ping(),
    session.Error(id="c17", code=ErrorCode.TOO_LARGE, message="body: at most 4000 characters"),
    session.Error(id=None, code=ErrorCode.BAD_REQUEST, message="invalid JSON"),
    session.Error(id="c2", code=ErrorCode.RATE_LIMITED, message="slow down", retry_after_s=1.5),
    chat.ChatMessageEvent(seq=12, message=MESSAGE),
    chat.ChatReadEvent(seq=13, conversation_id="c1", user_id="u2", message_id="msg1"),
    chat.ConversationClosed(seq=14, conversation_id="c1"),
    matching.MatchCreated(seq=15, match=MATCH),
    notifications.NotificationEvent(seq=16, notification=NOTIFICATION),
    lost.LostAlert(seq=17, alert=ALERT),
    lost.LostSightingEvent(seq=18, sighting=SIGHTING),
    uploads.UploadModerated(seq=19, upload_id="up1", status=UploadStatus.APPROVED),
    chat.ChatTypingEvent(conversation_id="c1", user_id="u2"),
    presence.PresenceEvent(user_id="u2", online=True),
    flags.FlagsUpdated(flags={"new_feed": True, "dark_mode": False}),
    live.LiveChatEvent(stream_id="s1", message=LIVE_CHAT),
    live.LiveReactions(stream_id="s1", counts={ReactionKind.HEART: 12, ReactionKind.PAW: 1}),
    live.LiveViewers(stream_id="s1", count=3),
    live.LiveSignalEvent(stream_id="s1", from_="u1",
                         data={"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host"}),
    live.LiveEnded(stream_id="s1"),
]
"""Every server message but ``ok`` (covered with RESULT_SAMPLES)."""

RESULT_SAMPLES: list[Result] = [
    Empty(),
    session.AuthRefreshResult(expires_at=T0),
    pets.PetResult(pet=PET),
    pets.PetsResult(pets=[PET, BARE_PET]),
    matching.PreferencesResult(
        preferences=Preferences(species=[Species.DOG], min_age_years=1, max_distance_km=30)
    ),
    matching.CandidatesResult(
        candidates=[Candidate(pet=BARE_PET, distance_m=812.5)], next_cursor="n"
    ),
    matching.SwipeResult(match=MATCH),
    matching.SwipeResult(match=None),
    matching.MatchesResult(matches=[MATCH]),
    chat.ConversationsResult(
        conversations=[
            CONVERSATION,
            msgspec.structs.replace(
                CONVERSATION, id="c2", last_message=None, match_id=None, closed=True
            ),
        ]
    ),
    chat.HistoryResult(messages=[EDITED, MESSAGE], next_before="msg0"),
    chat.MessageResult(message=MESSAGE),
    notifications.NotificationsResult(notifications=[NOTIFICATION], unread_count=1),
    notifications.UnreadCountResult(unread_count=0),
    notifications.DeviceResult(device=Device(id="d1", platform=Platform.APNS, created_at=T0)),
    notifications.DevicesResult(
        devices=[Device(id="d1", platform=Platform.WEBPUSH, created_at=T0)], next_cursor="n"
    ),
    notifications.PushConfigResult(webpush_public_key="BOr2"),
    notifications.PushConfigResult(),
    notifications.NotificationPreferencesResult(
        preferences=notifications.NotificationPreferences(muted_kinds=["post.like"], push=False)
    ),
    lost.AlertResult(alert=ALERT),
    lost.AlertsResult(alerts=[ALERT]),
    lost.SightingResult(sighting=SIGHTING),
    lost.SightingsResult(sightings=[SIGHTING], next_cursor="n"),
    lost.WatchResult(watch=WATCH),
    lost.WatchesResult(watches=[WATCH]),
    presence.PresenceResult(presence=[PresenceState(user_id="u2", online=True)]),
    admin.AdminUsersResult(users=[ADMIN_USER], next_cursor="n"),
    admin.AdminUserResult(user=ADMIN_USER),
    admin.ModerationQueueResult(items=[MODERATION_ITEM], next_cursor="n"),
    admin.ModerationItemResult(item=MODERATION_ITEM),
    admin.AnalyticsResult(days=[admin.AnalyticsDay(
        date=date(2026, 11, 26), active_users=10, new_users=2, messages=40, matches=3,
        lost_alerts=1, uploads=5, posts=0, adoptions=0)]),
    admin.AuditResult(entries=[
        admin.AuditEntry(id="e1", actor_id="u1", action="admin.ban", target_kind="user",
                         target_id="u2", reason="spam", data={"changed": True}, created_at=T0),
        admin.AuditEntry(id="e2", actor_id=None, action="cli.create_admin", target_kind="user",
                         target_id="u1", data={}, created_at=T0),
    ]),
    flags.FlagResult(flag=FLAG),
    flags.FlagsResult(flags=[FLAG]),
    flags.FlagValuesResult(flags={"new_feed": True}),
]

# --- adoption, community and safety (PROTOCOL §10.1-10.3) ------------------------------

from protocol import adoption, community, safety  # noqa: E402
from protocol.objects import Role, User  # noqa: E402

LISTING = adoption.Listing(
    id="l1", lister_id="u1", pet=PET, title="Rex needs a garden", description="Calm beagle",
    location=HERE, fee_cents=15000, currency="EUR", status=adoption.ListingStatus.AVAILABLE,
    photo_ids=["up3"], created_at=T0, updated_at=T0, distance_m=420.5,
)
APPLICATION = adoption.Application(
    id="ap1", listing_id="l1", applicant_id="u2", message="We have a big garden",
    status=adoption.ApplicationStatus.ACCEPTED, conversation_id="c3", note="Welcome!",
    created_at=T0, decided_at=T0,
)
AUTHOR = User(id="u1", display_name="Ann", role=Role.USER)
POST = community.Post(
    id="po1", author=AUTHOR, body="Rex at the beach", photo_ids=["up4"], location=HERE,
    like_count=3, comment_count=1, liked_by_me=True, created_at=T0,
)
COMMENT = community.Comment(id="co1", post_id="po1", author=AUTHOR, body="So cute",
                            created_at=T0)
REPORT = safety.Report(
    id="r1", status=safety.ReportStatus.OPEN,
    target=safety.ReportTarget(kind=safety.ReportTargetKind.POST, id="po1"),
    reason=safety.ReportReason.SPAM, note="ads", created_at=T0,
)

CLIENT_SAMPLES += [
    adoption.AdoptionListPet(
        id="d1", pet_id="p1", title="Rex needs a garden", description="Calm beagle",
        location=HERE, fee_cents=15000, currency="EUR", photo_ids=["up3"],
        idempotency_key="k3",
    ),
    adoption.AdoptionUpdateListing(id="d2", listing_id="l1", fee_cents=None,
                                   status=adoption.ListingStatusChange.ADOPTED),
    adoption.AdoptionListings(id="d3", location=HERE, radius_km=20,
                              species=[Species.DOG], cursor="cur", limit=10),
    adoption.AdoptionListing(id="d4", listing_id="l1"),
    adoption.AdoptionApply(id="d5", listing_id="l1", message="Big garden",
                           idempotency_key="k4"),
    adoption.AdoptionApplications(id="d6", listing_id="l1"),
    adoption.AdoptionWithdraw(id="d7", application_id="ap1"),
    adoption.AdoptionDecide(id="d8", application_id="ap1",
                            decision=adoption.ApplicationDecision.ACCEPT, note="Welcome!"),
    community.PostsCreate(id="e1", body="Rex at the beach", photo_ids=["up4"], location=HERE,
                          idempotency_key="k5"),
    community.PostsFeed(id="e2", scope=community.FeedScope.NEARBY, location=HERE,
                        radius_km=10, cursor="cur", limit=30),
    community.PostsGet(id="e3", post_id="po1"),
    community.PostsLike(id="e4", post_id="po1", like=True),
    community.PostsComment(id="e5", post_id="po1", body="So cute"),
    community.PostsComments(id="e6", post_id="po1", cursor="cur"),
    community.PostsDelete(id="e7", post_id="po1"),
    community.PostsDeleteComment(id="e8", comment_id="co1"),
    safety.UsersBlock(id="f1", user_id="u2"),
    safety.UsersUnblock(id="f2", user_id="u2"),
    safety.UsersBlocked(id="f3", limit=10),
    safety.ReportsCreate(id="f4", target=REPORT.target, reason=safety.ReportReason.SPAM,
                         note="ads", idempotency_key="k6"),
]
SERVER_SAMPLES += [
    adoption.AdoptionApplication(seq=20, application=APPLICATION),
    adoption.AdoptionDecision(seq=21, application=APPLICATION),
]
RESULT_SAMPLES += [
    adoption.ListingResult(listing=LISTING),
    adoption.ListingsResult(listings=[LISTING], next_cursor="n"),
    adoption.ApplicationResult(application=APPLICATION),
    adoption.ApplicationsResult(applications=[APPLICATION], next_cursor="n"),
    community.PostResult(post=POST),
    community.PostsResult(posts=[POST], next_cursor="n"),
    community.CommentResult(comment=COMMENT),
    community.CommentsResult(comments=[COMMENT]),
    safety.BlockedResult(users=[AUTHOR]),
    safety.ReportResult(report=REPORT),
    live.StartResult(stream=STREAM, publish=P2P_HOST),
    live.StreamResult(stream=ENDED_STREAM),
    live.StreamsResult(streams=[STREAM], next_cursor="n"),
    live.JoinResult(stream=STREAM, recent_chat=[LIVE_CHAT], view=LIVEKIT_VIEW),
    live.LiveChatResult(message=LIVE_CHAT),
]
