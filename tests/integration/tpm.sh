#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The whole story on a TPM 2.0 token (swtpm + tpm2-pkcs11), without a resource manager:
# one keybound process at a time, within the TPM's 3 transient object slots.
. "$TESTS_SRCDIR/lib/testlib.sh"
. "$TESTS_SRCDIR/lib/tpmlib.sh"
for tool in nginx curl; do
    command -v $tool >/dev/null || t_skip_all "$tool not installed"
done
PY=/usr/bin/python3
$PY -c 'import cryptography.hazmat.primitives.serialization.pkcs7' 2>/dev/null ||
    t_skip_all "Debian's python3-cryptography is not installed"
kb_tpm_setup
kb_tpm_policy
tpm_none_left() { local n; n=$(tpm_transient); [ "$n" -eq 0 ] || { echo "# $n transient objects left:"; TPM2TOOLS_TCTI=$TPM_RAW_TCTI tpm2_getcap handles-transient | sed "s/^/# /"; TPM2TOOLS_TCTI=$TPM_RAW_TCTI tpm2_flushcontext -t; return 1; }; }
json_is() { python3 -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if ($1) else 1)"; }

# --- tokens, keygen of each type, keys -------------------------------------------------
kb tokens $MOD
t_check "tokens: the TPM token, its model without padding" bash -c "[ $rc -eq 0 ] && grep -qx \"  model:        SW   TPM\" '$T/out'"
for type in ec-p256 ec-p384 rsa-2048 rsa-3072; do
    kb keygen $MOD --token pkcs11:token=dev --label "k-$type" --type $type --pin-file "$T/pin"
    t_check "keygen $type on the TPM" bash -c "[ $rc -eq 0 ] && grep -q 'object=k-$type;type=private' '$T/out'"
    t_check "  leaves no object loaded in the TPM" [ "$(tpm_transient)" -eq 0 ]
done
kb keygen $MOD --token pkcs11:token=dev --label big --type rsa-4096 --pin-file "$T/pin"
t_check "keygen rsa-4096: refused with the sizes the token makes" bash -c "[ $rc -eq 2 ] && grep -q '1024 to 3072 bits' '$T/err'"
kb keys $MOD --pin-file "$T/pin" --json pkcs11:token=dev
t_check "keys: four keys, generated on the token, never extractable" json_is "len(d['keys'])==4 and all(k['never_extractable'] and k['local'] and k['sensitive'] for k in d['keys'])"

# --- csr, import-cert, check, connect ----------------------------------------------------
laptop="pkcs11:token=dev;object=k-ec-p256"
kb csr $MOD --pin-file "$T/pin" --key "$laptop" --subject CN=laptop-1 -o "$T/req.pem"
t_check "csr: a request signed in the TPM, that verifies" bash -c "[ $rc -eq 0 ] && certtool --crq-info --infile '$T/req.pem' 2>&1 | grep -q 'Self signature: verified'"

kb_device_cert dev "$laptop" laptop-1 laptop
kb_device_cert dev "pkcs11:token=dev;object=k-rsa-2048" laptop-rsa rsa
kb import-cert $MOD --pin-file "$T/pin" --key "pkcs11:token=dev;object=k-ec-p384" "$T/laptop.pem"
t_check "import-cert: a certificate for another key is refused (exit 2)" bash -c "[ $rc -eq 2 ]"
kb_issue_client "$T/laptop.pub" laptop-2 "$T/laptop2.pem"
kb import-cert $MOD --pin-file "$T/pin" --key "$laptop" "$T/laptop2.pem"
t_check "import-cert: the key's own certificate is stored" rc_is 0
kb check $MOD --pin-file "$T/pin" $POL --key "$laptop" --json
t_check "check with a TPM policy: admitted" json_is "d['decision']=='admit'"
t_check "  in $(tpm_transient) objects left in the TPM" [ "$(tpm_transient)" -eq 0 ]

