#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keybound tunnel: legacy clients in plaintext, mTLS with the token's key to real servers.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
for tool in nginx stunnel4 gnutls-serv curl; do
    command -v $tool >/dev/null || t_skip_all "$tool not installed"
done
kb_token dev
kb_pki
P=$T/pki
kb keygen $MOD --token pkcs11:token=dev --label laptop --pin-file "$T/pin"
laptop=$(cat "$T/out")
kb_device_cert dev "$laptop" "laptop-1" laptop

# nginx that insists on a client certificate and says whose it got.
nport=$(free_port)
kb_nginx "$(kb_nginx_mtls "$nport" "ssl_session_tickets on;")"
# stunnel with cat behind it: an mTLS echo server for bulk data.
sport=$(free_port)
printf 'foreground = yes\npid =\n[echo]\naccept = 127.0.0.1:%s\ncert = %s\nkey = %s\nCAfile = %s\nverifyChain = yes\nrequireCert = yes\nexec = /bin/cat\n' \
    "$sport" "$P/server.pem" "$P/server.key" "$P/ca.pem" >"$T/stunnel.conf"
kb_bg "$T/stunnel.log" stunnel4 "$T/stunnel.conf"
wait_port "$nport" && wait_port "$sport" || t_fail "backends started"

# tun NAME ARGS...: a tunnel in the background, its log in $T/NAME.log, its pid in $tun_pid.
tun() {
    local name=$1
    shift
    setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" "$@" >"$T/$name.log" 2>&1 </dev/null &
    tun_pid=$!
    kb_pids+=($tun_pid)
}

# --- curl over plain HTTP through the tunnel to nginx -------------------------------------
hport=$(free_port)
tun http --listen "127.0.0.1:$hport" --connect "localhost:$nport" --ca "$P/ca.pem" --key "$laptop"
http_pid=$tun_pid
wait_port "$hport" || t_fail "tunnel started"
run curl -sS "http://127.0.0.1:$hport/"
t_check "curl over plain HTTP through the tunnel: nginx answers with the device's name" out_has "^hello CN=laptop-1"
for i in 1 2 3 4 5; do curl -sS -o /dev/null "http://127.0.0.1:$hport/"; done
wait_log "$T/http.log" "close .* resumed handshake"
sleep 0.2
kill -USR1 $http_pid
t_check "SIGUSR1 logs the counters, with resumed handshakes and few token signatures" \
    wait_log "$T/http.log" "tunnel cli: [0-9]* open, .* accepted, 0 failed; handshakes 1 full, [1-9][0-9]* resumed; 1 token signatures"
t_check "a log line per connection: peer, bytes both ways, duration, handshake kind" \
    grep -q "tunnel cli: close 127.0.0.1:[0-9]*: [0-9]* bytes up, [0-9]* down, [0-9]* ms, resumed handshake" "$T/http.log"
t_check "  and never the PIN" bash -c "! grep -q 1234 '$T/http.log'"
t_check "  TLS 1.3 sessions, resumed from tickets" \
    grep -q "tunnel cli: open 127.0.0.1:[0-9]* -> localhost:$nport: TLS1.3, resumed handshake" "$T/http.log"

# --- 200 concurrent connections, 1 MiB each way, checked on both ends ---------------------
bport=$(free_port)
tun bulk --listen "127.0.0.1:$bport" --connect "localhost:$sport" --ca "$P/ca.pem" --key "$laptop"
bulk_pid=$tun_pid
wait_port "$bport" || t_fail "bulk tunnel started"
cat >"$T/bulk.py" <<'PY'
import hashlib, os, socket, sys, threading
port = int(sys.argv[1])
results = []
def one():
    data = os.urandom(1 << 20)
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    got = []
    def reader():
        while True:
            d = s.recv(65536)
            if not d:
                break
            got.append(d)
    r = threading.Thread(target=reader)
    r.start()
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    r.join()
    s.close()
    results.append(hashlib.sha256(data).digest() == hashlib.sha256(b"".join(got)).digest())
