#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The tunnel's admission follows the clock: a certificate that reaches the policy's
# min-remaining stops being served without a SIGHUP, new clients are reset at once with a
# reason, and a renewed certificate on the token is picked up at the next evaluation.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
for tool in gnutls-serv python3; do
    command -v $tool >/dev/null || t_skip_all "$tool not installed"
done
kb_token dev
kb_pki
P=$T/pki
sed -e 's/^min-remaining = .*/min-remaining = 15s/' -e 's/^renew-before = .*/renew-before = 20s/' \
    "$TESTS_SRCDIR/../policy/examples/softhsm-test.conf" >"$T/policy.conf"
chmod 644 "$T/policy.conf"
cp "$P/ca.pem" "$T/ca.pem"
kb keygen $MOD --token pkcs11:token=dev --label laptop --pin-file "$T/pin"
laptop=$(cat "$T/out")
# Valid for 25 s more: admitted for about 10 s, then inside min-remaining.
CERT_FROM=$(kb_when "-1 minute") CERT_TO=$(kb_when "+25 seconds") \
    kb_device_cert dev "$laptop" "laptop-short" short

gport=$(free_port)
kb_bg "$T/gnutls-serv.log" gnutls-serv --port "$gport" --require-client-cert \
    --verify-client-cert --x509cafile "$P/ca.pem" --x509certfile "$P/server.pem" \
    --x509keyfile "$P/server.key" --echo
wait_port "$gport" || t_fail "gnutls-serv started"
tport=$(free_port)
setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" --policy "$T/policy.conf" \
    --admission-recheck 10 --listen "127.0.0.1:$tport" --connect "localhost:$gport" \
    --key "$laptop" >"$T/tun.log" 2>&1 </dev/null &
tun_pid=$!
kb_pids+=($tun_pid)
wait_log "$T/tun.log" "listening on 127.0.0.1:$tport" || t_fail "the tunnel started"

# echo_once: one line through the tunnel; prints the echo, EOF, or the error's name.
echo_once() {
    run python3 -c 'import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    s.sendall(b"ping\n")
    print(s.makefile().readline().strip() or "EOF")
except OSError as e:
    print(type(e).__name__)' "$tport"
}
echo_once
t_check "admitted at start: the tunnel serves with the short-lived certificate" out_has "^ping$"

# wait_long FILE REGEX SECONDS: wait_log with a longer bound.
wait_long() {
    local i
    for i in $(seq $(($3 * 10))); do
        grep -q -e "$2" "$1" && return 0
        sleep 0.1
    done
    return 1
}
t_check "at notAfter less min-remaining the policy is evaluated again, without a SIGHUP" \
    wait_long "$T/tun.log" "the device is not admitted for localhost:$gport: .*cert.min-remaining" 25
echo_once
t_check "  a new client is then reset at once" bash -c "grep -q -E '^(ConnectionResetError|BrokenPipeError|EOF)$' '$T/out'"
t_check "  with one warning saying why" \
    grep -q "warning: tunnel cli: reset 127.0.0.1:[0-9]*: the device is not admitted for localhost:$gport" "$T/tun.log"
t_check "  and the tunnel still listens (no client waits in its backlog)" kill -0 $tun_pid

# The renewal stores a new certificate next to the key; no signal is sent.
kb_device_cert dev "$laptop" "laptop-long" long
t_check "a renewed certificate is picked up at the next evaluation (admission-recheck 10)" \
    wait_long "$T/tun.log" "as CN=laptop-long" 15
echo_once
t_check "  and the tunnel serves again" out_has "^ping$"
t_check "no SIGHUP was involved" bash -c "! grep -q 'reloading the settings' '$T/tun.log'"
# The counters are the process's: the denied generation's handshake and signature stay
# counted after the renewed one took over.
kill -USR1 $tun_pid
t_check "SIGUSR1: counters across generations (2 full handshakes, 2 signatures, 1 reset)" \
    wait_log "$T/tun.log" "tunnel cli: 0 open, [0-9]* accepted, [1-9][0-9]* failed; handshakes 2 full, 0 resumed; 2 token signatures"

t_done
