#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Several keybound processes on one TPM at once, through tpm2-abrmd as a laptop's keybound
# goes through the kernel's /dev/tpmrm0: two tunnels, each with its own TPM key, serve
# bursts of clients while a third key is renewed (and rekeyed) over EST. Each process gets
# its own object slots from the resource manager, so none may clobber another's handles.
. "$TESTS_SRCDIR/lib/testlib.sh"
. "$TESTS_SRCDIR/lib/tpmlib.sh"
command -v nginx >/dev/null || t_skip_all "nginx not installed"
PY=/usr/bin/python3
$PY -c 'import cryptography.hazmat.primitives.serialization.pkcs7' 2>/dev/null ||
    t_skip_all "Debian's python3-cryptography is not installed"
kb_tpm_setup abrmd
kb_pki_policy
# The TPM example policy admits hardware vendors only; the test TPM is IBM's "SW   TPM".
sed -e 's/^allow = manufacturer=.*/allow = manufacturer=IBM model="SW   TPM"/' \
    -e 's/^algorithms = .*/algorithms = ec-p256 ec-p384 rsa-2048+/' \
    "$T/policy.conf" >"$T/tpm-policy.conf"
POL="--policy $T/tpm-policy.conf"

# Two device keys of two kinds (RSA signs RSA-PSS in TLS 1.3), each with its certificate.
kb keygen $MOD --token pkcs11:token=dev --label dev-a --type ec-p256 --pin-file "$T/pin"
key_a=$(cat "$T/out")
kb keygen $MOD --token pkcs11:token=dev --label dev-b --type rsa-2048 --pin-file "$T/pin"
key_b=$(cat "$T/out")
kb_device_cert dev "$key_a" device-a dev-a
kb_device_cert dev "$key_b" device-b dev-b
t_check "two keys on the TPM token through abrmd, with their certificates" \
    bash -c "[ -s '$T/dev-a.pem' ] && [ -s '$T/dev-b.pem' ] && [ -n '$key_a' ] && [ -n '$key_b' ]"

# One nginx, two mTLS servers that require a certificate from the test CA and echo its name.
na=$(free_port)
nb=$(free_port)
mkdir -p "$T/nginx"
head -c 80 /dev/urandom >"$T/nginx/ticket.key"
tickets=("ssl_session_tickets on;" "ssl_session_ticket_key $T/nginx/ticket.key;")
kb_nginx "$(kb_nginx_mtls "$na" "${tickets[@]}")
$(kb_nginx_mtls "$nb" "${tickets[@]}")"
wait_port "$na" && wait_port "$nb" || t_fail "nginx started"
nginx_pid=${kb_pids[-1]}