threads = [threading.Thread(target=one) for _ in range(200)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("%d of %d intact" % (sum(results), len(results)))
PY
run timeout 300 /usr/bin/python3 "$T/bulk.py" "$bport"
t_check "200 concurrent connections x 1 MiB each way: every SHA-256 matches" out_has "^200 of 200 intact"
kill -USR1 $bulk_pid
t_check "  with 1 full handshake and 1 token signature for all of them" wait_log "$T/bulk.log" "handshakes 1 full, \(199\|20[0-9]\) resumed; 1 token signatures"

# --- unix socket ----------------------------------------------------------------------------
sock=$T/tunnel.sock
: >"$sock.stale"
tun unix --listen "unix:$sock" --connect "localhost:$nport" --ca "$P/ca.pem" --key "$laptop" -v
unix_pid=$tun_pid
for i in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
t_check "unix socket: created with mode 0600" [ "$(stat -c %a "$sock")" = 600 ]
run curl -sS --unix-socket "$sock" http://localhost/
t_check "  curl through it reaches nginx" out_has "^hello CN=laptop-1"
run curl -sS --unix-socket "$sock" http://localhost/
t_check "  -v: where each handshake ran and what the server asked for" \
    bash -c "grep -q 'debug: tunnel cli: uid [0-9]* pid [0-9]*: handshake on a handshake thread; the server asked for the certificate, sent' '$T/unix.log' &&
        grep -q 'debug: tunnel cli: uid [0-9]* pid [0-9]*: handshake on its pumping loop; the server asked for no certificate' '$T/unix.log'"
kill -TERM $unix_pid
wait $unix_pid 2>/dev/null
t_check "  removed when the tunnel stops" [ ! -e "$sock" ]
# A stale socket (nothing listening) is replaced; a regular file is not.
/usr/bin/python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.bind('$sock')"
tun unix2 --listen "unix:$sock" --connect "localhost:$nport" --ca "$P/ca.pem" --key "$laptop"
for i in $(seq 50); do grep -q listening "$T/unix2.log" && break; sleep 0.1; done
run curl -sS --unix-socket "$sock" http://localhost/
t_check "a stale socket file is replaced safely" out_has "^hello CN=laptop-1"
kill -TERM $tun_pid
kb tunnel $MOD --pin-file "$T/pin" --listen "unix:$sock.stale" --connect "localhost:$nport" --ca "$P/ca.pem" --key "$laptop"
t_check "a regular file in the way is not replaced (exit 2)" bash -c "[ $rc -eq 2 ] && grep -q 'is not a socket; not replacing it' '$T/err'"

# --- tunnel --check, -q, timestamps -------------------------------------------------------------
kb tunnel $MOD --pin-file "$T/pin" --listen "127.0.0.1:$(free_port)" --connect "localhost:$nport" \
    --ca "$P/ca.pem" --key "$laptop" --check
t_check "--check: admitted, exit 0, and nothing listens" \
    bash -c "[ $rc -eq 0 ] && grep -q '^check: 1 tunnel admitted; nothing listened$' '$T/out' && ! grep -q 'listening on' '$T/err'"
t_check "  its log lines start with the UTC time (stderr is not the journal)" \
    grep -q "^20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\.[0-9][0-9][0-9]Z keybound: tunnel cli: 127.0.0.1:[0-9]* -> localhost:$nport as CN=laptop-1" "$T/err"
kb tunnel $MOD --pin-file "$T/pin" --listen "127.0.0.1:$(free_port)" --connect "localhost:$nport" \
    --ca "$P/ca.pem" --key "$laptop" --check -q
t_check "-q: errors and warnings only (no notices), and the result on stdout" \
    bash -c "[ $rc -eq 0 ] && [ ! -s '$T/err' ] && grep -q '^check: 1 tunnel admitted' '$T/out'"

# --- refusals ---------------------------------------------------------------------------------
kb tunnel $MOD --pin-file "$T/pin" --listen "0.0.0.0:$(free_port)" --connect "localhost:$nport" --ca "$P/ca.pem"
t_check "a non-loopback listener is refused (exit 2, one line)" bash -c "[ $rc -eq 2 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q 'is not loopback' '$T/err'"
t_check "  naming the options: --listen ... or add --allow-remote" \
    grep -q "error: --listen 0.0.0.0:[0-9]* is not loopback: .* or add --allow-remote$" "$T/err"
# The systemd case: no PIN source, and no terminal to ask on (setsid, stdin /dev/null).
kb tunnel $MOD --listen "127.0.0.1:$(free_port)" --connect "localhost:$nport" --ca "$P/ca.pem" \
    --key "$laptop" </dev/null
t_check "no PIN source and no terminal: exit 2, one error line saying what to give" \
    bash -c "[ $rc -eq 2 ] && [ \$(grep -c error '$T/err') -eq 1 ] && grep -q \"^keybound: error: token 'dev' needs a PIN and there is no terminal: give --pin-file, --pin-env or LoadCredential=keybound.pin\$\" '$T/err'"
kb tunnel $MOD --pin-file "$T/pin" --listen "127.0.0.1:$(free_port)" --ca "$P/ca.pem"
t_check "no --connect: exit 2, naming the option" \
    bash -c "[ $rc -eq 2 ] && grep -q 'error: give --connect HOST:PORT, or --config FILE$' '$T/err'"
cp "$TESTS_SRCDIR/../policy/examples/softhsm-test.conf" "$T/policy.conf"
chmod 644 "$T/policy.conf"
cp "$P/ca.pem" "$T/ca.pem"
kb tunnel $MOD --pin-file "$T/pin" --policy "$T/policy.conf" --listen "127.0.0.1:$nport" \
    --connect "localhost:$nport" --ca "$P/ca.pem" --key "$laptop"
t_check "a port something else listens on: exit 2, one line saying so (before admission: no line for it)" \
    bash -c "[ $rc -eq 2 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q '^keybound: error: cannot listen on 127.0.0.1:$nport: something else listens there$' '$T/err'"
kb tunnel $MOD --pin-file "$T/pin" --policy "$T/policy.conf" --listen "127.0.0.1:$(free_port)" --connect "unlisted.example.com:443"
t_check "an endpoint the policy does not list: no listener, exit 1" bash -c "[ $rc -eq 1 ] && grep -q 'not admitted' '$T/err'"
kb tunnel $MOD --pin-file "$T/pin" --policy "$T/policy.conf" --listen "127.0.0.1:$(free_port)" \
    --connect "unlisted.example.com:443" --check
t_check "--check, a tunnel the policy does not admit: exit 1, saying how many" \
    bash -c "[ $rc -eq 1 ] && grep -q 'denied: 1 of 1 tunnel is not admitted by the policy' '$T/err'"
printf '[tunnel a]\nlisten = 127.0.0.1:1\nconnect = x:1\nbogus = 1\n' >"$T/bad.conf"
kb tunnel $MOD --pin-file "$T/pin" --config "$T/bad.conf"
t_check "a bad config: exit 2 with file:line" bash -c "[ $rc -eq 2 ] && grep -q 'bad.conf:4: unknown key .bogus.' '$T/err'"
printf '[tunnel t]\nlisten = 127.0.0.1:1\nconect = localhost:1\n' >"$T/typo.conf"
chmod 644 "$T/typo.conf"
kb tunnel $MOD --pin-file "$T/pin" --config "$T/typo.conf"
t_check "  a misspelt key gets a did-you-mean" \
    bash -c "[ $rc -eq 2 ] && grep -q \"typo.conf:3: unknown key 'conect' in \\[tunnel t\\] (did you mean 'connect'?)\" '$T/err'"

# --- through an HTTP CONNECT proxy ---------------------------------------------------------
pp=$(free_port)
kb_bg "$T/proxy.out" /usr/bin/python3 "$TESTS_SRCDIR/lib/connect_proxy.py" "$pp" "$T/proxy.log" allow
wait_port "$pp" || t_fail "proxy started"
: >"$T/proxy.log"
ppt=$(free_port)
tun viaproxy --listen "127.0.0.1:$ppt" --connect "localhost:$nport" --ca "$P/ca.pem" --key "$laptop" \
    --proxy "http://127.0.0.1:$pp"
wait_port "$ppt" || t_fail "tunnel through the proxy started"
run curl -sS "http://127.0.0.1:$ppt/"
t_check "through an HTTP CONNECT proxy: nginx answers" out_has "^hello CN=laptop-1"
t_check "  and the proxy saw CONNECT to the endpoint" grep -q "^CONNECT localhost:$nport HTTP/1.1$" "$T/proxy.log"
dp=$(free_port)
kb_bg "$T/proxy2.out" /usr/bin/python3 "$TESTS_SRCDIR/lib/connect_proxy.py" "$dp" "$T/proxy2.log" deny
wait_port "$dp" || t_fail "refusing proxy started"
dpt=$(free_port)
tun denyproxy --listen "127.0.0.1:$dpt" --connect "localhost:$nport" --ca "$P/ca.pem" --key "$laptop" \
    --proxy "http://127.0.0.1:$dp"
wait_port "$dpt" || t_fail "tunnel through the refusing proxy started"
run curl -sS "http://127.0.0.1:$dpt/"
t_check "a proxy that refuses CONNECT: the client's connection closes" bash -c "[ $rc -ne 0 ]"
t_check "  with a log line naming the proxy's answer" wait_log "$T/denyproxy.log" "refused CONNECT to localhost:$nport (HTTP 407)"

# --- allow-uid on a unix socket --------------------------------------------------------------
cat >"$T/uid.conf" <<CONF
[tunnel others]
listen = unix:$T/others.sock
connect = localhost:$nport
ca = $P/ca.pem
key = $laptop
allow-uid = 4242

[tunnel me]
listen = unix:$T/me.sock
connect = localhost:$nport
ca = $P/ca.pem
key = $laptop
allow-uid = $(id -u)
CONF
setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" --config "$T/uid.conf" >"$T/uid.log" 2>&1 </dev/null &
kb_pids+=($!)
wait_log "$T/uid.log" "tunnel me: listening"
run curl -sS --unix-socket "$T/me.sock" http://localhost/
t_check "allow-uid: a listed user gets through" out_has "^hello CN=laptop-1"
run curl -sS --unix-socket "$T/others.sock" http://localhost/
t_check "  another user is refused" bash -c "[ $rc -ne 0 ]"
t_check "  with a log line naming the uid" wait_log "$T/uid.log" "tunnel others: refused uid $(id -u) pid [0-9]*: not in allow-uid"

# --- systemd: readiness notifications and socket activation ------------------------------
# The binary says how it was built: config.h holds "#undef HAVE_SYSTEMD" either way.
if "$KEYBOUND" --version | grep -q '^features: +systemd' &&
    command -v systemd-socket-activate >/dev/null; then
    cat >"$T/notify.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a", buffering=1) as log:
    while True:
        log.write(s.recv(4096).decode().replace("\n", " ") + "\n")
