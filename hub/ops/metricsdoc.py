"""The metrics reference (``docs/metrics.md``), generated from the registered collectors.

Every module of ``hub`` and ``connectors`` is imported, so every metric the code can
export is registered; the document is rendered from the collectors themselves (name,
type, help, labels, buckets) and the module that defines each one. ``--check`` fails
when the committed document differs, so the reference cannot drift from the code.

Labels are the cardinality risk at 10,000 recipients: every label name must appear in
:data:`LABEL_BOUNDS` with the bound of its value set, and none may identify an
individual recipient, party, subscription or record (:data:`UNBOUNDED_LABELS`).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

PACKAGES = ("hub", "connectors")
DOC_PATH = Path("docs/metrics.md")

# Label name -> the set of values it takes and why that set stays small.
LABEL_BOUNDS: dict[str, str] = {
    "resource": "catalogue resources (tens to a few hundred per hub)",
    "tier": "administrative level of the recipient: department, county, street, community "
    "... (under 10)",
    "department": "publishing departments (tens)",
    "reason": "fixed reason codes of the code path (under 30)",
    "stage": "router pipeline stages (6); approval stages of a request (2)",
    "topic": "source topics, one per resource (as `resource`)",
    "suite": "cipher suites (2)",
    "kek_id": "retired KEKs a hub still holds (one or two, during a rotation)",
    "cause": "key rotation causes (a handful)",
    "connector": "configured connector names (one per connector process)",
    "route": "canonical api route templates (about 60), `unmatched` for the rest",
    "method": "HTTP methods (under 10)",
    "status": "HTTP status codes (under 20)",
    "outcome": "fixed outcome codes (under 15)",
    "protocol": "stream protocols: sse, ws, poll (3)",
    "stat": "aggregate over a tier's subscribers: max, mean (2)",
    "state": "subscription states (under 10)",
    "decision": "approval decisions (a handful)",
    "by": "who ended a grant: manager or subscriber (2)",
    "classification": "data classification: general, important, core (3)",
    "share": "share attribute: unconditional, conditional, none (3)",
    "subject_kind": "schema subject kinds (a handful)",
    "level": "compatibility levels (7)",
    "rule": "data quality rule kinds (under 20)",
    "kind": "fixed kind codes (under 20)",
    "result": "fixed result codes (under 10)",
    "operation": "fixed operation names (under 20)",
    "role": "hub roles: api, router, gateway (3)",
    "generation": "Python garbage collector generations (3)",
    "path": "the gateway's request paths for long-polls: lean, aiohttp (2)",
}

# Labels whose values grow with the number of recipients, subscriptions or records.
UNBOUNDED_LABELS = frozenset(
    {
        "recipient",
        "party",
        "subscriber",
        "subscription",
        "client",
        "token",
        "key_id",
        "record_id",
        "region",
        "cursor",
        "partition",
        "offset",
        "user",
        "principal",
    }
)


@dataclass(frozen=True)
class MetricInfo:
    """One exported metric family as a scraper sees it."""

    name: str  # the exposed name: counters end in _total
    type: str
    help: str
    labels: tuple[str, ...]
    module: str
    buckets: tuple[float, ...] = ()

    @property
    def subsystem(self) -> str:
        """``router`` of ``govhub_router_...``; ``runtime`` for the client's own metrics."""
        if not self.name.startswith("govhub_"):
            return "runtime"
        return self.name.split("_")[1]


def import_all(packages: Sequence[str] = PACKAGES) -> list[ModuleType]:
    """Import every module of ``packages`` so that module-level metrics register."""
    modules = []
    for package_name in packages:
        package = importlib.import_module(package_name)
        modules.append(package)
        for found in pkgutil.walk_packages(package.__path__, package_name + "."):
            modules.append(importlib.import_module(found.name))
    return modules


def _exposed_name(metric: MetricWrapperBase) -> str:
    name = str(metric._name)
    return f"{name}_total" if metric._type == "counter" else name


def _buckets(metric: MetricWrapperBase) -> tuple[float, ...]:
    upper = getattr(metric, "_upper_bounds", None)
    return tuple(b for b in upper if b != float("inf")) if upper else ()


def _defining_module(metric: MetricWrapperBase, held_by: list[ModuleType]) -> ModuleType:
    """The module whose source names the metric (others only import it)."""
    quoted = (f'"{metric._name}', f"'{metric._name}")
    for module in held_by:
        try:
            source = inspect.getsource(module)
        except (OSError, TypeError):
            continue
        if any(q in source for q in quoted):
            return module
    return held_by[0]


