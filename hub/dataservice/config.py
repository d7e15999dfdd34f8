"""Configuration of the ``data-service`` role (section ``[data_service]``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

_FIELD = r"^[A-Za-z_][A-Za-z0-9_]*$"


class DataServiceConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8495, ge=0, le=65535, description="0: any free port")
    store_dir: Path | None = Field(
        default=None,
        description="where the materialised views live (default: <state_dir>/dataservice)",
    )
    rebuild_on_start: bool = Field(
        default=False,
        description="discard the local store and rebuild every view from offset 0 at start "
        "(default: resume from the offsets stored with the records)",
    )
    indexes: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="resource code -> fields indexed for filtered listing (the region field "
        "is always indexed)",
    )
    max_batch_keys: int = Field(default=100, ge=1, le=10_000, description="keys per batch call")
    max_page_size: int = Field(default=100, ge=1, le=10_000, description="rows per listing page")
    max_scan_per_page: int = Field(
        default=10_000,
        ge=100,
        le=1_000_000,
        description="index entries one listing page may examine before it returns a cursor",
    )
    daily_quota: int | None = Field(
        default=None,
        ge=1,
        description="calls per subscription per UTC day, counted across every node "
        "(shared in <prefix>_govhub.dataservice-usage; None: no quota)",
    )
    default_rate_limit_per_s: int | None = Field(
        default=None,
        ge=1,
        description="calls per second for subscriptions without their own rate_limit_per_s",
    )
    block_cache_mb: int = Field(
        default=512,
        ge=8,
        le=1_048_576,
        description="RocksDB block cache shared by every view of the node, in MiB: reads "
        "that miss it decompress a block from the page cache (size it near the views' "
        "store size for the fastest lookups)",
    )
    consume_batch: int = Field(default=5000, ge=1, le=100_000)
    auth_threads: int = Field(default=2, ge=1, le=64, description="threads for token hashing")

    @field_validator("indexes")
    @classmethod
    def _index_names(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        import re

        for resource, fields in v.items():
            for name in fields:
                if not re.match(_FIELD, name):
                    raise ValueError(f"indexes.{resource}: {name!r} is not a field name")
        return v
