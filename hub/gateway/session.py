"""One subscriber stream held by the gateway: its cursor, its bounded buffer, its access.

A session is fed frames by the fan-out (from the live tail or a catch-up scan) and drained
by its connection handler, which calls :meth:`Session.pull`. Everything here runs on the
gateway's event loop; frames are shared objects, so a buffer holds references, not copies.

Cursor bookkeeping (all offsets of the recipient's delivery partition):

* ``fed_to`` — while catching up or detached: every frame below it has been queued or
  passed over;
* ``live_from`` — while live: frames below it are skipped (a catch-up already fed them),
  and the fan-out's tail position stands for ``fed_to``;
* ``told`` — the cursor the subscriber was last told (by a frame or a position event).
"""

from __future__ import annotations

import asyncio
import base64
import enum
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from hub.gateway.access import PartyAccess
from hub.gateway.pacing import Pacer
from hub.gateway.timers import WakeWheel
from hub.gateway.wire import EndEvent, FrameEvent, PositionEvent, StreamProtocol

if TYPE_CHECKING:
    from hub.gateway.fanout import PartitionTail


class DeliveryFrame:
    """A frame read from the delivery topic, shared by every stream it goes to."""

    __slots__ = (
        "_b64",
        "entries",
        "offset",
        "partition",
        "recipient",
        "subscription",
        "timestamp_ms",
        "value",
    )

    def __init__(
        self,
        partition: int,
        offset: int,
        recipient: str,
        subscription: str,
        entries: int,
        timestamp_ms: int,
        value: bytes,
    ) -> None:
        self.partition = partition
        self.offset = offset
        self.recipient = recipient
        self.subscription = subscription
        self.entries = entries
        self.timestamp_ms = timestamp_ms
        self.value = value
        self._b64: bytes | None = None

    @property
    def size(self) -> int:
        return len(self.value)

    def b64(self) -> str:
        return self.b64_ascii().decode("ascii")

    def b64_ascii(self) -> bytes:
        """The frame in base64, encoded once for every stream it goes to."""
        if self._b64 is None:
            self._b64 = base64.b64encode(self.value)
        return self._b64

    def __repr__(self) -> str:
        return f"DeliveryFrame({self.partition}@{self.offset} → {self.recipient})"


class SessionState(enum.Enum):
    CATCHUP = "catchup"  # waiting for, or in, a catch-up scan
    LIVE = "live"  # fed by the partition's live tail
    DETACHED = "detached"  # buffer full while paced or catching up: drains, then catches up
    CLOSED = "closed"


