#!/usr/bin/env bash
# Debian packages the test suite uses as real servers and browsers: redis-server (shared limits),
# postgresql (the shared store of several instances: the tests run initdb + pg_ctl themselves) and
# chromium (dashboard tests). Installs only what is missing, and only where apt-get can run; elsewhere
# the tests that need them say so and skip.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: no apt-get; install ${need[*]} yourself to run every test" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "system-deps: not root; install ${need[*]} yourself to run every test" >&2
    exit 0
  fi
fi
echo "system-deps: installing ${need[*]}" >&2
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    --no-install-recommends "${need[@]}" >/dev/null; }; then
  echo "system-deps: could not install ${need[*]}; the tests that need them will skip" >&2
fi
