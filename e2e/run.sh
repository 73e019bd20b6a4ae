#!/usr/bin/env bash
# Browser tests of the web UI (see README.md): installs the locked npm
# packages and runs Node's test runner. Needs node >= 20, go (unless OMD_BIN
# names a built binary) and Debian's chromium (CHROMIUM overrides the path).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "e2e: ${CHROMIUM:-/usr/bin/chromium} not found (apt-get install chromium)" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
exec node --test --test-reporter=spec ui.test.js i18n.test.js schedule.test.js ollama.test.js details.test.js waiting.test.js extension.test.js
