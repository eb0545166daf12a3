#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# make bench: keybound tunnel against stunnel4 (client mode, OpenSSL pkcs11 engine) on the
# same SoftHSM P-256 key, the same nginx mTLS backends and the same C load generator, each
# tool configured as its manual says: doc/keybound.1 (defaults) and stunnel.conf(5) (its
# pkcs11 engine example, with the server authenticated as verifyChain asks).
#   (a) per backend, TLS 1.3 only and TLS 1.2 only (nginx: ssl_verify_client on, session
#       tickets and a shared session cache): a fresh tool takes a cold burst of 100 clients,
#       then new connections for CONN_S s from 8 clients, one GET each; new conn/s, the
#       tool's own CPU (user + system, /proc/PID/stat) per connection, signatures per
#       connection. ROUNDS rounds, the tools' order swapped every round; medians, min-max.
#   (b) the same on the TLS 1.3 backend with the p11shim making every C_Sign take 150 ms,
#       one at a time (a real card), SLOW_ROUNDS rounds.
#   (c) one connection kept alive: bulk download and request latency; memory per idle
#       connection.
# Both tools reach SoftHSM through the p11shim with P11SHIM_COUNT only: one line per
# signature and nothing written for any other call. Each tool offers its own default
# ciphers, and the backend (nginx, which takes the client's order) says which suite it
# negotiated: keybound's default puts AES-128-GCM first, OpenSSL's AES-256-GCM.
# STUNNEL_CIPHERSUITES=... and STUNNEL_CIPHERS=... (stunnel.conf(5): TLS 1.3 and TLS 1.2)
# make stunnel offer another order, for a like-for-like run. Not a test: it prints one table.
set -u
: "${KEYBOUND:?run it with make bench}" "${LOADGEN:?}" "${P11SHIM:?}"
export TESTS_SRCDIR=${TESTS_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$TESTS_SRCDIR/lib/testlib.sh"
t_skip_all() {
    echo "bench: $*"
    exit 2
}
for tool in stunnel4 nginx; do command -v $tool >/dev/null || t_skip_all "$tool is needed"; done
# stunnel.conf(5) loads the engine by its id, which OpenSSL finds in its engines directory.
find /usr/lib -name pkcs11.so -path '*engines*' 2>/dev/null | grep -q . ||
    t_skip_all "the OpenSSL pkcs11 engine is needed (libengine-pkcs11-openssl)"
CONN_S=${CONN_S:-4}           # seconds of new connections per round and tool
ROUNDS=${ROUNDS:-5}           # rounds of (a) per backend
SLOW_ROUNDS=${SLOW_ROUNDS:-3} # rounds of (b): stunnel's cold burst alone takes 15 s there

# busy: the share of both CPUs in use (steal included) since the last call, in %; what the
# machine does besides this bench shows in the figure taken before it starts.
stat_prev=
busy() {
    local now
    now=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6, $9 }' /proc/stat)
    if [ -n "$stat_prev" ]; then
        awk -v a="$stat_prev" -v b="$now" 'BEGIN { split(a, x, " "); split(b, y, " ");
            t = (y[1] - x[1]) + (y[2] - x[2]); printf "%.0f%% (steal %.0f%%)", t ? 100 * (y[1] - x[1]) / t : 0,
            t ? 100 * (y[3] - x[3]) / t : 0 }'
    fi
    stat_prev=$now
}
began=$(date +%s.%N)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
busy >/dev/null
sleep 1
busy_before=$(busy)
kb_setup
ulimit -n 16384
kb_token bench
kb_pki
P=$T/pki
kb keygen $MOD --token pkcs11:token=bench --label laptop --pin-file "$T/pin"
key=$(cat "$T/out")
kb_device_cert bench "$key" "laptop-1" laptop
head -c 200000000 /dev/urandom >"$T/big"