PY
    kb_bg "$T/notify.out" /usr/bin/python3 "$T/notify.py" "$T/notify.sock" "$T/notify.log"
    for i in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done
    sa=$(free_port)
    printf '[tunnel web]\nlisten = systemd:web\nconnect = localhost:%s\nca = %s\nkey = %s\n' \
        "$nport" "$P/ca.pem" "$laptop" >"$T/activated.conf"
    NOTIFY_SOCKET=$T/notify.sock setsid systemd-socket-activate -l "127.0.0.1:$sa" --fdname=web \
        -E NOTIFY_SOCKET -E SOFTHSM2_CONF -E ASAN_OPTIONS -E LSAN_OPTIONS -E UBSAN_OPTIONS -E TSAN_OPTIONS \
        "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" --config "$T/activated.conf" \
        >"$T/activated.log" 2>&1 </dev/null &
    act_pid=$!
    kb_pids+=($act_pid)
    wait_port "$sa" || t_fail "socket activation listener up"
    run curl -sS "http://127.0.0.1:$sa/"
    t_check "socket activation (systemd:web): curl through the passed socket reaches nginx" out_has "^hello CN=laptop-1"
    t_check "  READY=1 was sent to NOTIFY_SOCKET" wait_log "$T/notify.log" "READY=1"
    kill -HUP $act_pid
    t_check "  RELOADING=1 on SIGHUP, then READY=1 again" wait_log "$T/notify.log" "RELOADING=1"
    kill -TERM $act_pid
    t_check "  STOPPING=1 on SIGTERM" wait_log "$T/notify.log" "STOPPING=1"
    # A unix socket from systemd that others may connect to is refused; a private one is used.
    printf '[tunnel u]\nlisten = systemd:u\nconnect = localhost:%s\nca = %s\nkey = %s\n' \
        "$nport" "$P/ca.pem" "$laptop" >"$T/act-unix.conf"
    for mode in 666 600; do
        setsid systemd-socket-activate -l "$T/act-$mode.sock" --fdname=u \
            -E SOFTHSM2_CONF -E ASAN_OPTIONS -E LSAN_OPTIONS -E UBSAN_OPTIONS -E TSAN_OPTIONS \
            "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" --config "$T/act-unix.conf" \
            >"$T/act-$mode.log" 2>&1 </dev/null &
        kb_pids+=($!)
        for i in $(seq 50); do [ -S "$T/act-$mode.sock" ] && break; sleep 0.1; done
        chmod "$mode" "$T/act-$mode.sock" # systemd's SocketMode=; keybound starts on first use
        run curl -sS --max-time 5 --unix-socket "$T/act-$mode.sock" http://localhost/
        cp "$T/out" "$T/act-$mode.out"
    done
    t_check "a systemd unix socket others may connect to (0666) is refused" \
        wait_log "$T/act-666.log" "is open to others"
    t_check "  a private one (0600) is used" grep -q "^hello CN=laptop-1" "$T/act-600.out"