# new_tickets: nginx reloaded with a new ticket key, so that the tunnels' tickets are stale
# and their next handshakes are full ones, signed in the TPM. Returns when the old worker,
# which knew the old key, has gone.
workers() { cat /proc/"$nginx_pid"/task/*/children 2>/dev/null; }
new_tickets() {
    local old i
    old=$(workers)
    [ -n "$old" ] || return 1
    head -c 80 /dev/urandom >"$T/nginx/ticket.key"
    kill -HUP "$nginx_pid"
    for i in $(seq 100); do
        kill -0 $old 2>/dev/null || [ -z "$(workers)" ] || return 0
        sleep 0.1
    done
    return 1
}

# The third key, enrolled over EST before the tunnels start; renewed while they run.
kb_est_start
kb enroll $MOD --pin-file "$T/pin" --token pkcs11:token=dev $POL $EST --label enrolled \
    --subject CN=laptop-7 --secret-file "$T/secret"
t_check "enroll: a third key on the TPM, ISSUED and admitted" \
    bash -c "[ $rc -eq 0 ] && grep -q '^decision: ADMITTED' '$T/out'"
enrolled=$(sed -n 's/^key: //p' "$T/out")

# tun NAME PORT BACKEND KEY: a tunnel process in the background; its pid in pid_NAME.
tun() {
    setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" $POL --listen "127.0.0.1:$2" \
        --connect "localhost:$3" --key "$4" >"$T/tun-$1.log" 2>&1 </dev/null &
    kb_pids+=($!)
    eval "pid_$1=$!"
}
ha=$(free_port)
hb=$(free_port)
tun a "$ha" "$na" "$key_a"
tun b "$hb" "$nb" "$key_b"
wait_port "$ha" && wait_port "$hb" || t_fail "both tunnels started" "$(cat "$T"/tun-*.log)"

# together ROUND KEYBOUND-ARGS...: bursts of 20 at once through each tunnel for as long as
# the keybound command runs, which starts with them; the bursts' reports in $T/burst.ROUND.a
# and .b, the command's as run() leaves them, and what each tunnel logged since the last
# round in $T/burst.ROUND.a.log and .b.log (for the first, since it started: wait_port's
# probe may have had its handshake after all, the cold one).
mark_a=0
mark_b=0
together() {
    local round=$1 ba bb
    shift
    rm -f "$T/stop"
    $PY "$TESTS_SRCDIR/lib/burst.py" "$ha" 20 device-a "$T/stop" >"$T/burst.$round.a" 2>&1 &
    ba=$!
    $PY "$TESTS_SRCDIR/lib/burst.py" "$hb" 20 device-b "$T/stop" >"$T/burst.$round.b" 2>&1 &
    bb=$!
    kb "$@"
    touch "$T/stop"
    wait $ba $bb
    tail -c +"$((mark_a + 1))" "$T/tun-a.log" >"$T/burst.$round.a.log"
    tail -c +"$((mark_b + 1))" "$T/tun-b.log" >"$T/burst.$round.b.log"
    mark_a=$((mark_a + $(stat -c %s "$T/burst.$round.a.log")))
    mark_b=$((mark_b + $(stat -c %s "$T/burst.$round.b.log")))
}
# answered FILE NAME: every connection answered with NAME; if not, what the bursts saw.
answered() {
    grep -q -E "^([0-9]+) of \1 answered as $2 in" "$T/$1" && return 0
    sed 's/^/# /' "$T/$1"
    return 1
}
# clients X: how many connections the bursts made through tunnel X so far.
clients() { cat "$T"/burst.*."$1" | awk '$2 == "of" { n += $3 } END { print n + 0 }'; }
burst_check() {
    local x
    for x in a b; do
        t_check "  tunnel $x: bursts of 20 at once meanwhile, all answered with device-$x's name" \
            answered "burst.$1.$x" "device-$x"
    done
}
# signed ROUND X: tunnel X made full handshakes in that round, its key signing in the TPM.
signed() {
    grep -q ': TLS1.3, full handshake' "$T/burst.$1.$2.log" && return 0
    head -20 "$T/burst.$1.$2.log" | sed 's/^/# /'
    return 1
}
# full_check ROUND WHY: each tunnel signed in the TPM in that round.
full_check() {
    local x
    for x in a b; do
        t_check "  tunnel $x: full handshakes ($2), signed in the TPM" signed "$1" $x
    done
}

# --- cold bursts through both tunnels while the third key is renewed ---------------------
together renew renew $MOD --pin-file "$T/pin" $POL $EST --key "$enrolled" --if-expires-within 60d
t_check "renew while both tunnels take a cold burst: ISSUED and admitted" \
    bash -c "[ $rc -eq 0 ] && grep -q '^decision: ADMITTED' '$T/out'"
burst_check renew
full_check renew "a cold tunnel"

# --- full handshakes in both tunnels while the third key is rekeyed -----------------------
t_check "nginx takes a new ticket key" new_tickets
together rekey renew $MOD --pin-file "$T/pin" $POL $EST --key "pkcs11:token=dev;object=enrolled" \
    --rekey
t_check "renew --rekey while both tunnels sign: ISSUED and admitted" \
    bash -c "[ $rc -eq 0 ] && grep -q '^decision: ADMITTED' '$T/out'"
burst_check rekey
full_check rekey "the tickets were stale"

# --- after both: the tunnels still sign, and the rekeyed key is admitted ----------------
t_check "nginx takes a new ticket key" new_tickets
together after check $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=enrolled" --json
t_check "check admits the rekeyed key while both tunnels sign" \
    $PY -c "import json; exit(0 if json.load(open('$T/out'))['decision'] == 'admit' else 1)"
burst_check after
full_check after "the tickets were stale"

# --- the counters: every client served, and resumption ----------------------------------
for x in a b; do
    pid=pid_$x
    kill -USR1 "${!pid}"
    # The bursts' clients and wait_port's probe, which leaves before its handshake.
    n=$(($(clients $x) + 1))
    t_check "tunnel $x: SIGUSR1 counters, $n accepted, none failed, resumed handshakes" \
        wait_log "$T/tun-$x.log" "tunnel cli: [0-9]* open, $n accepted, 0 failed; handshakes [1-9][0-9]* full, [1-9][0-9]* resumed; [1-9][0-9]* token signatures"
done
t_check "no TPM or session error in the tunnels' logs" \
    bash -c "! grep -E -i 'error|fail' '$T/tun-a.log' '$T/tun-b.log' | grep -v ' 0 failed;'"
t_done
