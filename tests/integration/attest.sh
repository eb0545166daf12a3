#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Key attestation (issue 17) on swtpm with EK certificates from swtpm_setup, made by a
# swtpm-localca configuration of the test's own in $T (never the system's), under
# tpm2-abrmd: attestation needs a resource manager, and the TPM tests without one never
# use require-attestation. The TPM's word against the module's store: a generated key is
# attested and admitted; a key imported with tpm2_ptool is refused, also after its store
# row was edited to claim generated-on-token (which admits it without attestation); a TPM
# presenting another TPM's EK certificate and an EK certificate from an untrusted CA are
# refused; connect, tunnel --check, enroll's final check and status attest too; a SoftHSM
# key fails require-attestation with a clear reason; `keybound attest` writes DER evidence
# and exits 2 on SoftHSM; the lockout counter stays 0. `attest --verify`, the remote
# verifier: the evidence verifies with its nonce and is refused with another (a replay);
# evidence made on another swtpm (tpm2-tools, B's AK under B's EK) is refused for TPM A's
# key; an AK made under the owner's SRK instead of the EK is refused (qualifiedSigner).
# The last two are evidence keybound never makes: tpm2-tools and ev_der's DER build it.
. "$TESTS_SRCDIR/lib/testlib.sh"
. "$TESTS_SRCDIR/lib/tpmlib.sh"
for tool in tpm2_ptool sqlite3 openssl xxd tpm2_nvread tpm2_nvwrite; do
    command -v "$tool" >/dev/null || t_skip_all "$tool not installed"
done
TPM_EK_CERTS=1 kb_tpm_setup abrmd
kb_tpm_policy
PY=/usr/bin/python3

# with_attestation IN OUT [CA-DIR]: the policy IN with require-attestation and the tpm-ca
# anchors of CA-DIR (the test TPM's CA by default) in [key].
with_attestation() {
    local ca=${3:-$T/ca}
    sed -e "/^\[key\]/a require-attestation = yes\ntpm-ca = $ca/swtpm-localca-rootca-cert.pem\ntpm-ca = $ca/issuercert.pem" \
        "$1" >"$2"
}
with_attestation "$T/tpm-policy.conf" "$T/att.conf"
ATT="--policy $T/att.conf"
# ev_der PREFIX EK-DER OUT: evidence (src/attest/evidence.asn, plain DER) from tpm2-tools'
# output PREFIX.attest, PREFIX.sig (TPMT_SIGNATURE), PREFIX-ak.pub and PREFIX-key.pub
# (TPM2B_PUBLIC); prints the nonce the TPM signed. For evidence keybound never makes.
ev_der() {
    $PY - "$@" <<'PYEOF'
import sys
prefix, ek, out = sys.argv[1:4]
def rd(n): return open(n, "rb").read()
def tlv(tag, body):
    n = len(body)
    if n < 128:
        return bytes([tag, n]) + body
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(b)]) + b + body
def seq(*parts): return tlv(0x30, b"".join(parts))
def octets(b): return tlv(0x04, b)
def integer(v): return tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))
attest = rd(prefix + ".attest")
# TPMS_ATTEST: magic, type, qualifiedSigner (TPM2B), extraData (TPM2B)
qs = int.from_bytes(attest[6:8], "big")
ne = int.from_bytes(attest[8 + qs:10 + qs], "big")
nonce = attest[10 + qs:10 + qs + ne]
oid = tlv(0x06, bytes([0x67, 0x81, 0x05, 0x14, 0x01]))  # 2.23.133.20.1
stmt = seq(octets(attest), octets(rd(prefix + ".sig")), octets(rd(prefix + "-key.pub")[2:]))
bundle = seq(seq(seq(oid, stmt)), seq(rd(ek)))
open(out, "wb").write(seq(integer(1), bundle, octets(rd(prefix + "-ak.pub")[2:]),
                          octets(nonce), integer(0x01C00002)))
