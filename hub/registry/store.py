"""The schema registry: reads from the materialised index, writes to the registry log.

Ids derive from the schema (``identity.py``), so any replica registers a schema under the
same id without coordination. Subject versions are claimed on the single-partition log,
whose total order decides every race (``index.py``; the reasoning is in docs/registry.md):

1. take one snapshot of the subject; if the schema is a live version already, that's it;
2. check compatibility against the snapshot's live versions;
3. if the schema text is new, write it and start over (reading it back moved the view);
4. claim the snapshot's next version with a record of one's own and read the log back;
5. if the slot's first claim is ours (or a concurrent twin's for the same schema), done;
   otherwise withdraw the losing claim and start over: the view now holds the winner, so
   the next attempt claims past it and re-checks compatibility against it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from hub.registry import metrics
from hub.registry.compatibility import (
    DEFAULT_LEVEL,
    Compatibility,
    incompatibilities,
    versions_to_check,
)
from hub.registry.errors import (
    IncompatibleSchema,
    InvalidSchema,
    InvalidVersion,
    RegistryError,
    RegistryUnavailable,
    SchemaNotFound,
    SubjectConfigNotFound,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    VersionNotFound,
    VersionNotSoftDeleted,
    VersionSoftDeleted,
)
from hub.registry.identity import SchemaIdentity, identify
from hub.registry.index import RegistryIndex, SubjectVersion
from hub.registry.log import RegistryLog
from hub.registry.records import LogTable
from hub.registry.schemas import AvroCodec

__all__ = [
    "Registration",
    "SchemaNotFound",
    "SchemaRegistry",
    "SubjectNotFound",
    "SubjectVersion",
    "parse_version",
]

MAX_VERSION = 2**31 - 1
_VERSION = re.compile(r"-?[0-9]{1,10}")


def parse_version(spec: int | str) -> int | None:
    """A version number, or ``None`` for the latest (``"latest"`` or ``-1``)."""
    if spec == "latest":
        return None
    number = 0 if isinstance(spec, str) and not _VERSION.fullmatch(spec) else int(spec)
    if number == -1:
        return None
    if not 1 <= number <= MAX_VERSION:
        raise InvalidVersion(
            f"The specified version '{spec}' is not a valid version id. "
            f'Allowed values are between [1, {MAX_VERSION}] and the string "latest"'
        )
    return number


@dataclass(frozen=True, slots=True)
class Registration:
    subject: str
    version: int
    schema_id: int
    created: bool  # False when the schema already was a live version of the subject


class SchemaRegistry:
    MAX_CLAIM_ATTEMPTS = 64

    def __init__(self, table: LogTable, timeout: float = 10.0) -> None:
        self._index = RegistryIndex()
        self._index.attach(table)
        self._log = RegistryLog(table, self._index, timeout)
        self._codecs: dict[int, AvroCodec] = {}
        self._lock = threading.Lock()
        self._subject_locks: dict[str, threading.Lock] = {}
        metrics.track_sizes(self._index.schema_count, self._index.subject_count)

    # -- schemas by id ---------------------------------------------------------------------
    def schema(self, schema_id: int) -> str:
        form = self._index.schema(schema_id)
        if form is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return form

    def codec(self, schema_id: int) -> AvroCodec:
        codec = self._codecs.get(schema_id)
        if codec is None:
            codec = AvroCodec(self.schema(schema_id))
            with self._lock:
                codec = self._codecs.setdefault(schema_id, codec)
        return codec

    def usages(self, schema_id: int, deleted: bool = False) -> list[tuple[str, int]]:
        """(subject, version) pairs that hold ``schema_id``."""
        self.schema(schema_id)
        return self._index.usages(schema_id, deleted)

    def register_schema(self, schema: str) -> int:
        """Store ``schema`` without a subject (the router's view schemas); idempotent."""
        identity = identify(schema)
        self._log.store_schema(identity)
        return identity.schema_id

    # -- subjects and versions -------------------------------------------------------------
    def subjects(self, deleted: bool = False) -> list[str]:
        return self._index.subjects(deleted)

    def version_numbers(self, subject: str, deleted: bool = False) -> list[int]:
        numbers = self._index.versions(subject, deleted)
        if not numbers:
            raise SubjectNotFound(f"Subject '{subject}' not found.")
        return list(numbers)

    def versions(self, subject: str, deleted: bool = False) -> list[SubjectVersion]:
        numbers = self._index.versions(subject, deleted)
        found = (self._index.version(subject, v, deleted) for v in numbers)
        return [sv for sv in found if sv is not None]

    def version(self, subject: str, version: int | str, deleted: bool = False) -> SubjectVersion:
        number = parse_version(version)
        if not self._index.versions(subject, deleted):
            raise SubjectNotFound(f"Subject '{subject}' not found.")
        found = (
            self._index.latest(subject, deleted)
            if number is None
            else self._index.version(subject, number, deleted)
        )
        if found is None:
            raise VersionNotFound(f"Version {version} not found.")
        return found

    def lookup(self, subject: str, schema: str, deleted: bool = False) -> SubjectVersion:
        """The version of ``subject`` that holds ``schema`` (the latest, if several)."""
        identity = identify(schema)
        if not self._index.versions(subject, deleted):
            raise SubjectNotFound(f"Subject '{subject}' not found.")
        number = self._index.find(subject, identity.schema_id, deleted)
        found = None if number is None else self._index.version(subject, number, True)
        if found is None:
            raise SchemaNotFound("Schema not found")
        return found

    def registered(self, subject: str, schema: str) -> Registration | None:
        """The registration of an already-live schema, without touching Kafka."""
        identity = identify(schema)
        number = self._index.find(subject, identity.schema_id)
        if number is None:
            return None
        metrics.REGISTRATIONS.labels("existing").inc()
        return Registration(subject, number, identity.schema_id, False)

    def register(self, subject: str, schema: str) -> int:
        """Register ``schema`` under ``subject`` and return its id; idempotent."""
        return self.register_version(subject, schema).schema_id

    def register_version(self, subject: str, schema: str) -> Registration:
        started = time.perf_counter()
        try:
            identity = identify(schema)
            with self._subject_lock(subject):
                registration = self._register(subject, identity)
        except IncompatibleSchema:
            metrics.REGISTRATIONS.labels("incompatible").inc()
            raise
        except InvalidSchema:
            metrics.REGISTRATIONS.labels("invalid").inc()
            raise
        except RegistryError:
            metrics.REGISTRATIONS.labels("error").inc()
            raise
        metrics.REGISTRATIONS.labels("new-version" if registration.created else "existing").inc()
        metrics.REGISTRATION_SECONDS.observe(time.perf_counter() - started)
        return registration

    def _register(self, subject: str, identity: SchemaIdentity) -> Registration:
        schema_id = identity.schema_id
        for _ in range(self.MAX_CLAIM_ATTEMPTS):
            plan = self._index.plan(subject, schema_id)
            if plan.existing is not None:
                return Registration(subject, plan.existing, schema_id, False)
            self._require_compatible(subject, identity.form, plan.live)
            if self._log.store_schema(identity):
                continue  # reading the schema back moved the view on: plan again
            version = plan.next_version
            writer = self._log.claim(subject, version, schema_id)
            holder = self._index.winner(subject, version)
            if holder is not None and holder[1] == schema_id:
                if holder[0] != writer:  # a concurrent twin registered the same schema
                    self._log.withdraw(subject, version, writer)
                return Registration(subject, version, schema_id, holder[0] == writer)
            self._log.withdraw(subject, version, writer)
            metrics.CLAIMS_LOST.inc()
        raise RegistryUnavailable(
            f"could not claim a version of '{subject}' in {self.MAX_CLAIM_ATTEMPTS} attempts"
        )

    def _subject_lock(self, subject: str) -> threading.Lock:
        # One claim per subject at a time from this replica: races remain only between
        # replicas, so a writer rarely needs more than one retry.
        with self._lock:
            return self._subject_locks.setdefault(subject, threading.Lock())

    # -- compatibility ---------------------------------------------------------------------
    def _require_compatible(self, subject: str, form: str, live: Sequence[tuple[int, str]]) -> None:
        level = self.effective_level(subject)
        problems = self._decide(form, versions_to_check(live, level), level)
        if problems:
            raise IncompatibleSchema(
                "Schema being registered is incompatible with an earlier schema for subject "
                f'"{subject}", details: [{"; ".join(problems)}]',
                problems,
            )

    def check_compatibility(
        self, subject: str, schema: str, version: int | str | None = None
    ) -> list[str]:
        """Why ``schema`` is not compatible with ``version`` of ``subject`` (``None`` or
        ``"latest"``: the versions the subject's level compares with); empty if it is."""
        identity = identify(schema)
        level = self.effective_level(subject)
        if version is None or parse_version(version) is None:
            previous = versions_to_check(self._index.live_forms(subject), level)
        else:
            found = self.version(subject, version)
            previous = [(found.version, found.schema)]
        return self._decide(identity.form, previous, level)

    @staticmethod
    def _decide(form: str, previous: Sequence[tuple[int, str]], level: Compatibility) -> list[str]:
        problems = incompatibilities(form, previous, level)
        if previous and level is not Compatibility.NONE:
            result = "incompatible" if problems else "compatible"
            metrics.COMPATIBILITY_CHECKS.labels(result).inc()
        return problems

    # -- configuration ---------------------------------------------------------------------
    def effective_level(self, subject: str) -> Compatibility:
        return self._index.config(subject) or self._index.config(None) or DEFAULT_LEVEL

    def get_config(
        self, subject: str | None = None, default_to_global: bool = False
    ) -> Compatibility:
        if subject is None:
            return self._index.config(None) or DEFAULT_LEVEL
        level = self._index.config(subject)
        if level is None:
            if default_to_global:
                return self._index.config(None) or DEFAULT_LEVEL
            raise SubjectConfigNotFound(
                f"Subject '{subject}' does not have subject-level compatibility configured"
            )
        return level

    def set_config(self, subject: str | None, level: Compatibility) -> Compatibility:
        self._log.set_level(subject, level)
        return level

    def delete_config(self, subject: str | None = None) -> Compatibility:
        """Remove a subject's level (or reset the global one); returns the level removed."""
        previous = self.get_config(subject)
        self._log.set_level(subject, None)
        return previous

    # -- deletion --------------------------------------------------------------------------
    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        every = self._index.versions(subject, deleted=True)
        live = self._index.versions(subject)
        if not every:
            raise SubjectNotFound(f"Subject '{subject}' not found.")
        if permanent:
            if live:
                raise SubjectNotSoftDeleted(
                    f"Subject '{subject}' was not deleted first before being permanently deleted"
                )
            for version in every:
                self._log.erase(subject, version)
            if self._index.config(subject) is not None:
                self.delete_config(subject)
            return list(every)
        if not live:
            raise SubjectSoftDeleted(
                f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
            )
        for version in live:
            self._log.mark_deleted(subject, version)
        return list(live)

    def delete_version(self, subject: str, version: int | str, permanent: bool = False) -> int:
        number = parse_version(version)
        every = self._index.versions(subject, deleted=True)
        if not every:
            raise SubjectNotFound(f"Subject '{subject}' not found.")
        if number is None:
            candidates = every if permanent else self._index.versions(subject)
            if not candidates:
                raise VersionNotFound(f"Version {version} not found.")
            number = candidates[-1]
        found = self._index.version(subject, number, deleted=True)
        if found is None:
            raise VersionNotFound(f"Version {version} not found.")
        if permanent:
            if not found.deleted:
                raise VersionNotSoftDeleted(
                    f"Subject '{subject}' Version {number} was not deleted first before being "
                    "permanently deleted"
                )
            self._log.erase(subject, number)
        elif found.deleted:
            raise VersionSoftDeleted(
                f"Subject '{subject}' Version {number} was soft deleted. "
                "Set permanent=true to delete permanently"
            )
        else:
            self._log.mark_deleted(subject, number)
        return number
