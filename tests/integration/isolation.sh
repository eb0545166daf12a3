#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Tunnels in one process do not starve each other: a backend that accepts TCP and never
# answers holds only its own tunnel's share of the handshake workers, and clients that
# left before their turn are dropped without a handshake.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
for tool in gnutls-serv python3; do
    command -v $tool >/dev/null || t_skip_all "$tool not installed"
done
kb_device

# A black hole: takes TCP connections and never says a word.
hole=$(free_port)
kb_bg "$T/hole.log" python3 -c 'import socket, sys, time
s = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=512)
held = []
while True:
    c, _ = s.accept()
    held.append(c)' "$hole"
wait_port "$hole" || t_fail "black hole started"
good=$(free_port)
kb_bg "$T/good.log" gnutls-serv --port "$good" --require-client-cert --verify-client-cert \
    --x509cafile "$P/ca.pem" --x509certfile "$P/server.pem" --x509keyfile "$P/server.key" --echo
wait_port "$good" || t_fail "gnutls-serv started"

hport=$(free_port)
gport=$(free_port)
sport=$(free_port)
cat >"$T/tunnels.conf" <<CONF
[tunnel hole]
listen = 127.0.0.1:$hport
connect = localhost:$hole
ca = $P/ca.pem
key = $laptop
connect-timeout = 60

[tunnel small]
listen = 127.0.0.1:$sport
connect = localhost:$hole
ca = $P/ca.pem
key = $laptop
connect-timeout = 60
max-pending-handshakes = 5

[tunnel good]
listen = 127.0.0.1:$gport
connect = localhost:$good
ca = $P/ca.pem
key = $laptop
CONF
setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" --config "$T/tunnels.conf" \
    >"$T/tun.log" 2>&1 </dev/null &
tun_pid=$!
kb_pids+=($tun_pid)
wait_log "$T/tun.log" "tunnel good: listening" || t_fail "the tunnels started"

# 40 clients of the hole that stay (each sent a byte: not gone), then one of the good
# tunnel: it is served while all 40 are still stuck in their handshakes (60 s each).
cat >"$T/flood.py" <<'PY'
import select, socket, sys, time
hole, good = int(sys.argv[1]), int(sys.argv[2])
stuck = []
for _ in range(40):
    s = socket.create_connection(("127.0.0.1", hole))
    s.sendall(b"x")
    stuck.append(s)
time.sleep(0.5)  # the workers the hole may have are busy with it by now
g = socket.create_connection(("127.0.0.1", good), timeout=30)
g.sendall(b"healthy\n")
print("good:", g.makefile().readline().strip())
ready, _, _ = select.select(stuck, [], [], 0)
print("hole clients answered meanwhile:", len(ready))
PY
run python3 "$T/flood.py" "$hport" "$gport"
t_check "a tunnel whose backend never answers, flooded: the other tunnel's client is served" \
    out_has "^good: healthy$"
t_check "  while the flood's 40 handshakes are all still stuck" out_has "^hole clients answered meanwhile: 0$"

# Clients that connect and leave at once: their handshakes never start.
run python3 -c 'import socket, sys
for _ in range(40):
    socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close()' "$hport"
for i in $(seq 50); do
    [ "$(grep -c 'left before its handshake' "$T/tun.log")" -ge 30 ] && break
    sleep 0.2
done
t_check "40 clients that left before their turn: dropped without a handshake (at least 30)" \
    bash -c "[ \$(grep -c 'tunnel hole: 127.0.0.1:[0-9]*: the local client left before its handshake' '$T/tun.log') -ge 30 ]"
t_check "  logged as information, not as failures" \
    bash -c "! grep -q 'warning: .*left before its handshake' '$T/tun.log'"

# max-pending-handshakes = 5 on a tunnel to the black hole: of 20 clients that stay, up to
# 2 are in handshakes (half the 4 workers), 5 wait, and the others are reset at once.
run python3 -c 'import socket, sys, time
held, reset = [], 0
for _ in range(20):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    try:
        s.sendall(b"x")
        held.append(s)
    except OSError:
        reset += 1
time.sleep(1)
for s in held:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            reset += 1
    except ConnectionResetError:
        reset += 1
    except BlockingIOError:
        pass
print("reset:", reset)' "$sport"
# (The workers may not have taken one or both yet when the last clients arrive, on a busy
# machine: 13 to 15. The README walk saw 15 while another job loaded both cores.)
reset=$(sed -n 's/^reset: //p' "$T/out")
t_check "max-pending-handshakes 5: the clients beyond 5 waiting and 2 in flight are reset at once" \
    bash -c "[ '$reset' -ge 13 ] && [ '$reset' -le 15 ]"
t_check "  each with a warning naming the setting" \
    bash -c "[ \$(grep -c 'tunnel small: reset 127.0.0.1:[0-9]*: 5 handshakes already waiting (max-pending-handshakes)' '$T/tun.log') = '$reset' ]"

# SIGTERM with handshakes stuck on the black hole (connect-timeout 60): the drain waits its
# 10 s, then the handshakes in flight give up at once instead of at their timeout, so the
# process ends well within systemd's TimeoutStopSec (90 s by default).
kill -TERM $tun_pid
gone=no
for i in $(seq 200); do
    kill -0 $tun_pid 2>/dev/null || { gone=yes; break; }
    sleep 0.1
done
t_check "SIGTERM with handshakes stuck for 60 s: the tunnel exits after its 10 s drain, not theirs" \
    [ $gone = yes ]
t_check "  the stuck handshakes say they were abandoned" \
    grep -q "tunnel hole: .*abandoned: stopping" "$T/tun.log"

t_done
