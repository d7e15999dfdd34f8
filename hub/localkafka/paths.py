"""Where the local Kafka keeps its state and its jar cache."""

from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_ENV = "GOVHUB_STATE_DIR"
CACHE_DIR_ENV = "GOVHUB_CACHE_DIR"


def default_state_dir() -> Path:
    """The GovHub state folder: ``$GOVHUB_STATE_DIR``, else ``./.govhub``."""
    configured = os.environ.get(STATE_DIR_ENV)
    return Path(configured) if configured else Path.cwd() / ".govhub"


def kafka_state_dir(state_dir: Path | None = None) -> Path:
    """The local Kafka's own folder inside the GovHub state folder."""
    return (state_dir if state_dir is not None else default_state_dir()) / "kafka"


def default_cache_dir() -> Path:
    """The download cache: ``$GOVHUB_CACHE_DIR``, else ``~/.cache/govhub``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "govhub"
