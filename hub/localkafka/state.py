"""What a state folder remembers between runs: cluster id, layout and Kafka version."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from hub.localkafka.config import ClusterLayout
from hub.localkafka.errors import LocalKafkaError

CLUSTER_FILE = "cluster.json"


@dataclass(frozen=True)
class ClusterRecord:
    """Written at the first ``up``; formatted storage is only valid for this cluster id."""

    cluster_id: str
    nodes: int
    base_port: int
    kafka_version: str
    metrics_port: int | None = None  # JMX exporter of node 0 (node i: + i); None: off
    security: str = "plaintext"  # "plaintext", "sasl" or "sasl_ssl" (hub.localkafka.security)

    @property
    def layout(self) -> ClusterLayout:
        return ClusterLayout(self.nodes, self.base_port)


def load_record(state_dir: Path) -> ClusterRecord | None:
    path = state_dir / CLUSTER_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return ClusterRecord(
            cluster_id=str(data["cluster_id"]),
            nodes=int(data["nodes"]),
            base_port=int(data["base_port"]),
            kafka_version=str(data["kafka_version"]),
            metrics_port=int(data["metrics_port"]) if data.get("metrics_port") else None,
            security=str(data.get("security", "plaintext")),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LocalKafkaError(
            f"{path} is unreadable ({exc}): remove the folder {state_dir} to start afresh"
        ) from exc


def save_record(state_dir: Path, record: ClusterRecord) -> None:
    path = state_dir / CLUSTER_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
