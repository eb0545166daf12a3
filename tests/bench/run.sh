#!/bin/bash
# make bench: keybound tunnel against stunnel4 (client mode, OpenSSL pkcs11 engine) on the
# same SoftHSM key, the same nginx mTLS backend (ssl_verify_client on, session tickets on)
# and the same load generator. Twice: with the plain token, and with the p11shim making
# every C_Sign take 150 ms, one at a time (a real card). Not a test: it prints one table.
set -u
: "${KEYBOUND:?run it with make bench}" "${LOADGEN:?}" "${P11SHIM:?}"
export TESTS_SRCDIR=${TESTS_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$TESTS_SRCDIR/lib/testlib.sh"
t_skip_all() { echo "bench: $*"; exit 2; }
for tool in stunnel4 nginx; do command -v $tool >/dev/null || t_skip_all "$tool is needed"; done
ENGINE=$(find /usr/lib -name pkcs11.so -path '*engines*' 2>/dev/null | head -1)
[ -n "$ENGINE" ] || t_skip_all "the OpenSSL pkcs11 engine is needed (libengine-pkcs11-openssl)"
kb_setup
ulimit -n 16384
kb_token bench
kb_pki
P=$T/pki
kb keygen $MOD --token pkcs11:token=bench --label laptop --pin-file "$T/pin"
key=$(cat "$T/out")
kb_device_cert bench "$key" "laptop-1" laptop
head -c 200000000 /dev/urandom >"$T/big"

nport=$(free_port)
mkdir -p "$T/nginx"
cat >"$T/nginx.conf" <<CONF
daemon off; user root; pid $T/nginx/pid; error_log $T/nginx/error.log; worker_processes 2;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 600s;
  client_body_temp_path $T/nginx/b; proxy_temp_path $T/nginx/p; fastcgi_temp_path $T/nginx/f;
  uwsgi_temp_path $T/nginx/u; scgi_temp_path $T/nginx/s;
  server { listen 127.0.0.1:$nport ssl; ssl_certificate $P/server.pem;
    ssl_certificate_key $P/server.key; ssl_client_certificate $P/ca.pem; ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3; ssl_session_tickets on; ssl_session_cache shared:S:10m;
    location = /big { alias $T/big; }
    location / { return 200 "hello \$ssl_client_s_dn\n"; } } }
CONF
kb_bg "$T/nginx.log" nginx -c "$T/nginx.conf" -p "$T/nginx" -e "$T/nginx/error.log"
wait_port "$nport" || t_skip_all "nginx did not start"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
sigs() { grep -c '^C_SignInit ' "$T/shim.log" 2>/dev/null || true; }

# start TOOL SLOW: the tool under test on $lport, through the shim; its pid in $tool_pid.
start() {
    local tool=$1 slow=$2
    lport=$(free_port)
    : >"$T/shim.log"
    local shimenv=(P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_LOG="$T/shim.log")
    [ "$slow" = slow ] && shimenv+=(P11SHIM_DELAY_MS=150 P11SHIM_DELAY_FUNC=C_Sign P11SHIM_DELAY_SERIAL=1)
    if [ "$tool" = keybound ]; then
        env "${shimenv[@]}" "$KEYBOUND" tunnel --module "$P11SHIM" --pin-file "$T/pin" \
            --listen "127.0.0.1:$lport" --connect "localhost:$nport" --ca "$P/ca.pem" \
            --key "pkcs11:token=bench;object=laptop" --max-connections 5000 >"$T/$tool.log" 2>&1 &
    else
        # syslog = no: besides stderr stunnel logs to syslog, and where nothing listens on
        # /dev/log glibc writes each line to the console instead (on the TPM bench, that
        # doubled stunnel's CPU per connection). keybound logs to stderr only.
        cat >"$T/stunnel.conf" <<CONF
foreground = yes
syslog = no
pid =
engine = dynamic
engineCtrl = SO_PATH:$ENGINE
engineCtrl = ID:pkcs11
engineCtrl = LIST_ADD:1
engineCtrl = LOAD
engineCtrl = MODULE_PATH:$P11SHIM
engineCtrl = PIN:1234
[bench]
client = yes
accept = 127.0.0.1:$lport
connect = 127.0.0.1:$nport
engineId = pkcs11
key = pkcs11:token=bench;object=laptop;type=private
cert = $T/laptop.pem
CAfile = $P/ca.pem
verifyChain = yes
checkHost = localhost
sni = localhost
CONF
        env "${shimenv[@]}" stunnel4 "$T/stunnel.conf" >"$T/$tool.log" 2>&1 &
    fi
    tool_pid=$!
    kb_pids+=($tool_pid)
    for i in $(seq 200); do
        (exec 3<>/dev/tcp/127.0.0.1/$lport) 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: $tool did not start"; cat "$T/$tool.log"; exit 1
}
stop() { kill "$tool_pid" 2>/dev/null; wait "$tool_pid" 2>/dev/null; }
val() { sed -n "s/.*$1 \([0-9.]*\).*/\1/p" <<<"$2"; }

