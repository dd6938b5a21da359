#!/usr/bin/env bash
# Static PNG export (kaleido >= 1) drives a Chromium/Chrome browser. Find one, or install one.
set -euo pipefail
for b in "${BROWSER_PATH:-}" chromium chromium-browser google-chrome google-chrome-stable; do
  if [ -n "$b" ] && command -v "$b" >/dev/null 2>&1; then exit 0; fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-browser: installing Debian chromium for kaleido's PNG export" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
if [ -x .venv/bin/kaleido_get_chrome ]; then
  echo "ensure-browser: no Chromium found; asking kaleido to download Chrome" >&2
  .venv/bin/kaleido_get_chrome && exit 0
fi
echo "ensure-browser: no Chromium/Chrome found. Install one (e.g. 'apt-get install chromium')" \
     "or set BROWSER_PATH to its executable; PNG figures need it." >&2
exit 1
