"""Finding the real tools the operations tests drive, and small helpers around them.

Prometheus and promtool come from Debian's `prometheus` package, which
`scripts/bootstrap.sh` installs (`scripts/prometheus.sh install`); a test that needs a
tool and does not find it fails and says how to install it, it never skips.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS_DIR = DEPLOY / "prometheus"

INSTALL_HINTS = {
    "prometheus": "run scripts/prometheus.sh install (Debian package `prometheus`)",
    "promtool": "run scripts/prometheus.sh install (Debian package `prometheus`)",
    "docker-compose": "apt-get install --no-install-recommends docker-compose",
    "kubectl": "install kubectl (it carries kustomize)",
}


def require_tool(name: str) -> str:
    """The path of ``name`` on PATH; fails the test with the install hint otherwise."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: {INSTALL_HINTS.get(name, 'install it')}", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""  # nothing answers (yet)


def exposed_names(text: str) -> dict[str, int]:
    """Every series name a scraper can select in a /metrics text, with its sample count.

    Families without samples (a labelled metric nobody has touched yet) still count: their
    HELP/TYPE lines say what the code exports.
    """
    names: dict[str, int] = {}
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("", "_sum", "_count"),
        }.get(family.type, ("",))
        for suffix in suffixes:
            names.setdefault(family.name + suffix, 0)
        for sample in family.samples:
            names[sample.name] = names.get(sample.name, 0) + 1
    return names


# -- PromQL: the metric names an expression selects -----------------------------------------

_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
     "bool", "offset", "inf", "nan", "atan2"}
)  # fmt: skip
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPINGS = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_OFFSET = re.compile(r"\boffset\s+-?\d+[a-z]+", re.IGNORECASE)
_VARIABLES = re.compile(r"\$\{?\w+\}?")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names selected by a PromQL expression (functions and keywords removed)."""
    text = _VARIABLES.sub(" ", _STRINGS.sub('""', expr))
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _GROUPINGS.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        rest = text[match.end() :].lstrip()
        word = match.group(0)
        if rest.startswith("(") or word.lower() in _KEYWORDS:
            continue
        if re.fullmatch(r"\d+[a-z]*", word):
            continue
        names.add(word)
    return names


# -- Prometheus HTTP API ----------------------------------------------------------------------


class PrometheusApi:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.url}{path}?{query}", timeout=10)
        document = json.loads(body)
        if status != 200 or document.get("status") != "success":
            raise AssertionError(f"{path} {params}: HTTP {status}: {document}")
        return document["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        result = data["result"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    def value(self, expr: str) -> float | None:
        """The single value of ``expr`` (None when it returns nothing)."""
        result = self.query(expr)
        if not result:
            return None
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])
