#!/usr/bin/env bash
# Installs what scheduler-server needs on a Debian machine with Python >= 3.11:
# Debian packages (openssh-server for the SSH tests, postgresql for the store's
# PostgreSQL tests, chromium and chromium-driver for the browser tests), a virtualenv in .venv and
# the package itself (editable). Safe to run again; it only adds what is missing.
#   scripts/setup.sh serve   runtime only
#   scripts/setup.sh test    runtime + test dependencies + openssh-server + postgresql + chromium + chromium-driver
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-serve}"

python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "scheduler-server needs Python >= 3.11, found " + sys.version.split()[0])'

apt_packages=()
if [ "$mode" = test ]; then
  [ -x /usr/sbin/sshd ] || apt_packages+=(openssh-server)
  # the PostgreSQL tests start their own throwaway server with initdb/pg_ctl
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null \
    || apt_packages+=(postgresql)
  # tests/ui drive these two headless, by these paths (Selenium never downloads a browser or a driver)
  [ -x /usr/bin/chromium ] || apt_packages+=(chromium)
  [ -x /usr/bin/chromedriver ] || apt_packages+=(chromium-driver)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing Debian packages: ${apt_packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
extras=""
[ "$mode" = test ] && extras="[test]"
echo "setup: installing scheduler-server${extras} into .venv"
log="$(mktemp)"
if ! .venv/bin/python -m pip install -q --disable-pip-version-check -c requirements.txt -e ".${extras}" >"$log" 2>&1; then
  grep -v '^WARNING: Location' "$log" >&2
  rm -f "$log"
  echo "setup: pip install failed" >&2
  exit 1
fi
rm -f "$log"
.venv/bin/python -c 'import scheduler_server' # fail here, not later, if the install did not work
