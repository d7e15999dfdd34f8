#!/usr/bin/env bash
# Prometheus and promtool for the alert-rule tests and the monitoring end-to-end test,
# from Debian's packages.
#
#   scripts/prometheus.sh install   install the `prometheus` package if missing (as root)
#   scripts/prometheus.sh bindir    print the folder holding prometheus and promtool
#   scripts/prometheus.sh check     promtool: check the config and rules, run the rule tests
#
# The package enables a system service; it is stopped here, since the tests start their
# own server on a free port with a temporary data folder.
set -euo pipefail
cd "$(dirname "$0")/.."

bindir() {
  local prom promtool
  prom=$(command -v prometheus 2>/dev/null) || return 1
  promtool=$(command -v promtool 2>/dev/null) || return 1
  [ "$(dirname "$prom")" = "$(dirname "$promtool")" ] || return 1
  dirname "$prom"
}

install() {
  if bindir >/dev/null; then
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "prometheus.sh: error: Prometheus is not installed; as root run: apt-get install -y --no-install-recommends prometheus" >&2
    exit 1
  fi
  echo "prometheus.sh: installing Prometheus from Debian packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  bindir >/dev/null
}

check() {
  local bin
  bin=$(bindir) || { echo "prometheus.sh: error: promtool not installed (run: $0 install)" >&2; exit 1; }
  "$bin/promtool" check config deploy/prometheus/prometheus.yml
  "$bin/promtool" test rules deploy/prometheus/tests/*.test.yml
}

case "${1:-}" in
  install) install ;;
  bindir) bindir || { echo "prometheus.sh: Prometheus is not installed" >&2; exit 1; } ;;
  check) check ;;
  *) echo "usage: $0 install|bindir|check" >&2; exit 2 ;;
esac