def collect_metrics(modules: Iterable[ModuleType] | None = None) -> list[MetricInfo]:
    """Every metric registered in the default registry, with the module defining it."""
    found: dict[str, MetricInfo] = {}
    holders: dict[int, tuple[MetricWrapperBase, list[ModuleType]]] = {}
    for module in modules if modules is not None else import_all():
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase) and value in REGISTRY._collector_to_names:
                holders.setdefault(id(value), (value, []))[1].append(module)
    for metric, held_by in holders.values():
        found[_exposed_name(metric)] = MetricInfo(
            name=_exposed_name(metric),
            type=str(metric._type),
            help=str(metric._documentation),
            labels=tuple(metric._labelnames),
            module=_defining_module(metric, held_by).__name__,
            buckets=_buckets(metric),
        )
    # Collectors that are not module-level metric objects (the client's process and
    # platform collectors, custom collectors): described by what they expose.
    for collector in list(REGISTRY._collector_to_names):
        if isinstance(collector, MetricWrapperBase):
            continue
        describe = getattr(collector, "describe", None)
        families = describe() if describe is not None else collector.collect()
        for family in families:
            name = f"{family.name}_total" if family.type == "counter" else family.name
            labels = sorted({k for s in family.samples for k in s.labels})
            found.setdefault(
                name,
                MetricInfo(name, family.type, family.documentation, tuple(labels), "runtime"),
            )
    return sorted(found.values(), key=lambda m: (m.subsystem == "runtime", m.name))


def label_problems(metrics: Iterable[MetricInfo]) -> list[str]:
    """Labels that are unbounded or have no documented bound (empty when all is well)."""
    problems = []
    for metric in metrics:
        if metric.subsystem == "runtime":
            continue
        for label in metric.labels:
            if label in UNBOUNDED_LABELS:
                problems.append(
                    f"{metric.name}: label {label!r} grows with the recipients; aggregate "
                    "by tier, resource or reason instead"
                )
            elif label not in LABEL_BOUNDS:
                problems.append(
                    f"{metric.name}: label {label!r} has no documented bound; add it to "
                    "hub.ops.metricsdoc.LABEL_BOUNDS with the size of its value set"
                )
    return problems


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_markdown(metrics: Sequence[MetricInfo]) -> str:
    lines = [
        "# Metrics reference",
        "",
        "<!-- Generated by `python -m hub.ops.metricsdoc` from the code; do not edit. "
        "`make metrics-doc` rewrites it, the tests fail when it is stale. -->",
        "",
        "Every metric the hub's roles and connectors export at `/metrics`, generated from the",
        "collectors the code registers. Names follow `govhub_<subsystem>_<thing>_<unit>`.",
        "Counters are listed with their exposed `_total` name; a histogram `h` is exposed as",
        "`h_bucket{le=...}`, `h_sum` and `h_count`.",
        "",
        "## Label cardinality",
        "",
        "No label identifies an individual recipient, party, subscription or record, so the",
        "number of series does not grow with the number of recipients (10,000 and more):",
        "recipients are counted by `tier`, data by `resource`. Every label in use and the",
        "bound of its values:",
        "",
        "| label | values |",
        "|---|---|",
    ]
    used = sorted({label for m in metrics if m.subsystem != "runtime" for label in m.labels})
    for label in used:
        lines.append(f"| `{label}` | {_cell(LABEL_BOUNDS.get(label, 'UNDOCUMENTED'))} |")
    subsystems: dict[str, list[MetricInfo]] = {}
    for metric in metrics:
        subsystems.setdefault(metric.subsystem, []).append(metric)
    for subsystem, members in subsystems.items():
        title = "Python runtime (prometheus-client)" if subsystem == "runtime" else subsystem
        lines += ["", f"## {title}", "", "| metric | type | labels | meaning | defined in |"]
        lines.append("|---|---|---|---|---|")
        for m in members:
            labels = ", ".join(f"`{label}`" for label in m.labels) or "–"
            meaning = _cell(m.help)
            if m.buckets:
                meaning += " (buckets: " + ", ".join(f"{b:g}" for b in m.buckets) + ")"
            module = f"`{m.module}`" if m.module != "runtime" else "prometheus-client"
            lines.append(f"| `{m.name}` | {m.type} | {labels} | {meaning} | {module} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hub.ops.metricsdoc", description="write or check docs/metrics.md"
    )
    parser.add_argument("--output", type=Path, default=DOC_PATH)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the document is not up to date"
    )
    args = parser.parse_args(argv)
    metrics = collect_metrics()
    problems = label_problems(metrics)
    if problems:
        print("metrics with unbounded or undocumented labels:", *problems, sep="\n  ")
        return 1
    text = render_markdown(metrics)
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run `make metrics-doc`", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}: {len(metrics)} metrics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
