"""The machine description every benchmark result carries (shared with ``govhub bench``)."""

from hub.bench.machine import cpu_model, machine

__all__ = ["cpu_model", "machine"]
