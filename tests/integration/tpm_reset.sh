#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The TPM restarts under a running tunnel (swtpm killed and started again on its state, as
# a laptop's resource manager restarting): keybound stops signing on it at once, keeps
# what needs no signature going, and signs again when the TPM is back, without a restart.
. "$TESTS_SRCDIR/lib/testlib.sh"
. "$TESTS_SRCDIR/lib/tpmlib.sh"
for tool in nginx curl; do
    command -v $tool >/dev/null || t_skip_all "$tool not installed"
done
kb_tpm_setup
# Failed authorisations stay counted for the whole test: a signature on stale handles would
# show here. (A TPM that stops without TPM2_Shutdown counts one itself when it starts again.)
tpm_tools tpm2_dictionarylockout --setup-parameters --max-tries=1000 --recovery-time=10000 \
    --lockout-recovery-time=1
lockout() { tpm_tools tpm2_getcap properties-variable | sed -n 's/^TPM2_PT_LOCKOUT_COUNTER: *//p'; }
kb_tpm_policy
kb keygen $MOD --token pkcs11:token=dev --label laptop --pin-file "$T/pin"
laptop=$(cat "$T/out")
kb_device_cert dev "$laptop" laptop-1 laptop

# Two nginx servers that insist on a client certificate: "full" keeps no session, so each
# connection to it needs a token signature; "resumable" hands out TLS 1.3 tickets.
fport=$(free_port)
rport=$(free_port)
kb_nginx "$(kb_nginx_mtls "$fport" "ssl_session_tickets off;" "ssl_session_cache off;")
$(kb_nginx_mtls "$rport" "ssl_session_tickets on;" "ssl_session_cache off;")"
wait_port "$fport" && wait_port "$rport" || t_fail "nginx started"

lf=$(free_port)
lr=$(free_port)
cat >"$T/keybound.conf" <<CONF
[tunnel full]
listen = 127.0.0.1:$lf
connect = localhost:$fport
key = $laptop

[tunnel resumable]
listen = 127.0.0.1:$lr
connect = localhost:$rport
key = $laptop
CONF
setsid "$KEYBOUND" tunnel -v $MOD --pin-file "$T/pin" $POL --config "$T/keybound.conf" \
    >"$T/tunnel.log" 2>&1 </dev/null &
tun_pid=$!
kb_pids+=($tun_pid)
wait_port "$lf" && wait_port "$lr" || t_fail "tunnel started"
get() { run curl -sS --max-time 20 "http://127.0.0.1:$1/"; }
get "$lf"
t_check "before: a full handshake through the TPM" out_has "^hello CN=laptop-1"
get "$lr"
t_check "before: the resumable server answers" out_has "^hello CN=laptop-1"
get "$lr"
t_check "  and resumes" wait_log "$T/tunnel.log" "tunnel resumable: open .*resumed handshake"

# A kept-alive connection, established before the reset, is used again after it.
cat >"$T/keepalive.py" <<'PY'
import os, socket, sys, time
port, flag = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
def get():
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"hello" not in data or not data.endswith(b"\n"):
        d = s.recv(4096)
        if not d:
            break
        data += d
    return b"hello CN=laptop-1" in data
first = get()
print("first", first, flush=True)
while not os.path.exists(flag):
    time.sleep(0.05)
print("second", get(), flush=True)
PY
/usr/bin/python3 "$T/keepalive.py" "$lf" "$T/go" >"$T/keepalive.out" 2>&1 &
keep_pid=$!
wait_log "$T/keepalive.out" "^first True"
kb_tpm_stop
get "$lf"
t_check "TPM down: a connection that needs the token fails at once" bash -c "! grep -q hello '$T/out'"
t_check "  saying the token stopped answering" wait_log "$T/tunnel.log" "stopped answering"
get "$lr"
t_check "TPM down: a resumable connection goes through" out_has "^hello CN=laptop-1"
get "$lf"
t_check "TPM down: still failing at once, no signature tried" bash -c "! grep -q hello '$T/out'"
kill -HUP $tun_pid
t_check "TPM down: a reload keeps the admission it has" wait_log "$T/tunnel.log" "reload: the token is not back yet .*; keeping the current admission"
get "$lr"
t_check "  and the resumable connection still goes through after it" out_has "^hello CN=laptop-1"
touch "$T/go"
wait $keep_pid
t_check "TPM down: a connection established before goes on" grep -q "^second True" "$T/keepalive.out"
sleep 2
t_check "  and initialising it again is tried while it is down" wait_log "$T/tunnel.log" "cannot be initialised again yet"
t_check "the TPM starts again on its ports" kb_tpm_start
after_restart=$(lockout)
wait_log "$T/tunnel.log" "the token is back"
get "$lf"
t_check "TPM back: full handshakes sign again, without a restart" out_has "^hello CN=laptop-1"
t_check "  the log says so" grep -q "the token is back: signing again" "$T/tunnel.log"
get "$lr"
t_check "  the resumable server still answers" out_has "^hello CN=laptop-1"
kill -HUP $tun_pid
admitted() { [ "$(grep -c "tunnel full: .* as CN=laptop-1 (key 'laptop' on token 'dev')" "$T/tunnel.log")" -ge 2 ]; }
for i in $(seq 50); do admitted && break; sleep 0.1; done
t_check "TPM back: a reload logs in and admits the device again" admitted
get "$lf"
t_check "  and signs" out_has "^hello CN=laptop-1"
# Again, with a reload as the first thing that meets the stopped TPM.
# (tpm2-pkcs11 reads the key facts from its store, and the token is still logged in: the
# policy can be asked without the TPM.)
kb_tpm_stop
kill -HUP $tun_pid
admitted3() { [ "$(grep -c "tunnel full: .* as CN=laptop-1 (key 'laptop' on token 'dev')" "$T/tunnel.log")" -ge 3 ]; }
for i in $(seq 50); do admitted3 && break; sleep 0.1; done
t_check "TPM down, then a reload before any signature: the device stays admitted" admitted3
get "$lf"
t_check "  a full handshake then fails at once" bash -c "! grep -q hello '$T/out'"
t_check "  the TPM starts again on its ports" kb_tpm_start
after_restart=$(lockout)
# The tunnel tries the token again once a second; under load (ASan, a busy CI machine) its
# re-initialisation takes longer than any fixed pause, so wait for it to say it is back.
back_twice() { [ "$(grep -c "the token is back: signing again" "$T/tunnel.log")" -ge 2 ]; }
for i in $(seq 200); do back_twice && break; sleep 0.1; done
get "$lf"
t_check "  and once the TPM is back, the full handshake signs" out_has "^hello CN=laptop-1"
# An empty reading is a TPM that did not answer, never a match.
same_lockout() { [ -n "$after_restart" ] && [ "$(lockout)" = "$after_restart" ]; }
t_check "no failed authorisation counted by the TPM but its own for the restart ($after_restart)" \
    same_lockout
t_done
