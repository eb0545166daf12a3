#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# How connections end, through keybound tunnel and keybound connect --stdio.
#
# A server that cuts the stream without a TLS close while the local client still has its
# side open: every byte already received reaches the local client, and then the cut is
# passed on as a cut (a TCP reset, never a clean FIN that would pass for a complete
# stream). And what the server sees when the local side ends: a close_notify when it ends
# in order, none when it aborts (an abort must look like one to the server too).
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
# connect takes the endpoint's CA from the policy (and so has no warning to print).
kb_device
LIB=$TESTS_SRCDIR/lib
CONNECT=(setsid -w "$KEYBOUND" connect $MOD --pin-file "$T/pin" --policy "$T/policy.conf"
    --key "$laptop" --stdio)
# Local connections per kind of cut (CLOSING_RUNS to try more), and per slow kind.
RUNS=${CLOSING_RUNS:-30}
SLOW_RUNS=5

# tun NAME ARGS...: a tunnel in the background, its log in $T/NAME.log; returns when it
# listens (no probe connection: every connection in the log is the test's).
tun() {
    local name=$1
    shift
    setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" --ca "$P/ca.pem" --key "$laptop" "$@" \
        >"$T/$name.log" 2>&1 </dev/null &
    kb_pids+=($!)
    wait_log "$T/$name.log" "tunnel cli: listening"
}

# closes_say N LOG DOWN: the tunnel logged N close lines, each with 4 bytes up (the
# request) and DOWN bytes down (2 s at most for the last ones to be written). What they
# said instead, counted, goes to $T/out for the failure report.
closes_say() {
    local i re="tunnel cli: close 127.0.0.1:[0-9]*: 4 bytes up, $3 down, "
    for i in $(seq 20); do
        [ "$(grep -c "tunnel cli: close " "$2")" -ge "$1" ] && break
        sleep 0.1
    done
    last_cmd="the close lines of $2, counted by bytes down"
    grep -o "tunnel cli: close .*" "$2" | sed 's/.* bytes up, \([0-9]*\) down, .*/\1 down/' |
        sort | uniq -c >"$T/out"
    : >"$T/err"
    [ "$(grep -c "tunnel cli: close " "$2")" -eq "$1" ] && [ "$(grep -c -e "$re" "$2")" -eq "$1" ]
}

# server_saw TAG ERE: close_watch.py logged how the connection tagged TAG ended (10 s at
# most), and that matches ERE. Its line goes to $T/out for the failure report.
server_saw() {
    wait_log "$T/ends.log" "^$1: "
    last_cmd="what close_watch.py logged for $1"
    grep "^$1: " "$T/ends.log" >"$T/out"
    : >"$T/err"
    grep -q -E "^$1: ($2)$" "$T/ends.log"
}

# --- a server cuts the stream while the local client keeps its side open -------------------
# A local client of the tunnel, RUNS times in a row: sends a request, keeps its own side
# open, and reads until the end. Prints how many runs got how many bytes and how the stream
# ended (reset; eof: a clean FIN; timeout), most frequent first. With SERVER-LOG, a slow
# client: it reads nothing until unclean_server.py has logged that it ended the
# connection, so that the end reaches the tunnel while the answer still waits there.
cat >"$T/cut_client.py" <<'PY'
import collections, socket, sys, time
port, runs = int(sys.argv[1]), int(sys.argv[2])
server_log = sys.argv[3] if len(sys.argv) > 3 else None
def cuts():
    with open(server_log) as f:
        return sum("without close_notify" in line for line in f)
tally = collections.Counter()
for i in range(runs):
    before = cuts() if server_log else 0
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET\n")
    for _ in range(200):
        if not server_log or cuts() > before:
            break
        time.sleep(0.05)
    got, end = 0, None
    try:
        while True:
            d = s.recv(65536)
            if not d:
                end = "eof"
                break
            got += len(d)
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        end = "timeout"
    s.close()
    tally[(got, end)] += 1
for (got, end), n in tally.most_common():
    print("%d of %d runs: %d bytes, then %s" % (n, runs, got, end))
PY