else
    t_pass "# SKIP keybound built without libsystemd: no sd_notify or socket activation"
fi

# --- backend down: a clean close and a log line, the tunnel lives on ------------------------
dport=$(free_port)
xport=$(free_port)
tun down --listen "127.0.0.1:$xport" --connect "localhost:$dport" --ca "$P/ca.pem" --key "$laptop"
down_pid=$tun_pid
wait_port "$xport" || t_fail "tunnel to a dead backend started"
run curl -sS "http://127.0.0.1:$xport/"
t_check "backend down: the client's connection is closed (curl sees an empty reply)" bash -c "[ $rc -ne 0 ]"
t_check "  with one log line naming the cause" grep -q "connection to localhost:$dport refused" "$T/down.log"
t_check "  and the tunnel still runs" kill -0 $down_pid

# --- the token fails for a while: open connections flow, new ones fail fast, then recovery ---
nt=$(free_port)
kb_bg "$T/noticket.log" gnutls-serv --port "$nt" --noticket --require-client-cert --verify-client-cert \
    --x509cafile "$P/ca.pem" --x509certfile "$P/server.pem" --x509keyfile "$P/server.key" --echo
wait_port "$nt" || t_fail "server without tickets started"
fport=$(free_port)
# Awaited in its log, not with wait_port: a probe connection might or might not get its
# handshake (one that has left is dropped first), which would shift the count of
# signatures that pass.
env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_FAIL_FUNC=C_Sign P11SHIM_FAIL_AFTER=3 P11SHIM_FAIL_COUNT=2 \
    setsid "$KEYBOUND" tunnel --module "$P11SHIM" --pin-file "$T/pin" --listen "127.0.0.1:$fport" \
    --connect "localhost:$nt" --ca "$P/ca.pem" --key "pkcs11:token=dev;object=laptop" >"$T/fail.log" 2>&1 </dev/null &