print(nonce.hex())
PYEOF
}
# certify_key TCTI ek|srk PREFIX: with tpm2-tools, a restricted ECDSA signing key (the AK:
# under the EK with tpm2_createak, as keybound makes its own, or under the SRK) certifies a key made under the owner's SRK 0x81000001
# (or a fresh primary when the TPM has none); PREFIX.* as ev_der reads them, and
# PREFIX-key.pem, the key's public key.
certify_key() {
    local tcti=$1 parent=$2 p=$3 srk=0x81000001
    export TPM2TOOLS_TCTI=$tcti
    # A TPM without a resource manager keeps 3 objects: each step flushes what it loaded.
    t2() { "$@" && tpm2_flushcontext -t; }
    if ! tpm2_readpublic -c $srk >/dev/null 2>&1; then
        t2 tpm2_createprimary -C o -c "$p-srk.ctx" && srk="$p-srk.ctx"
    fi
    [ "$parent" = srk ] && parent=$srk
    if [ "$parent" = ek ]; then
        t2 tpm2_createek -c "$p-ek.ctx" -G rsa -u "$p-ek.pub" &&
            t2 tpm2_createak -C "$p-ek.ctx" -c "$p-ak.ctx" -G ecc -g sha256 -s ecdsa \
                -u "$p-ak.pub" -n "$p-ak.name" -r "$p-ak.priv"
    else
        t2 tpm2_create -C "$parent" -G ecc256:ecdsa-sha256:null -g sha256 -u "$p-ak.pub" \
            -r "$p-ak.priv" -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign' &&
            t2 tpm2_load -C "$parent" -u "$p-ak.pub" -r "$p-ak.priv" -c "$p-ak.ctx"
    fi &&
        t2 tpm2_create -C $srk -G ecc256 -g sha256 -p keyauth -u "$p-key.pub" -r "$p-key.priv" \
            -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign' &&
        t2 tpm2_load -C $srk -u "$p-key.pub" -r "$p-key.priv" -c "$p-key.ctx" &&
        t2 tpm2_readpublic -c "$p-key.ctx" -f pem -o "$p-key.pem" &&
        t2 tpm2_certify -c "$p-key.ctx" -P keyauth -C "$p-ak.ctx" -g sha256 -o "$p.attest" \
            -s "$p.sig"
} >"$3.log" 2>&1
# The remote verifier's nonces (attest --nonce, attest --verify).
NA=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
NB=ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100
t_check "the TPM holds an RSA EK certificate from the test's own CA" \
    bash -c "TPM2TOOLS_TCTI='$TPM_TCTI' tpm2_nvread 0x1c00002 -C o -o '$T/ek-a.der' 2>/dev/null &&
             openssl verify -CAfile '$T/ca/swtpm-localca-rootca-cert.pem' \
                 -untrusted '$T/ca/issuercert.pem' <(openssl x509 -inform DER -in '$T/ek-a.der') >/dev/null"

# The generated key: made inside the TPM, attested and admitted.
kb keygen $MOD --token pkcs11:token=dev --label gen --type ec-p256 --pin-file "$T/pin"
gen=$(cat "$T/out")
kb_device_cert dev "$gen" device-gen gen
kb check $MOD --pin-file "$T/pin" $ATT --key "pkcs11:token=dev;object=gen"
cp "$T/out" "$T/check-gen.txt"
t_check "check: the generated key is attested and admitted" \
    bash -c "[ $rc -eq 0 ] && grep -q '^  attested:     yes (fixedTPM fixedParent sensitiveDataOrigin; TPM ' '$T/out' &&
             grep -q '\[pass\]  key.attested' '$T/out' && grep -q '^Decision: ADMITTED' '$T/out'"
kb check $MOD --pin-file "$T/pin" $ATT --key "pkcs11:token=dev;object=gen" --json
cp "$T/out" "$T/check-gen.json"
t_check "check --json: key.attested with the proven attributes" \
    $PY -c '
import json, sys
d = json.load(open(sys.argv[1]))["devices"][0]
a = d["key"]["attested"]
assert a["attested"] is True and a["reason"] is None, a
assert a["fixed_tpm"] and a["fixed_parent"] and a["sensitive_data_origin"], a
assert a["ek_issuer"] and a["at"], a
assert [c["status"] for c in d["checks"] if c["id"] == "key.attested"] == ["pass"], d["checks"]
' "$T/out"
# A TPM whose EK is not persistent (many Linux laptops: nothing provisioned 0x81010001):
# keybound makes it from template L-1, and its Name must be the certificate's key's.
run tpm_tools tpm2_evictcontrol -C o -c 0x81010001
t_check "the persistent EK is evicted" rc_is 0
kb check $MOD --pin-file "$T/pin" $ATT --key "pkcs11:token=dev;object=gen"
t_check "  check: the EK made from template L-1 attests the key as the persistent one did" \
    bash -c "[ $rc -eq 0 ] && grep -q '\[pass\]  key.attested' '$T/out'"
