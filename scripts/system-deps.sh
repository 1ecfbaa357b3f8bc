#!/usr/bin/env bash
# Debian packages the test suite uses as real servers and browsers: redis-server (shared limits),
# postgresql (the shared store of several instances: the tests run initdb + pg_ctl themselves),
# chromium (dashboard tests) and openssl (test certificates and CAs for the TLS and proxy tests). Installs only what is missing, and only where apt-get can run; elsewhere
# the tests that need them say so and skip.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
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
# On a fresh cloud VM another apt (unattended-upgrades, cloud-init) often holds the dpkg/apt locks for the
# first minutes: wait for them, up to APT_LOCK_WAIT seconds (default 300), instead of failing at once.
APT_LOCK_WAIT=${APT_LOCK_WAIT:-300}
locks=(/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock)
apt_busy() {
  # apt takes fcntl locks; lockf() probes them the same way (and lets go at once).
  $SUDO python3 - "${locks[@]}" <<'PY' 2>/dev/null
import fcntl, os, sys
for path in sys.argv[1:]:
    if not os.path.exists(path):
        continue
    with open(path, "a") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            sys.exit(0)
sys.exit(1)
PY
}
waited=0
while apt_busy; do
  if [ "$waited" -ge "$APT_LOCK_WAIT" ]; then
    echo "system-deps: apt is still busy after ${APT_LOCK_WAIT}s; trying anyway" >&2
    break
  fi
  [ "$waited" -eq 0 ] && echo "system-deps: another apt/dpkg holds its lock; waiting up to ${APT_LOCK_WAIT}s" >&2
  sleep 5
  waited=$((waited + 5))
done
APT_OPTS=(-o "DPkg::Lock::Timeout=$APT_LOCK_WAIT")
echo "system-deps: installing ${need[*]}" >&2
if ! { $SUDO apt-get "${APT_OPTS[@]}" update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${APT_OPTS[@]}" install -y -qq \
    --no-install-recommends "${need[@]}" >/dev/null; }; then
  echo "system-deps: could not install ${need[*]}; the tests that need them will skip" >&2
fi
