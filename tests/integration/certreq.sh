#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# What the server asks for, and when: certificate requests after the handshake (TLS 1.3
# post-handshake auth) answered on a handshake worker and only while the device is
# admitted; what a CertificateRequest named, and why no certificate went out; servers that
# give no session tickets.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
for tool in openssl gnutls-serv python3; do
    command -v $tool >/dev/null || t_skip_all "$tool not installed"
done
kb_device
json_is() { python3 -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if ($1) else 1)"; }

# --- post-handshake auth through connect --stdio -----------------------------------------
pport=$(free_port)
kb_bg "$T/pha.log" python3 "$TESTS_SRCDIR/lib/pha_server.py" "$pport" "$P/ca.pem" \
    "$P/server.pem" "$P/server.key"
wait_port "$pport" || t_fail "pha_server started"

# dialogue CMD...: runs CMD with a pipe on stdin and stdout and speaks the line protocol of
# pha_server.py: ping, who (the server's post-handshake request), then cert once "asked"
# has come. Prints what came back, one reply per line.
dialogue() {
    python3 - "$@" <<'PY'
import subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def say(line):
    p.stdin.write(line + b"\n"); p.stdin.flush()
    reply = p.stdout.readline().strip()
    print(reply.decode())
    return reply
say(b"ping") and say(b"who") and say(b"cert")
p.stdin.close()
p.stdout.read()
sys.exit(p.wait())
PY
}
run dialogue setsid -w "$KEYBOUND" connect $MOD --pin-file "$T/pin" $POL $KEY --stdio "localhost:$pport"
t_check "connect --stdio: the server's post-handshake request gets the device certificate" \
    bash -c "[ \"\$(cat '$T/out')\" = \"\$(printf 'pong\nasked\ncert CN=laptop-1')\" ]"
t_check "  and connect ends normally (exit 0)" rc_is 0
t_check "  the server verified CN=laptop-1" grep -q "pha: CN=laptop-1" "$T/pha.log"

# --- the tunnel: the answer signs on a worker; other connections keep flowing -------------
# A 2 s signature (the slow-token shim) answers connection A's request; meanwhile B, already
# open on the same tunnel, must get its echo: pumping never waits for the token.
tport=$(free_port)
env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_DELAY_FUNC=C_Sign P11SHIM_DELAY_MS=2000 \
    setsid "$KEYBOUND" tunnel --module "$P11SHIM" --pin-file "$T/pin" $POL \
    --listen "127.0.0.1:$tport" --connect "localhost:$pport" --key "$laptop" \
    >"$T/tun.log" 2>&1 </dev/null &
tun_pid=$!
kb_pids+=($tun_pid)
wait_port "$tport" || t_fail "tunnel started"
cat >"$T/slow.py" <<'PY'
import select, socket, sys
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=20)
    f = s.makefile("rwb", buffering=0)
    return s, f
def say(f, line):
    f.write(line + b"\n")
    return f.readline().strip().decode()
b, bf = conn()
print("B", say(bf, b"ping"))
a, af = conn()
print("A", say(af, b"ping"))
af.write(b"who\n")           # the server asks A for its certificate; the token is slow
print("B", say(bf, b"ping"))  # B flows meanwhile
ready, _, _ = select.select([a], [], [], 0)
print("A still waiting for the token:", "yes" if not ready else "no")
print("A", af.readline().strip().decode())
print("A", say(af, b"cert"))
PY
run python3 "$T/slow.py" "$tport"
cp "$T/out" "$T/slow.txt"
t_check "tunnel: A's request is answered with the device certificate" \
    bash -c "grep -q '^A asked$' '$T/slow.txt' && grep -q '^A cert CN=laptop-1$' '$T/slow.txt'"
t_check "  B's echo came while A's signature was still on the token" \
    bash -c "[ \"\$(grep -c '^B pong$' '$T/slow.txt')\" = 2 ] && grep -q 'A still waiting for the token: yes' '$T/slow.txt'"
t_check "  the tunnel logs the answer" \
    wait_log "$T/tun.log" "answered the server's certificate request after the handshake"
