#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keybound connect against real TLS peers: gnutls-serv, OpenSSL s_server, nginx, stunnel.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
for tool in gnutls-serv openssl nginx stunnel4; do
    command -v $tool >/dev/null || t_skip_all "$tool not installed"
done
kb_device

json_is() { python3 -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if ($1) else 1)"; }
out_lines() { [ "$(cat "$T/out")" = "$1" ]; }

# --- gnutls-serv, requiring and verifying a client certificate ---------------------------
gport=$(free_port)
kb_bg "$T/gnutls-serv.log" gnutls-serv --port "$gport" --require-client-cert --verify-client-cert \
    --x509cafile "$P/ca.pem" --x509certfile "$P/server.pem" --x509keyfile "$P/server.key" --echo \
    --alpn h2 --alpn http/1.1
wait_port "$gport" || t_fail "gnutls-serv started"

kb connect $MOD --pin-file "$T/pin" $POL $KEY "localhost:$gport"
cp "$T/out" "$T/connect-gnutls.txt"
t_check "gnutls-serv: connect succeeds (exit 0)" rc_is 0
t_check "  summary: TLS 1.3" out_has "^Connected to localhost:$gport with TLS1.3"
t_check "  summary: cipher suite" out_has "cipher suite: (TLS1.3)-"
t_check "  summary: server subject and issuer" bash -c "grep -q 'server:  *CN=localhost' '$T/out' && grep -q 'issuer:  *CN=keybound test CA (verified for localhost)' '$T/out'"
t_check "  summary: the client certificate was sent" out_has "client cert:  CN=laptop-1, valid to .*, key on token 'dev' (sent)"
t_check "  summary: not resumed, with a handshake time" bash -c "grep -q 'resumed: *no' '$T/out' && grep -q 'handshake: *[0-9]* ms' '$T/out'"
kb connect $MOD --pin-file "$T/pin" $POL $KEY --alpn h2 --json "localhost:$gport"
t_check "  --json has the same facts, and ALPN" json_is "d['protocol']=='TLS1.3' and d['client_certificate']['sent'] and d['client_certificate']['subject']=='CN=laptop-1' and d['server_certificate']['subject']=='CN=localhost' and d['alpn']=='h2' and d['resumed'] is False"
# A priority that leaves TLS 1.3 only (min-tls left at 1.2): keybound makes a TLS 1.2-only
# priority for resuming TLS 1.2 sessions, which this one has none of; it must not fail.
sed "s|^\[endpoint \"localhost\"\]|&\npriority = NORMAL:-VERS-TLS1.2|" "$T/policy.conf" >"$T/policy13.conf"
kb connect $MOD --pin-file "$T/pin" --policy "$T/policy13.conf" $KEY "localhost:$gport"
t_check "an endpoint priority leaving TLS 1.3 only: connect succeeds with TLS 1.3" \
    bash -c "[ $rc -eq 0 ] && grep -q 'with TLS1.3' '$T/out' && grep -q '^priority = NORMAL:-VERS-TLS1.2' '$T/policy13.conf'"
printf 'hello through the token\n' >"$T/in"
RUN_STDIN=$T/in run setsid -w "$KEYBOUND" connect $MOD --pin-file "$T/pin" $POL $KEY --stdio "127.0.0.1:$gport"
t_check "  --stdio: the echo comes back (127.0.0.1, server-name from the policy)" out_lines "hello through the token"
t_check "  --stdio: and the command ends when both sides closed (exit 0)" rc_is 0
# A token that takes 1.5 s to sign (the shim), on a terminal (script's pty): after a second
# the command says what it waits for; without a terminal, a line afterwards says how long.
if command -v script >/dev/null && [ -n "${P11SHIM:-}" ] && [ -f "$P11SHIM" ]; then
    slow=(env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_DELAY_FUNC=C_Sign P11SHIM_DELAY_MS=1500)
    # shellcheck disable=SC2086
    "${slow[@]}" script -qec "'$KEYBOUND' connect --module '$P11SHIM' --pin-file '$T/pin' $POL \
        --key '$(sed 's/.*--key //' <<<"$KEY")' localhost:$gport" /dev/null >"$T/tty.out" 2>&1 </dev/null
    t_check "a slow token, on a terminal: 'waiting for token 'dev' (touch it or use its PIN pad)'" \
        grep -q "keybound: waiting for token 'dev' (touch it or use its PIN pad)" "$T/tty.out"
    RUN_STDIN=/dev/null run "${slow[@]}" setsid -w "$KEYBOUND" connect --module "$P11SHIM" \
        --pin-file "$T/pin" $POL $KEY "localhost:$gport"
    t_check "  without a terminal: connects, then one line says how long it took" \
        bash -c "[ $rc -eq 0 ] && grep -q \"token 'dev' took [1-9].[0-9] s to sign with key\" '$T/err' && ! grep -q waiting '$T/err'"
