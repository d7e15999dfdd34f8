#!/usr/bin/env bash
# Vendors the web console's third-party browser assets into hub/console/static/vendor/,
# which is committed so the package serves them offline (no CDN). Run again to upgrade:
#   scripts/console-assets.sh [HTMX_VERSION]
# Fetches the npm package with `npm pack` into a throw-away build directory, copies the
# minified file and the licence, and records version, licence and SHA-256 in VENDOR.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
HTMX_VERSION="${1:-2.0.11}"
vendor=hub/console/static/vendor
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
command -v npm >/dev/null 2>&1 || { echo "console-assets: error: npm is required" >&2; exit 1; }
case "$HTMX_VERSION" in
  2.*) ;;
  *) echo "console-assets: error: the console is written for htmx 2.x, not $HTMX_VERSION" >&2; exit 1 ;;
esac
(cd "$build" && npm pack --silent "htmx.org@$HTMX_VERSION" >/dev/null && tar -xzf htmx.org-*.tgz)
pkg="$build/package"
licence="$(node -p "require('$pkg/package.json').license")"
mkdir -p "$vendor"
cp "$pkg/dist/htmx.min.js" "$vendor/htmx.min.js"
cp "$pkg/LICENSE" "$vendor/htmx.LICENSE"
{
  echo "# Third-party browser assets of the web console (written by scripts/console-assets.sh)"
  echo "htmx.min.js  htmx.org $HTMX_VERSION  licence $licence (htmx.LICENSE)  sha256 $(sha256sum "$vendor/htmx.min.js" | cut -d' ' -f1)"
} > "$vendor/VENDOR.txt"
echo "console-assets: htmx.org $HTMX_VERSION ($licence) -> $vendor/htmx.min.js"
