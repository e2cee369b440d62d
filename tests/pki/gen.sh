#!/usr/bin/env bash
# gen.sh - builds a throw-away Teleport-like test PKI with the openssl CLI (and ssh-keygen for the
# SSH parts of the identity file). Used by the fake Teleport, the Teleport client's integration
# tests, the identity parser's tests and the end-to-end tests. Nothing it makes is committed.
#
# Usage: tests/pki/gen.sh OUTDIR [CLUSTER] [USER]
#   CLUSTER defaults to "example.com", USER to "teleport-plugin".
#   Re-running on an existing OUTDIR that already holds a complete PKI is a no-op (exit 0), so
#   several tests may call it on a shared directory; the output is written to a temporary
#   directory and renamed into place atomically.
#
# Output (all PEM unless noted):
#   ca.crt ca.key               cluster Host CA (the only trust root the client uses)
#   server.crt server.key       Auth server: SAN DNS:teleport.cluster.local, DNS:localhost, IP:127.0.0.1
#   client.crt client.key       user cert: Subject CN=<user>, O=<role>, 1.3.9999.1.7=<cluster>
#                               (Teleport's cluster-name OID); EKU clientAuth; RSA key, PKCS#1
#   client2.crt client2.key     the "rotated" user cert: same subject, new key, new serial
#   client-ec.crt client-ec.key same user with an EC P-256 key (SEC1 "EC PRIVATE KEY")
#   expired.crt expired.key     user cert valid 2020-01-01 .. 2020-01-02 (expired)
#   future.crt future.key       user cert valid from 2099-01-01 (not yet valid)
#   evil-ca.crt evil.crt evil.key  a client cert from a foreign CA (must be refused)
#   user_ca.pub user_ca         SSH user CA (OpenSSH format)
#   host_ca.pub host_ca         SSH host CA
#   identity                    Teleport identity file (docs/teleport-wire.md §4.1): private key,
#                               SSH cert line, TLS cert, @cert-authority line, TLS CA cert
#   identity2                   the same for client2 (rotation)
#   identity-ec                 the same for the EC key (PKCS#8 "PRIVATE KEY" form)
#   identity-expired            the same for the expired cert
#   serials.txt                 "name serial-hex" for each client cert (what the fake reports)
set -euo pipefail

out=${1:?usage: gen.sh OUTDIR [CLUSTER] [USER]}
cluster=${2:-example.com}
user=${3:-teleport-plugin}

if [ -f "$out/serials.txt" ]; then
	exit 0