else
    t_check "a slow token on a terminal: (skipped: no script(1) or no shim)" true
fi

kb connect $MOD --pin-file "$T/pin" $POL $KEY --resume-test 20 --json "localhost:$gport"
cp "$T/out" "$T/resume.json"
t_check "resumption: 20 handshakes, 19 resumed" json_is "(r:=d['resume_test'])['handshakes']==20 and r['resumed']==19 and r['full']==1"
t_check "  and only 1 token signature in all" json_is "d['resume_test']['token_signatures']==1"

# --- An IPv6 address: HOST [::1]:PORT, --server-name '[::1]' -------------------------------
# [::1] is how an address is written in a URL; as --server-name it is the address, which is
# never sent as SNI (RFC 6066) and is matched only against IP address entries.
if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    kb_issue_tls_cert v6 ca localhost tls_www_server ::1
    v6port=$(free_port)
    kb_bg "$T/v6.log" gnutls-serv --port "$v6port" --require-client-cert --verify-client-cert \
        --x509cafile "$P/ca.pem" --x509certfile "$P/v6.pem" --x509keyfile "$P/v6.key" --echo
    wait_port "$v6port" ::1 || t_fail "gnutls-serv on [::1] started"
    kb connect $MOD --pin-file "$T/pin" $KEY --ca "$P/ca.pem" --server-name '[::1]' "[::1]:$v6port"
    t_check "--server-name '[::1]': connects, verified for the address ::1" bash -c "[ $rc -eq 0 ] && grep -q '(verified for ::1)' '$T/out'"
    t_check "  and sends no SNI for it" bash -c "grep -q 'Accepted connection from IPv6 ::1' '$T/v6.log' && ! grep -q 'Given server name' '$T/v6.log'"
    t_check "  summary: Connected to [::1]:PORT" out_has "^Connected to \[::1\]:$v6port with"
    kb connect $MOD --pin-file "$T/pin" $KEY --ca "$P/ca.pem" --server-name '[::1]x' "[::1]:$v6port"
    t_check "--server-name '[::1]x': refused (exit 2, one line)" bash -c "[ $rc -eq 2 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q \"'\\[::1\\]x' is not a valid server name\" '$T/err'"
    closed=$(free_port)
    kb connect $MOD --pin-file "$T/pin" $KEY --ca "$P/ca.pem" "[::1]:$closed"
    t_check "nothing listens on [::1]:PORT: the error writes the address in brackets" err_has "connection to \[::1\]:$closed refused"
else
    t_pass "# SKIP no IPv6 loopback (::1) here"
fi

# --- OpenSSL s_server -Verify 1 -verify_return_error -------------------------------------
oport=$(free_port)
kb_bg "$T/s_server.log" openssl s_server -accept "127.0.0.1:$oport" -cert "$P/server.pem" \
    -key "$P/server.key" -CAfile "$P/ca.pem" -Verify 1 -verify_return_error -rev
wait_port "$oport" || t_fail "s_server started"
printf 'token\n' >"$T/in"
RUN_STDIN=$T/in run setsid -w "$KEYBOUND" connect $MOD --pin-file "$T/pin" $POL $KEY --stdio "localhost:$oport"
t_check "OpenSSL s_server: --stdio through it (it reverses lines)" out_has "nekot"
t_check "  s_server saw and verified our certificate" grep -q "CN *= *laptop-1" "$T/s_server.log"

