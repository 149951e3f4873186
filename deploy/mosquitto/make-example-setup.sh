#!/bin/sh
# Example broker secrets for carbonwatch: a CA, a server certificate, one client certificate per service, a
# password file with a random password per client, and the ACL generated from the plant file(s).
#   sh deploy/mosquitto/make-example-setup.sh OUTDIR PLANT.toml [PLANT2.toml ...]
# Environment: BROKER_HOSTS="mosquitto localhost 127.0.0.1 broker.plant.example" (names in the server certificate),
# DAYS=825. OUTDIR gets certs/ (ca.crt, server.*, one CLIENT.crt/.key per client, CN = its user name), passwd, acl,
# credentials.env (the passwords, mode 600: give each client only its own) and ca.key (keep it offline).
# The certificates are EXAMPLES for a first deployment and for tests: use your plant's PKI in production.
set -eu
[ $# -ge 2 ] || { echo "usage: $0 OUTDIR PLANT.toml [PLANT.toml ...]" >&2; exit 2; }
OUT=$1
shift
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=python3
HOSTS=${BROKER_HOSTS:-"mosquitto localhost 127.0.0.1"}
DAYS=${DAYS:-825}
PATH="$PATH:/usr/sbin:/sbin"
command -v openssl >/dev/null || { echo "openssl is needed" >&2; exit 1; }
command -v mosquitto_passwd >/dev/null || { echo "mosquitto_passwd is needed (Debian package mosquitto)" >&2; exit 1; }

umask 077
mkdir -p "$OUT/certs"
chmod 755 "$OUT" "$OUT/certs"
CERTS=$OUT/certs

san=""
for h in $HOSTS; do
  case $h in
    *[!0-9.]*) san="$san,DNS:$h" ;;
    *) san="$san,IP:$h" ;;
  esac
done
san=${san#,}

# the CA key stays beside certs/, not in it: certs/ is what the broker and the services mount
openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days "$DAYS" -subj "/CN=carbonwatch example CA" \
  -keyout "$OUT/ca.key" -out "$CERTS/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

sign() { # name, extendedKeyUsage, [subjectAltName]
  openssl req -newkey rsa:2048 -sha256 -nodes -subj "/CN=$1" -keyout "$CERTS/$1.key" -out "$CERTS/$1.csr" 2>/dev/null
  ext="$CERTS/$1.ext"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=%s\n' "$2" > "$ext"
  [ -z "${3:-}" ] || printf 'subjectAltName=%s\n' "$3" >> "$ext"
  openssl x509 -req -in "$CERTS/$1.csr" -CA "$CERTS/ca.crt" -CAkey "$OUT/ca.key" -CAcreateserial -days "$DAYS" \
    -sha256 -extfile "$ext" -out "$CERTS/$1.crt" 2>/dev/null
  rm -f "$CERTS/$1.csr" "$ext"
}
sign server serverAuth "$san"

# the ACL names every client; each gets a certificate (mutual TLS) and a password
"$PY" -m deploy.mosquitto.acl "$@" > "$OUT/acl"
users=$("$PY" -m deploy.mosquitto.acl --users "$@")
: > "$OUT/passwd"
: > "$OUT/credentials.env"
for user in $users; do
  sign "$user" clientAuth
  pass=$(openssl rand -hex 18)
  mosquitto_passwd -b "$OUT/passwd" "$user" "$pass"
  var=$(echo "$user" | tr 'a-z.-' 'A-Z__')
  echo "MQTT_PASSWORD_$var=$pass" >> "$OUT/credentials.env"
done
rm -f "$CERTS/ca.srl"
chmod 644 "$CERTS"/*.crt "$OUT/acl"
chmod 600 "$CERTS"/*.key "$OUT/ca.key" "$OUT/passwd" "$OUT/credentials.env"
echo "wrote $OUT: certs/ (ca, server, $(echo $users | tr ' ' ',')), passwd, acl, credentials.env"
