"""Verification of the audit trail against its chain (``govhub audit verify``).

Per partition, the chain's links are checked first (each link's hash recomputed, each
``prev_hash`` equal to the previous hash, ``seq`` dense) and every checkpoint's Ed25519
signature and hash. Then the stored events are matched to the links by event id:

- ``modified``: the event is there but its digest differs from the chained one (or its id
  was changed too: an unknown event sits exactly where a chained one is missing);
- ``removed``: a chained event is not in the log;
- ``reordered``: the event is there, unchanged, but out of chain order (the events not on
  the longest run in chain order are named);
- ``inserted``: an event between chained events that the chain does not know (a duplicate
  id counts too); unknown events after the last link are only *pending* — written after
  the notary's last transaction, not a finding.

The chain alone is protected by the signatures: links after the last checkpoint are
reported as ``unsealed`` (a count, not a finding), since they could be recomputed by
whoever can rewrite both topics.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hub.audit.chain import GENESIS, Checkpoint, Link
from hub.audit.digest import hasher
from hub.audit.store import AuditLog, StoredEvent

FINDING_KINDS = (
    "modified",
    "removed",
    "reordered",
    "inserted",
    "chain-altered",
    "checkpoint-invalid",
    "truncated",
    "malformed",
)


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str
    partition: int
    detail: str
    seq: int | None = None
    offset: int | None = None
    event_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "partition": self.partition,
            "seq": self.seq,
            "offset": self.offset,
            "event_id": self.event_id,
            "detail": self.detail,
        }

    def __str__(self) -> str:
        where = f"partition {self.partition}"
        if self.seq is not None:
            where += f" seq {self.seq}"
        if self.offset is not None:
            where += f" offset {self.offset}"
        if self.event_id:
            where += f" event {self.event_id}"
        return f"{self.kind}: {where}: {self.detail}"


@dataclass
class PartitionSummary:
    events: int = 0
    chained: int = 0
    pending: int = 0
    checkpoints: int = 0
    unsealed: int = 0
    last_checkpoint_ms: int | None = None
    sealed_seq: int | None = None
    """The newest signed head (seq and hash): keep it, and pass the report to a later
    verify as ``anchors`` to detect the chain's end being cut off since."""
    sealed_hash: str | None = None


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    partitions: dict[int, PartitionSummary] = field(default_factory=dict)
    signatures_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "signatures_checked": self.signatures_checked,
            "findings": [f.to_json() for f in self.findings],
            "partitions": {str(p): vars(s) for p, s in sorted(self.partitions.items())},
        }


Anchors = dict[int, tuple[int, str]]
"""Per partition, a signed head (seq, hash) seen by an earlier verification."""


def anchors_of(report: dict[str, Any]) -> Anchors:
    """The signed heads of an earlier ``verify --json`` report."""
    out: Anchors = {}
    for partition, summary in (report.get("partitions") or {}).items():
        seq, hash_ = summary.get("sealed_seq"), summary.get("sealed_hash")
        if isinstance(seq, int) and isinstance(hash_, str):
            out[int(partition)] = (seq, hash_)
    return out


def verify_log(
    log: AuditLog, public_key: Ed25519PublicKey | None, anchors: Anchors | None = None
) -> Report:
    """Check ``log`` (from Kafka or an export); ``public_key`` None skips signatures (then
    every checkpoint is reported, since it cannot be trusted). ``anchors`` (signed heads
    from an earlier report) must still be on the chain: a chain cut off behind one, or
    rewritten up to it, is reported."""
    report = Report(signatures_checked=public_key is not None)
    for partition, (seq, hash_) in sorted((anchors or {}).items()):
        links = [r for r in log.chain.get(partition, []) if isinstance(r, Link)]
        if seq >= len(links):
            report.findings.append(
                Finding(
                    "truncated",
                    partition,
                    f"the chain ends at seq {len(links) - 1}, before the head seq {seq} "
                    "an earlier verification saw",
                    seq,
                )
            )
        elif links[seq].hash != hash_:
            report.findings.append(
                Finding("chain-altered", partition, "differs from an earlier verified head", seq)
            )
    for problem in log.problems:
        report.findings.append(Finding("malformed", -1, problem))
    for partition in sorted(set(log.events) | set(log.chain)):
        summary = report.partitions.setdefault(partition, PartitionSummary())
        records = log.chain.get(partition, [])
        links = [r for r in records if isinstance(r, Link)]
        checkpoints = [r for r in records if isinstance(r, Checkpoint)]
        _check_links(partition, links, report)
        _check_checkpoints(partition, links, checkpoints, public_key, summary, report)
        _match_events(partition, log.events.get(partition, []), links, summary, report)
    return report


def _check_links(partition: int, links: list[Link], report: Report) -> None:
    prev = GENESIS
    for index, link in enumerate(links):
        if link.partition != partition:
            report.findings.append(
                Finding("chain-altered", partition, "link names another partition", link.seq)
            )
        if link.seq != index:
            report.findings.append(
                Finding(
                    "chain-altered",
                    partition,
                    f"link at position {index} has seq {link.seq} (a link removed or moved)",
                    link.seq,
                    link.offset,
                    link.event_id,
                )
            )
        if link.prev_hash != prev:
            report.findings.append(
                Finding(
                    "chain-altered",
                    partition,
                    "prev_hash does not continue the chain",
                    link.seq,
                    link.offset,
                    link.event_id,
                )
            )
        try:
            recomputed = link.recomputed_hash()
        except ValueError as exc:
            recomputed = f"({exc})"
        if recomputed != link.hash:
            report.findings.append(
                Finding(
                    "chain-altered",
                    partition,
                    "link hash does not match its fields",
                    link.seq,
                    link.offset,
                    link.event_id,
                )
            )
        prev = link.hash