# --- nginx with ssl_verify_client on -----------------------------------------------------
nport=$(free_port)
n13port=$(free_port)
mkdir -p "$T/nginx"
cat >"$T/nginx.conf" <<CONF
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log;
events {}
http {
    access_log $T/nginx/access.log;
    client_body_temp_path $T/nginx/body;
    proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fastcgi;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
    server {
        listen 127.0.0.1:$nport ssl;
        ssl_certificate $P/server.pem;
        ssl_certificate_key $P/server.key;
        ssl_client_certificate $P/ca.pem;
        ssl_verify_client on;
        location / { return 200 "hello \$ssl_client_s_dn \$ssl_protocol \$ssl_cipher\n"; }
    }
    server {
        listen 127.0.0.1:$n13port ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate $P/server.pem;
        ssl_certificate_key $P/server.key;
        ssl_client_certificate $P/ca.pem;
        ssl_verify_client on;
        location / { return 200 "hello \$ssl_client_s_dn \$ssl_protocol \$ssl_cipher\n"; }
    }
}
CONF
kb_bg "$T/nginx.log" nginx -c "$T/nginx.conf" -p "$T/nginx" -e "$T/nginx/error.log"
wait_port "$nport" && wait_port "$n13port" || t_fail "nginx started"
printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' >"$T/in"
RUN_STDIN=$T/in run setsid -w "$KEYBOUND" connect $MOD --pin-file "$T/pin" $POL $KEY --stdio "localhost:$nport"
cp "$T/out" "$T/nginx-response.txt"
t_check "nginx: an HTTP request through connect --stdio gets 200" out_has "^HTTP/1.1 200"
t_check "  nginx saw the device certificate" out_has "^hello CN=laptop-1"
# nginx (OpenSSL) takes the client's order of ciphers: keybound's default offers AES-128-GCM
# first (keybound-policy(5), priority); an endpoint's priority = NORMAL is GnuTLS's order.
t_check "  TLS 1.2 (nginx's default protocols): AES-128-GCM, keybound's first" \
    out_has "^hello CN=laptop-1 TLSv1.2 ECDHE-[A-Z]*-AES128-GCM-SHA256$"
RUN_STDIN=$T/in run setsid -w "$KEYBOUND" connect $MOD --pin-file "$T/pin" $POL $KEY --stdio "localhost:$n13port"
t_check "nginx with TLS 1.3: TLS_AES_128_GCM_SHA256" out_has "^hello CN=laptop-1 TLSv1.3 TLS_AES_128_GCM_SHA256$"
sed "s|^\[endpoint \"localhost\"\]|&\npriority = NORMAL|" "$T/policy.conf" >"$T/policy-normal.conf"
RUN_STDIN=$T/in run setsid -w "$KEYBOUND" connect $MOD --pin-file "$T/pin" --policy "$T/policy-normal.conf" \
    $KEY --stdio "localhost:$n13port"
t_check "  an endpoint's priority = NORMAL: GnuTLS's order, TLS_AES_256_GCM_SHA384" \
    out_has "^hello CN=laptop-1 TLSv1.3 TLS_AES_256_GCM_SHA384$"

# --- stunnel4 in server mode, verifyChain + requireCert, echoing with cat ------------------
sport=$(free_port)
cat >"$T/stunnel.conf" <<CONF
foreground = yes
pid =
[echo]
accept = 127.0.0.1:$sport
cert = $P/server.pem
key = $P/server.key
CAfile = $P/ca.pem
verifyChain = yes
requireCert = yes
exec = /bin/cat
CONF
kb_bg "$T/stunnel.log" stunnel4 "$T/stunnel.conf"
wait_port "$sport" || t_fail "stunnel started"
printf 'through stunnel\n' >"$T/in"
RUN_STDIN=$T/in run setsid -w "$KEYBOUND" connect $MOD --pin-file "$T/pin" $POL $KEY --stdio "localhost:$sport"
t_check "stunnel: --stdio echo through it" out_lines "through stunnel"

# Both directions at once, more than socket buffers hold: the pump must read while it
# writes. The echo peer is a Python ssl server that echoes as it reads and answers our
# close_notify only after the last byte (stunnel's exec = /bin/cat may close before the tail
# of its echo is out when the machine is loaded: its log then shows fewer bytes sent to TLS
# than to the socket).
eport=$(free_port)
kb_bg "$T/echo.log" /usr/bin/python3 "$TESTS_SRCDIR/lib/tls_echo.py" "$eport" "$P/ca.pem" \
    "$P/server.pem" "$P/server.key"
