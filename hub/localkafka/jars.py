"""Fetching Apache Kafka's jars from Maven Central once into a local cache.

The published ``kafka_2.13`` POM brings the broker and its runtime dependencies but no
logging backend, so a second step adds log4j2 and the SLF4J binding that matches the
slf4j version Kafka pulls in. A marker file is written only after both steps succeed; a
cache without it is fetched again, a cache with it never calls Maven.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from hub.localkafka.errors import LocalKafkaError
from hub.localkafka.paths import default_cache_dir
from hub.localkafka.state import locked

DEFAULT_KAFKA_VERSION = "4.3.1"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
FALLBACK_LOG4J_VERSION = "2.24.3"
MARKER = "libs.complete"
MVN_TIMEOUT_S = 1800.0

logger = logging.getLogger(__name__)

_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:[-.][A-Za-z0-9]+)*$")
_SLF4J_API = re.compile(r"^slf4j-api-(\d+)\.[^/]*\.jar$")
_LOG4J = re.compile(r"^log4j-(api|core)-(\d[^/]*)\.jar$")
_HELP_REF = re.compile(r"\s*-> \[Help \d+\]$")
_MAVEN_BOILERPLATE = (
    "To see the full stack trace",
    "Re-run Maven",
    "For more information",
    "[Help ",
)

Dependency = tuple[str, str, str]


def kafka_dir(version: str, cache_dir: Path | None = None) -> Path:
    """The cache folder of one Kafka version."""
    return (cache_dir if cache_dir is not None else default_cache_dir()) / "kafka" / version


def ensure_kafka_jars(version: str, cache_dir: Path | None = None) -> Path:
    """Return the folder holding Kafka ``version``'s runtime jars, fetching them if needed."""
    if not _VERSION.match(version):
        raise LocalKafkaError(
            f"bad Kafka version {version!r}: expected e.g. {DEFAULT_KAFKA_VERSION}"
        )
    home = kafka_dir(version, cache_dir)
    libs = home / "libs"
    if _is_complete(home):
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with locked(home / ".lock"):
        if not _is_complete(home):  # another process may have finished it meanwhile
            _fetch(version, home, libs)
    return libs


def jars_cached(version: str, cache_dir: Path | None = None) -> bool:
    """True when ``ensure_kafka_jars`` would return without calling Maven."""
    return _is_complete(kafka_dir(version, cache_dir))


def _is_complete(home: Path) -> bool:
    marker = home / MARKER
    if not marker.is_file():
        return False
    names = marker.read_text(encoding="utf-8").split()
    return bool(names) and all((home / "libs" / name).is_file() for name in names)


def _fetch(version: str, home: Path, libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError(
            "mvn not found: install Apache Maven 3.8+ (apt-get install maven); "
            f"it fetches the Kafka {version} jars once into {home}"
        )
    logger.info("fetching Apache Kafka %s jars into %s (once; needs Maven Central)", version, libs)
    started = time.monotonic()
    (home / MARKER).unlink(missing_ok=True)
    shutil.rmtree(libs, ignore_errors=True)
    libs.mkdir(parents=True)
    log = home / "mvn.log"
    log.write_text("", encoding="utf-8")
    kafka = [("org.apache.kafka", "kafka_2.13", version)]
    _copy_dependencies(mvn, kafka, home, libs, log, transitive=True)
    _copy_dependencies(mvn, logging_dependencies(libs), home, libs, log, transitive=False)
    jars = sorted(path.name for path in libs.glob("*.jar"))
    (home / MARKER).write_text("\n".join(jars) + "\n", encoding="utf-8")
    logger.info("fetched %d jars in %.1f s", len(jars), time.monotonic() - started)


def logging_dependencies(libs: Path) -> list[Dependency]:
    """log4j2 plus the SLF4J binding matching the slf4j-api jar already in ``libs``."""
    slf4j_major: int | None = None
    log4j: dict[str, str] = {}
    for jar in libs.glob("*.jar"):
        if match := _SLF4J_API.match(jar.name):
            slf4j_major = int(match.group(1))
        elif match := _LOG4J.match(jar.name):
            log4j[match.group(1)] = match.group(2)
    log4j_version = log4j.get("core") or log4j.get("api") or FALLBACK_LOG4J_VERSION
    group = "org.apache.logging.log4j"
    wanted = [
        (group, f"log4j-{part}", log4j_version) for part in ("api", "core") if part not in log4j
    ]
    if slf4j_major is not None:
        binding = "log4j-slf4j-impl" if slf4j_major < 2 else "log4j-slf4j2-impl"
        wanted.append((group, binding, log4j_version))
    return wanted


def render_pom(dependencies: Sequence[Dependency]) -> str:
    """A throw-away POM whose only purpose is to list ``dependencies``."""
    entries = "".join(
        f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></dependency>\n"
        for group, artifact, version in dependencies
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>org.govhub.local</groupId><artifactId>kafka-jars</artifactId>"
        "<version>0</version><packaging>pom</packaging>\n"
        f"  <dependencies>\n{entries}  </dependencies>\n"
        "</project>\n"
    )


def _copy_dependencies(
    mvn: str,
    dependencies: Sequence[Dependency],
    home: Path,
    libs: Path,
    log: Path,
    *,
    transitive: bool,
) -> None:
    if not dependencies:
        return
    pom = home / "pom.xml"
    pom.write_text(render_pom(dependencies), encoding="utf-8")
    command = [
        mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(pom),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
        f"-DexcludeTransitive={'false' if transitive else 'true'}",
    ]  # fmt: skip
    started = time.monotonic()
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        try:
            result = subprocess.run(
                command, cwd=home, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, timeout=MVN_TIMEOUT_S, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired as exc:
            raise LocalKafkaError(
                f"Kafka jar download timed out after {MVN_TIMEOUT_S:.0f} s; see {log}"
            ) from exc
        out.write(f"\n# exit {result.returncode} after {time.monotonic() - started:.1f} s\n")
    if result.returncode != 0:
        raise LocalKafkaError(
            f"Kafka jar download failed (mvn exit {result.returncode}): {_last_error(log)}; "
            f"full output in {log}"
        )


def _last_error(log: Path, lines: int = 2) -> str:
    """The last meaningful lines of Maven's output, joined on one line."""
    kept: list[str] = []
    for raw in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if raw.startswith(("$ ", "# exit")):
            continue
        line = _HELP_REF.sub("", raw.removeprefix("[ERROR]")).strip()
        if line and not line.startswith(_MAVEN_BOILERPLATE):
            kept.append(line)
    return " | ".join(kept[-lines:]) if kept else "no output"