# nginx 1.22 offers TLS 1.3 only when ssl_protocols names it.
n13=$(free_port)
n12=$(free_port)
server() {
    cat <<CONF
  server { listen 127.0.0.1:$1 ssl; ssl_certificate $P/server.pem;
    ssl_certificate_key $P/server.key; ssl_client_certificate $P/ca.pem; ssl_verify_client on;
    ssl_protocols $2; ssl_session_tickets on; ssl_session_cache shared:S$1:10m;
    location = /big { alias $T/big; }
    location / { return 200 "hello \$ssl_client_s_dn \$ssl_protocol \$ssl_cipher\n"; } }
CONF
}
mkdir -p "$T/nginx"
cat >"$T/nginx.conf" <<CONF
daemon off; user root; pid $T/nginx/pid; error_log $T/nginx/error.log; worker_processes 2;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 600s;
  client_body_temp_path $T/nginx/b; proxy_temp_path $T/nginx/p; fastcgi_temp_path $T/nginx/f;
  uwsgi_temp_path $T/nginx/u; scgi_temp_path $T/nginx/s;
$(server "$n13" TLSv1.3)
$(server "$n12" TLSv1.2)
}
CONF
kb_bg "$T/nginx.log" nginx -c "$T/nginx.conf" -p "$T/nginx" -e "$T/nginx/error.log"
wait_port "$n13" && wait_port "$n12" || t_skip_all "nginx did not start"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
sigs() { wc -l <"$T/sigs"; }
# cpu_ticks PID: the CPU the process has used, user and system, its threads' included (those
# that ended too: stunnel runs a thread per connection), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
# nginx_ticks: the same for nginx, master and workers.
nginx_ticks() {
    local master
    master=$(cat "$T/nginx/pid")
    # shellcheck disable=SC2046
    awk '{ t += $14 + $15 } END { print t }' "/proc/$master/stat" \
        $(sed "s|[0-9][0-9]*|/proc/&/stat|g" "/proc/$master/task/$master/children")
}
# machine_ticks: the clock ticks of all CPUs so far that processes used (user, nice, system;
# what /proc/PID/stat counts too), and all of them, from /proc/stat.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }

notes=()
# start TOOL SLOW BACKEND: the tool under test on $lport, through the shim; its pid in
# $tool_pid. Returns 1 (with a note) if it does not listen.
start() {
    local tool=$1 slow=$2 backend=$3 i
    lport=$(free_port)
    : >"$T/sigs"
    local shimenv=(P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_COUNT="$T/sigs")
    [ "$slow" = slow ] && shimenv+=(P11SHIM_DELAY_MS=150 P11SHIM_DELAY_FUNC=C_Sign P11SHIM_DELAY_SERIAL=1)
    if [ "$tool" = keybound ]; then
        # Its defaults; --max-connections above the default 1000 for the 1,000 idle ones.
        env "${shimenv[@]}" "$KEYBOUND" tunnel --module "$P11SHIM" --pin-file "$T/pin" \
            --listen "127.0.0.1:$lport" --connect "localhost:$backend" --ca "$P/ca.pem" \
            --key "pkcs11:token=bench;object=laptop" --max-connections 5000 >"$T/$tool.log" 2>&1 &
    else
        # syslog = no: besides stderr stunnel logs to syslog, and where nothing listens on
        # /dev/log glibc opens /dev/console for each line instead; on this CI that is a serial
        # port, and it cut stunnel to a fifth of its new connections per second (~270 conn/s
        # instead of ~1,350, 1.7-2.8 ms of CPU per connection instead of 0.65). keybound logs
        # to stderr only; both logs go to a file.
        cat >"$T/stunnel.conf" <<CONF
foreground = yes
syslog = no
pid =
engine = pkcs11
engineCtrl = MODULE_PATH:$P11SHIM
engineCtrl = PIN:1234
[bench]
engineId = pkcs11
client = yes
accept = 127.0.0.1:$lport
connect = 127.0.0.1:$backend
cert = pkcs11:token=bench;object=laptop;type=cert
key = pkcs11:token=bench;object=laptop;type=private
CAfile = $P/ca.pem
verifyChain = yes
checkHost = localhost
sni = localhost
${STUNNEL_CIPHERSUITES:+ciphersuites = $STUNNEL_CIPHERSUITES}
${STUNNEL_CIPHERS:+ciphers = $STUNNEL_CIPHERS}
CONF
        env "${shimenv[@]}" stunnel4 "$T/stunnel.conf" >"$T/$tool.log" 2>&1 &
    fi
    tool_pid=$!
    kb_pids+=($tool_pid)
    for i in $(seq 200); do
        # Alive too: another program could have taken the port free_port chose.
        (exec 3<>/dev/tcp/127.0.0.1/$lport) 2>/dev/null && kill -0 $tool_pid 2>/dev/null && return 0
        kill -0 $tool_pid 2>/dev/null || break
        sleep 0.05
    done
    notes+=("$tool did not start ($slow, port $backend): $(tail -2 "$T/$tool.log" | tr '\n' ' ')")
    stop
    return 1
}
stop() {
    kill "$tool_pid" 2>/dev/null
    wait "$tool_pid" 2>/dev/null
}
val() { sed -n "s/.*$1 \([0-9.]*\).*/\1/p" <<<"$2"; }
add() { R[$1]=$((${R[$1]:-0} + $2)); }