class Session:
    __slots__ = (
        "_waiter",
        "access",
        "auth_fingerprint",
        "buffer",
        "buffered_bytes",
        "client",
        "direct",
        "end",
        "fed_to",
        "from_earliest",
        "id",
        "last_pull",
        "last_sent",
        "limit_bytes",
        "live_from",
        "on_abort",
        "parked",
        "partition",
        "protocol",
        "recipient",
        "state",
        "tail",
        "throttled_s",
        "told",
        "wake_slot",
        "wheel",
    )

    def __init__(
        self,
        sid: int,
        recipient: str,
        partition: int,
        protocol: StreamProtocol,
        access: PartyAccess,
        start: int,
        limit_bytes: int,
        client: str = "default",
        from_earliest: bool = False,
    ) -> None:
        self.id = sid
        self.recipient = recipient
        self.partition = partition
        self.protocol: StreamProtocol = protocol
        self.access = access
        self.client = client
        self.from_earliest = from_earliest
        self.fed_to = start
        self.live_from = start
        self.told = start
        self.buffer: deque[DeliveryFrame] = deque()
        self.buffered_bytes = 0
        self.limit_bytes = limit_bytes
        self.state = SessionState.CATCHUP
        self.tail: PartitionTail | None = None
        self.end: EndEvent | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.last_sent = time.monotonic()
        self.last_pull = self.last_sent
        self.throttled_s = 0.0
        self.auth_fingerprint: str | None = None
        self.on_abort: Callable[[], None] | None = None
        # With a ``wheel`` the owner's sweep ends the stream's waits (one sweep for
        # thousands of idle streams, hub/gateway/timers.py); otherwise each wait arms a
        # timer of its own.
        self.wheel: WakeWheel | None = None
        self.wake_slot = 0
        # While the connection handler is parked (nothing queued, nothing being written),
        # the fan-out may hand a live frame straight to ``direct``, which writes it to the
        # socket at once; it returns False when the socket is backed up (then the frame is
        # queued and the handler woken, as usual).
        self.direct: Callable[[DeliveryFrame], bool] | None = None
        self.parked = False

    def __repr__(self) -> str:
        return (
            f"Session({self.id} {self.recipient} {self.protocol} {self.state.value} "
            f"cursor={self.cursor()})"
        )

    @property
    def tier(self) -> str:
        return self.access.tier

    @property
    def paced(self) -> bool:
        """Whether a full buffer detaches the stream (to catch up later) instead of ending
        it: streams held back by their own rate limit, and long-polls between polls."""
        return bool(self.access.rate_limits) or self.protocol == "poll"

    @property
    def closed(self) -> bool:
        return self.state is SessionState.CLOSED

    # -- cursor --------------------------------------------------------------------------
    def fed_position(self) -> int:
        """Every frame of the recipient below this offset is queued, sent or passed over."""
        if self.state is SessionState.LIVE and self.tail is not None:
            position = self.tail.position
            if position is not None and position > self.live_from:
                return position
            return self.live_from
        return self.fed_to

    def cursor(self) -> int:
        """Where the subscriber resumes if the stream ends now."""
        if self.buffer:
            return self.buffer[0].offset
        return max(self.fed_position(), self.told)

    # -- feeding (fan-out side) ------------------------------------------------------------
    def accepts(self, frame: DeliveryFrame) -> bool:
        """Whether ``frame`` fits into the buffer (one frame always fits an empty one)."""
        return not self.buffer or self.buffered_bytes + frame.size <= self.limit_bytes

    def push(self, frame: DeliveryFrame) -> None:
        self.buffer.append(frame)
        self.buffered_bytes += frame.size
        self.wake()

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def finish(self, end: EndEvent) -> None:
        """Ask the handler to send ``end`` and close; the first reason wins."""
        if self.end is None:
            self.end = end
        self.wake()

    # -- draining (connection side) --------------------------------------------------------
    async def wait(self, timeout: float) -> None:
        if self.buffer or self.end is not None or timeout <= 0:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        wheel = self.wheel
        try:
            if wheel is not None:
                wheel.file(self, time.monotonic() + timeout)
                await waiter
            else:
                await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiter = None
            if wheel is not None and self.wake_slot:
                wheel.unfile(self)

    async def pull(
        self,
        pacer: Pacer,
        max_bytes: int,
        timeout: float,
        position_interval_s: float,
        on_drained: Callable[[Session], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> list[FrameEvent] | PositionEvent | EndEvent | None:
        """The next thing to send: frames (paced), a position, the end — or None after
        ``timeout`` seconds with nothing to send (time for a keep-alive)."""
        deadline = clock() + timeout
        while True:
            if self.end is not None:
                return self.end
            if self.buffer:
                frames = await self._take(pacer, max_bytes, clock)
                if frames:
                    return frames
                continue
            if self.state is SessionState.DETACHED:
                on_drained(self)
            now = clock()
            position = self.fed_position()
            if position > self.told and now - self.last_sent >= position_interval_s:
                self.told = position
                self.last_sent = now
                return PositionEvent(position)
            remaining = deadline - now
            if remaining <= 0:
                return None
            if position > self.told:
                remaining = min(remaining, position_interval_s - (now - self.last_sent))
            self.parked = True
            try:
                await self.wait(max(remaining, 0.001))
            finally:
                self.parked = False

    async def _take(
        self, pacer: Pacer, max_bytes: int, clock: Callable[[], float]
    ) -> list[FrameEvent]:
        """Frames from the head of the buffer, up to ``max_bytes``. A paced stream takes one
        frame at a time and first waits until its subscription's bucket allows it."""
        out: list[FrameEvent] = []
        size = 0
        access = self.access
        limits = access.rate_limits
        while self.buffer and self.end is None:
            frame = self.buffer[0]
            if frame.subscription not in access.allowed:
                self._drop_head()  # withheld: the subscription is no longer active
                continue
            if out and (limits or size + frame.size > max_bytes):
                break
            limit = limits.get(frame.subscription) if limits else None
            if limit is not None:
                delay = pacer.delay(frame.subscription, limit, frame.entries, clock())
                if delay > 0:
                    started = clock()
                    await self._sleep_unless_ended(started + delay, clock)
                    self.throttled_s += clock() - started
                    if self.end is not None:
                        break
            self._drop_head()
            after = self.told
            self.told = frame.offset + 1
            out.append(
                FrameEvent(after, frame.offset, frame.entries, frame.timestamp_ms, frame.value)
            )
            size += frame.size
        if out:
            self.last_sent = clock()
        return out

    async def _sleep_unless_ended(self, until: float, clock: Callable[[], float]) -> None:
        """Sleep until ``until``; new frames do not cut the sleep short, an end does."""
        loop = asyncio.get_running_loop()
        while self.end is None:
            remaining = until - clock()
            if remaining <= 0:
                return
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiter = waiter
            handle = loop.call_later(remaining, _resolve, waiter)
            try:
                await waiter
            finally:
                handle.cancel()
                self._waiter = None

    def _drop_head(self) -> None:
        frame = self.buffer.popleft()
        self.buffered_bytes -= frame.size


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
