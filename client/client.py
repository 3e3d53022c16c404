"""``Client``: the reconnecting PetSpark realtime client.

One background task (the supervisor) owns the connection: it connects, sends
``hello`` with ``resume_from``, reads frames until the connection ends, then
decides by close code whether to reconnect now, after a full-jitter backoff,
or stop. Application tasks call ``command()`` and iterate ``events()``.

Seq bookkeeping: ``last_seq`` is the highest durable seq handed to the
application by ``events()`` ("processed"). Reconnects resume from it, durable
events at or below it are dropped as duplicates, and it is acked to the server
at most every ``ack_interval_s``.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, TypeVar, overload

import aiohttp
import msgspec

from client.backoff import Backoff
from client.close_policy import Action, plan_after_close
from client.connection import (
    ABNORMAL,
    Closed,
    Connection,
    ConnectionEnded,
    open_connection,
)
from client.credentials import AuthMode, Credentials, TokenProvider
from client.errors import (
    CommandError,
    CommandTimeout,
    ConnectionClosed,
    ConnectionLost,
    HandshakeRejected,
    InvalidReply,
)
from client.events import ClientEvent, Resync
from client.pending import PendingCommand, PendingCommands, is_resendable
from protocol import (
    CODECS,
    JSON,
    MSGPACK,
    Ack,
    AuthRefresh,
    AuthRefreshResult,
    CloseCode,
    Codec,
    Command,
    DecodeError,
    DurableEvent,
    Error,
    Event,
    Ok,
    Ping,
    Pong,
    Result,
    Welcome,
)

log = logging.getLogger("petspark.client")

R = TypeVar("R", bound=Result)

_CODEC_NAMES: dict[str, Codec] = {"json": JSON, "msgpack": MSGPACK, **CODECS}


class ClientState(enum.Enum):
    CONNECTING = "connecting"
    """Not connected: (re)connecting or waiting out a backoff delay."""
    OPEN = "open"
    """Welcomed; commands are sent at once."""
    CLOSED = "closed"
    """Stopped: ``close()`` was called or a close code ended the client."""


class _End:
    """Queue sentinel: the client stopped."""


_END = _End()


class Client:
    """The PetSpark realtime client. Use as ``async with Client(url, token=…) as c:``.

    Parameters:
        url: the ``ws://…/ws`` or ``wss://…/ws`` address.
        token: access token; sent as ``Authorization: Bearer`` (``auth="header"``,
            the default) or in ``hello.token`` (``auth="hello"``). None for cookie auth.
        codec: ``"json"`` or ``"msgpack"`` (or a sub-protocol name / ``Codec``).
        resume_from: the last durable seq the application processed in an
            earlier run; None for a client with no state (live events only).
        token_provider: async callable returning a fresh access token; called
            before every reconnect (so after 4009, and for the one retry after
            4001), and before the first connect when ``token`` is None. If it
            raises, the client stops with ``ConnectionClosed(4001)``.
        headers, cookies, origin: extra upgrade headers, cookies and ``Origin``
            (cookie auth needs an allowed ``Origin``). ``session``: an existing
            ``aiohttp.ClientSession`` (e.g. the one that logged in); not closed by us.
        command_timeout_s: default time for a command's reply, connection wait included.
        handshake_timeout_s: time from the upgrade to ``welcome``.
        ack_interval_s: the shortest time between two ``ack`` messages.
        backoff: the reconnect delay policy (base 0.5 s, cap 30 s, full jitter).
        max_attempts: consecutive failed connection attempts before giving up
            (``ConnectionClosed(1006)``); None retries forever.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        codec: str | Codec = "json",
        resume_from: int | None = None,
        client_name: str | None = "petspark-py/0.1",
        auth: AuthMode = "header",
        token_provider: TokenProvider | None = None,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        origin: str | None = None,
        session: aiohttp.ClientSession | None = None,
        command_timeout_s: float = 30.0,
        handshake_timeout_s: float = 10.0,
        ack_interval_s: float = 0.5,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        max_msg_size: int = 4 * 1024 * 1024,
    ) -> None:
        self.url = url
        self.codec = codec if isinstance(codec, Codec) else _CODEC_NAMES[codec]
        self.client_name = client_name
        self.credentials = Credentials(
            token=token,
            auth=auth,
            headers=dict(headers or {}),
            origin=origin,
            token_provider=token_provider,
        )
        self.command_timeout_s = command_timeout_s
        self.handshake_timeout_s = handshake_timeout_s
        self.ack_interval_s = ack_interval_s
        self.backoff = backoff or Backoff()
        self.max_attempts = max_attempts
        self.max_msg_size = max_msg_size

        self.state = ClientState.CONNECTING
        self.reconnects = 0
        """Successful connections after the first one."""
        self.welcome: Welcome | None = None
        """The latest ``welcome``."""
        self.last_close: Closed | None = None
        """How the latest connection ended."""

        self._processed: int | None = resume_from
        self._acked: int | None = None
        self._session = session
        self._owns_session = session is None
        self._cookies = dict(cookies or {})
        self._conn: Connection | None = None
        self._conn_number = 0
        self._open = asyncio.Event()
        self._ack_needed = asyncio.Event()
        self._queue: asyncio.Queue[ClientEvent | _End] = asyncio.Queue()
        self._pending = PendingCommands()
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(3)
        self._first_welcome: asyncio.Future[Welcome] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._acker: asyncio.Task[None] | None = None
        self._terminal: ConnectionClosed | None = None
        self._closing = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> Welcome:
        """Start the client and wait for the first ``welcome``. Network failures are
        retried with backoff; a close code that stops the client raises
        ``ConnectionClosed``."""
        if self._supervisor is None:
            if self._session is None:
                self._session = aiohttp.ClientSession(cookies=self._cookies)
            self._first_welcome = asyncio.get_running_loop().create_future()
            self._supervisor = asyncio.create_task(self._supervise(), name="petspark-client")
            self._acker = asyncio.create_task(self._ack_loop(), name="petspark-client-ack")
        assert self._first_welcome is not None
        return await asyncio.shield(self._first_welcome)

    async def close(self) -> None:
        """Ack what was processed, close with 1000 and stop reconnecting. Pending
        commands raise ``ConnectionClosed(1000)``; ``events()`` ends."""
        if self._closing:
            return
        self._closing = True
        conn = self._conn
        if conn is not None and conn.is_open:
            try:
                await self._send_ack(conn)
                await conn.close(CloseCode.NORMAL)
            except (aiohttp.ClientError, OSError, RuntimeError) as error:
                log.debug("error while closing: %s", error)
        for task in (self._supervisor, self._acker):
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        self._stop(ConnectionClosed(CloseCode.NORMAL, "client closed"))
        if self._owns_session and self._session is not None:
            await self._session.close()

    # ------------------------------------------------------------------ public API

    @property
    def last_seq(self) -> int | None:
        """The highest durable seq handed out by ``events()`` (persist it and pass it
        as ``resume_from`` next run); None before any ``welcome`` without state."""
        return self._processed

    def new_id(self) -> str:
        """A command id unique for this client (and so per connection)."""
        return f"{self._id_prefix}-{next(self._ids)}"

    @overload
    async def command(
        self, cmd: Command, *, timeout_s: float | None = ..., resend: bool | None = ...
    ) -> Any: ...

    @overload
    async def command(
        self,
        cmd: Command,
        expect: type[R],
        *,
        timeout_s: float | None = ...,
        resend: bool | None = ...,
    ) -> R: ...

    async def command(
        self,
        cmd: Command,
        expect: type[R] | None = None,
        *,
        timeout_s: float | None = None,
        resend: bool | None = None,
    ) -> Any:
        """Send ``cmd`` and return its result, an instance of ``type(cmd).result_type``.

        An empty ``cmd.id`` is filled with ``new_id()``. ``expect`` (optional) is
        the result type, for static typing; it is checked. Raises ``CommandError``
        (a subclass per code) for an ``error`` reply, ``CommandTimeout`` after
        ``timeout_s`` (default ``command_timeout_s``, waiting for a connection
        included), ``ConnectionLost`` if the connection dropped after sending a
        command that is not resendable, ``ConnectionClosed`` if the client stopped.

        ``resend``: whether to send the command again after a reconnect if it was
        not answered; by default only when it carries ``idempotency_key`` or
        ``client_msg_id``. Commands issued while disconnected wait and are sent
        after the next ``welcome`` whatever ``resend`` says.
        """
        if self._terminal is not None:
            raise self._terminal
        if not cmd.id:
            cmd = msgspec.structs.replace(cmd, id=self.new_id())
        entry = PendingCommand(cmd, is_resendable(cmd) if resend is None else resend)
        self._pending.add(entry)
        try:
            conn = self._conn
            if conn is not None and self.state is ClientState.OPEN:
                await self._send_command(conn, self._conn_number, entry)
            try:
                async with asyncio.timeout(
                    self.command_timeout_s if timeout_s is None else timeout_s
                ):
                    result = await asyncio.shield(entry.future)
            except TimeoutError:
                raise CommandTimeout(
                    f"no reply to {type(cmd).wire_type()} {cmd.id!r} in time"
                ) from None
        finally:
            self._pending.discard(entry)
        if expect is not None and not isinstance(result, expect):
            raise InvalidReply(f"expected {expect.__name__}, got {type(result).__name__}")
        return result

    async def refresh_token(self, token: str) -> AuthRefreshResult:
        """Swap the connection's access token in-band (``auth.refresh``) before it
        expires; reconnects use the new token too."""
        self.credentials.token = token
        result: AuthRefreshResult = await self.command(
            AuthRefresh(id=self.new_id(), token=token), AuthRefreshResult
        )
        return result

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Server events in arrival order: durable ones in seq order, each seq once
        (across reconnects), ephemeral ones as they come, and ``Resync`` when a
        resume could not be honoured. Ends after ``close()``; raises
        ``ConnectionClosed`` when a close code stopped the client (after the events
        received before it). One consumer at a time."""
        while True:
            item = await self._queue.get()
            if isinstance(item, _End):
                self._queue.put_nowait(item)  # later calls end too
                if self._terminal is not None and self._terminal.code != CloseCode.NORMAL:
                    raise self._terminal
                return
            if isinstance(item, Resync):
                self._mark_processed(item.last_seq)
            elif isinstance(item, DurableEvent):
                if self._processed is not None and item.seq <= self._processed:
                    log.debug("dropping duplicate seq %d (processed %d)", item.seq, self._processed)
                    continue
                if self._processed is not None and item.seq != self._processed + 1:
                    log.warning("seq gap: %d after %d", item.seq, self._processed)
                self._mark_processed(item.seq)
            yield item

    # ------------------------------------------------------------------ supervisor

    async def _supervise(self) -> None:
        attempt = 0  # consecutive failed attempts; reset by a welcome
        auth_retry_used = False  # one retry with a new token after 4001, per welcome
        immediate_used = False  # one reconnect without delay, per welcome
        first = True
        try:
            while True:
                wants_token = not first or self.credentials.token is None
                if wants_token and self.credentials.token_provider is not None:
                    try:
                        await self.credentials.refresh()
                    except Exception as error:
                        log.error("token_provider failed: %r", error)
                        self._stop(ConnectionClosed(CloseCode.NOT_AUTHENTICATED, repr(error)))
                        return
                first = False
                self.state = ClientState.CONNECTING
                closed, welcomed = await self._connect_and_run()
                if welcomed:
                    attempt, auth_retry_used, immediate_used = 0, False, False
                if isinstance(closed, Closed):
                    self.last_close = closed
                plan = plan_after_close(
                    closed.code,
                    has_token_provider=self.credentials.token_provider is not None,
                    auth_retry_used=auth_retry_used,
                )
                log.info("connection ended %d %s: %s", closed.code, closed.reason, plan.reason)
                if plan.action is Action.STOP:
                    if isinstance(closed, Closed):
                        closed = ConnectionClosed(closed.code, closed.reason or plan.reason)
                    self._stop(closed)
                    return
                self._pending.fail_unsafe(
                    ConnectionLost(f"connection lost ({closed.code}) before the reply")
                )
                if closed.code == CloseCode.NOT_AUTHENTICATED:
                    auth_retry_used = True
                action = plan.action
                if action is Action.RECONNECT_NOW:
                    # e.g. a node refusing new sockets with 1001 while it drains:
                    # only the first reconnect after a welcome skips the backoff.
                    if immediate_used:
                        action = Action.RECONNECT_BACKOFF
                    immediate_used = True
                if action is Action.RECONNECT_BACKOFF:
                    if self.max_attempts is not None and attempt >= self.max_attempts:
                        self._stop(ConnectionClosed(ABNORMAL, f"gave up after {attempt} attempts"))
                        return
                    delay = self.backoff.delay(attempt)
                    attempt += 1
                    log.info("reconnecting in %.2f s (attempt %d)", delay, attempt)
                    await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug here must not hang the application
            log.exception("client supervisor failed")
            self._stop(ConnectionClosed(ABNORMAL, f"client error: {error!r}"))

    async def _connect_and_run(self) -> tuple[Closed | ConnectionClosed, bool]:
        """One connection attempt: connect, welcome, read until it ends. Returns how
        it ended and whether it was welcomed."""
        assert self._session is not None
        resume_from = self._processed
        try:
            conn, welcome = await open_connection(
                self._session,
                self.url,
                codec=self.codec,
                credentials=self.credentials,
                resume_from=resume_from,
                client_name=self.client_name,
                handshake_timeout=self.handshake_timeout_s,
                max_msg_size=self.max_msg_size,
            )
        except ConnectionEnded as ended:
            return ended.closed, False
        except HandshakeRejected as rejected:
            return rejected, False
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            log.info("connection attempt failed: %r", error)
            return Closed(ABNORMAL, repr(error)), False
        self._conn_number += 1
        number = self._conn_number
        self._conn = conn
        try:
            self._on_welcome(welcome, resume_from)
            await self._resend(conn, number)
            closed = await self._read(conn, welcome)
        except (aiohttp.ClientError, OSError) as error:
            closed = Closed(ABNORMAL, repr(error))
        finally:
            self._conn = None
            self._open.clear()
            if self.state is ClientState.OPEN:
                self.state = ClientState.CONNECTING
            await conn.close()
        return closed, True

    def _on_welcome(self, welcome: Welcome, resume_from: int | None) -> None:
        if self.welcome is not None:
            self.reconnects += 1
        self.welcome = welcome
        log.info(
            "welcome session=%s last_seq=%d resumed=%s",
            welcome.session_id,
            welcome.last_seq,
            welcome.resumed,
        )
        if resume_from is None:
            # No state: live events after last_seq only; resume from there next time.
            if self._processed is None:
                self._processed = welcome.last_seq
        elif not welcome.resumed:
            self._queue.put_nowait(Resync(resume_from=resume_from, last_seq=welcome.last_seq))
        self.state = ClientState.OPEN
        self._open.set()
        if self._first_welcome is not None and not self._first_welcome.done():
            self._first_welcome.set_result(welcome)

    async def _resend(self, conn: Connection, number: int) -> None:
        """Send the commands issued while disconnected and the resendable ones left
        unanswered by the previous connection (same ids)."""
        for entry in self._pending.unsent(number):
            if not entry.future.done() and entry.sent_on != number:
                if entry.sent_on is not None:
                    log.info("resending %s %r", type(entry.command).wire_type(), entry.command.id)
                await self._send_command(conn, number, entry)

    async def _send_command(self, conn: Connection, number: int, entry: PendingCommand) -> None:
        previous, entry.sent_on = entry.sent_on, number  # claimed before the await
        try:
            await conn.send(entry.command)
        except (aiohttp.ClientError, OSError) as error:
            log.debug("send failed, will retry after reconnect: %r", error)
            entry.sent_on = previous

    async def _read(self, conn: Connection, welcome: Welcome) -> Closed:
        """Dispatch frames until the connection ends or goes silent for 2x heartbeat."""
        silence = 2 * welcome.heartbeat_s
        while True:
            try:
                msg = await conn.receive(silence_s=silence)
            except TimeoutError:
                log.warning("no frame for %.1f s (2x heartbeat_s): reconnecting", silence)
                return Closed(ABNORMAL, "heartbeat watchdog: server silent")
            if isinstance(msg, Closed):
                return msg
            if isinstance(msg, Ping):
                await conn.send(Pong())
            elif isinstance(msg, Ok):
                self._on_ok(conn, msg)
            elif isinstance(msg, Error):
                self._on_error(msg)
            elif isinstance(msg, Event):
                self._queue.put_nowait(msg)
            else:
                log.warning("ignoring unexpected %s", type(msg).__name__)

    def _on_ok(self, conn: Connection, ok: Ok) -> None:
        entry = self._pending.pop(ok.id)
        if entry is None or entry.future.done():
            log.debug("reply to unknown or abandoned command %r", ok.id)
            return
        assert isinstance(ok.result, msgspec.Raw)
        try:
            result = conn.codec.decode_result(ok.result, type(entry.command).result_type)
        except DecodeError as error:
            entry.future.set_exception(InvalidReply(f"{ok.id}: {error.message}"))
            return
        entry.future.set_result(result)

    def _on_error(self, reply: Error) -> None:
        if reply.id is None:
            log.warning("server error without id: %s %s", reply.code, reply.message)
            return
        entry = self._pending.pop(reply.id)
        if entry is None or entry.future.done():
            log.debug("error for unknown or abandoned command %r", reply.id)
            return
        entry.future.set_exception(CommandError.from_reply(reply))

    # ------------------------------------------------------------------ acks

    def _mark_processed(self, seq: int) -> None:
        if self._processed is None or seq > self._processed:
            self._processed = seq
            self._ack_needed.set()

    async def _ack_loop(self) -> None:
        """Send ``ack {last_seq}`` when it moved, at most every ``ack_interval_s``."""
        while True:
            await self._ack_needed.wait()
            await self._open.wait()
            self._ack_needed.clear()
            conn = self._conn
            if conn is not None:
                try:
                    await self._send_ack(conn)
                except (aiohttp.ClientError, OSError) as error:
                    log.debug("ack not sent: %r", error)
                    self._ack_needed.set()
            await asyncio.sleep(self.ack_interval_s)

    async def _send_ack(self, conn: Connection) -> None:
        seq = self._processed
        if seq is not None and (self._acked is None or seq > self._acked):
            await conn.send(Ack(seq=seq))
            self._acked = seq

    # ------------------------------------------------------------------ stopping

    def _stop(self, error: ConnectionClosed) -> None:
        """Enter the terminal state once: fail everything waiting, end ``events()``."""
        if self.state is ClientState.CLOSED and self._terminal is not None:
            return
        self.state = ClientState.CLOSED
        self._terminal = error
        self._open.clear()
        self._pending.fail_all(error)
        if self._first_welcome is not None and not self._first_welcome.done():
            self._first_welcome.set_exception(error)
        self._queue.put_nowait(_END)
        if not self._closing and self._acker is not None:
            self._acker.cancel()