declare -A R
# round TOOL SLOW BACKEND KEY: one fresh start: the cold burst, then new connections. The
# readiness probe of start() opened one connection first, as a health check would.
round() {
    local tool=$1 slow=$2 backend=$3 k=$4 out s0 c0 c1 n g0 g1 m0 m1
    start "$tool" "$slow" "$backend" || return
    out=$("$LOADGEN" burst "$lport" 100)
    R[$k,$tool,burst_ms]+=" $(val burst_ms "$out")"
    R[$k,$tool,burst_sigs]+=" $(sigs)"
    add "$k,$tool,burst_failed" "$(val failed "$out")"
    s0=$(sigs)
    m0=$(machine_ticks)
    g0=$(nginx_ticks)
    c0=$(cpu_ticks "$tool_pid")
    out=$("$LOADGEN" conn "$lport" "$CONN_S" 8)
    c1=$(cpu_ticks "$tool_pid")
    g1=$(nginx_ticks)
    m1=$(machine_ticks)
    n=$(($(val ok "$out") + $(val failed "$out")))
    # What ran besides the tool, nginx and the load generator: other work on this machine,
    # which takes CPU from one tool's rounds and not the other's.
    R[$k,$tool,others]+=" $(awk -v a="$m0" -v b="$m1" -v t=$((c1 - c0 + g1 - g0)) \
        -v l="$(val cpu_ms "$out")" -v hz="$HZ" 'BEGIN { split(a, x, " "); split(b, y, " ");
        o = (y[1] - x[1]) - t - l * hz / 1000; if (o < 0) o = 0;
        printf "%.0f", (y[2] > x[2]) ? 100 * o / (y[2] - x[2]) : 0 }')"
    R[$k,$tool,conn_s]+=" $(val conn_per_s "$out")"
    R[$k,$tool,cpu_us]+=" $(awk -v c=$((c1 - c0)) -v n="$n" -v hz="$HZ" 'BEGIN { printf "%.0f", n ? c * 1e6 / hz / n : 0 }')"
    add "$k,$tool,conns" "$n"
    add "$k,$tool,sigs" $(($(sigs) - s0))
    add "$k,$tool,failed" "$(val failed "$out")"
    # What the backend says it negotiated with the tool, after the measured part.
    R[$k,$tool,suite]=$(exec 3<>"/dev/tcp/127.0.0.1/$lport" && printf 'GET / HTTP/1.0\r\n\r\n' >&3 &&
        sed -n 's/^hello .* \([^ ]*\)$/\1/p' <&3)
    if [ "$slow" = slow ]; then
        out=$("$LOADGEN" latency "$lport" 5000)
        R[$k,$tool,p50]+=" $(val p50_us "$out")"
        R[$k,$tool,p99]+=" $(val p99_us "$out")"
    fi
    stop
}
# Odd rounds start with keybound, even ones with stunnel: a drift of the machine (another
# job starting, the page cache filling) falls on both.
order() { [ $(($1 % 2)) = 1 ] && echo "keybound stunnel" || echo "stunnel keybound"; }