def _check_checkpoints(
    partition: int,
    links: list[Link],
    checkpoints: list[Checkpoint],
    public_key: Ed25519PublicKey | None,
    summary: PartitionSummary,
    report: Report,
) -> None:
    sealed_to = -1
    for cp in checkpoints:
        problems = []
        if public_key is None:
            problems.append("signature not checked (no public key)")
        elif not cp.verify(public_key):
            problems.append("signature does not verify")
        if cp.partition != partition:
            problems.append("names another partition")
        link = links[cp.seq] if 0 <= cp.seq < len(links) else None
        if link is None:
            problems.append(f"signs seq {cp.seq}, which the chain does not hold")
        elif link.hash != cp.hash or link.offset != cp.offset:
            problems.append(f"signed hash differs from link {cp.seq}")
        if problems:
            report.findings.append(
                Finding("checkpoint-invalid", partition, "; ".join(problems), cp.seq, cp.offset)
            )
            continue
        summary.checkpoints += 1
        if cp.seq >= sealed_to:
            summary.sealed_seq, summary.sealed_hash = cp.seq, cp.hash
        sealed_to = max(sealed_to, cp.seq)
        summary.last_checkpoint_ms = max(summary.last_checkpoint_ms or 0, cp.at_ms)
    summary.unsealed = len(links) - (sealed_to + 1)


def _match_events(
    partition: int,
    events: list[StoredEvent],
    links: list[Link],
    summary: PartitionSummary,
    report: Report,
) -> None:
    summary.events = len(events)
    summary.chained = len(links)
    positions: dict[str, list[int]] = {}
    ids = [e.event_id for e in events]
    for index, event_id in enumerate(ids):
        positions.setdefault(event_id, []).append(index)
    digests: dict[str, Any] = {}
    used: set[int] = set()
    matched: list[tuple[int, int]] = []  # (link index, event position)
    missing: list[int] = []
    for li, link in enumerate(links):
        found = next((p for p in positions.get(link.event_id, ()) if p not in used), None)
        if found is None:
            missing.append(li)
            continue
        used.add(found)
        matched.append((li, found))
        event = events[found]
        digest_of = digests.get(link.alg)
        if digest_of is None:
            digest_of = digests[link.alg] = _hasher_or_none(link.alg)
        if digest_of is None or digest_of(event.value) != link.event_digest:
            report.findings.append(
                Finding(
                    "modified",
                    partition,
                    "content differs from the chained digest",
                    link.seq,
                    link.offset,
                    link.event_id,
                )
            )
    in_order = _longest_increasing(matched)
    for li, pos in matched:
        if (li, pos) not in in_order:
            link = links[li]
            report.findings.append(
                Finding(
                    "reordered",
                    partition,
                    f"found at position {pos} of the partition, out of chain order",
                    link.seq,
                    link.offset,
                    link.event_id,
                )
            )
    ordered = sorted(in_order)
    anchors_li = [li for li, _ in ordered]
    anchors_pos = [pos for _, pos in ordered]
    last_chained_pos = max((pos for _, pos in matched), default=-1)
    unknown = [p for p in range(len(events)) if p not in used]
    # An unknown event in the gap where one chained event is missing: the event was
    # altered, id included.
    gaps: dict[int, tuple[list[int], list[int]]] = {}
    for li in missing:
        gaps.setdefault(bisect.bisect_left(anchors_li, li), ([], []))[0].append(li)
    for pos in unknown:
        if pos > last_chained_pos and not missing:
            summary.pending += 1
            continue
        gaps.setdefault(bisect.bisect_left(anchors_pos, pos), ([], []))[1].append(pos)
    for lis, poss in gaps.values():
        if len(lis) == 1 and len(poss) == 1:
            link = links[lis[0]]
            report.findings.append(
                Finding(
                    "modified",
                    partition,
                    f"event id changed to {events[poss[0]].event_id}",
                    link.seq,
                    link.offset,
                    link.event_id,
                )
            )
            continue
        for li in lis:
            link = links[li]
            report.findings.append(
                Finding(
                    "removed",
                    partition,
                    "chained event is missing",
                    link.seq,
                    link.offset,
                    link.event_id,
                )
            )
        for pos in poss:
            event = events[pos]
            if pos > last_chained_pos and not lis:
                summary.pending += 1
                continue
            report.findings.append(
                Finding(
                    "inserted",
                    partition,
                    f"event at position {pos} is not on the chain",
                    None,
                    event.offset,
                    event.event_id,
                )
            )


def _hasher_or_none(alg: str) -> Any:
    try:
        return hasher(alg)
    except ValueError:
        return None


def _longest_increasing(pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
    """The longest subsequence of ``pairs`` (sorted by link index) whose event positions
    increase: those events are in order; the rest were moved."""
    if not pairs:
        return set()
    tails: list[int] = []  # position values
    tail_idx: list[int] = []
    parent = [-1] * len(pairs)
    for i, (_, pos) in enumerate(pairs):
        j = bisect.bisect_left(tails, pos)
        if j == len(tails):
            tails.append(pos)
            tail_idx.append(i)
        else:
            tails[j] = pos
            tail_idx[j] = i
        parent[i] = tail_idx[j - 1] if j > 0 else -1
    out = set()
    k = tail_idx[-1]
    while k >= 0:
        out.add(pairs[k])
        k = parent[k]
    return out
