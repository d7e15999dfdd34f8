#!/usr/bin/env bash
# Installs what GovHub needs on a fresh machine: Debian packages (JDK and Maven for the
# local Kafka, PostgreSQL, wrk), then a virtualenv with the project and its dev extra.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

# Debian packages: a JDK and Maven (required), PostgreSQL (its connector tests) and wrk
# (HTTP benchmarks). The package lists are refreshed once, only when something is missing.
can_apt() { command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; }
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { apt-get update -qq && apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if ((${#need[@]})); then
  if can_apt; then
    echo "bootstrap: installing ${need[*]} from Debian packages" >&2
    apt_install "${need[@]}"
  else
    echo "bootstrap: error: missing ${need[*]}; install a JDK 17+ and Maven" >&2
    exit 1
  fi
fi
if ! command -v wrk >/dev/null 2>&1 && can_apt; then
  apt_install wrk || echo "bootstrap: warning: wrk not installed; HTTP benchmarks need it" >&2
fi
scripts/postgres.sh install ||
  echo "bootstrap: warning: no PostgreSQL server; the PostgreSQL tests will be skipped" >&2
# Prometheus and promtool: the alert-rule tests and the monitoring end-to-end test.
scripts/prometheus.sh install ||
  echo "bootstrap: warning: no Prometheus; the tests in tests/ops that need it will fail" >&2
# docker-compose validates deploy/compose (no Docker engine needed); kubectl (kustomize)
# builds deploy/k8s.
if ! command -v docker-compose >/dev/null 2>&1 && can_apt; then
  apt_install --no-install-recommends docker-compose ||
    echo "bootstrap: warning: docker-compose not installed; the compose test will fail" >&2
fi
# Headless Chromium and CJK fonts: the web console's browser test (tests/e2e/test_console.py)
# drives the system Chromium through Playwright, which never downloads a browser of its own.
if [ ! -x /usr/bin/chromium ] && can_apt; then
  apt_install chromium ||
    echo "bootstrap: warning: chromium not installed; the console browser test will be skipped" >&2
fi
if ! fc-list 2>/dev/null | grep -qi "CJK" && can_apt; then
  apt_install --no-install-recommends fonts-noto-cjk ||
    echo "bootstrap: warning: no CJK fonts; console screenshots will show boxes for Chinese" >&2
fi
command -v kubectl >/dev/null 2>&1 ||
  echo "bootstrap: warning: kubectl not found; the deploy/k8s test will fail (install kubectl)" >&2

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "bootstrap: error: Python 3.11+ is required ($PYTHON is $("$PYTHON" -V 2>&1))" >&2
  exit 1
}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
# Playwright (console browser test) drives the system Chromium; never download browsers.
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$VENV/bin/python" -m pip install -q -e '.[dev]'
touch "$VENV/.govhub-installed"
