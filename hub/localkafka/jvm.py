"""Finding a Java runtime that can run Kafka 4 (Java 17 or newer)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

from hub.localkafka.errors import LocalKafkaError

MIN_JAVA = 17
JAVA_MISSING = "java not found: install a JDK 17+ (apt-get install openjdk-17-jre-headless)"

_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_major_version(version_output: str) -> int | None:
    """The major version from ``java -version`` output ("1.8.0_x" is 8, "17.0.2" is 17)."""
    match = _VERSION.search(version_output)
    if match is None:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2) is not None:
        return int(match.group(2))
    return major


@functools.cache
def find_java() -> str:
    """Path of the ``java`` launcher (``$JAVA_HOME/bin/java`` first), checked to be 17+."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home, "bin", "java") if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if java is None:
        raise LocalKafkaError(JAVA_MISSING)
    try:
        probe = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LocalKafkaError(f"{java} -version failed ({exc}): {JAVA_MISSING}") from exc
    major = java_major_version(probe.stderr + probe.stdout)
    if major is None or major < MIN_JAVA:
        found = f"Java {major}" if major is not None else "an unknown Java"
        raise LocalKafkaError(
            f"{java} is {found}; Kafka 4 needs Java {MIN_JAVA}+: install a JDK 17+ "
            "(apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    return java


def heap_options(heap_mb: int) -> list[str]:
    """The JVM options of Kafka's own start scripts, with our heap size."""
    return [
        f"-Xms{heap_mb}m",
        f"-Xmx{heap_mb}m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
    ]


def classpath(libs: Path) -> str:
    """A classpath wildcard that the JVM expands itself (no shell involved)."""
    return str(libs / "*")
