#!/usr/bin/env bash
# Add an account to a Mosquitto password file, or change its password (wraps mosquitto_passwd).
#
#   deploy/mosquitto/add-user.sh [-r] PASSWORD_FILE USERNAME
#
#   The password is read from the MQTT_PASSWORD environment variable if set, else from stdin (one line; piped
#   or typed, not echoed), so it never appears on a command line. With -r a random 32-character password is
#   generated and printed once on stdout (put it in the client's secrets: GRIDWATCH_MQTT_PASSWORD for a gateway).
#   The file is created when missing and kept at mode 640 (owner read/write, group read).
#
#   Usernames: a gateway's username is its gateway_id (e.g. gw-pole-017), the central service is
#   gridwatch-central, a cleaner app uses its cleaner id; see deploy/mosquitto/acl.
#
# The broker reads the file after dropping root, as user mosquitto: on the broker host run
#   chown root:mosquitto /etc/mosquitto/passwd
# then `systemctl reload mosquitto` (SIGHUP) to pick up the change; no restart is needed.
set -euo pipefail

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}

random=false
while getopts ":rh" opt; do
    case "$opt" in
        r) random=true ;;
        h) usage 0 ;;
        *) echo "add-user.sh: unknown option -$OPTARG" >&2; usage ;;
    esac
done
shift $((OPTIND - 1))
[[ $# -eq 2 ]] || usage
file=$1
user=$2

if ! [[ $user =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || [[ ${#user} -gt 64 ]]; then
    echo "add-user.sh: username '$user' must be 1-64 letters, digits, _ . - (it appears in topic names)" >&2
    exit 2
fi
passwd_bin=$(command -v mosquitto_passwd || true)
if [[ -z $passwd_bin ]]; then
    echo "add-user.sh: mosquitto_passwd not found; install the mosquitto package (Debian: apt-get install mosquitto)" >&2
    exit 1
fi

if [[ $random == true ]]; then
    password=$(openssl rand -base64 60 | tr -dc 'A-Za-z0-9')
    password=${password:0:32}
elif [[ -n ${MQTT_PASSWORD:-} ]]; then
    password=$MQTT_PASSWORD
else
    if [[ -t 0 ]]; then
        read -rsp "password for $user: " password
        echo >&2
    else
        IFS= read -r password || true
    fi
fi
if [[ ${#password} -lt 12 ]]; then
    echo "add-user.sh: refusing a password shorter than 12 characters for '$user'" >&2
    exit 2
fi

if [[ ! -e $file ]]; then
    (umask 027 && : >"$file")
fi
# mosquitto_passwd reads the password twice from stdin when it is not a terminal.
printf '%s\n%s\n' "$password" "$password" | "$passwd_bin" "$file" "$user" >/dev/null
chmod 640 "$file"
echo "set the password of '$user' in $file" >&2
if [[ $random == true ]]; then
    printf '%s\n' "$password"
fi
