#!/usr/bin/env bash
# Static PNG export (kaleido >= 1) drives a headless Chromium/Chrome. Make sure kaleido can
# render, installing a browser when it cannot:
#   1. BROWSER_PATH, if set, must be a working browser (kaleido then uses only that one);
#   2. otherwise a browser kaleido finds: chromium, google-chrome, ... on PATH, or (checked by
#      rendering a tiny figure) a copy downloaded earlier by kaleido_get_chrome;
#   3. as root with apt-get: install Debian's `chromium`;
#   4. otherwise: let kaleido download Chrome for Testing into its package directory.
# Exits non-zero with instructions when none of this works.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"

say() { echo "ensure-browser: $*" >&2; }

# Fast path: a browser under one of the names kaleido looks for on PATH, and it starts.
on_path() {
  for b in chromium chromium-browser google-chrome google-chrome-stable chrome; do
    command -v "$b" >/dev/null 2>&1 && "$b" --version >/dev/null 2>&1 && return 0
  done
  return 1
}

# kaleido renders a 1x1 figure: the real test of whatever browser discovery it does.
renders() {
  if [ -x "$PY" ]; then
    timeout 120 "$PY" -c 'import plotly.graph_objects as go
assert go.Figure().to_image(format="png", width=10, height=10)[:4] == b"\x89PNG"' >/dev/null 2>&1
  else  # no virtualenv yet: settle for a browser that starts
    on_path
  fi
}

if [ -n "${BROWSER_PATH:-}" ]; then
  if ! "$BROWSER_PATH" --version >/dev/null 2>&1; then
    say "BROWSER_PATH=$BROWSER_PATH does not run ('$BROWSER_PATH --version' failed)."
    say "Point it at a Chromium/Chrome executable, or unset it."
    exit 1
  fi
  exit 0
fi
if on_path || renders; then exit 0; fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing Debian's chromium for kaleido's PNG export"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
    || say "apt-get install chromium failed"
  if renders; then exit 0; fi
fi
if [ -x "$(dirname "$PY")/kaleido_get_chrome" ]; then
  say "no usable Chromium/Chrome found; asking kaleido to download Chrome for Testing"
  "$(dirname "$PY")/kaleido_get_chrome" >&2 || say "kaleido_get_chrome failed"
  if renders; then exit 0; fi
fi
say "kaleido cannot render PNG figures: no working Chromium/Chrome."
say "Install one (Debian/Ubuntu as root: 'apt-get install chromium') or set BROWSER_PATH to its executable."
exit 1
