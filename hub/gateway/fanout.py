"""Fan-out of delivery frames to the streams of one gateway process (design §8).

Per delivery partition the gateway tails the topic once (:meth:`FanOut.live_batch`) and
hands each frame to the streams of its recipient — a dictionary probe per frame, whatever
the number of streams. A stream whose cursor is behind the tail is served by a *catch-up
scan* on a separate consumer: one scan per partition reads from the lowest cursor that
needs it and feeds every stream behind the tail at once (:meth:`FanOut.scan_batch`); when
the scan reaches the tail, its streams turn live. Streams that arrive while a scan runs
join it if their cursor is not behind it, else they wait for the next scan of that
partition, so a newcomer with an old cursor never rewinds the others.

Buffers are bounded per stream. When a live stream's buffer is full:

* a stream paced by its rate limit is *detached*: it keeps sending what it holds and, once
  drained, catches up from where its buffer stopped (pacing never drops a record);
* any other stream is ended with ``slow-consumer`` and the cursor to resume from.

A catch-up stream whose buffer fills is detached the same way: catch-up reads at the pace
of Kafka, not of the slowest subscriber. Nothing here blocks, and one stream never holds
up another.

Everything runs on the gateway's event loop; the Kafka readers hand batches over and wait
for them to be taken, which bounds memory (``hub/gateway/readers.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from hub import metrics
from hub.gateway.session import DeliveryFrame, Session, SessionState
from hub.gateway.wire import EndEvent

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ScanRound:
    """One catch-up pass over a partition range for the streams behind its tail."""

    partition: int
    position: int
    members: dict[str, list[Session]] = field(default_factory=dict)
    size: int = 0
    frames_read: int = 0
    checked_low: bool = False

    def add(self, session: Session) -> None:
        self.members.setdefault(session.recipient, []).append(session)
        self.size += 1

    def remove(self, session: Session) -> bool:
        group = self.members.get(session.recipient)
        if group is None or session not in group:
            return False
        group.remove(session)
        if not group:
            del self.members[session.recipient]
        self.size -= 1
        return True

    def sessions(self) -> list[Session]:
        return [s for group in self.members.values() for s in group]


@dataclass(eq=False)
class PartitionTail:
    """The streams of one delivery partition and where its live tail stands."""

    partition: int
    position: int | None = None  # next offset the live tail will dispatch; None: not tailing
    live: dict[str, list[Session]] = field(default_factory=dict)
    waiting: list[Session] = field(default_factory=list)
    round: ScanRound | None = None
    sessions: set[Session] = field(default_factory=set)
    low_watermark: int = 0


ScanJob = tuple[ScanRound, int]


class FanOut:
    """Routes frames from the live tail and catch-up scans into the streams' buffers."""

    def __init__(
        self,
        request_scan: Callable[[int], None] | None = None,
        on_end: Callable[[Session, EndEvent], None] | None = None,
    ) -> None:
        self.tails: dict[int, PartitionTail] = {}
        self._request_scan = request_scan or (lambda partition: None)
        self._on_end = on_end or (lambda session, end: session.finish(end))
        self.frames_live = 0
        self.frames_scanned = 0
        self.scans_started = 0
        self.outbox: list[Callable[[], None]] = []
        """Writes the direct path held back during a live batch, one per stream: a
        stream's frames of one batch leave in one socket write (see :meth:`flush`)."""

    def tail(self, partition: int) -> PartitionTail:
        tail = self.tails.get(partition)
        if tail is None:
            tail = self.tails[partition] = PartitionTail(partition)
        return tail

    # -- streams come and go -------------------------------------------------------------
    def attach(self, session: Session) -> None:
        """Start feeding ``session`` from its cursor (``session.fed_to``)."""
        tail = self.tail(session.partition)
        session.tail = tail
        tail.sessions.add(session)
        self._enter(session, tail)

    def release(self, session: Session) -> None:
        """The stream is gone: stop feeding it."""
        self._leave(session)
        session.state = SessionState.CLOSED
        tail = session.tail
        if tail is not None:
            tail.sessions.discard(session)

    def resume(self, session: Session) -> None:
        """A detached stream has drained its buffer: catch it up from where it stopped."""
        if session.state is SessionState.DETACHED and session.tail is not None:
            self._enter(session, session.tail)

    def _enter(self, session: Session, tail: PartitionTail) -> None:
        if tail.position is not None and session.fed_to >= tail.position:
            self._go_live(session, tail)
            return
        session.state = SessionState.CATCHUP
        current = tail.round
        if current is not None and session.fed_to >= current.position:
            current.add(session)
            return
        tail.waiting.append(session)
        if current is None:
            self._request_scan(tail.partition)

    def _leave(self, session: Session) -> None:
        tail = session.tail
        if tail is None:
            return
        if session.state is SessionState.LIVE:
            group = tail.live.get(session.recipient)
            if group is not None and session in group:
                group.remove(session)
                if not group:
                    del tail.live[session.recipient]
        elif session.state is SessionState.CATCHUP:
            if tail.round is not None and tail.round.remove(session):
                return
            if session in tail.waiting:
                tail.waiting.remove(session)

    def _go_live(self, session: Session, tail: PartitionTail) -> None:
        session.state = SessionState.LIVE
        session.live_from = session.fed_to
        tail.live.setdefault(session.recipient, []).append(session)

    def _detach(self, session: Session, at: int) -> None:
        """Stop feeding ``session`` at offset ``at``; it resumes from there once drained."""
        self._leave(session)
        session.fed_to = at
        session.state = SessionState.DETACHED

    def _offer(self, session: Session, frame: DeliveryFrame, live: bool) -> bool:
        """Queue ``frame`` for ``session``; False when the session stopped taking frames."""
        if frame.subscription not in session.access.allowed:
            return True  # withheld, not queued: the subscription is not active
        if (
            live
            and session.parked
            and session.direct is not None
            and not session.buffer
            and session.end is None
            and not session.paced
            and session.direct(frame)
        ):
            return True
        if session.accepts(frame):
            session.push(frame)
            return True
        if live and not session.paced:
            cursor = session.cursor()
            self._leave(session)
            session.fed_to = cursor
            session.state = SessionState.DETACHED
            self._on_end(
                session,
                EndEvent(
                    "slow-consumer",
                    cursor,
                    f"more than {session.limit_bytes} bytes of frames were waiting; "
                    "resume from the cursor",
                ),
            )
        else:
            self._detach(session, frame.offset)
        return False

    # -- the live tail ---------------------------------------------------------------------
    def tail_started(self, partition: int, position: int, low_watermark: int = 0) -> None:
        """The live reader tails ``partition`` from ``position`` (its high watermark)."""
        tail = self.tail(partition)
        if tail.position is None or position > tail.position:
            tail.position = position
        tail.low_watermark = max(tail.low_watermark, low_watermark)
        self._switch_round(tail)

    def tail_stopped(self, partition: int) -> None:
        """The live reader no longer tails ``partition`` (normally: no streams left on
        it). Streams that went live on it meanwhile catch up from where they stand, since
        a tail started again begins at the partition's end."""
        tail = self.tails.get(partition)
        if tail is None:
            return
        moved = []
        for group in list(tail.live.values()):
            for session in list(group):
                at = session.fed_position()
                self._leave(session)
                session.fed_to = at
                session.state = SessionState.DETACHED
                moved.append(session)
        tail.position = None
        for session in moved:
            self.resume(session)
        if not tail.sessions:
            del self.tails[partition]

    def live_batch(
        self, partition: int, frames: Sequence[DeliveryFrame], position: int | None
    ) -> None:
        tail = self.tails.get(partition)
        if tail is None or tail.position is None:
            return
        start = tail.position
        live = tail.live
        if live:
            try:
                for frame in frames:
                    if frame.offset < start:
                        continue
                    group = live.get(frame.recipient)
                    if group is None:
                        continue
                    for session in group if len(group) == 1 else tuple(group):
                        if frame.offset >= session.live_from:
                            self._offer(session, frame, live=True)
            finally:
                self.flush()
        self.frames_live += len(frames)
        newest = frames[-1].offset + 1 if frames else start
        if position is None or position < newest:
            position = newest
        if position > start:
            tail.position = position
        self._switch_round(tail)

    def flush(self) -> None:
        """Send what the direct path held back in this batch. Nothing else runs on the
        loop between a held-back frame and this call, so a stream's later frames (queued
        for its handler) are written after these, in order."""
        outbox = self.outbox
        if outbox:
            self.outbox = []
            for write in outbox:
                write()

    # -- catch-up scans -------------------------------------------------------------------
    def scan_next(self, partition: int) -> ScanJob | None:
        """What the partition's scan reader should read next (None: nothing)."""
        tail = self.tails.get(partition)
        if tail is None:
            return None
        current = tail.round
        if current is not None and current.size:
            return current, current.position
        tail.round = None
        if not tail.waiting:
            return None
        start = min(s.fed_to for s in tail.waiting)
        current = ScanRound(partition, start)
        for session in tail.waiting:
            current.add(session)
        tail.waiting.clear()
        tail.round = current
        self.scans_started += 1
        metrics.GATEWAY_CATCHUP_SCANS.inc()
        return current, start

    def scan_batch(
        self,
        job: ScanRound,
        frames: Sequence[DeliveryFrame],
        position: int,
        low_watermark: int | None = None,
    ) -> ScanJob | None:
        """Feed one batch of a scan; returns what to read next (None: stop)."""
        partition = job.partition
        tail = self.tails.get(partition)
        if tail is None or tail.round is not job:
            return self.scan_next(partition)
        if low_watermark is not None:
            tail.low_watermark = max(tail.low_watermark, low_watermark)
            self._check_retention(job, tail.low_watermark)
        members = job.members
        for frame in frames:
            group = members.get(frame.recipient)
            if group is None:
                continue
            for session in tuple(group):
                if frame.offset >= session.fed_to and self._offer(session, frame, live=False):
                    session.fed_to = frame.offset + 1
        job.frames_read += len(frames)
        self.frames_scanned += len(frames)
        metrics.GATEWAY_CATCHUP_READS.inc(len(frames))
        if frames and position <= frames[-1].offset:
            position = frames[-1].offset + 1
        if position > job.position:
            job.position = position
            for session in job.sessions():
                if session.fed_to < position:
                    session.fed_to = position
        # Streams waiting for the next round can join this one if it has not passed them.
        if tail.waiting:
            joining = [s for s in tail.waiting if s.fed_to >= job.position]
            for session in joining:
                tail.waiting.remove(session)
                job.add(session)
        self._switch_round(tail)
        return self.scan_next(partition)

    def _check_retention(self, job: ScanRound, low: int) -> None:
        for session in job.sessions():
            if session.fed_to >= low:
                continue
            if session.from_earliest:
                session.fed_to = low
                continue
            job.remove(session)
            session.state = SessionState.DETACHED
            self._on_end(
                session,
                EndEvent(
                    "gap",
                    low,
                    f"records {session.fed_to}..{low - 1} of delivery partition "
                    f"{job.partition} were removed by retention before they were delivered",
                ),
            )
        if job.position < low:
            job.position = low

    def _switch_round(self, tail: PartitionTail) -> None:
        """Scan members that reached the live tail become live streams."""
        job = tail.round
        if job is None or tail.position is None or job.position < tail.position:
            return
        for session in job.sessions():
            if session.fed_to < tail.position:
                session.fed_to = tail.position
            self._go_live(session, tail)
        job.members.clear()
        job.size = 0

    # -- policy ---------------------------------------------------------------------------
    def sessions_of(self, partition: int, recipient: str) -> Iterable[Session]:
        tail = self.tails.get(partition)
        if tail is None:
            return ()
        return [s for s in tail.sessions if s.recipient == recipient]

    def partitions_in_use(self) -> set[int]:
        return {p for p, tail in self.tails.items() if tail.sessions}
