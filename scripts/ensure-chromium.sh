#!/usr/bin/env bash
# Makes sure Chromium is installed for the console's browser test (internal/console/ui_test.go,
# driven by chromedp): installs the OS package when running as root on Debian/Ubuntu,
# otherwise says what to install. The test finds it at $KEYLINE_CHROMIUM or /usr/bin/chromium.
set -euo pipefail
if [ -n "${KEYLINE_CHROMIUM:-}" ] && [ -x "$KEYLINE_CHROMIUM" ]; then
  exit 0
fi
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Chromium (chromium) for the console's browser test" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  exit 0
fi
echo "Chromium is required for the console's browser test: install the chromium package (or set KEYLINE_CHROMIUM to a Chromium/Chrome binary) and re-run" >&2
exit 1
