#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keybound keys: keys with their protection, certificates tied to their key.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
kb_token dev
kb_pki

kb keygen $MOD --token pkcs11:token=dev --label made-here --pin-file "$T/pin"
t_check "keygen for the listing" rc_is 0
made_uri=$(cat "$T/out")

# A key made in software and written to the token: what the policy must be able to see.
certtool --generate-privkey --key-type ecdsa --outfile "$T/soft.key" 2>/dev/null
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --write --load-privkey "$T/soft.key" \
    --label imported --id 0a0b0c pkcs11:token=dev >/dev/null 2>&1
t_check "a software key was written with p11tool" [ $? -eq 0 ]

kb keys $MOD --pin-file "$T/pin" 'pkcs11:object=imported'
t_check "keys shows the imported key" out_has "^Key 'imported' (ec-p256) on token 'dev'"
t_check "  as IMPORTED and WAS-EXTRACTABLE" out_has "protection: sensitive, not-extractable, WAS-EXTRACTABLE, .*IMPORTED"
kb keys $MOD --pin-file "$T/pin" --json 'pkcs11:object=imported'
t_check "--json shows local and never_extractable false" python3 -c "
import json
k=json.load(open('$T/out'))['keys'][0]
assert k['local'] is False and k['never_extractable'] is False, k
assert k['id']=='0a0b0c', k
"

# A certificate for the generated key, stored with its CKA_ID: keys ties them together.
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --export-pubkey "$made_uri" \
    --outfile "$T/made.pub" 2>/dev/null
kb_issue_client "$T/made.pub" "device-1" "$T/made.pem"
made_id=$(printf '%s' "$made_uri" | sed 's/.*;id=\([^;]*\);.*/\1/')
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --write --load-certificate "$T/made.pem" \
    --label made-here --id "$(printf '%s' "$made_id" | tr -d %)" pkcs11:token=dev >/dev/null 2>&1
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --write --load-certificate "$T/pki/ca.pem" \
    --label ca --mark-ca pkcs11:token=dev >/dev/null 2>&1
kb keys $MOD --pin-file "$T/pin" "$made_uri"
t_check "the certificate is listed under its key" out_has "^  certificate 'made-here'"
t_check "  with its subject" out_has "subject:  CN=device-1"
t_check "  and issuer" out_has "issuer:   CN=keybound test CA"
kb keys $MOD --pin-file "$T/pin" --json
t_check "--json: the certificate under the key, the CA apart" python3 -c "
import json
d=json.load(open('$T/out'))
k=[k for k in d['keys'] if k['label']=='made-here'][0]
assert [c['subject'] for c in k['certificates']]==['CN=device-1'], k
assert [c['label'] for c in d['other_certificates']]==['ca'], d['other_certificates']
assert d['other_certificates'][0]['ca'] is True
"
kb keys $MOD --pin-file "$T/pin"
t_check "the CA certificate is listed apart" out_has "^Certificates without a key here"

# A certificate carrying the key's id but another key's public key is not that key's.
certtool --generate-privkey --key-type ecdsa --outfile "$T/stranger.key" 2>/dev/null
certtool --load-privkey "$T/stranger.key" --pubkey-info --outfile "$T/stranger.pub" 2>/dev/null
kb_issue_client "$T/stranger.pub" "stranger" "$T/stranger.pem"
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --write --load-certificate "$T/stranger.pem" \
    --label stranger --id "$(printf '%s' "$made_id" | tr -d %)" pkcs11:token=dev >/dev/null 2>&1
kb keys $MOD --pin-file "$T/pin" --json
t_check "a certificate with the key's id but another public key is not tied to it" python3 -c "
import json
d=json.load(open('$T/out'))
k=[k for k in d['keys'] if k['label']=='made-here'][0]
assert [c['subject'] for c in k['certificates']]==['CN=device-1'], k
s=[c for c in d['other_certificates'] if c['label']=='stranger'][0]
assert s['id_matches_other_key'] is True, s
"

kb keys $MOD
t_check "without a PIN source keys still succeeds" rc_is 0
t_check "  and says that private keys need a login" err_has "1 token needs a login to show private keys"
t_check "  listing no private key" out_lacks "^Key "

kb keys $MOD --pin-file "$T/pin" 'pkcs11:object=nothing-like-this'
t_check "a URI that matches no object: exit 2" rc_is 2
t_check "  with one line naming the URI" bash -c "[ \$(wc -l <'$T/err') -eq 1 ] && grep -q \"URI 'pkcs11:object=nothing-like-this' matches no key or certificate on 1 token (first: 'dev')\" '$T/err'"
kb keys $MOD --pin-file "$T/pin" 'pkcs11:token=elsewhere'
t_check "a URI that matches no token: exit 2, listing the tokens present" bash -c "[ $rc -eq 2 ] && grep -q \"matches no token; tokens present: 'dev'\" '$T/err'"
# Resolving a URI to exactly one key (what --key URI does in later commands).
run "$P11PROBE" resolve "$SOFTHSM_MODULE" "$T/pin" 'pkcs11:token=dev;object=made-here'
t_check "a URI naming one key resolves to it" bash -c "[ $rc -eq 0 ] && grep -qx '$made_uri' '$T/out'"
run "$P11PROBE" resolve "$SOFTHSM_MODULE" "$T/pin" 'pkcs11:token=dev'
t_check "a URI matching two keys is an error listing both" bash -c "[ $rc -eq 2 ] && grep -q \"matches 2 keys: .*'made-here' on 'dev'\" '$T/err' && grep -q \"'imported' on 'dev'.*add object= or id=\" '$T/err'"
run "$P11PROBE" resolve "$SOFTHSM_MODULE" "$T/pin" 'pkcs11:token=dev;object=absent'
t_check "a URI matching no key lists the keys that are there" bash -c "[ $rc -eq 2 ] && grep -q \"matches no private key; keys on the 1 token it matches: .*'made-here' on 'dev'\" '$T/err'"
run "$P11PROBE" resolve "$SOFTHSM_MODULE" "$T/pin" 'pkcs11:token=dev;object=made-here;type=cert'
t_check "a URI for a certificate is not a key" bash -c "[ $rc -eq 2 ] && grep -q 'matches no private key' '$T/err'"
t_done