fi
mkdir -p "$(dirname "$out")"
tmp=$(mktemp -d "$(dirname "$out")/.pki.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

ossl() { openssl "$@" 2>/dev/null; }

# --- cluster CA -------------------------------------------------------------------------------
ossl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
	-subj "/O=$cluster/CN=$cluster" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign"

serial=1000
sign() { # sign CSR NAME EXTFILE [x509 args...]
	local csr=$1 name=$2 ext=$3
	shift 3
	serial=$((serial + 1))
	ossl x509 -req -in "$csr" -CA ca.crt -CAkey ca.key -set_serial "$serial" \
		-out "$name.crt" -extfile "$ext" "$@"
}

cat >server.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:teleport.cluster.local,DNS:localhost,IP:127.0.0.1
EOF
cat >client.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF

# --- server -----------------------------------------------------------------------------------
ossl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
	-subj "/O=$cluster/CN=teleport.cluster.local"
sign server.csr server server.ext -days 3650

# --- user certificates ------------------------------------------------------------------------
usersubj="/CN=$user/O=access-plugin/teleportClusterName=$cluster"
# `openssl req -subj` only knows named attributes, so name Teleport's OID in a config file.
cat >req.cnf <<EOF
oid_section = tpd_oids
[ tpd_oids ]
teleportClusterName = 1.3.9999.1.7
[ req ]
distinguished_name = req_dn
[ req_dn ]
EOF
# RSA key in PKCS#1 form ("BEGIN RSA PRIVATE KEY"), as older tctl/tbot write it.
mkuser_rsa() {
	ossl genrsa -traditional -out "$1.key" 2048 ||
		{ ossl genrsa -out "$1.key.p8" 2048 && ossl rsa -in "$1.key.p8" -traditional -out "$1.key"; }
	rm -f "$1.key.p8"
	ossl req -config req.cnf -new -key "$1.key" -out "$1.csr" -subj "$usersubj"
}
mkuser_rsa client
sign client.csr client client.ext -days 3650
mkuser_rsa client2
sign client2.csr client2 client.ext -days 3650

ossl ecparam -name prime256v1 -genkey -noout -out client-ec.key
ossl req -config req.cnf -new -key client-ec.key -out client-ec.csr -subj "$usersubj"
sign client-ec.csr client-ec client.ext -days 3650

# Expired and not-yet-valid certificates need explicit dates: use `openssl ca`.
mkdir -p cadb
: >cadb/index.txt
echo 2000 >cadb/serial
cat >ca.cnf <<EOF
oid_section = tpd_oids
[ tpd_oids ]
teleportClusterName = 1.3.9999.1.7
[ ca ]
default_ca = tca
[ tca ]
dir = cadb
database = cadb/index.txt
new_certs_dir = cadb
serial = cadb/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
x509_extensions = cext
[ anything ]
commonName = optional
organizationName = optional
teleportClusterName = optional
[ cext ]
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EOF
mkuser_rsa expired
ossl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in expired.csr -out expired.crt \
	-preserveDN -notext -startdate 20200101000000Z -enddate 20200102000000Z
mkuser_rsa future
ossl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in future.csr -out future.crt \
	-preserveDN -notext -startdate 20990101000000Z -enddate 20991231000000Z

# --- foreign CA -------------------------------------------------------------------------------
ossl req -x509 -newkey rsa:2048 -nodes -keyout evil-ca.key -out evil-ca.crt -days 3650 \
	-subj "/O=evil/CN=evil" -addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign"
ossl req -config req.cnf -newkey rsa:2048 -nodes -keyout evil.key -out evil.csr -subj "$usersubj"
ossl x509 -req -in evil.csr -CA evil-ca.crt -CAkey evil-ca.key -set_serial 666 \
	-out evil.crt -extfile client.ext -days 3650

# --- SSH parts and identity files -------------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C "$cluster user CA" -f user_ca
ssh-keygen -q -t ed25519 -N '' -C "$cluster host CA" -f host_ca
hostca_line="@cert-authority $cluster,*.$cluster $(cut -d' ' -f1,2 host_ca.pub) type=host"

sshcert() { # KEYFILE -> prints the SSH cert line for that key
	local k=$1
	ssh-keygen -y -f "$k" >"$k.pub" 2>/dev/null
	ssh-keygen -q -s user_ca -I "$user" -n "$user" -V -5m:+3650d "$k.pub" >/dev/null 2>&1
	cat "$k-cert.pub"
}

identity() { # NAME KEYFILE CRTFILE [pkcs8]
	local name=$1 key=$2 crt=$3 keypem
	if [ "${4:-}" = pkcs8 ]; then
		keypem=$(openssl pkcs8 -topk8 -nocrypt -in "$key" 2>/dev/null)
	else
		keypem=$(cat "$key")
	fi
	cp "$key" "$key.ssh"
	chmod 600 "$key.ssh"
	{
		printf '%s\n' "$keypem"
		sshcert "$key.ssh"
		cat "$crt"
		printf '%s\n' "$hostca_line"
		cat ca.crt
	} >"$name"
	chmod 600 "$name"
}
identity identity client.key client.crt
identity identity2 client2.key client2.crt
identity identity-ec client-ec.key client-ec.crt pkcs8
identity identity-expired expired.key expired.crt

for c in client client2 client-ec expired future evil; do
	printf '%s %s\n' "$c" "$(openssl x509 -in "$c.crt" -noout -serial | cut -d= -f2)"
done >serials.txt

rm -rf cadb ./*.csr ./*.ext ca.cnf req.cnf ./*.ssh ./*.ssh.pub ./*-cert.pub
chmod 600 ./*.key
trap - EXIT
# Publish atomically. A complete PKI that appeared meanwhile (a parallel run) wins and is never
# replaced under its readers; an incomplete leftover directory is replaced.
if [ -d "$out" ] && [ ! -f "$out/serials.txt" ]; then
	rm -rf "$out"
fi
mv -T "$tmp" "$out" 2>/dev/null || rm -rf "$tmp"