# Without require-attestation nothing is attested: the fact is null, the check skipped.
kb check $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=gen" --json
t_check "check --json without require-attestation: attested is null" \
    $PY -c 'import json, sys; d = json.load(open(sys.argv[1]))["devices"][0]; assert d["key"]["attested"] is None' \
    "$T/out"

# The imported key: the module's store says what it is told; the TPM does not.
openssl ecparam -name prime256v1 -genkey -noout -out "$T/imp.pem" 2>/dev/null
run tpm_tools tpm2_ptool import --label dev --userpin 1234 --privkey "$T/imp.pem" \
    --algorithm ecc --key-label imp --id 02 --path "$TPM_DIR/store"
t_check "tpm2_ptool imports a software key into the TPM token" rc_is 0
# tpm2_ptool takes --id as text: the CKA_ID is the bytes "02".
imp="pkcs11:token=dev;id=%30%32;object=imp;type=private"
kb_device_cert dev "$imp" device-imp imp
kb check $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=imp"
t_check "check without attestation: the imported key is denied by its store attributes" \
    bash -c "[ $rc -eq 1 ] && grep -q '\[FAIL\]  key.local' '$T/out'"
kb check $MOD --pin-file "$T/pin" $ATT --key "pkcs11:token=dev;object=imp"
t_check "check with attestation: the imported key is refused, fixedTPM named" \
    bash -c "[ $rc -eq 1 ] && grep -q '\[FAIL\]  key.attested' '$T/out' && grep -q 'fixedTPM' '$T/out'"

# The store row edited as brief §6 does: CKA_EXTRACTABLE false, CKA_LOCAL,
# CKA_NEVER_EXTRACTABLE and CKA_ALWAYS_SENSITIVE true.
L=$(printf imp | xxd -p)
NL="' || char(10) || '"
sqlite3 "$TPM_DIR/store/tpm2_pkcs11.sqlite3" "UPDATE tobjects SET attrs =
 replace(replace(replace(replace(attrs,
  '? !!int \"354\"${NL}  : !!bool \"true\"',  '? !!int \"354\"${NL}  : !!bool \"false\"'),
  '? !!int \"355\"${NL}  : !!bool \"false\"', '? !!int \"355\"${NL}  : !!bool \"true\"'),
  '? !!int \"356\"${NL}  : !!bool \"false\"', '? !!int \"356\"${NL}  : !!bool \"true\"'),
  '? !!int \"357\"${NL}  : !!bool \"false\"', '? !!int \"357\"${NL}  : !!bool \"true\"')
 WHERE attrs LIKE '%? !!int \"0\"${NL}  : !!int \"3\"%' AND attrs LIKE '%!!str \"$L\"%';"
kb check $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=imp"
cp "$T/out" "$T/check-imp-edited-noatt.txt"
t_check "edited row, no attestation: check admits the imported key (the issue's finding)" \
    bash -c "[ $rc -eq 0 ] && grep -q '\[pass\]  key.local' '$T/out'"
kb check $MOD --pin-file "$T/pin" $ATT --key "pkcs11:token=dev;object=imp"
cp "$T/out" "$T/check-imp-edited.txt"
t_check "edited row, with attestation: refused, the TPM's attributes named" \
    bash -c "[ $rc -eq 1 ] && grep -q '\[pass\]  key.local' '$T/out' &&
             grep -q '\[FAIL\]  key.attested' '$T/out' &&
             grep -q 'fixedTPM, fixedParent, sensitiveDataOrigin clear' '$T/out' &&
             grep -q '^Decision: DENIED: key.attested$' '$T/out'"
kb check $MOD --pin-file "$T/pin" $ATT --key "pkcs11:token=dev;object=imp" --json
t_check "  and in --json: attested false with the reason" \
    $PY -c '
import json, sys
a = json.load(open(sys.argv[1]))["devices"][0]["key"]["attested"]
assert a["attested"] is False and "fixedTPM" in a["reason"] and not a["fixed_tpm"], a
' "$T/out"