gport=$(free_port)
kb_bg "$T/gnutls-serv.log" gnutls-serv --port "$gport" --require-client-cert --verify-client-cert \
    --x509cafile "$P/ca.pem" --x509certfile "$P/server.pem" --x509keyfile "$P/server.key" --echo
wait_port "$gport" || t_fail "gnutls-serv started"
kb connect $MOD --pin-file "$T/pin" $POL --key "$laptop" --json "localhost:$gport"
t_check "connect: TLS 1.3 with the TPM's P-256 key" json_is "d['protocol']=='TLS1.3' and d['client_certificate']['sent']"
kb connect $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=k-rsa-2048" --json "localhost:$gport"
t_check "connect: TLS 1.3 with the TPM's RSA-2048 key (RSA-PSS)" json_is "d['protocol']=='TLS1.3' and d['client_certificate']['sent']"
kb connect $MOD --pin-file "$T/pin" $POL --key "$laptop" --resume-test 10 --json "localhost:$gport"
t_check "connect --resume-test 10: 9 resumed, 1 token signature" json_is "d['resume_test']['resumed']==9 and d['resume_test']['token_signatures']==1"

# --- three tunnels, three keys: a TPM keeps two loaded for one program ----------------------
kb keys $MOD --pin-file "$T/pin" "pkcs11:token=dev;object=k-ec-p384"
kb_device_cert dev "$(sed -n 's/^  uri: *//p' "$T/out")" laptop-384 p384
: >"$T/three.conf"
three=()
for k in ec-p256 rsa-2048 ec-p384; do
    three+=("$(free_port)")
    printf '[tunnel %s]\nlisten = 127.0.0.1:%s\nconnect = localhost:%s\nkey = pkcs11:token=dev;object=k-%s\n\n' \
        "$k" "${three[-1]}" "$gport" "$k" >>"$T/three.conf"
done
setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" $POL --config "$T/three.conf" >"$T/three.log" 2>&1 </dev/null &
three_pid=$!
kb_pids+=($three_pid)
wait_log "$T/three.log" "listening on 127.0.0.1:${three[2]}"
echo_through() { printf 'ping\n' | timeout 10 /usr/bin/python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10)
s.sendall(sys.stdin.buffer.read())
print(s.recv(100).decode().strip())" "$1" 2>/dev/null; }
t_check "three tunnels on three TPM keys: the third is not admitted, saying why" \
    grep -q "tunnel ec-p384: key 'k-ec-p384' would be a third key in use on TPM token 'dev' (besides 'k-ec-p256' and 'k-rsa-2048')" "$T/three.log"
echoed="$(echo_through "${three[0]}") $(echo_through "${three[1]}") $(echo_through "${three[2]}")"
t_check "  the first two carry traffic, the third resets its client ($echoed)" [ "$echoed" = "ping ping " ]
kill $three_pid
wait $three_pid 2>/dev/null

# --- tunnel to nginx: resumption and a cold burst ---------------------------------------
nport=$(free_port)
kb_nginx "$(kb_nginx_mtls "$nport" "ssl_session_tickets on;")"
wait_port "$nport" || t_fail "nginx started"
hport=$(free_port)
setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" $POL --listen "127.0.0.1:$hport" \
    --connect "localhost:$nport" --key "$laptop" >"$T/tunnel.log" 2>&1 </dev/null &
tun_pid=$!
kb_pids+=($tun_pid)
wait_port "$hport" || t_fail "tunnel started"
run timeout 120 $PY "$TESTS_SRCDIR/lib/burst.py" "$hport" 30 laptop-
t_check "tunnel: a cold burst of 30 connections, all answered by nginx" out_has "^30 of 30 answered"
run curl -sS "http://127.0.0.1:$hport/"
t_check "tunnel: curl through it" out_has "^hello CN=laptop-[12]"
for i in 1 2 3 4 5; do curl -sS -o /dev/null "http://127.0.0.1:$hport/"; done
sleep 0.2
kill -USR1 $tun_pid
t_check "  resumed handshakes, few token signatures" \
    wait_log "$T/tunnel.log" "0 failed; handshakes [1-9][0-9]* full, [1-9][0-9]* resumed; [1-9][0-9]* token signatures"