# --- (a) and (b) --------------------------------------------------------------------------
for r in $(seq "$ROUNDS"); do
    for tool in $(order "$r"); do
        round "$tool" plain "$n13" tls13
        round "$tool" plain "$n12" tls12
    done
done
for r in $(seq "$SLOW_ROUNDS"); do
    for tool in $(order "$r"); do
        round "$tool" slow "$n13" slow
    done
done

# --- (c) one kept-alive connection; idle connections --------------------------------------
for tool in keybound stunnel; do
    start $tool plain "$n13" || continue
    # The best of three downloads: everything here shares the two cores.
    best=0
    for i in 1 2 3; do
        out=$("$LOADGEN" bulk "$lport" /big)
        best=$(awk -v a="$best" -v b="$(val mb_per_s "$out")" 'BEGIN {print (b > a ? b : a)}')
    done
    R[c,$tool,bulk]=$best
    out=$("$LOADGEN" latency "$lport" 5000)
    R[c,$tool,p50]=$(val p50_us "$out")
    R[c,$tool,p99]=$(val p99_us "$out")
    before=$(rss_kib $tool_pid)
    coproc IDLE { "$LOADGEN" idle "$lport" 1000; }
    read -r line <&"${IDLE[0]}"
    after=$(rss_kib $tool_pid)
    R[c,$tool,idle_kib]=$(awk -v a="$after" -v b="$before" -v n="${line#ready }" 'BEGIN {printf "%.1f", n ? (a - b) / n : 0}')
    exec {IDLE[1]}>&-
    wait $IDLE_PID 2>/dev/null
    stop
done
busy_during=$(busy)

