"""The sample resources shipped in ``schemas/`` (schema + catalogue entry per resource)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import orjson

from hub.catalogue.model import Resource


@dataclass(frozen=True)
class SampleResource:
    resource: Resource
    schema_json: str


def schemas_dir() -> Path:
    env = os.environ.get("GOVHUB_SCHEMAS_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "schemas"


def load_sample(name: str, directory: Path | None = None) -> SampleResource:
    """Load ``<name>.avsc`` and ``<name>.catalogue.json`` (e.g. ``mzj.dibao``)."""
    directory = directory or schemas_dir()
    schema_path = directory / f"{name}.avsc"
    entry_path = directory / f"{name}.catalogue.json"
    for path in (schema_path, entry_path):
        if not path.is_file():
            raise FileNotFoundError(f"sample resource file {path} is missing")
    resource = Resource.model_validate(orjson.loads(entry_path.read_bytes()))
    schema_json = schema_path.read_text(encoding="utf-8")
    schema_fields = {f["name"] for f in orjson.loads(schema_json)["fields"]}
    missing = {f.name for f in resource.fields} ^ schema_fields
    if missing:
        raise ValueError(f"{name}: catalogue and schema disagree on fields {sorted(missing)}")
    return SampleResource(resource, schema_json)