sleep 0.3
kill -USR1 $tun_pid
# B's full handshake had no certificate request; A resumed; A's answer is the only
# signature.
t_check "  counted: 1 post-handshake answer, 1 token signature" \
    wait_log "$T/tun.log" "; 1 token signatures; certificate requests after the handshake: 1 post-handshake, 0 renegotiations, 0 refused"

# --- a request while a send is backed up ---------------------------------------------------
# The server stops reading, so the client's records back up and one stays inside GnuTLS
# (record_send said AGAIN); then it asks for the certificate. That record must go out
# once: the server hashes all 16 MiB it got and the client compares.
cat >"$T/sink.py" <<'PY'
import hashlib, socket, subprocess, sys, threading
data = hashlib.sha256(b"keybound").digest() * (16 * 1024 * 1024 // 32)
if sys.argv[1] == "tunnel":
    s = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=60)
    out, inp = s.makefile("rb"), s.makefile("wb")
    end = lambda: s.shutdown(socket.SHUT_WR)
else:
    p = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out, inp = p.stdout, p.stdin
    end = p.stdin.close
inp.write(b"sink\n"); inp.flush()
def send():
    inp.write(data); inp.flush(); end()
t = threading.Thread(target=send); t.start()
print(out.readline().strip().decode())
t.join()
got = out.readline().decode().split()
want = ["sink", str(len(data)), hashlib.sha256(data).hexdigest()]
print("intact" if got[:3] == want else "damaged: " + " ".join(got[:3]), got[3] if got[3:] else "?")
PY
run python3 "$T/sink.py" tunnel "$tport"
t_check "tunnel: a request while a send is backed up: the server got the 16 MiB intact" \
    bash -c "[ \"\$(cat '$T/out')\" = \"\$(printf 'asked\nintact CN=laptop-1')\" ]"
run python3 "$T/sink.py" connect setsid -w "$KEYBOUND" connect $MOD --pin-file "$T/pin" $POL $KEY \
    --stdio "localhost:$pport"
t_check "connect --stdio: the same, intact" \
    bash -c "[ \"\$(cat '$T/out')\" = \"\$(printf 'asked\nintact CN=laptop-1')\" ] && [ $rc -eq 0 ]"

# --- admission holds: a device the reloaded policy denies answers nothing -----------------
dport=$(free_port)
cp "$T/policy.conf" "$T/policy2.conf"
setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" --policy "$T/policy2.conf" \
    --listen "127.0.0.1:$dport" --connect "localhost:$pport" --key "$laptop" \
    >"$T/deny.log" 2>&1 </dev/null &
deny_pid=$!
kb_pids+=($deny_pid)
wait_port "$dport" || t_fail "second tunnel started"
# across_reload PORT OUT: a connection open before the reload (it prints "1 pong"), whose
# request comes after it: once "go" is written to $T/go, "who" makes the server ask for
# the certificate; the outcome ("2 asked", "2 EOF" or "2 ConnectionResetError") goes to OUT.
cat >"$T/across_reload.py" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
f = s.makefile("rwb", buffering=0)
f.write(b"ping\n"); print("1", f.readline().strip().decode(), flush=True)
open(sys.argv[2]).read()
f.write(b"who\n")
try:
    print("2", f.readline().strip().decode() or "EOF", flush=True)
except OSError as e:
    print("2", type(e).__name__, flush=True)
PY
across_reload() {
    rm -f "$T/go"
    mkfifo "$T/go"
    python3 "$T/across_reload.py" "$1" "$T/go" >"$2" 2>&1 &
    drive=$!
}
across_reload "$dport" "$T/deny.txt"
wait_log "$T/deny.txt" "^1 pong" || t_fail "the connection was open before the reload"
# 30 days left, but the reloaded policy wants a year: not admitted any more.
sed -i -e 's/^min-remaining = .*/min-remaining = 365d/' -e 's/^renew-before = .*/renew-before = 366d/' "$T/policy2.conf"
kill -HUP $deny_pid
wait_log "$T/deny.log" "not admitted for localhost:$pport" || t_fail "the reload denied the device"
echo go >"$T/go"
wait $drive
t_check "after a reload that denies the device, its request is not answered" \
    bash -c "grep -q '^2 \\(EOF\\|ConnectionResetError\\)' '$T/deny.txt'"
