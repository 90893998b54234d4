#!/usr/bin/env bash
# One-time setup of the lab stack (deploy/compose.yaml): a private CA and broker certificate, one MQTT account
# per service with a random password, and deploy/.env with those passwords for docker compose.
#
#   deploy/lab/setup.sh [-f]      -f: start over (new CA, new passwords) even if deploy/.env exists
#
# Writes deploy/lab/secrets/{certs/,passwd} and deploy/.env (both git-ignored). Needs openssl and
# mosquitto_passwd (Debian: apt-get install mosquitto).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
deploy=$(dirname "$here")
secrets=$here/secrets
env_file=$deploy/.env

force=false
if [[ ${1:-} == -f ]]; then
    force=true
elif [[ $# -gt 0 ]]; then
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
if [[ -e $env_file && $force != true ]]; then
    echo "setup.sh: $env_file exists; the lab is already set up (run with -f to start over)" >&2
    exit 1
fi

rm -rf "$secrets"
mkdir -p "$secrets"
chmod 700 "$secrets"
"$deploy/mosquitto/make-certs.sh" -o "$secrets/certs" mosquitto localhost 127.0.0.1

new_password() {
    local pw
    pw=$(openssl rand -base64 48 | tr -dc 'A-Za-z0-9')
    printf '%s' "${pw:0:32}"
}

central_pw=$(new_password)
edge_pw=$(new_password)
health_pw=$(new_password)
cleaner_pw=$(new_password)
postgres_pw=$(new_password)
# Alphanumeric passwords: safe in .env and on mosquitto_pub -P without quoting.
MQTT_PASSWORD=$central_pw "$deploy/mosquitto/add-user.sh" "$secrets/passwd" gridwatch-central
MQTT_PASSWORD=$edge_pw "$deploy/mosquitto/add-user.sh" "$secrets/passwd" gw-lab-01
MQTT_PASSWORD=$health_pw "$deploy/mosquitto/add-user.sh" "$secrets/passwd" healthcheck
MQTT_PASSWORD=$cleaner_pw "$deploy/mosquitto/add-user.sh" "$secrets/passwd" dispatch-desk

(
    umask 077
    cat >"$env_file" <<ENV
# Lab stack secrets, written by lab/setup.sh. docker compose reads this file (it sits next to compose.yaml).
CENTRAL_MQTT_PASSWORD=$central_pw
EDGE_MQTT_PASSWORD=$edge_pw
MQTT_HEALTH_PASSWORD=$health_pw
# the cleaner app account 'dispatch-desk' (central's default cleaner): mosquitto_sub -u dispatch-desk ...
CLEANER_MQTT_PASSWORD=$cleaner_pw
POSTGRES_PASSWORD=$postgres_pw
ENV
)
echo "lab secrets in $secrets, passwords in $env_file; next: docker compose -f deploy/compose.yaml up -d --build"
