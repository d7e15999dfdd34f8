#!/usr/bin/env bash
# PostgreSQL for the PostgreSQL connectors' tests and benchmarks, from Debian's packages.
#
#   scripts/postgres.sh install          install the server if missing (as root, apt-get)
#   scripts/postgres.sh bindir           print the folder holding initdb and pg_ctl
#   scripts/postgres.sh start DIR PORT   a private cluster in DIR on 127.0.0.1:PORT (trust auth)
#   scripts/postgres.sh stop DIR         stop that cluster
#
# The test fixture (tests/pg_fixtures.py) starts its own cluster per session; start/stop are
# for trying the connectors by hand. initdb refuses to run as root, so as root the cluster
# belongs to the `postgres` OS user that the Debian package creates.
set -euo pipefail

bindir() {
  local found=""
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    found=$(pg_config --bindir)
  else
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
      [ -x "$dir/initdb" ] && found=$dir
    done
  fi
  [ -n "$found" ] || return 1
  echo "$found"
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

install() {
  if bindir >/dev/null; then
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "postgres.sh: error: PostgreSQL is not installed; as root run: apt-get install -y postgresql" >&2
    exit 1
  fi
  echo "postgres.sh: installing PostgreSQL from Debian packages" >&2
  apt-get update -qq
  # The package would start a system cluster; the tests start their own instead.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for cluster in $(ls -d /etc/postgresql/*/main 2>/dev/null); do
      version=$(basename "$(dirname "$cluster")")
      pg_ctlcluster "$version" main stop >/dev/null 2>&1 || true
    done
  fi
  bindir >/dev/null
}

start() {
  local dir=$1 port=$2 bin
  bin=$(bindir) || { echo "postgres.sh: error: PostgreSQL not installed (run: $0 install)" >&2; exit 1; }
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
  echo "postgresql://postgres@127.0.0.1:$port/postgres"
}

stop() {
  local dir=$1 bin
  bin=$(bindir)
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

case "${1:-}" in
  install) install ;;
  bindir) bindir || { echo "postgres.sh: PostgreSQL is not installed" >&2; exit 1; } ;;
  start) [ $# = 3 ] || { echo "usage: $0 start DIR PORT" >&2; exit 2; }; start "$2" "$3" ;;
  stop) [ $# = 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
  *) echo "usage: $0 install|bindir|start DIR PORT|stop DIR" >&2; exit 2 ;;
esac
