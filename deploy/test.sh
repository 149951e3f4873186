#!/bin/sh
# Install what the tests need (Python deps into .venv; Mosquitto, InfluxDB, mbpoll, socat, gcc, libfaketime, Node.js,
# Chromium and docker-compose from Debian when absent; node-opcua from npm), start Mosquitto and InfluxDB on loopback ports
# of their own, run ruff, mypy and pytest, and stop the services whatever the outcome. Extra arguments go to pytest.
set -eu
cd "$(dirname "$0")/.."
sh deploy/bootstrap.sh test

PATH="$PATH:/usr/sbin:/sbin"
need=""
command -v mosquitto >/dev/null 2>&1 || need="$need mosquitto"
command -v mosquitto_pub >/dev/null 2>&1 || need="$need mosquitto-clients"
command -v influxd >/dev/null 2>&1 || need="$need influxdb"
command -v mbpoll >/dev/null 2>&1 || need="$need mbpoll"
command -v socat >/dev/null 2>&1 || need="$need socat"
command -v gcc >/dev/null 2>&1 || need="$need gcc libc6-dev"
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || need="$need libfaketime"  # the edge's clock steps
command -v node >/dev/null 2>&1 || need="$need nodejs npm"
command -v chromium >/dev/null 2>&1 || need="$need chromium"
[ -d /usr/share/fonts/truetype/dejavu ] || need="$need fonts-dejavu-core"
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || need="$need docker-compose"
if [ -n "$need" ]; then
  echo "installing from Debian:$need"
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
fi
# node-opcua (independent OPC UA implementation for interop tests), pinned by the committed lockfiles
for dir in tests/*/node; do
  if [ -f "$dir/package-lock.json" ]; then
    npm ci --prefix "$dir" --no-audit --no-fund --silent >/dev/null
  fi
done

mkdir -p var
ENV_FILE=var/test-services.env
stop_services() { .venv/bin/python -m deploy.services down --env "$ENV_FILE" >/dev/null 2>&1 || true; }
trap stop_services EXIT
trap 'stop_services; exit 130' INT TERM
.venv/bin/python -m deploy.services up --env "$ENV_FILE" --dir var/test-services
set -a
. "./$ENV_FILE"
set +a

.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