# An EK certificate from an untrusted CA: a second swtpm-localca directory makes a root
# and an intermediate with the very same names as the first's, and other keys. The
# verifier checks signatures, not names.
tpm_localca "$T/ca2"
tpm_provision "$T/tpm-c/state" "$T/ca2" || t_fail "swtpm_setup with a second CA"
t_check "the second CA has the first's subject names" \
    bash -c "[ \"\$(openssl x509 -noout -subject -in '$T/ca/issuercert.pem')\" = \
               \"\$(openssl x509 -noout -subject -in '$T/ca2/issuercert.pem')\" ]"
with_attestation "$T/tpm-policy.conf" "$T/att-ca2.conf" "$T/ca2"
kb check $MOD --pin-file "$T/pin" --policy "$T/att-ca2.conf" --key "pkcs11:token=dev;object=gen"
cp "$T/out" "$T/check-ca2.txt"
t_check "an EK certificate from a CA the policy does not trust: refused" \
    bash -c "[ $rc -eq 1 ] && grep -q '\[FAIL\]  key.attested' '$T/out' && grep -qi 'EK certificate' '$T/out'"

# A TPM that presents another TPM's identity: TPM B, provisioned by the same (trusted) CA,
# lends its EK certificate, which TPM A then holds in its NV index. The credential is
# made for B's EK; only B could activate it, so A's AK is not shown to be B's.
mkdir -p "$T/tpm-b"
tpm_provision "$T/tpm-b/state" "$T/ca" || t_fail "swtpm_setup for a second TPM"
port_b=$(tpm_ports)
swtpm socket --tpm2 --tpmstate dir="$T/tpm-b/state" \
    --server type=tcp,port="$port_b",bindaddr=127.0.0.1 \
    --ctrl type=tcp,port="$((port_b + 1))",bindaddr=127.0.0.1 \
    --flags not-need-init,startup-clear --pid file="$T/tpm-b/swtpm.pid" -d
wait_port "$port_b"
TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port_b" tpm2_nvread 0x1c00002 -C o \
    -o "$T/ek-b.der" 2>/dev/null
# Evidence made on TPM B, honest on its own terms (B's AK under B's EK), presented as TPM
# A's key's: a remote verifier refuses it.
if (certify_key "swtpm:host=127.0.0.1,port=$port_b" ek "$T/tpm-b/ev"); then
    nb=$(ev_der "$T/tpm-b/ev" "$T/ek-b.der" "$T/ev-b.der")
    kb attest --verify "$T/ev-b.der" --pubkey "$T/gen.pub" --nonce "$nb" $ATT
    cp "$T/err" "$T/verify-other-tpm.txt"
    t_check "attest --verify: evidence from another swtpm, for TPM A's key, is refused" \
        bash -c "[ $rc -eq 1 ] && grep -q 'not the expected key' '$T/err'"
    kb attest --verify "$T/ev-b.der" --pubkey "$T/tpm-b/ev-key.pem" --nonce "$nb" $ATT
    t_check "  and verifies for TPM B's own key (the harness's evidence is sound)" rc_is 0
else
    t_fail "tpm2-tools on TPM B made evidence" "$(cat "$T/tpm-b/ev.log")"
fi
kill "$(cat "$T/tpm-b/swtpm.pid")" 2>/dev/null
# put_ek FILE: the RSA EK certificate index of TPM A, redefined to hold FILE.
put_ek() {
    local attrs
    attrs=$(tpm_tools tpm2_nvreadpublic 0x1c00002 2>/dev/null |
        awk '/attributes:/ { a = 1 } a && /value:/ { print $2; exit }')
    # The state bits (written, writelocked, readlocked) are the TPM's to set, not ours.
    attrs=$(printf '0x%x' $((${attrs:-0x62072001} & ~(0x20000000 | 0x800 | 0x80000))))
    tpm_tools tpm2_nvundefine -C p 0x1c00002 >"$T/put-ek.log" 2>&1 &&
        tpm_tools tpm2_nvdefine -C p -s "$(stat -c %s "$1")" -a "$attrs" \
            0x1c00002 >>"$T/put-ek.log" 2>&1 &&
        tpm_tools tpm2_nvwrite -C p -i "$1" 0x1c00002 >>"$T/put-ek.log" 2>&1
}
t_check "TPM A now holds TPM B's EK certificate, a trusted one" \
    bash -c "[ -s '$T/ek-b.der' ] && ! cmp -s '$T/ek-a.der' '$T/ek-b.der'"