t_check "  one warning line says why" \
    bash -c "[ \"\$(grep -c 'not answering: the device is no longer admitted' '$T/deny.log')\" = 1 ]"
t_check "  and no certificate reached the server" bash -c "[ \"\$(grep -c 'pha: CN=' '$T/pha.log')\" = 2 ]"

# The local client ends its side (our close_notify goes out), then the server asks: TLS
# allows no answer; one warning says so, instead of GnuTLS's "session invalidated".
run python3 -c 'import socket,sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"late\n"); s.shutdown(socket.SHUT_WR)
try:
    print(s.recv(100) or "EOF")
except OSError as e:
    print(type(e).__name__)' "$tport"
t_check "tunnel: a request after the local client ended its side: one clear warning" \
    wait_log "$T/tun.log" "warning: tunnel cli: .*: the server asked for the certificate after the local client had finished sending (our close_notify was out), when TLS allows no answer"
t_check "  and the client sees an abort, not an orderly end" out_has "ConnectionResetError"

# --- a reload that admits another key: the old key answers no more -----------------------
# Two keys; the policy admits the P-256 one, then (reloaded) only the P-384 one. A
# connection opened with the first must not answer with it after the reload.
kb keygen $MOD --token pkcs11:token=dev --label laptop384 --type ec-p384 --pin-file "$T/pin"
k384=$(cat "$T/out")
kb_device_cert dev "$k384" "laptop-384" laptop384
sed 's/^algorithms = .*/algorithms = ec-p256/' "$T/policy.conf" >"$T/policy3.conf"
chmod 644 "$T/policy3.conf"
xport=$(free_port)
setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" --policy "$T/policy3.conf" \
    --listen "127.0.0.1:$xport" --connect "localhost:$pport" >"$T/swap.log" 2>&1 </dev/null &
swap_pid=$!
kb_pids+=($swap_pid)
wait_log "$T/swap.log" "as CN=laptop-1 (key 'laptop'" || t_fail "tunnel with the P-256 key started"
across_reload "$xport" "$T/swap.txt"
wait_log "$T/swap.txt" "^1 pong" || t_fail "the connection was open before the reload"
sed -i 's/^algorithms = .*/algorithms = ec-p384/' "$T/policy3.conf"
kill -HUP $swap_pid
wait_log "$T/swap.log" "as CN=laptop-384 (key 'laptop384'" || t_fail "the reload admitted the P-384 key"
echo go >"$T/go"
wait $drive
t_check "a reload that admits another key: the open connection's request is not answered" \
    bash -c "grep -q '^2 \\(EOF\\|ConnectionResetError\\)' '$T/swap.txt'"
t_check "  one warning says why" \
    bash -c "[ \"\$(grep -c 'not answering: the device is no longer admitted' '$T/swap.log')\" = 1 ]"
t_check "  and no certificate of either key reached the server" \
    bash -c "! grep -q 'pha: CN=laptop-384' '$T/pha.log' && [ \"\$(grep -c 'pha: CN=' '$T/pha.log')\" = 2 ]"

# --- what the CertificateRequest asked for ------------------------------------------------
# s_server asking only for RSA client signatures: an EC key has nothing to offer.
for v in 1_3 1_2; do
    rport=$(free_port)
    kb_bg "$T/rsa$v.log" openssl s_server -accept "127.0.0.1:$rport" -cert "$P/server.pem" \
        -key "$P/server.key" -CAfile "$P/ca.pem" -Verify 1 -verify_return_error -tls$v \
        -client_sigalgs "RSA+SHA256:rsa_pss_rsae_sha256" -rev
    wait_port "$rport" || t_fail "s_server (RSA only) started"
    kb connect $MOD --pin-file "$T/pin" $POL $KEY "localhost:$rport"
    t_check "TLS ${v/_/.}: server accepting only RSA: one line says why no certificate went out" \
        bash -c "grep -q \"the server accepts only RSA signatures; key 'laptop' is EC P-256; no certificate was sent\" '$T/err' && [ \$(wc -l <'$T/err') -eq 1 ]"
    t_check "  and it is not called a rejection of our certificate" err_lacks "rejected our certificate"
    t_check "  exit code 2" rc_is 2