fail_pid=$!
kb_pids+=($fail_pid)
wait_log "$T/fail.log" "listening on 127.0.0.1:$fport" || t_fail "tunnel over the failing token started"
cat >"$T/lines.py" <<'PY'
import socket, sys, time
# One long connection: a line before the token fails, one while it fails, one after.
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
f = s.makefile("rb")
for word in sys.argv[2:]:
    if word == "-":
        open(sys.argv[0] + ".go", "w").close()
        while not __import__("os").path.exists(sys.argv[0] + ".done"):
            time.sleep(0.05)
        continue
    s.sendall(word.encode() + b"\n")
    print(f.readline().decode().strip(), flush=True)
PY
/usr/bin/python3 "$T/lines.py" "$fport" before - during >"$T/long.out" 2>&1 &
long=$!
for i in $(seq 100); do [ -e "$T/lines.py.go" ] && break; sleep 0.1; done
# Each new connection needs a signature (no tickets); the token fails the next two.
for i in 1 2; do
    run /usr/bin/python3 -c "
import socket; s = socket.create_connection(('127.0.0.1', $fport), timeout=20)
s.sendall(b'x\n'); print(s.recv(100))"
done
touch "$T/lines.py.done"
wait $long
t_check "token failing: an established connection keeps flowing" bash -c "[ \"\$(cat '$T/long.out')\" = \"\$(printf 'before\nduring')\" ]"
t_check "  new connections that need a signature fail, with one clear line each" bash -c "[ \$(grep -c 'the token failed to sign with key' '$T/fail.log') -ge 2 ]"
run /usr/bin/python3 -c "
import socket; s = socket.create_connection(('127.0.0.1', $fport), timeout=20)
s.sendall(b'after\n'); print(s.makefile().readline().strip())"
t_check "  when the token is back, a fresh key object signs again without a restart" out_has "^after$"

