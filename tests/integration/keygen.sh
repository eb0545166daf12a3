#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keybound keygen: the key is made on the token with a template that is read back.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
kb_token dev

kb keygen $MOD --token pkcs11:token=dev --label laptop --pin-file "$T/pin"
t_check "keygen (default ec-p256) succeeds" rc_is 0
t_check "  and prints the new key's URI" out_has "^pkcs11:.*token=dev;id=%[0-9A-F%]*;object=laptop;type=private$"
uri=$(cat "$T/out")

run "$P11PROBE" attr "$SOFTHSM_MODULE" "$T/pin" dev laptop CKA_SENSITIVE CKA_EXTRACTABLE \
    CKA_NEVER_EXTRACTABLE CKA_ALWAYS_SENSITIVE CKA_LOCAL CKA_PRIVATE CKA_TOKEN CKA_SIGN CKA_VALUE
t_check "raw CKA_SENSITIVE is true" out_has "^CKA_SENSITIVE=true$"
t_check "raw CKA_EXTRACTABLE is false" out_has "^CKA_EXTRACTABLE=false$"
t_check "raw CKA_NEVER_EXTRACTABLE is true" out_has "^CKA_NEVER_EXTRACTABLE=true$"
t_check "raw CKA_ALWAYS_SENSITIVE is true" out_has "^CKA_ALWAYS_SENSITIVE=true$"
t_check "raw CKA_LOCAL is true" out_has "^CKA_LOCAL=true$"
t_check "raw CKA_PRIVATE and CKA_TOKEN are true" bash -c "grep -q '^CKA_PRIVATE=true$' '$T/out' && grep -q '^CKA_TOKEN=true$' '$T/out'"
t_check "reading CKA_VALUE of the key is refused" out_has "^CKA_VALUE=CKR_ATTRIBUTE_SENSITIVE$"

# p11tool (not keybound) sees one private and one public key with the same id.
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --list-all pkcs11:token=dev \
    >"$T/p11tool.out" 2>/dev/null
t_check "both halves share one CKA_ID" bash -c "test \$(grep 'ID:' '$T/p11tool.out' | sort -u | wc -l) -eq 1 && test \$(grep -c 'ID:' '$T/p11tool.out') -eq 2"

kb keys $MOD --pin-file "$T/pin" "$uri"
t_check "keys shows it with its protection as words" out_has "protection: sensitive, not-extractable, never-extractable, always-sensitive, generated-on-token, private"
t_check "  as ec-p256" out_has "^Key 'laptop' (ec-p256) on token 'dev'"

for type in ec-p384 rsa-2048 rsa-3072; do
    kb keygen $MOD --token pkcs11:token=dev --label "k-$type" --type "$type" --pin-file "$T/pin"
    t_check "keygen --type $type" rc_is 0
    kb keys $MOD --pin-file "$T/pin" "pkcs11:object=k-$type"
    t_check "  keys reports $type" out_has "^Key 'k-$type' ($type)"
done

# ed25519 only where the token has CKM_EC_EDWARDS_KEY_PAIR_GEN (SoftHSM 2.6 has it).
kb keygen $MOD --token pkcs11:token=dev --label k-ed --type ed25519 --pin-file "$T/pin"
t_check "keygen --type ed25519" rc_is 0
kbshim P11SHIM_HIDE_MECHS=CKM_EC_EDWARDS_KEY_PAIR_GEN keygen --module "$P11SHIM" \
    --token pkcs11:token=dev --label k-ed2 --type ed25519 --pin-file "$T/pin"
t_check "ed25519 on a token without the mechanism: exit 2" rc_is 2
t_check "  naming the missing mechanism" err_has "cannot generate ed25519 keys (it lacks CKM_EC_EDWARDS_KEY_PAIR_GEN)"

before=$(token_objects dev)
kb keygen $MOD --token pkcs11:token=dev --label laptop --pin-file "$T/pin"
t_check "a second key with the same label is refused (exit 2)" rc_is 2
t_check "  with one line naming the label" bash -c "[ \$(wc -l <'$T/err') -eq 1 ] && grep -q \"already has a key labelled 'laptop'\" '$T/err'"
t_check "  and the token is unchanged" [ "$before" = "$(token_objects dev)" ]

# A token that accepts the template but stores other values: the key must not survive.
for attr in CKA_EXTRACTABLE=1 CKA_SENSITIVE=0 CKA_LOCAL=0 CKA_NEVER_EXTRACTABLE=0; do
    kbshim P11SHIM_ATTR_OVERRIDE=$attr keygen --module "$P11SHIM" --token pkcs11:token=dev \
        --label "dishonest" --pin-file "$T/pin"
    t_check "token reporting $attr after keygen: exit 2" rc_is 2
    t_check "  the error names the attribute" err_has "did not honour the key template: ${attr%=*} is not"
    t_check "  and the generated key was destroyed" [ "$before" = "$(token_objects dev)" ]
done

kb keygen $MOD --token pkcs11:token=dev --label x --type rsa-1024 --pin-file "$T/pin"
t_check "an unknown --type is a usage error (exit 2)" rc_is 2
kb keygen $MOD --token pkcs11:token=dev --pin-file "$T/pin"
t_check "a missing --label is a usage error (exit 2)" rc_is 2

kb keygen $MOD --token pkcs11:token=dev --label json-key --json --pin-file "$T/pin"
t_check "keygen --json gives uri, id, type and label" python3 -c "
import json
d=json.load(open('$T/out'))
assert d['label']=='json-key' and d['type']=='ec-p256' and d['token']=='dev', d
assert len(d['id'])==40 and d['uri'].endswith(';object=json-key;type=private'), d
"
t_done
