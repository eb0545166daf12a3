#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# make demo: the whole story on a throwaway SoftHSM token, step by step.
# 1. a device key is enrolled against the local EST test server (key made on the token,
#    certificate from the test CA, stored next to the key); 2. keybound check admits it under
#    the example policy; 3. a tunnel forwards a plaintext client to an mTLS endpoint (nginx
#    with ssl_verify_client on); 4. a request goes through; 5. the tunnel's log; then
#    everything is stopped and removed.
set -u
: "${KEYBOUND:?run it with make demo}"
export TESTS_SRCDIR=${TESTS_SRCDIR:-$(cd "$(dirname "$0")" && pwd)}
. "$TESTS_SRCDIR/lib/testlib.sh"
for tool in softhsm2-util certtool nginx curl /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "demo: $tool is needed (see README.md)"; exit 2; }
done
t_skip_all() { echo "demo: $*"; exit 2; }
kb_setup
# Bold headings on a terminal only, and never with NO_COLOR set (no-color.org): in a log
# file or CI output the escape codes are noise.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
    bold=$'\033[1m' plain=$'\033[0m'
else
    bold='' plain=''
fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
show() { printf '$ %s\n' "$*" | sed "s|$T/||g; s|$SOFTHSM_MODULE|\$SOFTHSM|g"; "$@"; }

step "A throwaway SoftHSM token and test PKI in $T"
kb_token laptop
kb_pki
P=$T/pki
cp "$TESTS_SRCDIR/../policy/examples/softhsm-test.conf" "$T/policy.conf"
chmod 644 "$T/policy.conf"
cp "$P/ca.pem" "$T/ca.pem"
printf 'enrol:one-time-secret\n' >"$T/secret"
chmod 600 "$T/secret"
mkdir -p "$T/est"
eport=$(free_port)
kb_bg "$T/est.log" /usr/bin/python3 "$TESTS_SRCDIR/lib/est_server.py" --port "$eport" \
    --ca-cert "$P/ca.pem" --ca-key "$P/ca.key" --tls-cert "$P/server.pem" --tls-key "$P/server.key" \
    --secret enrol:one-time-secret --state "$T/est"
wait_port "$eport" || { echo "demo: the EST test server did not start"; exit 2; }
echo "EST test server on https://localhost:$eport"
cd "$T"

step "1. Enrol: key generated on the token, certificate over EST, stored next to the key"
show "$KEYBOUND" enroll --module "$SOFTHSM_MODULE" --pin-file pin --est "https://localhost:$eport" \
    --ca pki/ca.pem --secret-file secret --token pkcs11:token=laptop --label device \
    --subject CN=laptop-17.example.com --san dns:laptop-17.example.com --policy policy.conf

step "2. The device as the admission policy sees it"
show "$KEYBOUND" check --module "$SOFTHSM_MODULE" --pin-file pin --policy policy.conf \
    --key "pkcs11:token=laptop;object=device" --endpoint localhost:443

step "3. An mTLS endpoint (nginx, ssl_verify_client on) and a tunnel to it"
nport=$(free_port)
mkdir -p nginx
cat >nginx.conf <<CONF
daemon off; pid $T/nginx/pid; error_log $T/nginx/error.log;
events {}
http { access_log off; client_body_temp_path $T/nginx/b; proxy_temp_path $T/nginx/p;
  fastcgi_temp_path $T/nginx/f; uwsgi_temp_path $T/nginx/u; scgi_temp_path $T/nginx/s;
  server { listen 127.0.0.1:$nport ssl; ssl_certificate $P/server.pem;
    ssl_certificate_key $P/server.key; ssl_client_certificate $P/ca.pem; ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { return 200 "Welcome, \$ssl_client_s_dn: your device was admitted.\n"; } } }
CONF
kb_bg nginx.log nginx -c "$T/nginx.conf" -p "$T/nginx" -e "$T/nginx/error.log"
wait_port "$nport"
lport=$(free_port)
printf '$ keybound tunnel --listen 127.0.0.1:%s --connect localhost:%s --policy policy.conf ... &\n' "$lport" "$nport"
kb_bg tunnel.log "$KEYBOUND" tunnel --module "$SOFTHSM_MODULE" --pin-file pin --policy policy.conf \
    --listen "127.0.0.1:$lport" --connect "localhost:$nport" --key "pkcs11:token=laptop;object=device"
tunnel_pid=${kb_pids[-1]}
wait_port "$lport" || { echo "demo: the tunnel did not start"; cat tunnel.log; exit 1; }

step "4. A plaintext client through the tunnel"
show curl -sS "http://127.0.0.1:$lport/"
show curl -sS "http://127.0.0.1:$lport/"

step "5. The tunnel's log"
kill -USR1 "$tunnel_pid"
wait_log tunnel.log "token signatures"
sed 's/^/  /' tunnel.log

step "Done: stopping the servers and removing $T"