done

# An Ed25519 key over TLS 1.2: the request's certificate type ecdsa_sign covers EdDSA
# (RFC 8422), so the key is offered and the server verifies it.
kb keygen $MOD --token pkcs11:token=dev --label edk --type ed25519 --pin-file "$T/pin"
edk=$(cat "$T/out")
kb_device_cert dev "$edk" "laptop-ed" edk
eport=$(free_port)
kb_bg "$T/ed.log" openssl s_server -accept "127.0.0.1:$eport" -cert "$P/server.pem" \
    -key "$P/server.key" -CAfile "$P/ca.pem" -Verify 1 -verify_return_error -tls1_2 -rev
wait_port "$eport" || t_fail "s_server (TLS 1.2) started"
printf 'edwards\n' >"$T/in"
RUN_STDIN=$T/in kb connect $MOD --pin-file "$T/pin" $POL --key "$edk" --stdio "localhost:$eport"
t_check "TLS 1.2: an Ed25519 key is offered and accepted" \
    bash -c "[ $rc -eq 0 ] && grep -q sdrawde '$T/out' && grep -q 'CN *= *laptop-ed' '$T/ed.log'"

# s_server naming another CA in its request but not insisting (-verify): ours is still sent.
cport=$(free_port)
kb_bg "$T/ca-names.log" openssl s_server -accept "127.0.0.1:$cport" -cert "$P/server.pem" \
    -key "$P/server.key" -CAfile "$P/other-ca.pem" -verify 1 -rev
wait_port "$cport" || t_fail "s_server (other CA names) started"
kb connect $MOD --pin-file "$T/pin" $POL $KEY "localhost:$cport"
t_check "CA names without ours: connect still sends the certificate" out_has "(sent)"
t_check "  and says which CA the server asked for" \
    out_has "note: *the server asks for a certificate from CN=unrelated CA; ours is issued by CN=keybound test CA"
kb connect $MOD --pin-file "$T/pin" $POL $KEY --json "localhost:$cport"
t_check "  --json: certificate_request with the CA names, signature algorithms and the mismatch" \
    json_is "d['certificate_request']['ca_names']==['CN=unrelated CA'] and len(d['certificate_request']['signature_algorithms'])>0 and 'ECDSA' in ' '.join(d['certificate_request']['signature_algorithms']) and 'CN=keybound test CA' in d['certificate_request']['ca_mismatch'] and d['client_certificate']['sent']"
kport=$(free_port)
kb_bg "$T/ca-strict.log" openssl s_server -accept "127.0.0.1:$kport" -cert "$P/server.pem" \
    -key "$P/server.key" -CAfile "$P/other-ca.pem" -Verify 1 -verify_return_error -tls1_2 -rev
wait_port "$kport" || t_fail "s_server (other CA, strict) started"
kb connect $MOD --pin-file "$T/pin" $POL $KEY "localhost:$kport"
t_check "a server trusting another CA rejects us: the error names both CAs" \
    err_has "rejected our certificate (alert: .*); the server asks for a certificate from CN=unrelated CA; ours is issued by CN=keybound test CA"

# Through the tunnel: a TLS 1.3 server judges the certificate after our side of the
# handshake ended, so its rejection arrives while pumping; it counts as a failure and is
# logged at warning, as the TLS 1.2 one (a failed handshake) is.
k3port=$(free_port)
kb_bg "$T/ca-strict13.log" openssl s_server -accept "127.0.0.1:$k3port" -cert "$P/server.pem" \
    -key "$P/server.key" -CAfile "$P/other-ca.pem" -Verify 1 -verify_return_error -tls1_3 -rev