# A server with tickets: after the first full handshake the token fails for good, and the
# connections that resume from the ticket need no signature, so they go on working. (One
# signature is two C_Sign calls: the length, then the signature.)
rsport=$(free_port)
env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_FAIL_FUNC=C_Sign P11SHIM_FAIL_AFTER=2 \
    setsid "$KEYBOUND" tunnel --module "$P11SHIM" --pin-file "$T/pin" --listen "127.0.0.1:$rsport" \
    --connect "localhost:$nport" --ca "$P/ca.pem" --key "pkcs11:token=dev;object=laptop" >"$T/rfail.log" 2>&1 </dev/null &
kb_pids+=($!)
wait_port "$rsport" || t_fail "tunnel over a token that fails after one signature started"
ok=0
for i in 1 2 3 4 5; do
    curl -sS --max-time 10 "http://127.0.0.1:$rsport/" | grep -q "^hello CN=laptop-" && ok=$((ok + 1))
done
t_check "token failing for good after the first handshake: resumed connections still work" \
    bash -c "[ $ok -eq 5 ] && [ \$(grep -c 'resumed handshake in' '$T/rfail.log') -ge 3 ] && ! grep -q 'failed to sign' '$T/rfail.log'"
kill -TERM $fail_pid

# --- config file with two tunnels, SIGHUP picks up a renewed certificate mid-transfer -------
c1=$(free_port)
c2=$(free_port)
cat >"$T/tunnels.conf" <<CONF
[tunnel web]
listen = 127.0.0.1:$c1
connect = localhost:$nport
ca = $P/ca.pem
key = $laptop

[tunnel echo]
listen = 127.0.0.1:$c2
connect = localhost:$sport
ca = $P/ca.pem
key = $laptop
idle-timeout = 60
CONF
setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" --config "$T/tunnels.conf" >"$T/conf.log" 2>&1 </dev/null &
conf_pid=$!
kb_pids+=($conf_pid)
wait_port "$c1" && wait_port "$c2" || t_fail "config tunnels started"
run curl -sS "http://127.0.0.1:$c1/"
t_check "--config: tunnel web works" out_has "^hello CN=laptop-1"
# A slow transfer through 'echo' that lasts across the reload.
/usr/bin/python3 - "$c2" >"$T/slow.out" 2>&1 <<'PY' &
import socket, sys, time, hashlib
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sent = b""
for i in range(30):
    chunk = (b"%04d" % i) * 256
    s.sendall(chunk)
    sent += chunk
    time.sleep(0.1)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