wait_port "$eport" || t_fail "the TLS echo peer started"
head -c 8000000 /dev/urandom >"$T/big"
RUN_STDIN=$T/big run setsid -w timeout 120 "$KEYBOUND" connect $MOD --pin-file "$T/pin" $POL $KEY --stdio "localhost:$eport"
t_check "8 MB both ways at once through --stdio: all of it comes back, unchanged" bash -c "[ $rc -eq 0 ] && [ \"\$(sha256sum <'$T/big' | cut -d' ' -f1)\" = \"\$(sha256sum <'$T/out' | cut -d' ' -f1)\" ]"

# A server that stops without a TLS close: what came through may be incomplete.
cport=$(free_port)
kb_bg "$T/cut.log" /usr/bin/python3 -c "
import socket, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain('$P/server.pem', '$P/server.key')
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $cport)); s.listen(4)
while True:
    c, _ = s.accept()
    try:
        t = ctx.wrap_socket(c, server_side=True)
        t.sendall(b'partial-')
        t.shutdown(socket.SHUT_RDWR)  # TCP FIN, no close_notify
    except OSError:
        pass  # wait_port's probe, or a client that gave up
    c.close()
"
wait_port "$cport" || t_fail "cutting server started"
printf 'x\n' >"$T/in"
RUN_STDIN=$T/in run setsid -w "$KEYBOUND" connect $MOD --pin-file "$T/pin" --ca "$P/ca.pem" $KEY --stdio "localhost:$cport"
t_check "a connection cut without a TLS close: exit 2, saying so" bash -c "[ $rc -eq 2 ] && grep -q 'was cut without a TLS close' '$T/err'"

# --- Servers that must not get the device's certificate -----------------------------------
kb connect $MOD --pin-file "$T/pin" $KEY --ca "$P/other-ca.pem" "localhost:$gport"
t_check "wrong CA: exit 2" rc_is 2
t_check "  naming the anchors and that our certificate was not sent" err_has "not trusted by the anchors in $P/other-ca.pem (The certificate issuer is unknown); our certificate was not sent"
kb connect $MOD --pin-file "$T/pin" $KEY --ca "$P/ca.pem" --server-name vpn.example.com "localhost:$gport"
t_check "host name mismatch: exit 2, naming both names" bash -c "[ $rc -eq 2 ] && grep -q 'host name mismatch: the server.s certificate is for localhost, 127.0.0.1, not vpn.example.com' '$T/err'"

CERT_FROM=$(kb_when "-40 days") CERT_TO=$(kb_when "-10 days") kb_issue_server expired
eport=$(free_port)
kb_bg "$T/expired.log" gnutls-serv --port "$eport" --x509cafile "$P/ca.pem" \
    --x509certfile "$P/expired.pem" --x509keyfile "$P/expired.key" --echo
wait_port "$eport" || t_fail "expired server started"
kb connect $MOD --pin-file "$T/pin" $POL $KEY "localhost:$eport"
t_check "expired server certificate: exit 2, saying when it expired" bash -c "[ $rc -eq 2 ] && grep -q \"the server's certificate expired on \" '$T/err'"

# An address is matched only against IP address entries: a certificate that names 127.0.0.1
# as a DNS name does not pass, and the message says why (it used to say "is for 127.0.0.1,
# not 127.0.0.1").
certtool --generate-privkey --key-type ecdsa --outfile "$P/dnsip.key" 2>/dev/null
printf 'cn = "127.0.0.1"\ndns_name = "127.0.0.1"\ntls_www_server\nsigning_key\nexpiration_days = 30\n' >"$P/dnsip.tmpl"
certtool --generate-certificate --load-privkey "$P/dnsip.key" --load-ca-certificate "$P/ca.pem" \
    --load-ca-privkey "$P/ca.key" --template "$P/dnsip.tmpl" --outfile "$P/dnsip.pem" 2>/dev/null
