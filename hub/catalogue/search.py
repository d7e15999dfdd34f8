"""Filtering and Chinese full-text search over the catalogue, without a word segmenter.

Chinese text has no spaces, so words are not known; overlapping character bigrams
(``低保救助`` → 低保, 保救, 救助) match any word a query contains, at the cost of a few
spurious pairs that ranking pushes down. Latin words and digit runs are whole tokens.
A match scores the weight of the field it occurs in (name above item titles above
summary and descriptions) times the token's rarity (IDF); a resource must contain at
least half of the query's tokens. The whole query inside the name, or equal to an item's
title, adds a bonus.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from hub.catalogue.model import (
    Classification,
    OpenAttribute,
    PersonalTag,
    Resource,
    ResourceStatus,
    ShareAttribute,
)

_RUNS = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[a-z0-9]+")

# How much a match counts, by where it is found.
WEIGHTS = {"name": 5.0, "code": 4.0, "title": 3.0, "department": 2.0, "summary": 1.5, "text": 1.0}
PHRASE_BONUS = 10.0  # the whole query inside the resource name
TITLE_BONUS = 4.0  # the whole query is exactly an information item's title


def tokens(text: str) -> list[str]:
    """Bigrams of Chinese runs (a lone character stays a unigram), Latin/digit words."""
    out: list[str] = []
    for run in _RUNS.findall(unicodedata.normalize("NFKC", text).lower()):
        if run.isascii() or len(run) == 1:
            out.append(run)
        else:
            out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out


def _normal(text: str) -> str:
    return unicodedata.normalize("NFKC", text).lower()


def _documents(resource: Resource) -> dict[str, str]:
    return {
        "name": resource.name,
        "code": f"{resource.code} {resource.department}",
        "title": " ".join(f.title for f in resource.fields),
        "department": resource.department_name,
        "summary": resource.summary,
        "text": " ".join(
            [resource.share_conditions, *(f"{f.name} {f.description}" for f in resource.fields)]
        ),
    }


@dataclass(frozen=True, slots=True)
class Hit:
    resource: Resource
    score: float


@dataclass(frozen=True, slots=True)
class Filters:
    """Exact filters; ``None`` means any."""

    department: str | None = None
    tag: PersonalTag | None = None
    classification: Classification | None = None
    share: ShareAttribute | None = None
    open_attribute: OpenAttribute | None = None
    status: ResourceStatus | None = None

    def accepts(self, resource: Resource) -> bool:
        return (
            (self.department is None or resource.department == self.department)
            and (self.tag is None or self.tag in resource.personal_fields().values())
            and (self.classification is None or resource.classification is self.classification)
            and (self.share is None or resource.share is self.share)
            and (self.open_attribute is None or resource.open_attribute is self.open_attribute)
            and (self.status is None or resource.status is self.status)
        )


class CatalogueIndex:
    """An inverted index of bigrams over a catalogue snapshot; build once per change."""

    def __init__(self, resources: Iterable[Resource]) -> None:
        self._resources = {r.code: r for r in sorted(resources, key=lambda r: r.code)}
        self._names = {code: _normal(r.name) for code, r in self._resources.items()}
        self._titles = {
            code: frozenset(_normal(f.title) for f in r.fields)
            for code, r in self._resources.items()
        }
        self._postings: dict[str, dict[str, float]] = {}
        for code, resource in self._resources.items():
            for where, text in _documents(resource).items():
                weight = WEIGHTS[where]
                for token in set(tokens(text)):
                    posting = self._postings.setdefault(token, {})
                    posting[code] = max(posting.get(code, 0.0), weight)

    def __len__(self) -> int:
        return len(self._resources)

    def get(self, code: str) -> Resource | None:
        return self._resources.get(code)

    def find(self, filters: Filters = Filters(), query: str = "") -> list[Hit]:
        """Resources that pass ``filters``; with a ``query``, only matches, best first."""
        if not query.strip():
            return [Hit(r, 0.0) for r in self._resources.values() if filters.accepts(r)]
        wanted = list(dict.fromkeys(tokens(query)))
        if not wanted:
            return []
        total = len(self._resources)
        scores: dict[str, float] = {}
        matched: dict[str, int] = {}
        for token in wanted:
            posting = self._postings.get(token, {})
            idf = math.log(1.0 + total / (1 + len(posting)))
            for code, weight in posting.items():
                scores[code] = scores.get(code, 0.0) + weight * idf
                matched[code] = matched.get(code, 0) + 1
        phrase = _normal(query.strip())
        needed = math.ceil(len(wanted) / 2)
        hits = []
        for code, score in scores.items():
            resource = self._resources[code]
            if matched[code] < needed or not filters.accepts(resource):
                continue
            coverage = matched[code] / len(wanted)
            bonus = PHRASE_BONUS if phrase in self._names[code] else 0.0
            bonus += TITLE_BONUS if phrase in self._titles[code] else 0.0
            hits.append(Hit(resource, round(score * coverage + bonus, 3)))
        hits.sort(key=lambda h: (-h.score, h.resource.code))
        return hits
