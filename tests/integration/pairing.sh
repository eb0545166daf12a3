#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A key's public half: read from the private key object where the token shows it (RSA
# modulus and exponent, CKA_EC_POINT, CKA_PUBLIC_KEY_INFO), else from the one public-key
# object with its CKA_ID, and only when that pairing is unambiguous. A software key
# imported under a token key's id (and label), with the token key's public object
# deleted, must not lend the token key's facts to its own certificate.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
kb_pki_policy
p11() { GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login "$@"; }

# attack TOKEN LABEL-OF-B: key A ("a", made on the token), A's public object deleted, a
# software key B imported with A's CKA_ID and label LABEL-OF-B (public and private object),
# and a certificate for B's key written with A's id and label. Sets $id (hex) and leaves
# B's certificate in $T/TOKEN-b.pem.
attack() {
    kb_token "$1"
    kb keygen $MOD --token "pkcs11:token=$1" --label a --pin-file "$T/pin"
    local uri
    uri=$(cat "$T/out")
    id=$(printf '%s' "$uri" | sed 's/.*;id=\([^;]*\).*/\1/' | tr -d % | tr 'A-F' 'a-f')
    p11 --batch --delete "pkcs11:token=$1;object=a;type=public" >/dev/null 2>&1
    certtool --generate-privkey --key-type ecdsa --outfile "$T/$1-b.key" 2>/dev/null
    openssl pkcs8 -topk8 -nocrypt -in "$T/$1-b.key" -out "$T/$1-b.p8"
    softhsm2-util --import "$T/$1-b.p8" --token "$1" --label "$2" --id "$id" --pin 1234 \
        --force >/dev/null
    certtool --load-privkey "$T/$1-b.key" --pubkey-info --outfile "$T/$1-b.pub" 2>/dev/null
    kb_issue_client "$T/$1-b.pub" "laptop-b" "$T/$1-b.pem"
}

# --- B imported with A's id and label ----------------------------------------------------
attack dev a
p11 --write --load-certificate "$T/dev-b.pem" --label a --id "$id" "pkcs11:token=dev" \
    >/dev/null 2>&1
kb check $MOD --pin-file "$T/pin" $POL
cp "$T/out" "$T/check-same-label.txt"
t_check "same id and label: check does not admit B's certificate" bash -c "[ $rc -ne 0 ] && ! grep -q ADMITTED '$T/out'"
t_check "  and says the public key cannot be paired, naming the objects" \
    err_has "key 'a' on token 'dev'.*CKA_ID $id is on 2 private keys ('a', 'a') and 1 public key ('a')"

# --- B imported with A's id under another label: import-cert for A with B's certificate ---
attack dev2 b
before=$(token_objects dev2)
kb import-cert $MOD --pin-file "$T/pin" --key "pkcs11:token=dev2;object=a" "$T/dev2-b.pem"
t_check "same id, other label: import-cert refuses B's certificate for key 'a'" rc_is 2
t_check "  with one line naming the objects" bash -c "grep -q \"CKA_ID $id is on 2 private keys ('[ab]', '[ab]') and 1 public key ('b')\" '$T/err' && [ \$(wc -l <'$T/err') -eq 1 ]"
t_check "  and the token is unchanged" [ "$(token_objects dev2)" = "$before" ]
# Written by hand instead: check --key still does not admit it.
p11 --write --load-certificate "$T/dev2-b.pem" --label a --id "$id" "pkcs11:token=dev2" \
    >/dev/null 2>&1
kb check $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev2;object=a"
t_check "  check --key for 'a' with B's certificate written by hand: not admitted" \
    bash -c "[ $rc -ne 0 ] && ! grep -q ADMITTED '$T/out'"

# --- A's public object deleted, nothing imported: B's certificate written with A's id ----
kb_token dev5
kb keygen $MOD --token pkcs11:token=dev5 --label a --pin-file "$T/pin"
id5=$(sed 's/.*;id=\([^;]*\).*/\1/' "$T/out" | tr -d % | tr 'A-F' 'a-f')
p11 --batch --delete "pkcs11:token=dev5;object=a;type=public" >/dev/null 2>&1
certtool --generate-privkey --key-type ecdsa --outfile "$T/dev5-b.key" 2>/dev/null
certtool --load-privkey "$T/dev5-b.key" --pubkey-info --outfile "$T/dev5-b.pub" 2>/dev/null
kb_issue_client "$T/dev5-b.pub" "laptop-b" "$T/dev5-b.pem"
p11 --write --load-certificate "$T/dev5-b.pem" --label a --id "$id5" "pkcs11:token=dev5" \
    >/dev/null 2>&1