kill $tun_pid
wait $tun_pid 2>/dev/null
t_check "  no object left in the TPM after the tunnel" [ "$(tpm_transient)" -eq 0 ]

# --- enroll, renew, renew --rekey over EST -----------------------------------------------
kb_est_start
kb enroll $MOD --pin-file "$T/pin" --token pkcs11:token=dev $POL $EST --label enrolled \
    --subject CN=laptop-7 --secret-file "$T/secret"
t_check "enroll: a new key in the TPM, ISSUED and admitted" bash -c "[ $rc -eq 0 ] && grep -q '^decision: ADMITTED' '$T/out'"
t_check "  no object left in the TPM" tpm_none_left
enrolled=$(sed -n 's/^key: //p' "$T/out")
kb renew $MOD --pin-file "$T/pin" $POL $EST --key "$enrolled" --if-expires-within 60d
t_check "renew: ISSUED and admitted" bash -c "[ $rc -eq 0 ] && grep -q '^decision: ADMITTED' '$T/out'"
t_check "  no object left in the TPM" tpm_none_left
kb renew $MOD --pin-file "$T/pin" $POL $EST --key "pkcs11:token=dev;object=enrolled" --rekey
t_check "renew --rekey: a new key in the TPM, ISSUED and admitted" bash -c "[ $rc -eq 0 ] && grep -q '^decision: ADMITTED' '$T/out'"
t_check "  no object left in the TPM" tpm_none_left
t_check "  the key it prints has the old label" out_has "^key: .*;object=enrolled;type=private"
kb check $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=enrolled" --json
t_check "  and check admits the rekeyed key" json_is "d['decision']=='admit'"
# Each rekey destroys a key the TPM had loaded; three slots are all it has.
for i in 2 3 4; do
    kb renew $MOD --pin-file "$T/pin" $POL $EST --key "pkcs11:token=dev;object=enrolled" --rekey
    t_check "rekey $i in a row: ISSUED and admitted, the TPM's object slots all free" \
        bash -c "[ $rc -eq 0 ] && grep -q '^decision: ADMITTED' '$T/out' && [ \$(TPM2TOOLS_TCTI=$TPM_RAW_TCTI tpm2_getcap handles-transient | grep -c 0x80) -eq 0 ]"
done

# --- Another program fills the TPM's object slots (no resource manager) ------------------
for i in 1 2 3; do
    tpm_tools tpm2_createprimary -Q -C o -G ecc -c "$T/primary$i.ctx" >/dev/null 2>&1
done
t_check "three objects loaded by another program" [ "$(tpm_transient)" -eq 3 ]
before=$(token_objects dev)
kb keygen $MOD --token pkcs11:token=dev --label crowded --pin-file "$T/pin"
t_check "keygen with no free object slot: a token error (exit 2), one line naming the cause" \
    bash -c "[ $rc -eq 2 ] && [ \$(grep -c '^keybound' '$T/err') -eq 1 ] && grep -q 'no free object slots' '$T/err'"
t_check "  the token is unchanged" [ "$before" = "$(token_objects dev)" ]
kb connect $MOD --pin-file "$T/pin" $POL --key "$laptop" "localhost:$gport"
t_check "connect with no free object slot: exit 2, naming the slots, not the network" \
    bash -c "[ $rc -eq 2 ] && grep -q 'no free object slots' '$T/err'"
tpm_tools tpm2_flushcontext -t
kb keygen $MOD --token pkcs11:token=dev --label crowded --pin-file "$T/pin"
t_check "  once they are free again, keygen works" rc_is 0
t_done