# cut NAME VERSION BYTES HOW SERVER-OPTION...: an unclean_server.py capped at TLS VERSION
# that answers BYTES bytes (its port left in $cut_port), a tunnel to it, RUNS local clients
# through it (slow ones, $SLOW_RUNS of them, when CUT_SLOW is set); HOW says how the server
# ends, for the checks' names.
cut() {
    local name=$1 v=$2 n=$3 how=$4 tp runs=$RUNS slow=
    shift 4
    if [ -n "${CUT_SLOW:-}" ]; then
        runs=$SLOW_RUNS
        slow=$T/$name-server.log
    fi
    cut_port=$(free_port)
    kb_bg "$T/$name-server.log" /usr/bin/python3 "$LIB/unclean_server.py" "$cut_port" \
        "$P/ca.pem" "$P/server.pem" "$P/server.key" --max-tls "$v" --bytes "$n" "$@"
    wait_port "$cut_port" || t_fail "the cutting server ($name) started"
    tp=$(free_port)
    tun "$name" --listen "127.0.0.1:$tp" --connect "localhost:$cut_port"
    run timeout 120 /usr/bin/python3 "$T/cut_client.py" "$tp" "$runs" $slow
    t_check "TLS $v, the server sends $n bytes and $how: every local client gets all $n, then a reset ($runs runs)" \
        out_has "^$runs of $runs runs: $n bytes, then reset$"
    t_check "  the tunnel's close line says $n down for each of them" closes_say "$runs" "$T/$name.log" "$n"
    t_check "  over TLS $v" grep -q "tunnel cli: open 127.0.0.1:[0-9]* -> localhost:$cut_port: TLS$v," "$T/$name.log"
}
# The FIN in the same segment as the record (TCP_CORK): the end is always there when the
# record is read, so code that drops what it read when the end comes loses it every time.
cut cork13 1.3 94 "closes at once (TCP FIN in the same segment, no close_notify)" --cork
cork13=$cut_port
cut cork12 1.2 94 "closes at once (TCP FIN in the same segment, no close_notify)" --cork
cork12=$cut_port
# The peer itself, seen by openssl s_client -msg (with a certificate from a software key):
# the reply comes, then the TCP end, and no alert of any kind before it.
certtool --generate-privkey --key-type ecdsa --outfile "$P/soft.key" 2>/dev/null
certtool --load-privkey "$P/soft.key" --pubkey-info --outfile "$P/soft.pub" 2>/dev/null
kb_issue_client "$P/soft.pub" "software client" "$P/soft.pem"
for v in 1.3 1.2; do
    port=$cork13
    [ "$v" = 1.2 ] && port=$cork12
    printf 'GET\n' >"$T/in"
    RUN_STDIN=$T/in run timeout 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$P/ca.pem" \
        -cert "$P/soft.pem" -key "$P/soft.key" -msg -ign_eof
    t_check "the cutting server (TLS $v), to openssl s_client: 94 bytes, then the TCP end with no close_notify" \
        bash -c "grep -q -x 'r\{93\}' '$T/out' && ! grep -q '^<<< .*Alert' '$T/out' &&
            grep -q 'unexpected eof while reading' '$T/out' '$T/err' &&
            grep -q 'Protocol  *: TLSv$v' '$T/out'"
done

# A plain close, the FIN trailing the record or leaving with it, as from most servers; and a
# reset instead of a FIN (GnuTLS's pull error, not its premature termination). Code that
# drops what it read when the end comes loses it in some of the runs, not all.
cut fin13 1.3 94 "closes (TCP FIN, no close_notify)"
cut fin12 1.2 94 "closes (TCP FIN, no close_notify)"
cut rst13 1.3 94 "resets the TCP connection (no close_notify)" --reset
# A large answer (1 MiB), cut while the local client has not read it yet: the end reaches
# the tunnel behind data it still holds, or has written to the client's socket but the
# client has not taken. A reset discards what the tunnel's socket has not delivered yet, so
# "then a reset" must wait until the client's side has it all.
CUT_SLOW=1 cut slowfin13 1.3 1048576 "closes (TCP FIN, no close_notify) before the client reads" --flush
CUT_SLOW=1 cut slowrst13 1.3 1048576 "resets (no close_notify) before the client reads" --reset
CUT_SLOW=1 cut slowrst12 1.2 1048576 "resets (no close_notify) before the client reads" --reset

# --- the same cut through connect --stdio, its stdin kept open -----------------------------
# stdin is a FIFO that this shell holds open for writing: the request is in it, and no EOF
# comes (stdin's end would send our close_notify first, and the cut would come after it).
mkfifo "$T/hold"
exec {hold}<>"$T/hold"
r93=$(printf 'r%.0s' $(seq 93))
for v in 1.3 1.2; do
    port=$cork13
    [ "$v" = 1.2 ] && port=$cork12
    ok=0
    for i in 1 2 3; do
        printf 'GET\n' >&"$hold"
        RUN_STDIN=$T/hold run "${CONNECT[@]}" "localhost:$port"
        [ "$(cat "$T/out")" = "$r93" ] && [ "$(wc -c <"$T/out")" -eq 94 ] && [ "$rc" -ne 0 ] &&
            err_one_line && err_has "cut without a TLS close" && ok=$((ok + 1))
    done
    t_check "connect --stdio, TLS $v, the server cuts after 94 bytes: all 94 on stdout, then a non-zero exit with one line saying it was cut (3 of 3 runs)" \
        [ "$ok" -eq 3 ]
done
exec {hold}>&-

# --- what the server sees when the local side ends ----------------------------------------
wp=$(free_port)
kb_bg "$T/close_watch.log" /usr/bin/python3 "$LIB/close_watch.py" "$wp" "$P/ca.pem" \
    "$P/server.pem" "$P/server.key" "$T/ends.log"
