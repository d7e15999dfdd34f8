"""The fan-out on plain data: live tail, catch-up scans, buffers, detach, retention.

A simulated delivery partition (offset → recipient) is read by a simulated live tail and
scan reader in random interleavings; every stream must receive exactly its recipient's
frames from its cursor on, in order, none twice, none missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from hub.gateway.access import PartyAccess
from hub.gateway.fanout import FanOut, ScanJob
from hub.gateway.pacing import Pacer
from hub.gateway.session import DeliveryFrame, Session, SessionState
from hub.gateway.wire import FrameEvent, PositionEvent

RECIPIENTS = ["a", "b", "c", "d"]


def access(party: str, limits: dict[str, int] | None = None) -> PartyAccess:
    return PartyAccess(party, "village", frozenset({f"sub-{party}"}), limits or {})


def frame(offset: int, recipient: str, size: int = 100, sub: str | None = None) -> DeliveryFrame:
    return DeliveryFrame(0, offset, recipient, sub or f"sub-{recipient}", 3, 1_000, b"x" * size)


def session(
    sid: int, recipient: str, start: int, limit: int = 10_000, limits: dict[str, int] | None = None
) -> Session:
    return Session(sid, recipient, 0, "sse", access(recipient, limits), start, limit)


class Partition:
    """A delivery partition, a live tail and a scan reader driven by the test."""

    def __init__(self, frames: list[DeliveryFrame]) -> None:
        self.frames = frames
        self.scan_requests = 0
        self.fanout = FanOut(self._request)
        self.job: ScanJob | None = None
        self.live_at = 0

    def _request(self, partition: int) -> None:
        self.scan_requests += 1

    def start_tail(self, at: int) -> None:
        self.live_at = at
        self.fanout.tail_started(0, at)

    def live_step(self, n: int) -> None:
        batch = [f for f in self.frames if self.live_at <= f.offset < self.live_at + n]
        self.live_at = min(self.live_at + n, len(self.frames))
        self.fanout.live_batch(0, batch, self.live_at)

    def scan_step(self, n: int) -> None:
        if self.job is None:
            self.job = self.fanout.scan_next(0)
            if self.job is None:
                return
        round_, start = self.job
        end = min(start + n, len(self.frames))
        batch = self.frames[start:end]
        self.job = self.fanout.scan_batch(round_, batch, end)


def drain(s: Session, fanout: FanOut | None = None) -> list[int]:
    """Take every buffered frame the way a connection handler does (no pacing limits);
    a detached stream that drained asks ``fanout`` to catch it up."""
    resume = fanout.resume if fanout is not None else (lambda x: None)

    async def take() -> list[int]:
        out: list[int] = []
        while s.end is None:
            item = await s.pull(Pacer(), 10**9, 0.0, 3600.0, resume)
            if not isinstance(item, list):
                break
            out += [f.offset for f in item]
        return out

    return asyncio.run(take())


def test_live_frames_reach_only_their_recipients_streams() -> None:
    p = Partition([frame(i, RECIPIENTS[i % 4]) for i in range(40)])
    p.start_tail(0)
    streams = {r: session(i, r, 0) for i, r in enumerate(RECIPIENTS)}
    for s in streams.values():
        p.fanout.attach(s)
        assert s.state is SessionState.LIVE
    p.live_step(40)
    for r, s in streams.items():
        got = drain(s)
        assert got == [i for i in range(40) if RECIPIENTS[i % 4] == r]


def test_a_stream_behind_the_tail_is_caught_up_then_goes_live() -> None:
    p = Partition([frame(i, RECIPIENTS[i % 4]) for i in range(100)])
    p.start_tail(60)
    s = session(1, "b", 10)
    p.fanout.attach(s)
    assert s.state is SessionState.CATCHUP and p.scan_requests == 1
    p.live_step(20)  # the tail moves on while the scan runs: 60..79 go to live streams only
    for _ in range(10):
        p.scan_step(15)
    assert s.state is SessionState.LIVE
    p.live_step(20)
    assert drain(s) == [i for i in range(10, 100) if i % 4 == 1]
    assert p.fanout.scan_next(0) is None  # the scan finished


def test_newcomers_join_a_running_scan_unless_behind_it() -> None:
    p = Partition([frame(i, RECIPIENTS[i % 4]) for i in range(200)])
    p.start_tail(200)
    first = session(1, "a", 0)
    p.fanout.attach(first)
    p.scan_step(50)  # the scan is at 50
    ahead = session(2, "c", 120)
    behind = session(3, "d", 5)
    p.fanout.attach(ahead)
    p.fanout.attach(behind)
    tail = p.fanout.tails[0]
    assert tail.round is not None and ahead in tail.round.sessions()
    assert behind in tail.waiting
    while p.job is not None or tail.waiting:
        p.scan_step(40)
    assert all(s.state is SessionState.LIVE for s in (first, ahead, behind))
    assert drain(first) == [i for i in range(200) if i % 4 == 0]
    assert drain(ahead) == [i for i in range(120, 200) if i % 4 == 2]
    assert drain(behind) == [i for i in range(5, 200) if i % 4 == 3]
    assert p.fanout.scans_started == 2


def test_a_full_live_buffer_ends_the_stream_with_its_cursor() -> None:
    p = Partition([frame(i, "a", size=400) for i in range(10)])
    p.start_tail(0)
    s = session(1, "a", 0, limit=1_000)
    p.fanout.attach(s)
    p.live_step(10)
    assert s.end is not None and s.end.reason == "slow-consumer"
    assert s.end.next_offset == 0  # nothing was sent: resume from the first frame
    assert len(s.buffer) == 2


def test_a_paced_stream_is_detached_and_catches_up_instead() -> None:
    p = Partition([frame(i, "a", size=400) for i in range(10)])
    p.start_tail(0)
    s = session(1, "a", 0, limit=1_000, limits={"sub-a": 1_000_000})
    p.fanout.attach(s)
    p.live_step(10)
    assert s.end is None and s.state is SessionState.DETACHED and s.fed_to == 2
    got = drain(s, p.fanout)  # drains, then asks to catch up from offset 2
    assert s.state is SessionState.CATCHUP
    while p.job is not None or p.fanout.tails[0].waiting or s.state is not SessionState.LIVE:
        p.scan_step(3)
        got += drain(s, p.fanout)
    got += drain(s, p.fanout)
    assert got == list(range(10))


def test_frames_of_an_inactive_subscription_are_withheld() -> None:
    p = Partition([frame(0, "a"), frame(1, "a", sub="sub-other"), frame(2, "a")])
    p.start_tail(0)
    s = session(1, "a", 0)
    p.fanout.attach(s)
    p.live_step(3)
    assert drain(s) == [0, 2]


def test_retention_gap_ends_the_stream_but_not_a_new_subscriber() -> None:
    p = Partition([frame(i, "a") for i in range(30)])
    p.start_tail(30)
    old = session(1, "a", 3)
    new = Session(2, "a", 0, "sse", access("a"), 0, 10_000, client="x", from_earliest=True)
    p.fanout.attach(old)
    p.fanout.attach(new)
    round_, _ = p.fanout.scan_next(0) or (None, 0)
    assert round_ is not None
    p.fanout.scan_batch(round_, p.frames[10:30], 30, low_watermark=10)
    assert old.end is not None and old.end.reason == "gap" and old.end.next_offset == 10
    assert new.end is None and new.state is SessionState.LIVE
    assert drain(new) == list(range(10, 30))


def test_position_events_advance_an_idle_live_cursor() -> None:
    p = Partition([frame(i, "b") for i in range(10)])
    p.start_tail(0)
    s = session(1, "a", 0)
    p.fanout.attach(s)
    p.live_step(10)

    async def pull() -> object:
        return await s.pull(Pacer(), 10**6, 0.0, 0.0, lambda x: None)

    item = asyncio.run(pull())
    assert isinstance(item, PositionEvent) and item.next_offset == 10
    assert s.cursor() == 10


def test_frame_events_chain_from_the_cursor() -> None:
    p = Partition([frame(i, RECIPIENTS[i % 2]) for i in range(10)])
    p.start_tail(4)
    s = session(1, "b", 4)
    p.fanout.attach(s)
    p.live_step(6)

    async def pull() -> object:
        return await s.pull(Pacer(), 10**6, 0.0, 3600.0, lambda x: None)

    item = asyncio.run(pull())
    assert isinstance(item, list)
    events: list[FrameEvent] = item
    assert [(e.after, e.offset) for e in events] == [(4, 5), (6, 7), (8, 9)]


@pytest.mark.parametrize("seed", range(25))
def test_random_interleavings_deliver_exactly_the_entitled_frames(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.randint(50, 400)
    frames = [frame(i, rng.choice(RECIPIENTS), size=rng.randint(10, 300)) for i in range(size)]
    p = Partition(frames)
    received: dict[int, list[int]] = {}
    cursors: dict[int, int] = {}
    streams: list[Session] = []
    ended: list[tuple[Session, int]] = []
    tail_started = False
    sid = 0
    for _ in range(400):
        action = rng.random()
        if not tail_started and action < 0.1:
            p.start_tail(rng.randint(0, size // 2))
            tail_started = True
        elif action < 0.25 and len(streams) < 12:
            sid += 1
            limit = rng.choice([300, 1_000, 100_000])
            limits = {f"sub-{r}": 10**6 for r in RECIPIENTS} if rng.random() < 0.3 else None
            s = session(sid, rng.choice(RECIPIENTS), rng.randint(0, size), limit, limits)
            cursors[sid] = s.fed_to
            received[sid] = []
            streams.append(s)
            p.fanout.attach(s)
        elif action < 0.5 and tail_started:
            p.live_step(rng.randint(1, 30))
        elif action < 0.8:
            p.scan_step(rng.randint(1, 40))
        elif streams:
            s = rng.choice(streams)
            received[s.id] += drain(s, p.fanout)
            if s.end is not None:  # ended (slow consumer): the subscriber reconnects
                assert s.end.reason == "slow-consumer"
                resume = s.end.next_offset
                assert resume is not None
                p.fanout.release(s)
                streams.remove(s)
                sid += 1
                again = session(sid, s.recipient, resume, s.limit_bytes)
                cursors[sid] = resume
                received[sid] = []
                streams.append(again)
                p.fanout.attach(again)
                ended.append((s, resume))
    # Run everything out.
    if not tail_started:
        p.start_tail(0)
    for _ in range(2_000):
        p.live_step(50)
        p.scan_step(50)
        for s in streams:
            received[s.id] += drain(s, p.fanout)
            assert s.end is None or s.end.reason == "slow-consumer"
        if all(s.state is SessionState.LIVE and not s.buffer for s in streams):
            break
    for s in streams:
        assert s.state is SessionState.LIVE, s
        start = cursors[s.id]
        expected = [f.offset for f in frames if f.recipient == s.recipient and f.offset >= start]
        assert received[s.id] == expected, (seed, s)
    for s, resume in ended:  # what a stream sent before it ended stops at its cursor
        start = cursors[s.id]
        expected = [
            f.offset for f in frames if f.recipient == s.recipient and start <= f.offset < resume
        ]
        assert received[s.id] == expected, (seed, s)


def test_a_tail_restarted_past_live_streams_catches_them_up() -> None:
    p = Partition([frame(i, "a") for i in range(30)])
    p.start_tail(0)
    s = session(1, "a", 0)
    p.fanout.attach(s)
    p.live_step(10)
    p.fanout.tail_stopped(0)  # the reader let the partition go while the stream was live
    assert s.state is SessionState.CATCHUP
    p.start_tail(25)  # ...and took it again at the end: 10..24 must still arrive
    while p.fanout.tails[0].round is not None or p.fanout.tails[0].waiting or p.job:
        p.scan_step(7)
    p.live_step(5)
    assert drain(s, p.fanout) == list(range(30))


def test_direct_frames_of_a_batch_leave_in_one_write_in_order() -> None:
    """The direct path holds a stream's frames of one live batch and writes them once, at
    the batch's end; across batches, and with the socket backed up, order is kept."""
    import socket as pysocket
    from types import SimpleNamespace

    from hub.gateway.http import StreamEndpoints, _sse_raw
    from hub.gateway.service import SendTally

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = pysocket.socketpair()
        theirs.setblocking(False)
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        writes: list[bytes] = []
        real_write = transport.write

        def counted(data: bytes) -> None:
            writes.append(bytes(data))
            real_write(data)

        transport.write = counted  # type: ignore[method-assign]
        p = Partition([frame(i, RECIPIENTS[i % 2]) for i in range(40)])
        p.start_tail(0)
        s = session(1, "a", 0)
        p.fanout.attach(s)
        svc = SimpleNamespace(sent=SendTally((1.0, float("inf"))), fanout=p.fanout)
        s.direct = StreamEndpoints._direct_writer(  # type: ignore[arg-type]
            SimpleNamespace(svc=svc), s, transport, _sse_raw
        )
        s.parked = True
        p.live_step(20)  # ten frames for "a"
        assert len(writes) == 1 and not p.fanout.outbox
        p.live_step(20)
        assert len(writes) == 2
        expected = b"".join(_sse_raw(0, i - 1 if i else 0, frame(i, "a")) for i in range(0, 40, 2))
        got = b""
        deadline = loop.time() + 10
        while len(got) < len(expected) and loop.time() < deadline:
            await asyncio.sleep(0.01)
            with contextlib.suppress(BlockingIOError):
                got += theirs.recv(1 << 20)
        assert got == expected
        assert got.count(b"event: frame") == 20
        assert s.told == 39
        assert not s.buffer
        transport.close()
        theirs.close()

    asyncio.run(scenario())
