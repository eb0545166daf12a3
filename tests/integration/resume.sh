#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keybound tunnel resumes sessions on its pumping loops. A server that refuses the ticket
# or session (restarted: new ticket keys, an empty cache) and asks for the certificate gets
# its handshake done again on a worker, where the token may sign: the local client sees a
# normal connection, and the other connections keep flowing while the token signs. A
# server that then rejects the certificate fails the connection, counted, without a hang.
# shellcheck source=../lib/testlib.sh
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
for tool in nginx gnutls-serv curl python3; do
    command -v $tool >/dev/null || t_skip_all "$tool not installed"
done
if [ -z "${P11SHIM:-}" ] || [ ! -f "$P11SHIM" ]; then
    t_skip_all "P11SHIM (the fault-injecting module) not set"
fi
kb_token dev
kb_pki
P=$T/pki
kb keygen --module "$SOFTHSM_MODULE" --token pkcs11:token=dev --label laptop --pin-file "$T/pin"
laptop=$(cat "$T/out")
kb_device_cert dev "$laptop" "laptop-1" laptop

# bg_stop PID: stops one process this script started (SIGTERM), waits for it and forgets
# it, so that the exit does not signal a pid the system may have reused.
bg_stop() {
    local p keep=()
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
    for p in "${kb_pids[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    kb_pids=("${keep[@]}")
}

# ngx NAME PORT PROTOCOLS: an nginx of its own (one worker, its files in $T/NAME) with
# kb_nginx_mtls's server block on PORT: TLS PROTOCOLS only, tickets and a session cache,
# keep-alive. Its pid in $ngx_pid. Started anew, it has new ticket keys and an empty
# cache: the sessions of the last one are refused.
ngx() {
    local name=$1 port=$2 protos=$3 d=$T/$1
    mkdir -p "$d"
    cat >"$d/nginx.conf" <<CONF
daemon off;
pid $d/nginx.pid;
error_log $d/error.log;
worker_processes 1;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_timeout 120s;
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
$(kb_nginx_mtls "$port" "ssl_session_tickets on;" "ssl_session_cache shared:$name:1m;" |
        sed "s/ssl_protocols .*;/ssl_protocols $protos;/")
}
CONF
    nginx -c "$d/nginx.conf" -p "$d" -e "$d/error.log" >>"$d/out.log" 2>&1 </dev/null &
    ngx_pid=$!
    kb_pids+=("$ngx_pid")
    wait_port "$port"
}

# rejecting PORT PRIORITY: gnutls-serv on PORT that insists on a client certificate from
# the unrelated CA, so it rejects ours (after a full handshake: it has none of nginx's
# tickets). Its pid in $rej_pid.
rejecting() {
    kb_bg "$T/rejecting-$1.log" gnutls-serv --port "$1" --priority "$2" --require-client-cert \
        --verify-client-cert --x509cafile "$P/other-ca.pem" --x509certfile "$P/server.pem" \
        --x509keyfile "$P/server.key"
    rej_pid=${kb_pids[-1]}
    wait_port "$1"
}