wait_port "$k3port" || t_fail "s_server (other CA, strict, TLS 1.3) started"
for v in 13 12; do
    [ $v = 13 ] && bport=$k3port || bport=$kport
    rport=$(free_port)
    setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" $POL --listen "127.0.0.1:$rport" \
        --connect "localhost:$bport" --key "$laptop" >"$T/rej$v.log" 2>&1 </dev/null &
    rej_pid=$!
    kb_pids+=($rej_pid)
    wait_port "$rport" || t_fail "tunnel to the rejecting server started"
    python3 -c 'import socket,sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"hello\n")
try:
    s.recv(100)
except OSError:
    pass' "$rport"
    wait_log "$T/rej$v.log" "rejected our certificate" || true
    kill -USR1 $rej_pid
    t_check "tunnel, TLS 1.${v#1}: the server's rejection is a warning naming both CAs" \
        grep -q "keybound: warning: tunnel cli: 127.0.0.1:[0-9]*: server localhost:$bport rejected our certificate (alert: .*); the server asks for a certificate from CN=unrelated CA; ours is issued by CN=keybound test CA" "$T/rej$v.log"
    t_check "  and counts as a failed connection" wait_log "$T/rej$v.log" "tunnel cli: 0 open, [0-9]* accepted, [1-9][0-9]* failed"
    kill $rej_pid
done

# connect -v shows what the server asked for even when all is well.
gport=$(free_port)
kb_bg "$T/gnutls-serv.log" gnutls-serv --port "$gport" --require-client-cert --verify-client-cert \
    --x509cafile "$P/ca.pem" --x509certfile "$P/server.pem" --x509keyfile "$P/server.key" --echo
wait_port "$gport" || t_fail "gnutls-serv started"
kb connect $MOD --pin-file "$T/pin" $POL $KEY -v "localhost:$gport"
t_check "connect -v: the requested CAs" out_has "requested: *CAs CN=keybound test CA"
t_check "  and the signature algorithms" out_has "signatures: *.*ECDSA"
kb connect $MOD --pin-file "$T/pin" $POL $KEY "localhost:$gport"
t_check "  without -v the summary stays short" out_lacks "signatures:"
kb connect $MOD --pin-file "$T/pin" $POL $KEY --json "localhost:$gport"
t_check "  --json: certificate_request, no mismatch" \
    json_is "d['certificate_request']['ca_names']==['CN=keybound test CA'] and d['certificate_request']['ca_mismatch'] is None and d['certificate_request']['why_not_sent'] is None"

# --- servers that give no session tickets --------------------------------------------------
nport=$(free_port)
kb_bg "$T/noticket.log" gnutls-serv --port "$nport" --noticket --require-client-cert \
    --verify-client-cert --x509cafile "$P/ca.pem" --x509certfile "$P/server.pem" \
    --x509keyfile "$P/server.key" --echo
wait_port "$nport" || t_fail "gnutls-serv --noticket started"
kb connect $MOD --pin-file "$T/pin" $POL $KEY -v --resume-test 10 --json "localhost:$nport"
t_check "TLS 1.3 without tickets: 10 full handshakes, nothing to resume from" \
    json_is "(r:=d['resume_test'])['handshakes']==10 and r['full']==10 and r['resumed']==0"
t_check "  the ticket is waited for once, not after every handshake" \
    bash -c "[ \"\$(grep -c 'sent no session ticket within 2000 ms: not waiting for one again' '$T/err')\" = 1 ]"
n2port=$(free_port)
kb_bg "$T/noticket12.log" gnutls-serv --port "$n2port" --noticket --require-client-cert \
    --verify-client-cert --x509cafile "$P/ca.pem" --x509certfile "$P/server.pem" \
    --x509keyfile "$P/server.key" --echo --priority "NORMAL:-VERS-TLS1.3"
wait_port "$n2port" || t_fail "gnutls-serv --noticket (TLS 1.2) started"
kb connect $MOD --pin-file "$T/pin" $POL $KEY --resume-test 10 --json "localhost:$n2port"
t_check "TLS 1.2 without tickets: resumed from the session cache, 1 signature" \
    json_is "(r:=d['resume_test'])['handshakes']==10 and r['resumed']==9 and r['token_signatures']==1"

t_done