wait_port "$wp" || t_fail "the close watcher started"
tp=$(free_port)
tun watch --listen "127.0.0.1:$tp" --connect "localhost:$wp"
# A local client: sends its tag, waits for the server's answer (so the connection goes all
# the way), then ends as told: "close" (shutdown, read to the end, close) or "abort" (a
# reset: SO_LINGER 0). Prints the answer, and for "close" how the stream then ended.
cat >"$T/end_client.py" <<'PY'
import socket, struct, sys
port, tag, how = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(tag.encode() + b"\n")
f = s.makefile("rb")
print(f.readline().decode().strip(), flush=True)
if how == "close":
    s.shutdown(socket.SHUT_WR)
    try:
        print("then %d more bytes and eof" % len(f.read()))
    except ConnectionResetError:
        print("then reset")
else:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
f.close()
s.close()
PY
run timeout 20 /usr/bin/python3 "$T/end_client.py" "$tp" tunnel-close close
t_check "tunnel, the local client ends in order: the answer comes through, then a clean end" \
    bash -c "[ \"\$(cat '$T/out')\" = \"\$(printf 'ok tunnel-close\nthen 0 more bytes and eof')\" ]"
t_check "  and the server sees a close_notify" server_saw tunnel-close "close_notify, then (eof|reset)"
for i in 1 2 3; do
    run timeout 20 /usr/bin/python3 "$T/end_client.py" "$tp" "tunnel-abort-$i" abort
    t_check "tunnel, the local client aborts with a TCP reset (run $i of 3): its request went through" \
        out_has "^ok tunnel-abort-$i$"
    t_check "  and the server sees no close_notify, but a reset or an unclean EOF" \
        server_saw "tunnel-abort-$i" "reset|eof"
done

printf 'stdio-close\n' >"$T/in"
RUN_STDIN=$T/in run "${CONNECT[@]}" "localhost:$wp"
t_check "connect --stdio, stdin ends: the answer on stdout, exit 0" \
    bash -c "[ $rc -eq 0 ] && [ \"\$(cat '$T/out')\" = 'ok stdio-close' ]"
t_check "  and the server sees a close_notify" server_saw stdio-close "close_notify, then (eof|reset)"

# connect fails mid-stream: its stdout is a pipe nobody reads, so the server's answer cannot
# be written out. stdin stays open (its end would be an orderly close of our side).
cat >"$T/no_reader.py" <<'PY'
import os, subprocess, sys
r, w = os.pipe()
os.close(r)
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE, stdout=w, stderr=subprocess.PIPE)
os.close(w)
p.stdin.write(sys.argv[1].encode() + b"\n")
p.stdin.flush()
err = p.stderr.read()
rc = p.wait(timeout=20)
p.stdin.close()
sys.stderr.buffer.write(err)
print("exit %d" % rc)
PY
run timeout 30 /usr/bin/python3 "$T/no_reader.py" stdio-abort "${CONNECT[@]}" "localhost:$wp"
t_check "connect --stdio, stdout cannot be written: a non-zero exit with one line saying so" \
    bash -c "grep -q '^exit [1-9]' '$T/out' && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q 'writing to stdout' '$T/err'"
t_check "  and the server sees no close_notify, but a reset or an unclean EOF" \
    server_saw stdio-abort "reset|eof"
# The server cuts while the local client still uploads and reads nothing: nothing more goes
# to the server, and the tail waits for the client no longer than the idle timeout (2 s
# here); then the client is reset, though it still holds the connection (20 s). The
# server ends only its sending side and goes on taking the upload, so the tunnel's socket
# to it stays writable.
up_srv=$(free_port)
kb_bg "$T/upcut-server.log" /usr/bin/python3 "$LIB/unclean_server.py" "$up_srv" "$P/ca.pem" \
    "$P/server.pem" "$P/server.key" --max-tls 1.3 --bytes 262144 --half
wait_port "$up_srv" || t_fail "the cutting server (upload) started"
up=$(free_port)
tun upcut --listen "127.0.0.1:$up" --connect "localhost:$up_srv" --idle-timeout 2
python3 - "$up" >"$T/upcut.txt" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # the tail cannot all fit in
s.connect(("127.0.0.1", int(sys.argv[1])))
s.setblocking(False)
s.send(b"GET\n")
end = time.monotonic() + 20
while time.monotonic() < end:
    try:
        s.send(b"x" * 65536)
    except BlockingIOError:
        time.sleep(0.01)
    except OSError as e:
        print("send:", type(e).__name__, flush=True)
        time.sleep(max(0, end - time.monotonic()))  # still there: it never let go itself
        break
PY
upc=$!
kb_pids+=($upc)
t_check "the server cuts while the client uploads and reads nothing: the tunnel ends it (idle timeout)" \
    wait_log "$T/upcut.log" "tunnel cli: close 127.0.0.1:[0-9]*: .*cut without a TLS close"
t_check "  while the client still held the connection" kill -0 $upc
kill $upc 2>/dev/null
t_done
