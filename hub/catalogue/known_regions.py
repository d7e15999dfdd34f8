"""The region codes a hub knows: its party hierarchy plus an optional reference list.

A record's region code must be well formed (12 digits, levels in order) and, when the
publisher is given a :class:`RegionDirectory`, one of the codes in it — so a typo that
still looks like a region code does not route records into nobody's jurisdiction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from hub.controlstate import CompactedTable
from hub.parties.model import Party
from hub.regions import validate_region_code


class RegionDirectory:
    """A set of known 12-digit region codes (统计用区划代码) with optional names."""

    __slots__ = ("_names",)

    def __init__(self, codes: Iterable[str] | dict[str, str] = ()) -> None:
        names = codes if isinstance(codes, dict) else dict.fromkeys(codes, "")
        for code in names:
            validate_region_code(code)
        self._names: dict[str, str] = dict(names)

    @classmethod
    def from_parties(cls, parties: Iterable[Party]) -> RegionDirectory:
        """The region codes of the party hierarchy (departments and grassroots units)."""
        return cls({p.region_code: p.name for p in parties})

    @classmethod
    def from_file(cls, path: Path) -> RegionDirectory:
        """A reference list: one ``code`` or ``code,name`` per line, ``#`` comments."""
        names: dict[str, str] = {}
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            code, _, name = text.partition(",")
            try:
                names[validate_region_code(code.strip())] = name.strip()
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
        return cls(names)

    def __contains__(self, code: object) -> bool:
        return code in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def name(self, code: str) -> str:
        return self._names.get(code, "")

    def union(self, other: RegionDirectory) -> RegionDirectory:
        return RegionDirectory({**other._names, **self._names})


class PartyRegions:
    """The region codes of the live parties table (plus an optional reference list).

    Kept current by the table's listener, so a party registered after start is known at
    once; lookups are one set probe.
    """

    def __init__(self, parties: CompactedTable, reference: RegionDirectory | None = None) -> None:
        self._table = parties
        self._reference = frozenset(reference or ())
        self._codes: frozenset[str] = self._reference
        parties.add_listener(self._refresh)
        self._refresh()

    def _refresh(self, *_: object) -> None:
        codes = {str(row.get("region_code")) for row in self._table.values()}
        self._codes = self._reference | codes

    def __contains__(self, code: object) -> bool:
        return code in self._codes

    def __len__(self) -> int:
        return len(self._codes)
