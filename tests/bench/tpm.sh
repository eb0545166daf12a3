#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# make bench-tpm: keybound on a TPM 2.0 token (swtpm through tpm2-pkcs11, no resource
# manager, so one process at a time uses the TPM, as tests/lib/tpmlib.sh sets it up), beside
# what a user would pick instead for the same job on the same token and key:
#   (a) signatures/s per key type: keybound's signer and a bare PKCS#11 loop in one process
#       (what the token gives any program), and the one-shot command-line tools (one
#       process per signature: keybound csr, p11tool --test-sign, pkcs11-tool --sign,
#       openssl pkeyutl with the pkcs11 engine);
#   (b) full handshakes/s through the tunnel to nginx with resumption off on the server,
#       against stunnel4 with the OpenSSL pkcs11 engine (libengine-pkcs11-openssl);
#   (c) the cold burst: 100 clients at once at a tunnel just started;
#   (d) warm: token signatures per connection over 500 connections, resumption on.
# Every PKCS#11 call goes through the p11shim (its log counts the signatures) for both tools
# in (b)-(d). Not a test: it prints one table, with the machine and the versions.
set -u
: "${KEYBOUND:?run it with make bench-tpm}" "${LOADGEN:?}" "${SIGNBENCH:?}" "${P11SHIM:?}"
export TESTS_SRCDIR=${TESTS_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$TESTS_SRCDIR/lib/testlib.sh"
. "$TESTS_SRCDIR/lib/tpmlib.sh"
t_skip_all() {
    echo "bench-tpm: $*"
    exit 2
}
for tool in stunnel4 nginx p11tool openssl; do
    command -v $tool >/dev/null || t_skip_all "$tool is needed"
done
ENGINE=$(find /usr/lib -name pkcs11.so -path '*engines*' 2>/dev/null | head -1)
[ -n "$ENGINE" ] || t_skip_all "the OpenSSL pkcs11 engine is needed (libengine-pkcs11-openssl)"
began=$(date +%s.%N)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
kb_tpm_setup
ulimit -n 16384
kb_pki
P=$T/pki
SIGN_N=${SIGN_N:-150}    # signatures per in-process run, after the first
TRIALS=${TRIALS:-5}      # in-process runs per way and key type, alternating; the median
SHOTS=${SHOTS:-10}       # invocations per one-shot tool and key type
CONN_S=${CONN_S:-3}      # seconds of full handshakes per round, tool and key type
ROUNDS=${ROUNDS:-3}      # rounds of (b), and of (c) with (d)
TYPES="ec-p256 ec-p384 rsa-2048 rsa-3072"

# left_check STEP: the TPM holds 3 transient objects and 3 loaded sessions, and without a
# resource manager nothing frees those a process left behind (killed, or exiting without
# C_Finalize), so each step starts on an empty TPM; what a step left is reported under the
# table.
notes=()
left_check() {
    local o l s
    o=$(tpm_transient)
    l=$(TPM2TOOLS_TCTI=$TPM_RAW_TCTI tpm2_getcap handles-loaded-session | grep -c '0x')
    s=$(TPM2TOOLS_TCTI=$TPM_RAW_TCTI tpm2_getcap handles-saved-session | grep -c '0x')
    [ "$o$l$s" = 000 ] && return 0
    notes+=("$1 left in the TPM: $o transient objects, $l loaded and $s saved sessions (flushed)")
    TPM2TOOLS_TCTI=$TPM_RAW_TCTI tpm2_flushcontext -t
    TPM2TOOLS_TCTI=$TPM_RAW_TCTI tpm2_flushcontext -l
    TPM2TOOLS_TCTI=$TPM_RAW_TCTI tpm2_flushcontext -s
}

# KEY: the short URI every tool takes; FULL: keygen's, with the id kb_device_cert wants.
declare -A KEY ID FULL
for type in $TYPES; do
    kb keygen $MOD --token pkcs11:token=dev --label "k-$type" --type "$type" --pin-file "$T/pin"
    [ "$rc" -eq 0 ] || t_skip_all "keygen $type: $(cat "$T/err")"
    KEY[$type]="pkcs11:token=dev;object=k-$type;type=private"
    FULL[$type]=$(cat "$T/out")
    ID[$type]=$(sed 's/.*;id=\([^;]*\).*/\1/' "$T/out" | tr -d %)
    left_check "keygen $type"
done
kb_device_cert dev "${FULL[ec-p256]}" device-ec k-ec-p256
kb_device_cert dev "${FULL[rsa-2048]}" device-rsa k-rsa-2048
left_check "p11tool (certificates)"

median() { sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : 0 }'; }
spread() { sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%s-%s", v[1], v[NR] }'; }
val() { sed -n "s/.*$1 \([0-9.]*\).*/\1/p" <<<"$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }
declare -A R

# --- (a) signatures per second -----------------------------------------------------------
printf 'keybound signing benchmark' >"$T/msg"
openssl dgst -sha256 -binary "$T/msg" >"$T/h-sha256"
openssl dgst -sha384 -binary "$T/msg" >"$T/h-sha384"
# PKCS#1 v1.5 signs DigestInfo(SHA-256) || hash; CKM_RSA_PKCS is given it whole.
printf '\x30\x31\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x01\x05\x00\x04\x20' |
    cat - "$T/h-sha256" >"$T/di-sha256"
for type in $TYPES; do
    for i in $(seq "$TRIALS"); do
        out=$("$SIGNBENCH" kb "$TPM_MODULE" "$T/pin" "${KEY[$type]}" "$SIGN_N" 2>&1)
        echo "$(val sig_per_s "$out")" >>"$T/a-kb-$type"
        [ -n "$(val sig_per_s "$out")" ] || notes+=("signbench kb $type: $out")
        left_check "signbench kb $type"
        out=$("$SIGNBENCH" raw "$TPM_MODULE" "$T/pin" dev "k-$type" "$SIGN_N" 2>&1)
        echo "$(val sig_per_s "$out")" >>"$T/a-raw-$type"
        [ -n "$(val sig_per_s "$out")" ] || notes+=("signbench raw $type: $out")
        left_check "signbench raw $type"
    done
    R[a,kb,$type]=$(median <"$T/a-kb-$type")
    R[a,raw,$type]=$(median <"$T/a-raw-$type")
    R[a,kb,$type,spread]=$(spread <"$T/a-kb-$type")
    R[a,raw,$type,spread]=$(spread <"$T/a-raw-$type")
done
out=$("$SIGNBENCH" kb "$TPM_MODULE" "$T/pin" "${KEY[rsa-2048]}" "$SIGN_N" pss 2>&1)
R[a,kb,pss]=$(val sig_per_s "$out")
out=$("$SIGNBENCH" raw "$TPM_MODULE" "$T/pin" dev k-rsa-2048 "$SIGN_N" pss 2>&1)
R[a,raw,pss]=$(val sig_per_s "$out")
left_check "signbench rsa-pss"

# shots NAME TYPE CMD...: runs CMD $SHOTS times; R[a,NAME,TYPE] is runs per second, or the
# first failure's last line.
shots() {
    local name=$1 type=$2 t0 t1 i
    shift 2
    t0=$(date +%s%N)
    for i in $(seq "$SHOTS"); do
        if ! "$@" >"$T/shot.out" 2>&1; then
            R[a,$name,$type]=failed
            # The TPM stack's first complaint (tpm2-tss's "ERROR:esys..." or tpm2-pkcs11's
            # "ERROR: ..."), then the tool's last word; one note per tool and message.
            local why
            why="$(grep -m1 '^ERROR' "$T/shot.out" | sed -E 's/ +$//') / $(tail -1 "$T/shot.out")"
            R[fail,$name,$why]+=" $type"
            left_check "$name $type"
            return
        fi
    done
    t1=$(date +%s%N)
    R[a,$name,$type]=$(awk -v n="$SHOTS" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", n / (ns / 1e9) }')
    left_check "$name $type"
}
cat >"$T/openssl.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
engines = engine_section
[engine_section]
pkcs11 = pkcs11_section
[pkcs11_section]
engine_id = pkcs11
dynamic_path = $ENGINE
MODULE_PATH = $TPM_MODULE
PIN = 1234
init = 0
CNF
have_pkcs11_tool=$(command -v pkcs11-tool)
for type in $TYPES; do
    case $type in
    ec-p384) hash=$T/h-sha384 mech=ECDSA ;;
    ec-*) hash=$T/h-sha256 mech=ECDSA ;;
    rsa-*) hash=$T/h-sha256 mech=RSA-PKCS ;;
    esac
    shots kbcsr "$type" setsid -w "$KEYBOUND" csr $MOD --pin-file "$T/pin" --key "${KEY[$type]}" \
        --subject CN=bench -o "$T/req.pem"
    shots p11tool "$type" env GNUTLS_PIN=1234 p11tool --provider "$TPM_MODULE" --login \
        --test-sign "${KEY[$type]}"
    # pkcs11-tool picks the signing key by --id (it ignores --label there).
    if [ -n "$have_pkcs11_tool" ]; then
        input=$hash
        [ $mech = RSA-PKCS ] && input=$T/di-sha256
        shots pkcs11tool "$type" pkcs11-tool --module "$TPM_MODULE" --token-label dev --login \
            --pin 1234 --sign -m $mech --id "${ID[$type]}" -i "$input" -o "$T/sig"
    else
        R[a,pkcs11tool,$type]="-"
    fi
    digest=()
    [ $mech = RSA-PKCS ] && digest=(-pkeyopt digest:sha256)
    shots openssl "$type" env OPENSSL_CONF="$T/openssl.cnf" openssl pkeyutl -engine pkcs11 \
        -keyform engine -inkey "${KEY[$type]}" -sign "${digest[@]}" -in "$hash" -out "$T/sig"
done

# --- nginx: one server without resumption, one with tickets ------------------------------
nfull=$(free_port)
nres=$(free_port)
mkdir -p "$T/nginx"
server() {
    cat <<CONF
  server { listen 127.0.0.1:$1 ssl; ssl_certificate $P/server.pem;
    ssl_certificate_key $P/server.key; ssl_client_certificate $P/ca.pem; ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3; $2
    location / { return 200 "hello \$ssl_client_s_dn\n"; } }
CONF
}
cat >"$T/nginx.conf" <<CONF
daemon off; user root; pid $T/nginx/pid; error_log $T/nginx/error.log; worker_processes 1;
events { worker_connections 8192; }
http { access_log off;
  client_body_temp_path $T/nginx/b; proxy_temp_path $T/nginx/p; fastcgi_temp_path $T/nginx/f;
  uwsgi_temp_path $T/nginx/u; scgi_temp_path $T/nginx/s;
$(server "$nfull" "ssl_session_tickets off; ssl_session_cache off;")
$(server "$nres" "ssl_session_tickets on; ssl_session_cache shared:S:10m;")
}
CONF
kb_bg "$T/nginx.log" nginx -c "$T/nginx.conf" -p "$T/nginx" -e "$T/nginx/error.log"
wait_port "$nfull" && wait_port "$nres" || t_skip_all "nginx did not start"

sigs() { grep -c '^C_SignInit ' "$T/shim.log" 2>/dev/null || true; }
# start TOOL TYPE BACKEND: the tool under test on $lport with the key of TYPE, through the
# shim; its pid in $tool_pid. Returns 1 (log in $T/TOOL.log) if it does not listen.
start() {
    local tool=$1 type=$2 backend=$3 i
    lport=$(free_port)
    : >"$T/shim.log"
    local shimenv=(P11SHIM_MODULE="$TPM_MODULE" P11SHIM_LOG="$T/shim.log")
    if [ "$tool" = keybound ]; then
        env "${shimenv[@]}" "$KEYBOUND" tunnel --module "$P11SHIM" --pin-file "$T/pin" \
            --listen "127.0.0.1:$lport" --connect "localhost:$backend" --ca "$P/ca.pem" \
            --key "${KEY[$type]}" --max-connections 5000 >"$T/$tool.log" 2>&1 &
    else
        local cert=$T/k-$type.pem
        # syslog = no: stunnel logs to syslog besides stderr, and where nothing listens on
        # /dev/log glibc writes each line to the console instead, which doubled its CPU per
        # connection here (a serial console's writes). keybound logs to stderr only.
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
connect = 127.0.0.1:$backend
engineId = pkcs11
key = ${KEY[$type]}
cert = $cert
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
        # Alive too: another program could have taken the port free_port chose.
        (exec 3<>/dev/tcp/127.0.0.1/$lport) 2>/dev/null && kill -0 $tool_pid 2>/dev/null && return 0
        kill -0 $tool_pid 2>/dev/null || break
        sleep 0.05
    done
    return 1
}
stop() {
    kill "$tool_pid" 2>/dev/null
    wait "$tool_pid" 2>/dev/null
}
# failed_start TOOL WHAT: notes why the tool did not come up (its log's last lines).
failed_start() {
    notes+=("$1 did not start for $2: $(grep -v '^ERROR:\|^WARNING:' "$T/$1.log" | tail -2 | tr '\n' ' ')")
    stop
    left_check "$1 ($2)"
}

# cpu_ms PID: the CPU time the process has used (user and system), in ms.
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$1/stat"; }
# log_gist TOOL: the tool's log lines that are not per-connection, most frequent first, for
# a note when connections failed.
log_gist() {
    grep -v -E 'open 127|close 127|accepted connection|s_connect|connection closed|Deallocat' "$T/$1.log" |
        sed -E 's/[0-9]+(\.[0-9]+)*/N/g' | sort | uniq -c | sort -rn | head -3 |
        sed -E 's/^ *([0-9]+) /\1x /' | tr '\n' ';'
}
# runs KEY: the values recorded under KEY (space-separated), one a line.
runs() { tr ' ' '\n' <<<"${R[$1]:-}" | grep .; }

# --- (b) full handshakes per second --------------------------------------------------------
# Rounds alternate the tools, so that a slow moment of the machine does not fall on one.
for type in ec-p256 rsa-2048; do
    for round in $(seq "$ROUNDS"); do
        for tool in keybound stunnel; do
            if ! start $tool $type "$nfull"; then
                failed_start $tool "full handshakes, $type"
                continue
            fi
            s0=$(sigs)
            c0=$(cpu_ms $tool_pid)
            out=$("$LOADGEN" conn "$lport" "$CONN_S" 8)
            R[b,$tool,$type,cpu]=$((${R[b,$tool,$type,cpu]:-0} + $(cpu_ms $tool_pid) - c0))
            R[b,$tool,$type]+=" $(val conn_per_s "$out")"
            R[b,$tool,$type,conns]=$((${R[b,$tool,$type,conns]:-0} + $(val ok "$out") + $(val failed "$out")))
            R[b,$tool,$type,sigs]=$((${R[b,$tool,$type,sigs]:-0} + $(sigs) - s0))
            R[b,$tool,$type,failed]=$((${R[b,$tool,$type,failed]:-0} + $(val failed "$out")))
            [ "$(val failed "$out")" = 0 ] ||
                notes+=("$tool, full handshakes, $type: $(val failed "$out") failed; its log: $(log_gist $tool)")
            stop
            left_check "$tool (full handshakes, $type)"
        done
    done
done

# --- (c) the cold burst and (d) warm connections, resumption on ----------------------------
for round in $(seq "$ROUNDS"); do
    for tool in keybound stunnel; do
        if ! start $tool ec-p256 "$nres"; then
            failed_start $tool "the burst"
            continue
        fi
        out=$("$LOADGEN" burst "$lport" 100)
        R[c,$tool,ms]+=" $(val burst_ms "$out")"
        R[c,$tool,failed]+=" $(val failed "$out")"
        R[c,$tool,sigs]+=" $(sigs)" # since the start: the readiness probe's included
        s0=$(sigs)
        out=$("$LOADGEN" count "$lport" 500 8)
        R[d,$tool,sigs]=$((${R[d,$tool,sigs]:-0} + $(sigs) - s0))
        R[d,$tool,conns]=$((${R[d,$tool,conns]:-0} + 500))
        R[d,$tool,conn_s]+=" $(val conn_per_s "$out")"
        R[d,$tool,failed]=$((${R[d,$tool,failed]:-0} + $(val failed "$out")))
        if [ $tool = keybound ]; then
            kill -USR1 "$tool_pid"
            wait_log "$T/keybound.log" "token signatures" &&
                R[d,counters]=$(grep 'token signatures' "$T/keybound.log" | tail -1 | sed 's/^.*keybound: //')
        fi
        stop
        left_check "$tool (burst and warm)"
    done
done

# --- the table ----------------------------------------------------------------------------
ended=$(date +%s.%N)
ver() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"; }
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
echo
echo "keybound on a TPM 2.0 token: swtpm, tpm2-pkcs11, no resource manager"
echo "machine: $(nproc) CPUs ($cpu), kernel $(uname -r), load average $load_before at start," \
    "$(cut -d' ' -f1-3 /proc/loadavg) at end"
echo "versions: swtpm $(ver swtpm), tpm2-pkcs11 $(ver libtpm2-pkcs11-1), tpm2-tss $(ver libtss2-esys-3.0.2-0)," \
    "GnuTLS $(ver libgnutls30), p11-kit $(ver libp11-kit0), OpenSSL $(ver libssl3), libp11 $(ver libengine-pkcs11-openssl)," \
    "stunnel $(ver stunnel4), opensc $(ver opensc), nginx $(ver nginx-light)"
echo
echo "(a) signatures/s in one process ($SIGN_N after the first; median of $TRIALS, alternating; min-max)"
printf '%-12s %10s %-13s %12s %-13s %6s\n' "key" "keybound" "" "bare PKCS#11" "" "ratio"
for type in $TYPES; do
    printf '%-12s %10s %-13s %12s %-13s %6s\n' "$type" "${R[a,kb,$type]}" "(${R[a,kb,$type,spread]})" \
        "${R[a,raw,$type]}" "(${R[a,raw,$type,spread]})" "$(ratio "${R[a,kb,$type]}" "${R[a,raw,$type]}")"
done
printf '%-12s %10s %-13s %12s %-13s %6s\n' "rsa-2048 PSS" "${R[a,kb,pss]}" "(one run)" "${R[a,raw,pss]}" \
    "(one run)" "$(ratio "${R[a,kb,pss]}" "${R[a,raw,pss]}")"
echo "    keybound: the library's kb_signer, as a handshake signs; bare: C_SignInit + C_Sign on"
echo "    one session. ECDSA SHA-256/384, RSA PKCS#1 v1.5 SHA-256 (PSS: what TLS 1.3 uses)."
echo
echo "(a') one process per signature ($SHOTS runs): signatures/s, and keybound in one process / it"
printf '%-10s %12s %12s %12s %12s %12s\n' "key" "keybound csr" "p11tool" "pkcs11-tool" "openssl" "kb in-proc"
for type in $TYPES; do
    printf '%-10s %12s %12s %12s %12s %12s\n' "$type" "${R[a,kbcsr,$type]}" "${R[a,p11tool,$type]}" \
        "${R[a,pkcs11tool,$type]}" "${R[a,openssl,$type]}" "${R[a,kb,$type]}"
    printf '%-10s %12s %12s %12s %12s\n' "  ratio" "$(ratio "${R[a,kb,$type]}" "${R[a,kbcsr,$type]}")" \
        "$(ratio "${R[a,kb,$type]}" "${R[a,p11tool,$type]}")" \
        "$(ratio "${R[a,kb,$type]}" "${R[a,pkcs11tool,$type]}")" \
        "$(ratio "${R[a,kb,$type]}" "${R[a,openssl,$type]}")"
done
echo "    p11tool --test-sign (signs, verifies twice), pkcs11-tool --sign, openssl pkeyutl -engine pkcs11:"
echo "    each loads the module, logs in and signs once, as from a shell script."
echo
# med KEY, spr KEY: the median and the range of what the rounds recorded.
med() { runs "$1" | median; }
spr() { runs "$1" | spread; }
per() { awk -v s="${R[$1,sigs]:-0}" -v c="${R[$1,conns]:-0}" -v f="$2" 'BEGIN { if (c) printf f, s / c; else print "-" }'; }
echo "(b) full handshakes/s through the tunnel, nginx with resumption off (8 clients;"
echo "    median of $ROUNDS rounds of $CONN_S s, alternating; min-max)"
printf '%-10s %8s %-11s %8s %-11s %6s\n' "key" "keybound" "" "stunnel" "" "ratio"
for type in ec-p256 rsa-2048; do
    kbm=$(med "b,keybound,$type")
    stm=$(med "b,stunnel,$type")
    printf '%-10s %8s %-11s %8s %-11s %6s\n' "$type" "$kbm" "($(spr "b,keybound,$type"))" \
        "$stm" "($(spr "b,stunnel,$type"))" "$(ratio "$kbm" "$stm")"
done
echo "    per connection, keybound / stunnel: token signatures, CPU ms of the tool's process; failed"
for type in ec-p256 rsa-2048; do
    cpk=$(awk -v c="${R[b,keybound,$type,cpu]:-0}" -v n="${R[b,keybound,$type,conns]:-0}" 'BEGIN { if (n) printf "%.2f", c / n; else print "-" }')
    cps=$(awk -v c="${R[b,stunnel,$type,cpu]:-0}" -v n="${R[b,stunnel,$type,conns]:-0}" 'BEGIN { if (n) printf "%.2f", c / n; else print "-" }')
    printf '    %-10s %s / %s signatures, %s / %s ms CPU (ratio %s); %s / %s failed\n' "$type" \
        "$(per "b,keybound,$type" %.2f)" "$(per "b,stunnel,$type" %.2f)" "$cpk" "$cps" \
        "$(ratio "$cpk" "$cps")" "${R[b,keybound,$type,failed]:--}" "${R[b,stunnel,$type,failed]:--}"
done
echo
echo "(c) cold burst: 100 clients at once at a tunnel just started (ec-p256, nginx with tickets;"
echo "    $ROUNDS rounds, each on a fresh start)"
printf '%-36s %-18s %-18s\n' "" "keybound" "stunnel"
printf '%-36s %-18s %-18s\n' "total ms: median (each round)" "$(med c,keybound,ms) ($(runs c,keybound,ms | paste -sd' '))" \
    "$(med c,stunnel,ms) ($(runs c,stunnel,ms | paste -sd' '))"
printf '%-36s %-18s %-18s\n' "failed connections (each round)" "$(runs c,keybound,failed | paste -sd' ')" \
    "$(runs c,stunnel,failed | paste -sd' ')"
printf '%-36s %-18s %-18s\n' "token signatures, +1 probe (each)" "$(runs c,keybound,sigs | paste -sd' ')" \
    "$(runs c,stunnel,sigs | paste -sd' ')"
echo
echo "(d) warm: 500 connections after each burst, 8 clients, resumption on"
printf '%-36s %-18s %-18s\n' "token signatures per connection" "$(per d,keybound %.4f)" "$(per d,stunnel %.4f)"
printf '%-36s %-18s %-18s\n' "connections/s (median)" "$(med d,keybound,conn_s)" "$(med d,stunnel,conn_s)"
printf '%-36s %-18s %-18s\n' "failed connections" "${R[d,keybound,failed]:--}" "${R[d,stunnel,failed]:--}"
[ -n "${R[d,counters]:-}" ] && echo "    keybound's counters, last round: ${R[d,counters]}"
for key in "${!R[@]}"; do
    [[ $key == fail,* ]] || continue
    rest=${key#fail,}
    notes+=("${rest%%,*} failed for${R[$key]}: ${rest#*,}")
done
if [ ${#notes[@]} -gt 0 ]; then
    echo
    echo "notes:"
    # The same note from several rounds once, with how many times.
    printf '%s\n' "${notes[@]}" | awk '!n[$0]++ { order[++k] = $0 } END {
        for (i = 1; i <= k; i++) printf "  - %s%s\n", order[i], (n[order[i]] > 1 ? " (" n[order[i]] " times)" : "") }'
fi
# BENCH_KEEP=DIR keeps the logs and configurations for a look afterwards.
[ -n "${BENCH_KEEP:-}" ] && cp -r "$T" "$BENCH_KEEP"
echo
echo "took $(awk -v a="$began" -v b="$ended" 'BEGIN { printf "%.0f", b - a }') s"
