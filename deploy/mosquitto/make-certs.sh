#!/usr/bin/env bash
# A private CA, a broker server certificate and optional client certificates, for lab and pilot setups.
# Production: use your organisation's PKI; the broker only needs ca.crt, server.crt and server.key.
#
#   deploy/mosquitto/make-certs.sh [-o DIR] [-d DAYS] [-c CLIENT_ID]... HOST_OR_IP...
#
#   HOST_OR_IP  every name and address clients use to reach the broker; all go into the server certificate's
#               subjectAltName (clients check it). The first one is also the CN. E.g.:
#               make-certs.sh -o certs broker.example.org mosquitto localhost 127.0.0.1
#   -o DIR      output folder (default ./certs); created with mode 700
#   -d DAYS     validity of the server and client certificates (default 825); the CA gets 10 years
#   -c ID       also issue a client certificate with CN=ID (repeatable), for require_certificate true
#
# Files: DIR/ca.crt, DIR/ca.key (keep offline), DIR/server.crt, DIR/server.key, DIR/clients/ID.{crt,key}.
# An existing DIR/ca.key is reused, so certificates can be added later without redistributing ca.crt; the
# server certificate is always re-issued. Keys are ECDSA P-256, written with mode 600.
# Gateways need ca.crt (mqtt.ca_file in site.yaml); the broker needs ca.crt, server.crt and server.key.
set -euo pipefail

usage() {
    sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}

out=./certs
days=825
clients=()
while getopts ":o:d:c:h" opt; do
    case "$opt" in
        o) out=$OPTARG ;;
        d) days=$OPTARG ;;
        c) clients+=("$OPTARG") ;;
        h) usage 0 ;;
        :) echo "make-certs.sh: -$OPTARG needs a value" >&2; usage ;;
        *) echo "make-certs.sh: unknown option -$OPTARG" >&2; usage ;;
    esac
done
shift $((OPTIND - 1))
if [[ $# -eq 0 ]]; then
    echo "make-certs.sh: give at least one host name or IP address for the server certificate" >&2
    usage
fi
if ! [[ $days =~ ^[0-9]+$ ]] || [[ $days -lt 1 ]]; then
    echo "make-certs.sh: -d wants a positive number of days, got '$days'" >&2
    exit 2
fi
command -v openssl >/dev/null 2>&1 || { echo "make-certs.sh: openssl is not installed" >&2; exit 1; }

umask 077
mkdir -p "$out"
chmod 700 "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
    chmod 600 "$1"
}

# issue NAME CN EXTFILE: DIR/NAME.key + DIR/NAME.crt signed by the CA
issue() {
    local base=$1 cn=$2 ext=$3
    new_key "$base.key"
    openssl req -new -key "$base.key" -subj "/O=gridwatch/CN=$cn" -out "$work/req.csr"
    openssl x509 -req -in "$work/req.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
        -CAserial "$work/ca.srl" -days "$days" -sha256 -extfile "$ext" -out "$base.crt" 2>/dev/null
    chmod 644 "$base.crt"
}

# --- CA ------------------------------------------------------------------------------------------------------
if [[ -f $out/ca.key && -f $out/ca.crt ]]; then
    echo "reusing the CA in $out/ca.crt"
else
    new_key "$out/ca.key"
    openssl req -x509 -new -key "$out/ca.key" -sha256 -days 3650 -subj "/O=gridwatch/CN=gridwatch lab CA" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$out/ca.crt"
    chmod 644 "$out/ca.crt"
    echo "created CA $out/ca.crt (keep $out/ca.key off the broker)"
fi

# --- server --------------------------------------------------------------------------------------------------
san=()
for name in "$@"; do
    if [[ $name =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || $name == *:* ]]; then
        san+=("IP:$name")
    elif [[ $name =~ ^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]]; then
        san+=("DNS:$name")
    else
        echo "make-certs.sh: '$name' is neither a host name nor an IP address" >&2
        exit 2
    fi
done
san_list=$(IFS=,; echo "${san[*]}")
cat >"$work/server.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san_list
EXT
issue "$out/server" "$1" "$work/server.ext"
echo "issued $out/server.crt for $san_list"

# --- clients -------------------------------------------------------------------------------------------------
if [[ ${#clients[@]} -gt 0 ]]; then
    mkdir -p "$out/clients"
    cat >"$work/client.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EXT
    for id in "${clients[@]}"; do
        if ! [[ $id =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]]; then
            echo "make-certs.sh: client id '$id' must be letters, digits, _ . - (it becomes the CN)" >&2
            exit 2
        fi
        issue "$out/clients/$id" "$id" "$work/client.ext"
        echo "issued $out/clients/$id.crt"
    done
fi
