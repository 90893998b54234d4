#!/usr/bin/env bash
# Make sure a PostgreSQL server answers for the central store tests.
# Uses $GRIDWATCH_PG_URL if set; otherwise expects 127.0.0.1:5432 (database `test`, user postgres, trust auth)
# and, on Debian/Ubuntu, installs and starts one when nothing answers there.
set -euo pipefail
if [ -n "${GRIDWATCH_PG_URL:-}" ]; then exit 0; fi
answers() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
if answers; then exit 0; fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "installing postgresql (Debian package)"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
fi
ver=$(ls /etc/postgresql | sort -V | tail -1)
hba=/etc/postgresql/$ver/main/pg_hba.conf
if ! $SUDO grep -q "gridwatch-tests" "$hba"; then
  $SUDO sed -i '1i host all all 127.0.0.1/32 trust # gridwatch-tests' "$hba"
fi
$SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start 2>/dev/null || $SUDO pg_ctlcluster "$ver" main restart
for _ in $(seq 1 30); do answers && break; sleep 1; done
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
as_pg psql -qc "SELECT 1" >/dev/null
as_pg psql -tc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 || as_pg createdb test