dport=$(free_port)
kb_bg "$T/dnsip.log" gnutls-serv --port "$dport" --x509cafile "$P/ca.pem" \
    --x509certfile "$P/dnsip.pem" --x509keyfile "$P/dnsip.key" --echo
wait_port "$dport" || t_fail "DNS-named 127.0.0.1 server started"
kb connect $MOD --pin-file "$T/pin" $KEY --ca "$P/ca.pem" "127.0.0.1:$dport"
t_check "an IP address named only as a DNS name: exit 2, saying an IP address entry is missing" bash -c "[ $rc -eq 2 ] && grep -q 'address mismatch: the server.s certificate has no IP address entry for 127.0.0.1 in its subjectAltName.*(it names: DNS 127.0.0.1)' '$T/err'"

# A rogue server: a certificate from another CA, asking for a client certificate. It must
# never see ours: s_server logs every client certificate it gets (as it did above).
kb_issue_server rogue other-ca
for version in -tls1_3 -tls1_2; do
    rport=$(free_port)
    kb_bg "$T/rogue$version.log" openssl s_server -accept "127.0.0.1:$rport" -cert "$P/rogue.pem" \
        -key "$P/rogue.key" -CAfile "$P/ca.pem" -verify 1 $version -rev
    wait_port "$rport" || t_fail "rogue server started"
    kb connect $MOD --pin-file "$T/pin" $POL $KEY "localhost:$rport"
    t_check "rogue server ($version): refused (exit 2)" bash -c "[ $rc -eq 2 ] && grep -q 'failed verification' '$T/err'"
    t_check "  and it never received the device certificate" bash -c "! grep -q 'laptop-1' '$T/rogue$version.log'"
done

# A server presenting a certificate from the right CA that is not meant for a server
# (a client certificate with the server's name) must not pass for the server.
certtool --generate-privkey --key-type ecdsa --outfile "$P/clientish.key" 2>/dev/null
printf 'cn = "localhost"\ndns_name = "localhost"\ntls_www_client\nsigning_key\nexpiration_days = 30\n' >"$P/clientish.tmpl"
certtool --generate-certificate --load-privkey "$P/clientish.key" --load-ca-certificate "$P/ca.pem" \
    --load-ca-privkey "$P/ca.key" --template "$P/clientish.tmpl" --outfile "$P/clientish.pem" 2>/dev/null
xport=$(free_port)
kb_bg "$T/clientish.log" openssl s_server -accept "127.0.0.1:$xport" -cert "$P/clientish.pem" \
    -key "$P/clientish.key" -CAfile "$P/ca.pem" -verify 1 -rev
wait_port "$xport" || t_fail "server with a client certificate started"
kb connect $MOD --pin-file "$T/pin" $POL $KEY "localhost:$xport"
t_check "a server certificate without serverAuth: refused (exit 2)" bash -c "[ $rc -eq 2 ] && grep -q 'not meant for a TLS server' '$T/err'"
t_check "  and that server never received the device certificate" bash -c "! grep -q 'laptop-1' '$T/clientish.log'"
kb connect $MOD --pin-file "$T/pin" $POL $KEY --server-name evil.example.com "127.0.0.1:$gport"
t_check "--server-name cannot override the policy's server-name (exit 2)" bash -c "[ $rc -eq 2 ] && grep -q 'fixes the server name' '$T/err'"

# A server that wants a certificate from another CA rejects ours.
wport=$(free_port)
kb_bg "$T/wants-other.log" gnutls-serv --port "$wport" --require-client-cert --verify-client-cert \
    --x509cafile "$P/other-ca.pem" --x509certfile "$P/server.pem" --x509keyfile "$P/server.key" --echo
wait_port "$wport" || t_fail "server wanting another CA started"
kb connect $MOD --pin-file "$T/pin" --ca "$P/ca.pem" $KEY "localhost:$wport"
t_check "a server that trusts another CA: exit 2, it rejected our certificate" bash -c "[ $rc -eq 2 ] && grep -q 'rejected our certificate (alert: ' '$T/err'"

# A server that does not ask for a client certificate.
aport=$(free_port)
kb_bg "$T/anon.log" gnutls-serv --port "$aport" --disable-client-cert --x509certfile "$P/server.pem" \
    --x509keyfile "$P/server.key" --echo