if put_ek "$T/ek-b.der"; then
    kb check $MOD --pin-file "$T/pin" $ATT --key "pkcs11:token=dev;object=gen"
    cp "$T/out" "$T/check-foreign.txt"
    t_check "another TPM's EK certificate: refused" \
        bash -c "[ $rc -eq 1 ] && grep -q '\[FAIL\]  key.attested' '$T/out'"
    put_ek "$T/ek-a.der" || t_fail "TPM A's own EK certificate put back"
else
    t_fail "TPM A's EK certificate index redefined (platform hierarchy)" "$(cat "$T/put-ek.log")" \
        "$(tpm_tools tpm2_nvreadpublic 0x1c00002 2>&1)"
fi
kb check $MOD --pin-file "$T/pin" $ATT --key "pkcs11:token=dev;object=gen"
t_check "  with its own EK certificate back, the key is attested again" rc_is 0

# connect attests before it presents the identity.
if command -v gnutls-serv >/dev/null; then
    gport=$(free_port)
    kb_bg "$T/gnutls-serv.log" gnutls-serv --port "$gport" --require-client-cert \
        --verify-client-cert --x509cafile "$P/ca.pem" --x509certfile "$P/server.pem" \
        --x509keyfile "$P/server.key" --echo
    wait_port "$gport" || t_fail "gnutls-serv started"
    kb connect $MOD --pin-file "$T/pin" $ATT --key "pkcs11:token=dev;object=gen" "localhost:$gport"
    t_check "connect: the attested key presents its certificate" \
        bash -c "[ $rc -eq 0 ] && grep -q 'client cert:  CN=device-gen.*(sent)' '$T/out'"
    kb connect $MOD --pin-file "$T/pin" $ATT --key "pkcs11:token=dev;object=imp" "localhost:$gport"
    t_check "connect: the imported key is refused before any handshake, key.attested named" \
        bash -c "[ $rc -eq 1 ] && grep -q 'key.attested' '$T/err' && ! grep -q 'CN=device-imp' '$T/gnutls-serv.log'"
fi

# The tunnel attests when it evaluates the policy (--check: once, then exits).
kb tunnel $MOD --pin-file "$T/pin" $ATT --listen "127.0.0.1:$(free_port)" \
    --connect localhost:443 --key "pkcs11:token=dev;object=gen" --check
t_check "tunnel --check: the attested key is admitted" rc_is 0
kb tunnel $MOD --pin-file "$T/pin" $ATT --listen "127.0.0.1:$(free_port)" \
    --connect localhost:443 --key "pkcs11:token=dev;object=imp" --check
t_check "tunnel --check: the edited imported key is not, the attribute named" \
    bash -c "[ $rc -eq 1 ] && grep -q 'key.attested' '$T/err'"

# enroll's final check attests the new key (over EST, when python3-cryptography is there).
if $PY -c 'import cryptography.hazmat.primitives.serialization.pkcs7' 2>/dev/null; then
    kb_est_start
    kb enroll $MOD --pin-file "$T/pin" --token pkcs11:token=dev $ATT $EST --label enrolled \
        --subject CN=laptop-7 --secret-file "$T/secret"
    t_check "enroll under require-attestation: the new key is attested in its final check" \
        bash -c "[ $rc -eq 0 ] && grep -q '^decision: ADMITTED' '$T/out'"
fi

# status shows each key's decision: the TPM's word too.
kb status $MOD --pin-file "$T/pin" $ATT --json
t_check "status: the generated key admitted, the imported one denied for key.attested" \
    $PY -c '
import json, sys
k = {x["label"]: x for x in json.load(open(sys.argv[1]))["keys"]}
assert k["gen"]["decision"] == "admit", k["gen"]
assert k["imp"]["decision"] == "deny", k["imp"]
assert [r["id"] for r in k["imp"]["reasons"]] == ["key.attested"], k["imp"]["reasons"]
' "$T/out"

