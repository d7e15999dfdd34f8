"""The sample resources shipped in ``schemas/`` (schema + catalogue entry per resource).

Each resource is a pair ``<dept>.<code>.avsc`` and ``<dept>.<code>.catalogue.json``; the
entry is bound to its schema on load (:func:`hub.catalogue.binding.bind_schema`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from hub.catalogue.binding import CatalogueValidationError, bind_schema
from hub.catalogue.model import Resource

ENTRY_SUFFIX = ".catalogue.json"


@dataclass(frozen=True)
class SampleResource:
    resource: Resource
    schema_json: str


def schemas_dir() -> Path:
    env = os.environ.get("GOVHUB_SCHEMAS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "schemas"


def sample_names(directory: Path | None = None) -> list[str]:
    """Names of the sample resources in ``directory`` (``mzj.dibao``, ...)."""
    directory = directory or schemas_dir()
    return sorted(p.name.removesuffix(ENTRY_SUFFIX) for p in directory.glob(f"*{ENTRY_SUFFIX}"))


def load_resource(schema_path: Path, entry_path: Path) -> SampleResource:
    """A catalogue entry and its Avro schema from two files, checked against each other."""
    for path in (schema_path, entry_path):
        if not path.is_file():
            raise FileNotFoundError(f"resource file {path} is missing")
    schema_json = schema_path.read_text(encoding="utf-8")
    try:
        entry = orjson.loads(entry_path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise CatalogueValidationError([f"{entry_path}: not JSON: {exc}"]) from None
    if not isinstance(entry, dict):
        raise CatalogueValidationError([f"{entry_path}: a catalogue entry is a JSON object"])
    try:
        resource = bind_schema(entry, schema_json)
    except CatalogueValidationError as exc:
        raise CatalogueValidationError([f"{entry_path.name}: {p}" for p in exc.problems]) from None
    return SampleResource(resource, schema_json)


def load_sample(name: str, directory: Path | None = None) -> SampleResource:
    """Load ``<name>.avsc`` and ``<name>.catalogue.json`` (e.g. ``mzj.dibao``)."""
    directory = directory or schemas_dir()
    return load_resource(directory / f"{name}.avsc", directory / f"{name}{ENTRY_SUFFIX}")