print("intact" if got == sent else "broken %d/%d" % (len(got), len(sent)))
PY
slow=$!
sleep 1
sleep 1 # the renewed certificate's notBefore must be later than the first one's
kb_device_cert dev "$laptop" "laptop-2" laptop-renewed
kill -HUP $conf_pid
sleep 1
run curl -sS "http://127.0.0.1:$c1/"
t_check "SIGHUP: new connections present the renewed certificate" out_has "^hello CN=laptop-2"
wait $slow
t_check "  while a transfer across the reload went on intact" grep -qx intact "$T/slow.out"
# SIGHUP re-reads the config file too: 'web' now goes to the echo server.
sed -i "0,/^connect = localhost:$nport$/s//connect = localhost:$nt/" "$T/tunnels.conf"
kill -HUP $conf_pid
wait_log "$T/conf.log" "tunnel web: 127.0.0.1:$c1 -> localhost:$nt"
run curl -sS --http0.9 --max-time 5 "http://127.0.0.1:$c1/"
t_check "SIGHUP re-reads the config file: tunnel web now reaches the new endpoint" out_has "^GET / HTTP/1.1"
kill -TERM $conf_pid

# --- a reload that denies the device: no new connections ----------------------------------
cp "$TESTS_SRCDIR/../policy/examples/softhsm-test.conf" "$T/reload-policy.conf"
chmod 644 "$T/reload-policy.conf"
rport=$(free_port)
tun reload --listen "127.0.0.1:$rport" --connect "localhost:$nport" --key "$laptop" \
    --policy "$T/reload-policy.conf"
reload_pid=$tun_pid
wait_port "$rport" || t_fail "tunnel under a policy started"
run curl -sS --max-time 5 "http://127.0.0.1:$rport/"
t_check "under the example policy the tunnel serves" out_has "^hello CN=laptop-"
sed -i 's/^allow = .*/allow = manufacturer="Nobody"/' "$T/reload-policy.conf"
kill -HUP $reload_pid
t_check "SIGHUP with a policy that now denies the token: said so" wait_log "$T/reload.log" "not admitted"
run curl -sS --max-time 3 "http://127.0.0.1:$rport/"
t_check "  and no new connection is served" bash -c "[ $rc -ne 0 ]"
t_check "  while the tunnel itself stays up" kill -0 $reload_pid
sed -i 's/^mode = .*/mode = audit/' "$T/reload-policy.conf"
kill -HUP $reload_pid
t_check "SIGHUP with the same failures in audit mode: the denial is logged" \
    wait_log "$T/reload.log" "ADMITTED in audit mode; enforce mode would deny: token.allow"
run curl -sS --max-time 5 "http://127.0.0.1:$rport/"
t_check "  and the tunnel serves again" out_has "^hello CN=laptop-"
kill -TERM $reload_pid

# --- SIGTERM drains ------------------------------------------------------------------------
wait $conf_pid 2>/dev/null
setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" --config "$T/tunnels.conf" >"$T/drain.log" 2>&1 </dev/null &
dpid=$!
kb_pids+=($dpid)
wait_port "$c2" || t_fail "tunnel for the drain test started"
/usr/bin/python3 - "$c2" >"$T/drain.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"early ")
time.sleep(1.5)
s.sendall(b"late words\n")
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
print(got.decode().strip())
PY
drainer=$!
# wait_port's probe made one connection already (opened, or dropped for having left before
# its handshake); the drainer's is the second.
for i in $(seq 50); do [ "$(grep -c -E "tunnel echo: (open|.*left before its handshake)" "$T/drain.log")" -ge 2 ] && break; sleep 0.1; done
kill -TERM $dpid
sleep 0.3
run curl -sS --max-time 5 "http://127.0.0.1:$c1/"
t_check "SIGTERM: no new connections are taken" bash -c "[ $rc -ne 0 ]"
wait $drainer
t_check "  while the open one finishes its exchange" grep -qx "early late words" "$T/drain.out"
wait $dpid
t_check "  then the tunnel exits by itself (exit 0)" [ $? -eq 0 ]
t_check "  having said what it drained" grep -q "stopping: no new connections; 1 open to drain" "$T/drain.log"
t_done