declare -A R
for slow in plain slow; do
    for tool in keybound stunnel; do
        # The cold burst first: 100 clients at once right after start. (The readiness probe
        # of start() opened one connection already, as any health check would.)
        start $tool $slow
        out=$("$LOADGEN" burst "$lport" 100)
        R[$tool,$slow,burst_ms]=$(val burst_ms "$out")
        R[$tool,$slow,burst_sigs]=$(sigs) # since the start, the readiness probe's included
        R[$tool,$slow,burst_failed]=$(val failed "$out")
        s0=$(sigs)
        out=$("$LOADGEN" conn "$lport" 5 8)
        R[$tool,$slow,conn_s]=$(val conn_per_s "$out")
        conns=$(awk -v r="${R[$tool,$slow,conn_s]}" 'BEGIN {print int(r * 5)}')
        R[$tool,$slow,sig_per_conn]=$(awk -v s="$(( $(sigs) - s0 ))" -v c="$conns" 'BEGIN {printf "%.4f", c ? s / c : 0}')
        # Bulk: the best of three downloads (one core is shared by everything here).
        best=0
        for i in 1 2 3; do
            out=$("$LOADGEN" bulk "$lport" /big)
            best=$(awk -v a="$best" -v b="$(val mb_per_s "$out")" 'BEGIN {print (b > a ? b : a)}')
        done
        R[$tool,$slow,bulk]=$best
        out=$("$LOADGEN" latency "$lport" 5000)
        R[$tool,$slow,p50]=$(val p50_us "$out")
        R[$tool,$slow,p99]=$(val p99_us "$out")
        if [ $slow = plain ]; then
            before=$(rss_kib $tool_pid)
            coproc IDLE { "$LOADGEN" idle "$lport" 1000; }
            read -r line <&"${IDLE[0]}"
            after=$(rss_kib $tool_pid)
            R[$tool,$slow,idle_kib]=$(awk -v a="$after" -v b="$before" -v n="${line#ready }" 'BEGIN {printf "%.1f", n ? (a - b) / n : 0}')
            exec {IDLE[1]}>&-
            wait $IDLE_PID 2>/dev/null
        fi
        stop
    done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo
echo "keybound tunnel vs stunnel $(stunnel4 -version 2>&1 | sed -n 's/^stunnel \([0-9.]*\).*/\1/p' | head -1) (client mode, pkcs11 engine)"
echo "machine: $(nproc) CPUs ($cpu), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); SoftHSM $(softhsm2-util --version) P-256 key; nginx $(nginx -v 2>&1 | sed 's|.*/||') backend"
printf '%-44s %12s %12s %8s\n' "measure" "keybound" "stunnel" "ratio"
row() { printf '%-44s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
for slow in plain slow; do
    label=$([ $slow = plain ] && echo "plain token" || echo "token: 150 ms per C_Sign, one at a time")
    echo "-- $label"
    row "new connections per second (8 clients)" "${R[keybound,$slow,conn_s]}" "${R[stunnel,$slow,conn_s]}"
    row "bulk download, MB/s (one conn., best of 3)" "${R[keybound,$slow,bulk]}" "${R[stunnel,$slow,bulk]}"
    row "request latency p50, us (kept alive)" "${R[keybound,$slow,p50]}" "${R[stunnel,$slow,p50]}"
    row "request latency p99, us (kept alive)" "${R[keybound,$slow,p99]}" "${R[stunnel,$slow,p99]}"
    row "token signatures per connection (warm)" "${R[keybound,$slow,sig_per_conn]}" "${R[stunnel,$slow,sig_per_conn]}"
    row "cold burst of 100: total ms" "${R[keybound,$slow,burst_ms]}" "${R[stunnel,$slow,burst_ms]}"
    row "cold burst of 100 (+1 probe): signatures" "${R[keybound,$slow,burst_sigs]}" "${R[stunnel,$slow,burst_sigs]}"
    row "cold burst of 100: failed connections" "${R[keybound,$slow,burst_failed]}" "${R[stunnel,$slow,burst_failed]}"
    [ $slow = plain ] && row "memory per idle connection, KiB (1,000 idle)" "${R[keybound,plain,idle_kib]}" "${R[stunnel,plain,idle_kib]}"
done
echo "-- p99 with the slow token / p99 with the plain token: keybound $(ratio "${R[keybound,slow,p99]}" "${R[keybound,plain,p99]}"), stunnel $(ratio "${R[stunnel,slow,p99]}" "${R[stunnel,plain,p99]}")"