# --- the table ----------------------------------------------------------------------------
ended=$(date +%s.%N)
median() { sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'; }
spread() { sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%s-%s", v[1], v[NR] }'; }
runs() { tr ' ' '\n' <<<"${R[$1]:-}" | grep .; }
med() { runs "$1" | median; }
spr() { runs "$1" | spread; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
per() { awk -v s="${R[$1,sigs]:-0}" -v c="${R[$1,conns]:-0}" 'BEGIN { if (c) printf "%.4f", s / c; else print "-" }'; }
ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null | sed 's/^[0-9]*://' || echo "?"; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
W=44
# row LABEL KB ST RATIO: the measure, each tool's figure, their ratio.
row() { printf "%-${W}s %17s %17s %6s\n" "$1" "$2" "$3" "$4"; }
# mrow LABEL SECTION MEASURE [-]: the medians (min-max) of the rounds, and the ratio of the
# medians unless told not to.
mrow() {
    local kb st r
    kb=$(med "$2,keybound,$3")
    st=$(med "$2,stunnel,$3")
    r=$(ratio "$kb" "$st")
    [ -n "${4:-}" ] && r=
    row "$1" "$kb ($(spr "$2,keybound,$3"))" "$st ($(spr "$2,stunnel,$3"))" "$r"
}
echo
echo "keybound tunnel vs stunnel $(ver stunnel4) (client mode, pkcs11 engine), ratio keybound / stunnel"
echo "machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
    "kernel $(uname -r); load average $load_before at start, $(cut -d' ' -f1-3 /proc/loadavg) at end;" \
    "CPUs busy $busy_before in the second before, $busy_during over the bench (its own load included)"
echo "versions: GnuTLS $(ver libgnutls30), p11-kit $(ver libp11-kit0), OpenSSL $(ver libssl3)," \
    "libp11 $(ver libengine-pkcs11-openssl), SoftHSM $(ver softhsm2-common) (P-256 key), nginx $(ver nginx-light)"
for k in tls13 tls12 slow; do
    case $k in
    tls13) echo "-- (a) nginx TLS 1.3 only; median (min-max) of $ROUNDS rounds, $CONN_S s each, 8 clients" ;;
    tls12) echo "-- (a) nginx TLS 1.2 only; median (min-max) of $ROUNDS rounds, $CONN_S s each, 8 clients" ;;
    slow) echo "-- (b) nginx TLS 1.3, token: 150 ms per C_Sign, one at a time; $SLOW_ROUNDS rounds" ;;
    esac
    row "cipher suite the backend negotiated" "${R[$k,keybound,suite]:--}" "${R[$k,stunnel,suite]:--}" ""
    mrow "new connections per second" $k conn_s
    mrow "CPU per new connection, us (tool's own)" $k cpu_us
    mrow "CPU of other processes meanwhile, %" $k others -
    row "token signatures per connection" "$(per "$k,keybound")" "$(per "$k,stunnel")" \
        "$(ratio "$(per "$k,keybound")" "$(per "$k,stunnel")")"
    row "failed connections" "${R[$k,keybound,failed]:--}" "${R[$k,stunnel,failed]:--}" ""
    mrow "cold burst of 100: total ms" $k burst_ms
    row "cold burst of 100 (+1 probe): signatures" "$(runs "$k,keybound,burst_sigs" | paste -sd' ')" \
        "$(runs "$k,stunnel,burst_sigs" | paste -sd' ')" ""
    row "cold burst of 100: failed connections" "${R[$k,keybound,burst_failed]:--}" \
        "${R[$k,stunnel,burst_failed]:--}" ""
    if [ $k = slow ]; then
        mrow "request latency p50, us (kept alive)" $k p50
        mrow "request latency p99, us (kept alive)" $k p99
    fi
done
echo "-- (c) nginx TLS 1.3, plain token: one connection kept alive; idle connections"
row "bulk download, MB/s (best of 3)" "${R[c,keybound,bulk]:--}" "${R[c,stunnel,bulk]:--}" \
    "$(ratio "${R[c,keybound,bulk]:-}" "${R[c,stunnel,bulk]:-}")"
row "request latency p50, us" "${R[c,keybound,p50]:--}" "${R[c,stunnel,p50]:--}" \
    "$(ratio "${R[c,keybound,p50]:-}" "${R[c,stunnel,p50]:-}")"
row "request latency p99, us" "${R[c,keybound,p99]:--}" "${R[c,stunnel,p99]:--}" \
    "$(ratio "${R[c,keybound,p99]:-}" "${R[c,stunnel,p99]:-}")"
row "memory per idle connection, KiB (1,000)" "${R[c,keybound,idle_kib]:--}" "${R[c,stunnel,idle_kib]:--}" \
    "$(ratio "${R[c,keybound,idle_kib]:-}" "${R[c,stunnel,idle_kib]:-}")"
# Either tool's rounds losing a tenth of the machine to other work shifts its figures.
for k in tls13 tls12 slow; do
    for tool in keybound stunnel; do
        worst=$(runs "$k,$tool,others" | sort -n | tail -1)
        [ "${worst:-0}" -ge 10 ] &&
            notes+=("$k, $tool: other processes took up to $worst% of the machine in a round")
    done
done
if [ ${#notes[@]} -gt 0 ]; then
    echo "notes:"
    printf '  - %s\n' "${notes[@]}"
fi
# BENCH_KEEP=DIR keeps the logs and configurations for a look afterwards.
[ -n "${BENCH_KEEP:-}" ] && cp -r "$T" "$BENCH_KEEP"
echo "took $(awk -v a="$began" -v b="$ended" 'BEGIN { printf "%.0f", b - a }') s"