wait_port "$aport" || t_fail "server without client auth started"
kb connect $MOD --pin-file "$T/pin" --ca "$P/ca.pem" $KEY "localhost:$aport"
t_check "a server that asks for no certificate: connects, and says it was not sent" bash -c "[ $rc -eq 0 ] && grep -q '(not requested by the server)' '$T/out'"

# --- RSA on a token without RSA-PSS: TLS 1.2 for that key ---------------------------------
kb keygen $MOD --token pkcs11:token=dev --label rsa --type rsa-3072 --pin-file "$T/pin"
kb_device_cert dev "$(cat "$T/out")" "rsa-1" rsa
kb connect $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=rsa" "localhost:$gport"
t_check "RSA key with PSS on the token: TLS 1.3" out_has "with TLS1.3"
kbshim P11SHIM_HIDE_MECHS=pss connect --module "$P11SHIM" --pin-file "$T/pin" $POL \
    --key "pkcs11:token=dev;object=rsa" "localhost:$gport"
t_check "RSA key on a token without PSS: falls back to TLS 1.2 and succeeds" bash -c "[ $rc -eq 0 ] && grep -q 'with TLS1.2' '$T/out'"
t_check "  with one log line saying why" bash -c "[ \$(grep -c 'has no RSA-PSS: using TLS 1.2 for this key' '$T/err') -eq 1 ]"

# --- The policy comes first ---------------------------------------------------------------
: >"$T/shim.log"
kbshim connect --module "$P11SHIM" --pin-file "$T/pin" $POL $KEY "unlisted.example.com:443"
t_check "an endpoint the policy does not list: denied (exit 1)" bash -c "[ $rc -eq 1 ] && grep -q 'does not list unlisted.example.com:443' '$T/err'"
t_check "  before the token is touched" [ "$(calls C_Login)" -eq 0 ]
certtool --generate-privkey --key-type ecdsa --outfile "$T/soft.key" 2>/dev/null
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --write --load-privkey "$T/soft.key" \
    --label imported --id 0a0b0c pkcs11:token=dev >/dev/null 2>&1
certtool --load-privkey "$T/soft.key" --pubkey-info --outfile "$T/soft.pub" 2>/dev/null
kb_issue_client "$T/soft.pub" "imported-1" "$T/imported.pem"
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --write --load-certificate "$T/imported.pem" \
    --label imported --id 0a0b0c pkcs11:token=dev >/dev/null 2>&1
: >"$T/shim.log"
kbshim connect --module "$P11SHIM" --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=imported" "localhost:$gport"
t_check "a device the policy denies: exit 1, naming the failed checks" bash -c "[ $rc -eq 1 ] && grep -q 'is not admitted: DENIED: .*key.local' '$T/err'"
t_check "  and the token signed nothing" [ "$(calls C_SignInit)" -eq 0 ]
kb connect $MOD --pin-file "$T/pin" $POL "localhost:$gport"
t_check "without --key, several admitted keys: exit 2 listing them" bash -c "[ $rc -eq 2 ] && grep -q \"keys are admitted: .*'laptop' on 'dev'.*choose one with --key\" '$T/err'"

# --- Network errors -----------------------------------------------------------------------
dead=$(free_port)
kb connect $MOD --pin-file "$T/pin" $POL $KEY "localhost:$dead"
t_check "nothing listening: exit 2, connection refused" bash -c "[ $rc -eq 2 ] && grep -q \"connection to localhost:$dead refused\" '$T/err'"
mport=$(free_port)
kb_bg "$T/mute.log" python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $mport)); s.listen(4)
conns = []
while True:
    conns.append(s.accept())
"
wait_port "$mport" || t_fail "mute server started"
kb connect $MOD --pin-file "$T/pin" $POL $KEY --connect-timeout 1 "localhost:$mport"
t_check "a server that never answers: exit 2, handshake timed out" bash -c "[ $rc -eq 2 ] && grep -q 'handshake with localhost:$mport timed out after 1000 ms' '$T/err'"
kb connect $MOD --pin-file "$T/pin" $POL $KEY "localhost"
t_check "HOST without a port: usage error (exit 2)" bash -c "[ $rc -eq 2 ] && grep -q 'is not HOST:PORT' '$T/err'"
t_done
