"""The console's message catalogue (``messages.json``): Chinese first, English second.

Every text the console shows comes from the one catalogue file, including the translation
of the errors the shared validation raises: pydantic errors by their type (so a form
error reads the same whichever model raised it) and :class:`LifecycleError` messages by
pattern, each naming the form field it belongs to.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pydantic import ValidationError

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
FORM_LEVEL = ""  # the field key of errors that belong to the whole form


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    field: str
    text: dict[str, str]


@dataclass(frozen=True, slots=True)
class Catalogue:
    text: dict[str, dict[str, str]]
    validation: dict[str, dict[str, str]]
    value_errors: tuple[_Pattern, ...]
    fields: dict[str, dict[str, str]]
    lifecycle_errors: tuple[_Pattern, ...]


def _patterns(rows: list[dict[str, str]]) -> tuple[_Pattern, ...]:
    return tuple(
        _Pattern(re.compile(r["pattern"]), r.get("field", ""), {k: r[k] for k in LANGUAGES})
        for r in rows
    )


@functools.cache
def catalogue() -> Catalogue:
    raw = json.loads(resources.files("hub.console").joinpath("messages.json").read_text("utf-8"))
    for key, entry in raw["text"].items():
        missing = [lang for lang in LANGUAGES if lang not in entry]
        if missing:
            raise ValueError(f"messages.json: text {key!r} lacks {missing}")
    return Catalogue(
        raw["text"],
        raw["validation"],
        _patterns(raw["value_errors"]),
        raw["fields"],
        _patterns(raw["lifecycle_errors"]),
    )


def pick_language(query: str | None, cookie: str | None, accept: str | None) -> str:
    """``?lang=`` first, then the language cookie; Chinese unless English is asked for."""
    for choice in (query, cookie):
        if choice in LANGUAGES:
            return choice
    if accept and accept.lower().startswith("en"):
        return "en"
    return DEFAULT_LANGUAGE


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
        self._catalogue = catalogue()

    def __call__(self, key: str, **values: Any) -> str:
        entry = self._catalogue.text.get(key)
        if entry is None:
            return key
        text = entry[self.lang]
        return text.format(**values) if values else text

    def maybe(self, prefix: str, value: str) -> str:
        """The label of an enum value (``status.active``), or the value itself."""
        entry = self._catalogue.text.get(f"{prefix}.{value}")
        return value if entry is None else entry[self.lang]

    def field(self, name: str) -> str:
        entry = self._catalogue.fields.get(name)
        return name if entry is None else entry[self.lang]

    # -- errors --------------------------------------------------------------------------------
    def validation_errors(self, exc: ValidationError) -> dict[str, str]:
        """One message per form field (the first error of each), from a pydantic error."""
        out: dict[str, str] = {}
        for err in exc.errors():
            loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
            # Nested policy errors belong to the policy's own field (policy.masking → masking).
            if loc and loc[0] == "policy":
                loc = loc[1:]
            where = loc[0] if loc else FORM_LEVEL
            if where not in out:
                out[where] = self._one(err)
        return out

    def message(self, kind: str, msg: str = "") -> str:
        """A validation message of ``kind`` (``missing``, ``other`` ...)."""
        return self._one({"type": kind, "msg": msg, "ctx": {}})

    def _one(self, err: Any) -> str:
        kind = str(err["type"])
        ctx = {k: str(v) for k, v in (err.get("ctx") or {}).items()}
        message = str(err["msg"]).removeprefix("Value error, ")
        if kind == "value_error":
            for pattern in self._catalogue.value_errors:
                if pattern.regex.search(message):
                    return pattern.text[self.lang]
        template = self._catalogue.validation.get(kind) or self._catalogue.validation["other"]
        try:
            return template[self.lang].format(msg=message, **ctx)
        except (KeyError, IndexError):
            return self._catalogue.validation["other"][self.lang].format(msg=message)

    def lifecycle_error(self, message: str) -> tuple[str, str]:
        """(form field, translated message) of a lifecycle refusal; unknown messages keep
        their English text and belong to the whole form."""
        for pattern in self._catalogue.lifecycle_errors:
            found = pattern.regex.search(message)
            if found:
                groups = [self._status_word(g) for g in found.groups()]
                return pattern.field, pattern.text[self.lang].format(*groups)
        return FORM_LEVEL, message

    def _status_word(self, word: str) -> str:
        entry = self._catalogue.text.get(f"status.{word}")
        return word if entry is None else entry[self.lang]