# A SoftHSM key cannot be attested: a clear reason, a denial.
kb_token soft
kb keygen --module "$SOFTHSM_MODULE" --token pkcs11:token=soft --label sk --pin-file "$T/pin"
soft=$(cat "$T/out")
TOKEN_MODULE=$SOFTHSM_MODULE kb_device_cert soft "$soft" device-soft sk
with_attestation "$T/policy.conf" "$T/soft-att.conf"
kb check --module "$SOFTHSM_MODULE" --pin-file "$T/pin" --policy "$T/soft-att.conf" \
    --key "pkcs11:token=soft;object=sk"
cp "$T/out" "$T/check-soft.txt"
t_check "a SoftHSM key under require-attestation: denied, saying it cannot attest" \
    bash -c "[ $rc -eq 1 ] && grep -q '\[FAIL\]  key.attested' '$T/out' && grep -q 'cannot attest' '$T/out'"
kb check --module "$SOFTHSM_MODULE" --pin-file "$T/pin" --policy "$T/policy.conf" \
    --key "pkcs11:token=soft;object=sk"
t_check "  and admitted by the same policy without it" rc_is 0

# keybound attest: DER evidence that openssl parses; exit 2 where the token cannot attest.
kb attest $MOD --pin-file "$T/pin" --key "pkcs11:token=dev;object=gen" \
    --nonce "$NA" -o "$T/ev.der"
t_check "attest writes evidence for the TPM key" bash -c "[ $rc -eq 0 ] && [ -s '$T/ev.der' ]"
run openssl asn1parse -inform DER -in "$T/ev.der"
t_check "  which openssl asn1parse reads: the tcg-attest-tpm-certify statement, the nonce" \
    bash -c "[ $rc -eq 0 ] && grep -q '2.23.133.20.1' '$T/out' &&
             grep -qi '00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF' '$T/out'"
# attest --verify: the remote verifier's side of the same evidence, no TPM used.
kb attest --verify "$T/ev.der" --pubkey "$T/gen.pub" --nonce "$NA" $ATT
cp "$T/out" "$T/verify-ok.txt"
t_check "attest --verify: the evidence verifies with its nonce, the AK said not activated" \
    bash -c "[ $rc -eq 0 ] && grep -q '^attested: *yes' '$T/out' &&
             grep -q \"^AK activated: *no: the AK's binding to the EK rests on the TPM's qualifiedSigner\" '$T/out'"
kb attest $MOD --pin-file "$T/pin" --verify "$T/ev.der" --key "pkcs11:token=dev;object=gen" \
    --nonce "$NA" $ATT
t_check "  and with the expected key read from the token" rc_is 0
kb attest --verify "$T/ev.der" --pubkey "$T/gen.pub" --nonce "$NB" $ATT
cp "$T/err" "$T/verify-replay.txt"
t_check "  another nonce: refused as a replay" \
    bash -c "[ $rc -eq 1 ] && grep -q 'answers another nonce' '$T/err'"
kb attest --verify "$T/ev.der" --pubkey "$T/imp.pub" --nonce "$NA" $ATT
t_check "  another key expected: refused" \
    bash -c "[ $rc -eq 1 ] && grep -q 'not the expected key' '$T/err'"
kb attest $MOD --pin-file "$T/pin" --key "pkcs11:token=dev;object=gen" --nonce "$NB" -o "$T/ev.pem"
kb attest --verify "$T/ev.pem" --pubkey "$T/gen.pub" --nonce "$NB" $ATT
t_check "  PEM evidence (attest -o FILE.pem) verifies too" rc_is 0
for bad in "--nonce $NA" "--pubkey $T/gen.pub" "--pubkey $T/gen.pub --nonce $NA --key pkcs11:token=dev" \
    "--pubkey $T/gen.pub --nonce $NA -o $T/x.der" "--pubkey $T/gen.pub --nonce $NA --json"; do
    kb attest --verify "$T/ev.der" $bad $ATT
    t_check "  --verify with '${bad//$T/\$T}': exit 2, one line" \
        bash -c "[ $rc -eq 2 ] && [ \"\$(wc -l <'$T/err')\" -eq 1 ]"
done
head -c 100 /dev/urandom >"$T/not-ev.der"
kb attest --verify "$T/not-ev.der" --pubkey "$T/gen.pub" --nonce "$NA" $ATT
t_check "  a file that is not evidence: exit 2, one line" \
    bash -c "[ $rc -eq 2 ] && [ \"\$(wc -l <'$T/err')\" -eq 1 ] && grep -q 'not keybound evidence' '$T/err'"

