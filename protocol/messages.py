"""The catalogue: unions of everything each side may send, and lookup tables.

Adding a message means adding it to exactly one of the unions below; the tables,
codecs and schemas follow from them.
"""

from __future__ import annotations

from typing import Union, get_args

from protocol.admin import (
    AdminAnalytics,
    AdminAudit,
    AdminBan,
    AdminModerationDecide,
    AdminModerationQueue,
    AdminSetRole,
    AdminUnban,
    AdminUsers,
)
from protocol.adoption import (
    AdoptionApplication,
    AdoptionApplications,
    AdoptionApply,
    AdoptionDecide,
    AdoptionDecision,
    AdoptionListing,
    AdoptionListings,
    AdoptionListPet,
    AdoptionUpdateListing,
    AdoptionWithdraw,
)
from protocol.base import Command, DurableEvent, Event, Message
from protocol.chat import (
    ChatConversations,
    ChatDelete,
    ChatEdit,
    ChatHistory,
    ChatMessageEvent,
    ChatReadCommand,
    ChatReadEvent,
    ChatSend,
    ChatTypingCommand,
    ChatTypingEvent,
    ConversationClosed,
)
from protocol.community import (
    PostsComment,
    PostsComments,
    PostsCreate,
    PostsDelete,
    PostsDeleteComment,
    PostsFeed,
    PostsGet,
    PostsLike,
)
from protocol.flags import AdminFlagsList, AdminFlagsSet, FlagsGet, FlagsUpdated
from protocol.live import (
    LiveChatCommand,
    LiveChatEvent,
    LiveEnd,
    LiveEnded,
    LiveJoin,
    LiveLeave,
    LiveList,
    LiveReact,
    LiveReactions,
    LiveSignalCommand,
    LiveSignalEvent,
    LiveStart,
    LiveViewers,
)
from protocol.lost import (
    LostAlert,
    LostNearby,
    LostReport,
    LostResolve,
    LostSightingCommand,
    LostSightingEvent,
    LostSightings,
    LostUnwatch,
    LostUpdate,
    LostWatch,
    LostWatches,
)
from protocol.matching import (
    DiscoveryCandidates,
    MatchCreated,
    MatchesList,
    MatchesUnmatch,
    PreferencesUpdate,
    Swipe,
)
from protocol.notifications import (
    DevicesList,
    DevicesRegister,
    DevicesUnregister,
    NotificationEvent,
    NotificationsList,
    NotificationsPreferences,
    NotificationsRead,
    PushConfig,
)
from protocol.pets import PetsCreate, PetsMine, PetsUpdate
from protocol.presence import PresenceEvent, PresenceQuery
from protocol.safety import ReportsCreate, UsersBlock, UsersBlocked, UsersUnblock
from protocol.session import Ack, AuthRefresh, Error, Hello, Ok, Ping, Pong, Welcome
from protocol.uploads import UploadModerated

# Union[...] rather than `|`: a runtime union of this size reads better as a list.
AnyCommand = Union[  # noqa: UP007
    AuthRefresh,
    PetsCreate,
    PetsUpdate,
    PetsMine,
    PreferencesUpdate,
    DiscoveryCandidates,
    Swipe,
    MatchesList,
    MatchesUnmatch,
    ChatConversations,
    ChatHistory,
    ChatSend,
    ChatReadCommand,
    ChatTypingCommand,
    ChatEdit,
    ChatDelete,
    NotificationsList,
    NotificationsRead,
    DevicesRegister,
    DevicesUnregister,
    DevicesList,
    PushConfig,
    NotificationsPreferences,
    LostReport,
    LostUpdate,
    LostResolve,
    LostNearby,
    LostSightingCommand,
    LostSightings,
    LostWatch,
    LostUnwatch,
    LostWatches,
    PresenceQuery,
    # adoption, community and safety (PROTOCOL §10.1-10.3)
    AdoptionListPet,
    AdoptionUpdateListing,
    AdoptionListings,
    AdoptionListing,
    AdoptionApply,
    AdoptionApplications,
    AdoptionWithdraw,
    AdoptionDecide,
    PostsCreate,
    PostsFeed,
    PostsGet,
    PostsLike,
    PostsComment,
    PostsComments,
    PostsDelete,
    PostsDeleteComment,
    UsersBlock,
    UsersUnblock,
    UsersBlocked,
    ReportsCreate,
    # admin (§10.4)
    AdminUsers,
    AdminBan,
    AdminUnban,
    AdminSetRole,
    AdminModerationQueue,
    AdminModerationDecide,
    AdminAnalytics,
    AdminAudit,
    AdminFlagsSet,
    AdminFlagsList,
    FlagsGet,
    LiveStart,
    LiveEnd,
    LiveList,
    LiveJoin,
    LiveLeave,
    LiveChatCommand,
    LiveReact,
    LiveSignalCommand,
]
"""Every command (client → server message that gets a reply)."""

AnyEvent = Union[  # noqa: UP007
    ChatMessageEvent,
    ChatReadEvent,
    ConversationClosed,
    MatchCreated,
    NotificationEvent,
    LostAlert,
    LostSightingEvent,
    UploadModerated,
    AdoptionApplication,
    AdoptionDecision,
    ChatTypingEvent,
    PresenceEvent,
    FlagsUpdated,
    LiveChatEvent,
    LiveReactions,
    LiveViewers,
    LiveSignalEvent,
    LiveEnded,
]
"""Every event (server → client message that is not a reply or session message)."""

ClientMessage = Union[Hello, Pong, Ack, AnyCommand]  # noqa: UP007
"""Everything a client may send."""

ServerMessage = Union[Welcome, Ping, Ok, Error, AnyEvent]  # noqa: UP007
"""Everything the server may send."""


def _classes(union: object) -> tuple[type[Message], ...]:
    return tuple(get_args(union))


CLIENT_MESSAGE_TYPES: tuple[type[Message], ...] = _classes(ClientMessage)
SERVER_MESSAGE_TYPES: tuple[type[Message], ...] = _classes(ServerMessage)

COMMANDS: dict[str, type[Command]] = {
    cls.wire_type(): cls for cls in _classes(AnyCommand) if issubclass(cls, Command)
}
"""Wire tag → command class; ``COMMANDS[tag].result_type`` is its ``ok.result`` type."""

EVENTS: dict[str, type[Event]] = {
    cls.wire_type(): cls for cls in _classes(AnyEvent) if issubclass(cls, Event)
}
"""Wire tag → event class."""

DURABLE_EVENTS: frozenset[str] = frozenset(
    tag for tag, cls in EVENTS.items() if issubclass(cls, DurableEvent)
)
"""Tags of events that carry ``seq`` and are replayed on resume."""

EPHEMERAL_EVENTS: frozenset[str] = frozenset(EVENTS) - DURABLE_EVENTS
"""Tags of events without ``seq``: lost if the connection is down."""

NOT_YET_IMPLEMENTED: frozenset[str] = frozenset()
"""Command tags of PROTOCOL §8 not in v1 of this package yet; they decode as an
unknown type (``bad_request``)."""