kb check $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev5;object=a"
t_check "no public object left: a certificate with the key's id is not tied to it (denied)" \
    bash -c "[ $rc -eq 1 ] && ! grep -q ADMITTED '$T/out' && grep -q 'cert.present' '$T/out'"

# --- CKA_PUBLIC_KEY_INFO on A's private key set to B's key (SoftHSM lets a logged-in user
# set it), A's public object still there: the two disagree, so A is not used ------------
kb_token dev6
kb keygen $MOD --token pkcs11:token=dev6 --label a --pin-file "$T/pin"
id6=$(sed 's/.*;id=\([^;]*\).*/\1/' "$T/out" | tr -d % | tr 'A-F' 'a-f')
openssl pkey -in "$T/dev5-b.key" -pubout -outform DER -out "$T/dev5-b.spki" 2>/dev/null
run "$P11PROBE" setattr "$SOFTHSM_MODULE" "$T/pin" dev6 a CKA_PUBLIC_KEY_INFO "$T/dev5-b.spki"
t_check "  (the probe set CKA_PUBLIC_KEY_INFO)" out_has CKR_OK
p11 --write --load-certificate "$T/dev5-b.pem" --label a --id "$id6" "pkcs11:token=dev6" \
    >/dev/null 2>&1
kb check $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev6;object=a"
t_check "CKA_PUBLIC_KEY_INFO against the public object: not admitted, one line saying so" \
    bash -c "[ $rc -eq 2 ] && ! grep -q ADMITTED '$T/out' && grep -q 'CKA_PUBLIC_KEY_INFO differs from the public key object' '$T/err' && [ \$(wc -l <'$T/err') -eq 1 ]"

# --- The attack plus one step: B imported under A's id (label b), B's certificate written
# with A's id and label, and A's CKA_PUBLIC_KEY_INFO set to B's key, so that A itself seems
# to state B's key and B's public object agrees. Two private keys under one id are never
# paired: the signer, which names a key by id and label, could get either -------------
attack dev7 b
openssl pkey -in "$T/dev7-b.key" -pubout -outform DER -out "$T/dev7-b.spki" 2>/dev/null
run "$P11PROBE" setattr "$SOFTHSM_MODULE" "$T/pin" dev7 a CKA_PUBLIC_KEY_INFO "$T/dev7-b.spki"
p11 --write --load-certificate "$T/dev7-b.pem" --label a --id "$id" "pkcs11:token=dev7" \
    >/dev/null 2>&1
kb check $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev7;object=a;type=private"
t_check "B under A's id with CKA_PUBLIC_KEY_INFO set to B's key: not admitted" \
    bash -c "[ $rc -ne 0 ] && ! grep -q ADMITTED '$T/out'"
t_check "  naming the two private keys under one id" err_has "CKA_ID $id is on 2 private keys"

# --- import-cert refuses a certificate for another key (the honest case) ------------------
kb_token dev3
kb keygen $MOD --token pkcs11:token=dev3 --label one --pin-file "$T/pin"
kb keygen $MOD --token pkcs11:token=dev3 --label two --pin-file "$T/pin"
two=$(cat "$T/out")
p11 --export-pubkey "$two" --outfile "$T/two.pub" 2>/dev/null
kb_issue_client "$T/two.pub" laptop-two "$T/two.pem"
before=$(token_objects dev3)
kb import-cert $MOD --pin-file "$T/pin" --key "pkcs11:token=dev3;object=one" "$T/two.pem"
t_check "import-cert refuses the certificate of key 'two' for key 'one'" \
    bash -c "[ $rc -eq 2 ] && grep -q 'is for another key' '$T/err'"
t_check "  and the token is unchanged" [ "$(token_objects dev3)" = "$before" ]
kb import-cert $MOD --pin-file "$T/pin" --key "pkcs11:token=dev3;object=two" "$T/two.pem"
t_check "  and stores it for key 'two' (one public object, the pairing is unambiguous)" rc_is 0
kb check $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev3;object=two"
t_check "  check admits 'two'" rc_is 0

# --- RSA: the public half comes from the private key object itself -----------------------
kb_token dev4
kb keygen $MOD --token pkcs11:token=dev4 --type rsa-3072 --label r --pin-file "$T/pin"
r=$(cat "$T/out")
p11 --export-pubkey "$r" --outfile "$T/r.pub" 2>/dev/null
p11 --batch --delete "pkcs11:token=dev4;object=r;type=public" >/dev/null 2>&1
kb_issue_client "$T/r.pub" laptop-r "$T/r.pem"
kb import-cert $MOD --pin-file "$T/pin" --key "pkcs11:token=dev4;object=r" "$T/r.pem"
t_check "RSA key without a public object: its certificate is matched on the modulus" rc_is 0

t_done