# An AK that is not bound to the EK: a restricted signing key under the owner's SRK
# (0x81000001) of the same TPM certifies a key made beside it. Nothing in keybound makes
# such evidence, so tpm2-tools and a few lines of DER make it here; the qualifiedSigner
# names the SRK, not the EK, as the AK's parent.
if (certify_key "$TPM_TCTI" srk "$T/srk"); then
    ns=$(ev_der "$T/srk" "$T/ek-a.der" "$T/ev-srk.der")
    kb attest --verify "$T/ev-srk.der" --pubkey "$T/srk-key.pem" --nonce "$ns" $ATT
    cp "$T/err" "$T/verify-srk.txt"
    t_check "attest --verify: an AK under the owner's SRK, not the EK, is refused" \
        bash -c "[ $rc -eq 1 ] && grep -q \"the AK is not the EK's child\" '$T/err'"
else
    t_fail "tpm2-tools made an AK under the SRK and certified a key with it" "$(cat "$T/srk.log")"
fi
kb attest --module "$SOFTHSM_MODULE" --pin-file "$T/pin" --key "pkcs11:token=soft;object=sk" \
    -o "$T/soft.der"
t_check "attest on a SoftHSM key: exit 2, one line naming the token" \
    bash -c "[ $rc -eq 2 ] && [ \"\$(wc -l <'$T/err')\" -eq 1 ] && grep -q 'soft' '$T/err' && [ ! -s '$T/soft.der' ]"

# No attestation above spent a try of the TPM's dictionary-attack lockout.
run tpm_tools tpm2_getcap properties-variable
t_check "the TPM's lockout counter is still 0" \
    grep -q '^TPM2_PT_LOCKOUT_COUNTER: 0x0$' "$T/out"

# A running tunnel re-evaluates on a clock, and its token may stay logged in: when the PIN
# source changes under it, C_Login proves nothing, and attestation's Unseal of the token's
# seal object is what meets the wrong PIN, exactly as the module's C_Login would. That is
# one strike, and it counts as the token rejecting the PIN: later re-evaluations try it
# neither in the TPM nor in a login.
# A failed try is forgotten after recovery-time: long enough that none decays meanwhile.
tpm_tools tpm2_dictionarylockout --setup-parameters --max-tries=1000 --recovery-time=10000 \
    --lockout-recovery-time=1 >/dev/null 2>&1
cp "$T/pin" "$T/tun-pin"
chmod 600 "$T/tun-pin"
tun_port=$(free_port)
setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/tun-pin" $ATT --listen "127.0.0.1:$tun_port" \
    --connect localhost:443 --key "pkcs11:token=dev;object=gen" --admission-recheck 10 \
    >"$T/tun-att.log" 2>&1 </dev/null &
tun_pid=$!
kb_pids+=($tun_pid)
t_check "a tunnel under require-attestation starts, attested" \
    wait_log "$T/tun-att.log" "tunnel cli: .* as CN=device-gen"
printf '9999' >"$T/tun-pin"
rechecks() { grep -c "the policy again" "$T/tun-att.log"; }
for i in $(seq 350); do [ "$(rechecks)" -ge 3 ] && break; sleep 0.1; done
run tpm_tools tpm2_getcap properties-variable
cp "$T/out" "$T/tun-lockout"
t_check "  the PIN file changed under it: three re-evaluations spend one try of the TPM's" \
    bash -c "[ $(rechecks) -ge 3 ] && grep -q '^TPM2_PT_LOCKOUT_COUNTER: 0x1$' '$T/tun-lockout'"
t_check "  the device is denied from the first, and the PIN is not tried again" \
    bash -c "grep -q 'not admitted for localhost:443: DENIED: key.attested' '$T/tun-att.log' &&
             grep -q 'was rejected earlier; not tried again' '$T/tun-att.log'"
kill "$tun_pid" 2>/dev/null
wait "$tun_pid" 2>/dev/null
run tpm_tools tpm2_dictionarylockout --clear-lockout

# The transcripts, for the closing note (KB_ATTEST_TRANSCRIPTS=DIR keeps them).
[ -n "${KB_ATTEST_TRANSCRIPTS:-}" ] && cp "$T"/check-*.txt "$T"/check-*.json "$T"/verify-*.txt \
    "$KB_ATTEST_TRANSCRIPTS"/ 2>/dev/null
t_done
