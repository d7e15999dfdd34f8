#!/usr/bin/env bash
# Installs what GovHub needs on a fresh machine: a JDK and Maven (for the local Kafka),
# then a virtualenv with the project and its dev extra. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if ((${#need_apt[@]})); then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing ${need_apt[*]} from Debian packages" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: error: missing ${need_apt[*]}; install a JDK 17+ and Maven" >&2
    exit 1
  fi
fi

# PostgreSQL server for the PostgreSQL connector tests (Debian package).
scripts/postgres.sh install ||
  echo "bootstrap: warning: no PostgreSQL server; the PostgreSQL tests will be skipped" >&2

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "bootstrap: error: Python 3.11+ is required ($PYTHON is $("$PYTHON" -V 2>&1))" >&2
  exit 1
}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install -q -e '.[dev]'
touch "$VENV/.govhub-installed"