# tun NAME [P11SHIM_VAR=VALUE...] ARGS...: a tunnel over the shim in the background, its log
# in $T/NAME.log, the shim's call log in $T/NAME.shim and one line per signature in
# $T/NAME.count; /status and /metrics on a port of its own, $stport. Awaited in its log,
# not with wait_port, whose probe might or might not get a handshake (and a signature).
tun() {
    local name=$1 envs=()
    shift
    while [ $# -gt 0 ] && [[ $1 == P11SHIM_*=* ]]; do
        envs+=("$1")
        shift
    done
    stport=$(free_port)
    env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_LOG="$T/$name.shim" P11SHIM_COUNT="$T/$name.count" \
        "${envs[@]}" setsid "$KEYBOUND" tunnel --module "$P11SHIM" --pin-file "$T/pin" \
        --status "127.0.0.1:$stport" "$@" >"$T/$name.log" 2>&1 </dev/null &
    tun_pid=$!
    kb_pids+=("$tun_pid")
    if ! wait_log "$T/$name.log" "status and metrics on 127.0.0.1:$stport" ||
        ! wait_port "$stport"; then
        t_fail "tunnel $name started" "$(cat "$T/$name.log")"
    fi
}

# signatures NAME: the token signatures the shim saw for tunnel NAME.
signatures() {
    [ -f "$T/$1.count" ] && wc -l <"$T/$1.count" || echo 0
}

# metrics PORT: /metrics of the tunnel whose status port is PORT, in $T/metrics.txt;
# metric NAME{LABELS}: a value from it (empty when absent).
metrics() {
    curl -sS --max-time 5 "http://127.0.0.1:$1/metrics" >"$T/metrics.txt" 2>/dev/null
}
metric() {
    awk -v k="$1" '$1 == k { print $2 }' "$T/metrics.txt"
}
# metric_is NAME{LABELS} VALUE
metric_is() {
    [ "$(metric "$1")" = "$2" ]
}

# opens LOG TUNNEL PROTO KIND: how many connections TUNNEL logged as open with a KIND
# (full or resumed) handshake in PROTO.
opens() {
    grep -c "tunnel $2: open 127.0.0.1:[0-9]* -> [^ ]*: $3, $4 handshake" "$1"
}

# get PORT: one request through the tunnel listening on PORT, body in $T/out.
get() {
    run curl -sS --max-time 15 "http://127.0.0.1:$1/"
}

# answered N: N requests through the tunnel on $lport; $ok says how many got nginx's answer.
answered() {
    ok=0
    for _ in $(seq "$1"); do
        get "$lport"
        out_has "^hello CN=laptop-1$" && ok=$((ok + 1))
    done
}

# ngx_tun NAME: an nginx of its own (TLS 1.3) and tunnel NAME to it, on free ports $nport
# and $lport.
ngx_tun() {
    nport=$(free_port)
    lport=$(free_port)
    ngx "ngx$1" "$nport" "TLSv1.3" || t_fail "nginx for tunnel $1 started"
    tun "$1" --listen "127.0.0.1:$lport" --connect "localhost:$nport" --ca "$P/ca.pem" \
        --key "$laptop"
}

redo_line="the server did not resume the session and asked for the certificate: the handshake is done again where the token may sign"

# --- TLS 1.3 and TLS 1.2: resume, the server restarts, the handshake is done again ---------
for v in 1.3 1.2; do
    name=t${v/./}
    other=$([ $v = 1.3 ] && echo 1.2 || echo 1.3)
    nport=$(free_port)
    lport=$(free_port)
    ngx "ngx$name" "$nport" "TLSv$v" || t_fail "nginx TLS $v started"
    tun "$name" --listen "127.0.0.1:$lport" --connect "localhost:$nport" --ca "$P/ca.pem" \
        --key "$laptop"
    pid=$tun_pid
    log=$T/$name.log
    wait_log "$log" "tunnel cli: listening on 127.0.0.1:$lport" || t_fail "TLS $v: the tunnel listens"
    get "$lport"
    t_check "TLS $v: the first connection gets nginx's answer" out_has "^hello CN=laptop-1$"
    t_check "  with a full handshake and 1 token signature" \
        bash -c "[ $(opens "$log" cli "TLS$v" full) -eq 1 ] && [ $(signatures "$name") -eq 1 ]"
    answered 3
    t_check "  connections 2 to 4 get their answer too" [ $ok -eq 3 ]
    t_check "  resumed, with no more signatures" \
        bash -c "[ $(opens "$log" cli "TLS$v" resumed) -eq 3 ] && [ $(signatures "$name") -eq 1 ]"

    # A new nginx on the same port: new ticket keys, an empty session cache.
    bg_stop "$ngx_pid"
    ngx "ngx$name" "$nport" "TLSv$v" || t_fail "nginx TLS $v restarted"
    get "$lport"
    t_check "TLS $v, nginx restarted: the next connection still gets the right answer" \
        out_has "^hello CN=laptop-1$"
    t_check "  after a full handshake, with the second token signature" \
        bash -c "[ $(opens "$log" cli "TLS$v" full) -eq 2 ] && [ $(signatures "$name") -eq 2 ]"
    t_check "  the refused resumption is logged once, at INFO" \
        bash -c "[ \$(grep -c 'tunnel cli: 127.0.0.1:[0-9]*: $redo_line' '$log') -eq 1 ]"
    metrics "$stport"
    t_check "  keybound_handshakes_redone_total is 1" \
        metric_is 'keybound_handshakes_redone_total{tunnel="cli"}' 1
    t_check "  keybound_token_signatures_total is 2, and no failure is counted" \
        bash -c "[ '$(metric 'keybound_token_signatures_total{tunnel="cli"}')' = 2 ] &&
            ! grep -q '^keybound_connections_failed_total{tunnel=\"cli\",reason=\"[a-z_]*\"} [1-9]' '$T/metrics.txt'"
    answered 3
    t_check "  later connections get their answer" [ $ok -eq 3 ]
    t_check "  resuming the new session: no more signatures" \
        bash -c "[ $(opens "$log" cli "TLS$v" resumed) -eq 6 ] && [ $(signatures "$name") -eq 2 ]"
    t_check "  and no more handshakes done again" bash -c "[ \$(grep -c '$redo_line' '$log') -eq 1 ]"
    run curl -sS --max-time 5 "http://127.0.0.1:$stport/status"
    t_check "  /status: 8 accepted, 0 failed, 2 token signatures" \
        python3 -c "import json,sys; t=json.load(open('$T/out'))['tunnels'][0]
sys.exit(0 if (t['connections']['accepted'], t['connections']['failed'], t['token_signatures']) == (8, 0, 2) else 1)"
    t_check "  /status: handshakes {full: 2, resumed: 6, redone: 1}" \
        python3 -c "import json,sys; h=json.load(open('$T/out'))['tunnels'][0]['handshakes']
sys.exit(0 if h == {'full': 2, 'resumed': 6, 'redone': 1} else 1)"
    kill -USR1 "$pid"
    t_check "  SIGUSR1: 2 full, 6 resumed, 2 signatures; 1 resumption redone on a worker" \
        wait_log "$log" "tunnel cli: 0 open, 8 accepted, 0 failed; handshakes 2 full, 6 resumed; 2 token signatures; .*; resumptions on a loop redone on a worker: 1$"

    # --- the server refuses the session, then rejects the certificate -------------------
    bg_stop "$ngx_pid"
    rejecting "$nport" "NORMAL:-VERS-ALL:+VERS-TLS$v"
    get "$lport"
    # 28 would be curl's timeout: a hang.
    t_check "TLS $v, a server that refuses the session and rejects the certificate: the client's connection fails, at once (curl $rc)" \
        bash -c "[ $rc -ne 0 ] && [ $rc -ne 28 ] && ! grep -q hello '$T/out'"
    t_check "  the rejection is logged" \
        grep -q "warning: tunnel cli: 127.0.0.1:[0-9]*: server localhost:$nport rejected our certificate" "$log"
    metrics "$stport"
    reason=$(sed -n 's/^keybound_connections_failed_total{tunnel="cli",reason="\([a-z_]*\)"} 1$/\1/p' "$T/metrics.txt")
    # In TLS 1.2 the server rejects the certificate inside the handshake, which keybound
    # counts as a failed handshake (backend); in TLS 1.3 after it (rejected).
    t_check "  counted as 1 failed connection, reason rejected$([ $v = 1.2 ] && echo " or backend") (got: ${reason:-none})" \
        bash -c "[ '$reason' = rejected ] || [ '$v $reason' = '1.2 backend' ] &&
            [ \$(grep -c '^keybound_connections_failed_total{tunnel=\"cli\",reason=\"[a-z_]*\"} [1-9]' '$T/metrics.txt') -eq 1 ]"
    t_check "  the resumption refused by that server was redone on a worker too (redone 2)" \
        bash -c "[ \$(grep -c '$redo_line' '$log') -eq 2 ] && [ '$(metric 'keybound_handshakes_redone_total{tunnel="cli"}')' = 2 ]"
    bg_stop "$rej_pid"
    ngx "ngx$name" "$nport" "TLSv$v" || t_fail "nginx TLS $v started again"
    answered 2
    t_check "  the server fixed: connections get their answer again, the second resumed" \
        bash -c "[ $ok -eq 2 ] && [ $(opens "$log" cli "TLS$v" resumed) -eq 7 ]"

    # --- the server moves to the other TLS version only ---------------------------------
    bg_stop "$ngx_pid"
    ngx "ngx$name" "$nport" "TLSv$other" || t_fail "nginx TLS $other only started"
    get "$lport"
    # A TLS 1.2 session is resumed on the loop with a TLS 1.2-only ClientHello; a server
    # now TLS 1.3 only refuses it (protocol_version), and a worker must do it again offering
    # both (before that was fixed, every connection failed until the addresses were 30 s
    # old).
    t_check "TLS $v, the server now TLS $other only: the next connection gets its answer" \
        out_has "^hello CN=laptop-1$"
    t_check "  the tunnel lives on" kill -0 "$pid"
    bg_stop "$pid"
    bg_stop "$ngx_pid"
done

# --- the loop is never held by a signature ------------------------------------------------
# Two tunnels in one process share its pumping loops (one per two CPUs, connections spread
# round robin): "flaky" to an nginx that restarts, "stable" to one that stays up. Each
# C_Sign takes 2 s (the slow-token shim; a signature is two calls, the length and then the
# signature). With connections open through "stable" on every loop, "flaky"'s nginx
# restarts, and its next connection's handshake is done again and signs; meanwhile a
# request on each established connection is answered. The order is proven, not timed: the
# replies all come after the redone handshake's C_SignInit returned (the shim's call log)
# and before the shim counted its signature, while the new connection still waits.
fport=$(free_port)
sport=$(free_port)
ngx ngxflaky "$fport" "TLSv1.2 TLSv1.3" || t_fail "nginx flaky started"
flaky_ngx=$ngx_pid
ngx ngxstable "$sport" "TLSv1.2 TLSv1.3" || t_fail "nginx stable started"
lflaky=$(free_port)
lstable=$(free_port)
cat >"$T/two.conf" <<CONF
[tunnel flaky]
listen = 127.0.0.1:$lflaky
connect = localhost:$fport
ca = $P/ca.pem
key = $laptop

[tunnel stable]
listen = 127.0.0.1:$lstable
connect = localhost:$sport
ca = $P/ca.pem
key = $laptop
CONF
tun slow P11SHIM_DELAY_FUNC=C_Sign P11SHIM_DELAY_MS=2000 --config "$T/two.conf"
slow_pid=$tun_pid
if ! wait_log "$T/slow.log" "tunnel stable: listening on" ||
    ! wait_log "$T/slow.log" "tunnel flaky: listening on"; then
    t_fail "the two tunnels listen"
fi
# Each tunnel's first, full handshake, side by side.
curl -sS --max-time 30 -o "$T/warm-flaky" "http://127.0.0.1:$lflaky/" 2>/dev/null &
warm=$!
curl -sS --max-time 30 -o "$T/warm-stable" "http://127.0.0.1:$lstable/" 2>/dev/null
wait $warm
t_check "slow token: both tunnels answer their first connection" \
    bash -c "grep -q '^hello CN=laptop-1$' '$T/warm-flaky' && grep -q '^hello CN=laptop-1$' '$T/warm-stable'"
loops=$(($(nproc) / 2 > 0 ? $(nproc) / 2 : 1))
n=$((2 * loops > 4 ? 2 * loops : 4))
cat >"$T/held.py" <<'PY'
import os, select, socket, sys, time
stable, flaky, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
shimlog, count, flag = sys.argv[4], sys.argv[5], sys.argv[6]
REQ = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
def lines(path, prefix=""):
    try:
        with open(path) as f:
            return sum(1 for l in f if l.startswith(prefix))
    except FileNotFoundError:
        return 0
def reply(f):
    if not f.readline():
        return "EOF"
    length = 0
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        if h.lower().startswith(b"content-length:"):
            length = int(h.split(b":")[1])
    return f.read(length).decode().strip()
def wait_for(cond, what):
    for _ in range(1000):
        if cond():
            return
        time.sleep(0.02)
    print("gave up waiting for", what, flush=True)
    sys.exit(1)
est = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", stable), timeout=30)
    f = s.makefile("rb")
    s.sendall(REQ)
    print("established", i, reply(f), flush=True)
    est.append((s, f))
open(flag + ".ready", "w").close()
wait_for(lambda: os.path.exists(flag + ".restarted"), "the restart")
inits, signed = lines(shimlog, "C_SignInit "), lines(count)
a = socket.create_connection(("127.0.0.1", flaky), timeout=30)
af = a.makefile("rb")
a.sendall(REQ)
# The redone handshake's signature has begun: C_SignInit returned, C_Sign is on the token.
wait_for(lambda: lines(shimlog, "C_SignInit ") > inits, "the redone handshake's C_SignInit")
ok = 0
for s, f in est:
    s.sendall(REQ)
    if reply(f) == "hello CN=laptop-1":
        ok += 1
during = lines(count) == signed
waiting = not select.select([a], [], [], 0)[0]
print("replies on the established connections: %d of %d" % (ok, n))
print("all while the token was still signing:", "yes" if during else "no")
print("the new connection still waiting:", "yes" if waiting else "no", flush=True)
print("new", reply(af))
print("signatures meanwhile:", lines(count) - signed)
PY
python3 "$T/held.py" "$lstable" "$lflaky" "$n" "$T/slow.shim" "$T/slow.count" "$T/held" >"$T/held.out" 2>&1 &
held=$!
for _ in $(seq 200); do [ -e "$T/held.ready" ] && break; sleep 0.1; done
bg_stop "$flaky_ngx"
ngx ngxflaky "$fport" "TLSv1.2 TLSv1.3" || t_fail "nginx flaky restarted"
touch "$T/held.restarted"
wait $held
t_check "slow token: $n connections established through tunnel stable ($loops loops)" \
    bash -c "[ \$(grep -c '^established [0-9]* hello CN=laptop-1$' '$T/held.out') -eq $n ]" \
    "$(cat "$T/held.out")"
t_check "  flaky's nginx restarted: its next connection is answered" \
    grep -q '^new hello CN=laptop-1$' "$T/held.out"
t_check "  while that handshake signed, every established connection got its reply" \
    bash -c "grep -q '^replies on the established connections: $n of $n$' '$T/held.out' &&
        grep -q '^all while the token was still signing: yes$' '$T/held.out' &&
        grep -q '^the new connection still waiting: yes$' '$T/held.out'" "$(cat "$T/held.out")"
t_check "  with one signature for it, 3 in all" \
    bash -c "grep -q '^signatures meanwhile: 1$' '$T/held.out' && [ $(signatures slow) -eq 3 ]"
metrics "$stport"
t_check "  the handshake was done again: logged, and counted for flaky only" \
    bash -c "grep -q 'tunnel flaky: 127.0.0.1:[0-9]*: $redo_line' '$T/slow.log' &&
        [ '$(metric 'keybound_handshakes_redone_total{tunnel="flaky"}') $(metric 'keybound_handshakes_redone_total{tunnel="stable"}')' = '1 0' ]"
t_check "  signatures counted per tunnel: flaky 2, stable 1" \
    bash -c "[ '$(metric 'keybound_token_signatures_total{tunnel="flaky"}') $(metric 'keybound_token_signatures_total{tunnel="stable"}')' = '2 1' ]"
t_check "  each slow signature is logged with how long it took (3 of them)" \
    bash -c "[ \$(grep -c \"keybound: token 'dev' took [0-9]*\\.[0-9] s to sign with key\" '$T/slow.log') -eq 3 ]"
bg_stop "$slow_pid"

# --- the handshake's last flight and the first request: one segment -----------------------
# On the loop the resumed handshake's last flight (TLS 1.3: ChangeCipherSpec and Finished)
# waits for the client's first request, and both go as one segment: before, they were
# three. Counted by the kernel (ss: data segments sent on keybound's socket to nginx,
# which keeps the connection alive), not timed. A client that sends nothing gets the
# handshake finished all the same: a server that speaks first (tls_echo.py's banner).
if command -v ss >/dev/null; then
    ngx_tun seg
    seg_pid=$tun_pid
    get "$lport"
    # Each try: one kept-alive request, then ss on keybound's socket to nginx. The request
    # goes with the Finished when it is there before the handshake ends, as it is unless the
    # client is descheduled between its connect and its send: then 3 segments. Never 4: that
    # is the ChangeCipherSpec and the Finished sent apart, which CI saw once under ASan
    # (`3 3 4 3 2`): a read that sent the held ClientHello ended the hold, so when the
    # server's flight was there at that read, nothing after it was held. keybound and nginx
    # share one CPU here, which makes that case common: the old binary counted 4 in 2 to 6
    # of the 12 tries so. Retransmitted segments (a tail-loss probe when an ACK is late)
    # are not sent data and are not counted. Twelve tries, at least one with 2.
    if command -v taskset >/dev/null; then
        m=$(cat "$T/ngxseg/nginx.pid")
        for p in $seg_pid $m $(cat "/proc/$m/task/$m/children"); do
            taskset -apc 0 "$p" >/dev/null
        done
    fi
    all_segs=""
    twos=0
    over=0
    for try in $(seq 12); do
        rm -f "$T/seg.out"
        python3 - "$lport" "$T/seg.out" <<'PY' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
got = b""
while b"hello" not in got:
    d = s.recv(4096)
    if not d:
        break
    got += d
open(sys.argv[2], "wb").write(got)
time.sleep(30)
PY
        kb_pids+=($!)
        held_pid=$!
        wait_log "$T/seg.out" "hello CN=laptop-1" || t_fail "the kept-alive request got its answer"
        info=$(ss -tinH state established "( dport = :$nport )" | tr -s ' \t\n' ' ')
        out=$(sed -n 's/.* data_segs_out:\([0-9]*\).*/\1/p' <<<"$info")
        re=$(sed -n 's/.* retrans:[0-9]*\/\([0-9]*\).*/\1/p' <<<"$info")
        segs=$((${out:-0} - ${re:-0}))
        bg_stop "$held_pid"
        all_segs="$all_segs $segs${re:+ (of ${out:-0}, $re retransmitted)}"
        [ "$segs" = 2 ] && twos=$((twos + 1))
        [ "$segs" -gt 3 ] && over=$((over + 1))
    done
    t_check "TLS 1.3 resumed on the loop: ClientHello, then Finished and the request in one segment (data segments per try:$all_segs)" \
        bash -c "[ $(opens "$T/seg.log" cli TLS1.3 resumed) -ge 12 ] && [ $over -eq 0 ] && [ $twos -ge 1 ]"
    bg_stop "$seg_pid"
    bg_stop "$ngx_pid"
else
    t_check "one segment for the last flight and the request: (skipped: no ss)" true
fi

eport=$(free_port)
lport=$(free_port)
kb_bg "$T/banner.log" /usr/bin/python3 "$TESTS_SRCDIR/lib/tls_echo.py" "$eport" "$P/ca.pem" \
    "$P/server.pem" "$P/server.key" "banner from the server"
wait_port "$eport" || t_fail "the banner server started"
tun banner --listen "127.0.0.1:$lport" --connect "localhost:$eport" --ca "$P/ca.pem" \
    --key "$laptop"
banner_pid=$tun_pid
# quiet PORT: connects, sends nothing, and keeps what comes within 5 s in $T/out.
quiet() {
    python3 - "$1" "$T/out" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
got = b""
try:
    while b"\n" not in got:
        d = s.recv(4096)
        if not d:
            break
        got += d
except OSError:
    pass
open(sys.argv[2], "wb").write(got)
PY
}
quiet "$lport"
quiet "$lport"
t_check "a server that speaks first, resumed on the loop, the client silent: the banner comes" \
    bash -c "grep -q '^banner from the server$' '$T/out' && [ $(opens "$T/banner.log" cli TLS1.3 resumed) -eq 1 ]"
bg_stop "$banner_pid"

# --- the server is down: a refused connect on the loop is not a handshake redone --------------
ngx_tun down
down_pid=$tun_pid
get "$lport"
get "$lport"
bg_stop "$ngx_pid"
get "$lport"
metrics "$stport"
t_check "the server down: the connection fails, refused, counted as backend, not as redone" \
    bash -c "! grep -q hello '$T/out' && grep -q 'refused' '$T/down.log' &&
        [ '$(metric 'keybound_connections_failed_total{tunnel="cli",reason="backend"}')' = 1 ] &&
        [ '$(metric 'keybound_handshakes_redone_total{tunnel="cli"}')' = 0 ]"
ngx ngxdown "$nport" "TLSv1.3" || t_fail "nginx for tunnel down started again"
get "$lport"
t_check "  up again: the next connection gets its answer" out_has "^hello CN=laptop-1$"
bg_stop "$down_pid"
bg_stop "$ngx_pid"

# --- a name whose first address refuses: the loop tries the one that answered ---------------
# Debian's /etc/hosts has "localhost" as ::1 first, and nginx here listens on 127.0.0.1
# only: the loop must connect where the worker last connected, not to the first address
# (it did, and so never resumed on the loop: the README walk's chroot saw no redo). A
# private mount namespace binds such a hosts file over /etc/hosts; nothing outside changes.
if unshare --mount true 2>/dev/null; then
    printf '::1 localhost\n127.0.0.1 localhost\n' >"$T/hosts"
    nport=$(free_port)
    lport=$(free_port)
    stport=$(free_port)
    ngx ngxv6 "$nport" "TLSv1.3" || t_fail "nginx for the ::1-first name started"
    env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_COUNT="$T/v6.count" unshare --mount sh -c \
        "mount --bind '$T/hosts' /etc/hosts && exec setsid '$KEYBOUND' tunnel --module '$P11SHIM' \
        --pin-file '$T/pin' --status 127.0.0.1:$stport --listen 127.0.0.1:$lport \
        --connect localhost:$nport --ca '$P/ca.pem' --key '$laptop'" >"$T/v6.log" 2>&1 </dev/null &
    v6_pid=$!
    kb_pids+=("$v6_pid")
    wait_log "$T/v6.log" "status and metrics on 127.0.0.1:$stport" || t_fail "tunnel v6 started"
    for _ in 1 2 3; do get "$lport"; done
    bg_stop "$ngx_pid"
    ngx ngxv6 "$nport" "TLSv1.3" || t_fail "nginx for the ::1-first name started again"
    get "$lport"
    metrics "$stport"
    t_check "localhost as ::1 first, the server on 127.0.0.1: resumed on the loop (a restart is redone)" \
        bash -c "out_ok() { grep -q '^hello CN=laptop-1$' '$T/out'; }; out_ok && [ '$(metric 'keybound_handshakes_redone_total{tunnel="cli"}')' = 1 ]"
    bg_stop "$v6_pid"
    bg_stop "$ngx_pid"
else
    t_check "localhost as ::1 first: (skipped: no private mount namespace here)" true
fi
t_done
