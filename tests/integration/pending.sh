#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A request the EST server accepts for later (202) survives: its key stays on the token,
# the request is kept in the state directory, and the next enroll (same token and label)
# or renew sends the same CSR again (RFC 7030 4.2.3) instead of making a new key. keybound
# status shows each key's certificate, renewal, last result and pending request.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
kb_est_enrolled
mode() { printf '%s\n' "$1" >"$T/est/mode"; }
# js COND: COND holds of the JSON on stdout (d), k being its first key
js() { python3 -c "import json,sys; d=json.load(open('$T/out')); k=(d.get('keys') or [None])[0]; sys.exit(0 if ($1) else 1)"; }
enroll() { kb enroll $MOD --pin-file "$T/pin" --token pkcs11:token=dev --policy "$T/policy.conf" $EST --secret-file "$T/secret" --max-wait 0 "$@"; }
renew() { kb renew $MOD --pin-file "$T/pin" --policy "$T/policy.conf" $EST --max-wait 0 "$@"; }
status() { kb status $MOD --pin-file "$T/pin" --policy "$T/policy.conf" "$@"; }
keys_labelled() { GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --list-privkeys \
    "pkcs11:token=dev;object=$1" 2>/dev/null | grep -c '^Object'; }
# the csr= and key= the server logged for the enrol requests of subject CN=$1
sent() { sed -n "s/^POST .* subject=CN=$1 csr=\([0-9a-f]*\) key=\([0-9a-f]*\)$/\1 \2/p" "$T/est/requests.log"; }
CERT_KEYS="['issuer', 'not_after', 'not_before', 'serial', 'sha256', 'subject']"

# --- status of an enrolled key --------------------------------------------------------------
status
t_check "status: exit 0, one block for the enrolled key" bash -c "[ $rc -eq 0 ] && [ \$(grep -c '^Key ' '$T/out') -eq 1 ]"
t_check "  MONITORING, with subject, issuer and days left" bash -c "grep -qx '  state:        MONITORING' '$T/out' && grep -qx '  subject:      CN=laptop-1' '$T/out' && grep -qx '  issuer:       CN=keybound test CA' '$T/out' && grep -q '^  expires:      .* (\(29\|30\) days left)' '$T/out'"
t_check "  renewal not due by the policy's renew-before" out_has "^  renewal:      not due (renew-before "
t_check "  the last enrolment and the decision" bash -c "grep -q '^  last:         enroll issued at ' '$T/out' && grep -q '^  decision:     ADMITTED' '$T/out'"
status --json
t_check "status --json: schema 1, one key, the certificate's structured fields" \
    js "d['schema']==1 and len(d['keys'])==1 and sorted(d['keys'][0]['certificate'])==$CERT_KEYS"
t_check "  state, renewal, last result, decision" \
    js "k['state']=='monitoring' and k['renewal_due'] is False and k['last']['result']=='issued' and k['pending'] is None and k['decision']=='admit' and k['key_uri']=='$laptop'"

# --- enroll: 202, the key and request kept, then the same request again ---------------------
# The server says 5 s; later scenarios use 1 s, each in a mode string of its own ("01",
# "001": the test server counts its 202s per mode string).
mode "retry-after 5 1"
enroll --label second --subject CN=second
cp "$T/err" "$T/wait.err"
t_check "enroll answered 202: WAIT (exit 4)" bash -c "[ $rc -eq 4 ] && grep -qx 'state: WAIT' '$T/out'"
t_check "  says the key and request are kept, and when to run again" err_has "key 'second' and its request are kept: run the same command again after 20"
t_check "  the key stays on the token" [ "$(keys_labelled second)" -eq 1 ]
state_file=$(grep -l '"label": "second"' "$T"/state/key-*.json)
t_check "  one state file for it, mode 0600" bash -c "[ -n '$state_file' ] && [ \$(stat -c %a '$state_file') = 600 ]"
t_check "  holding no secret" bash -c "! grep -q -e 's3cret' -e 'pin' '$state_file'"
status
t_check "status: the key is PENDING with its next poll" bash -c "grep -qx '  state:        PENDING' '$T/out' && grep -q \"^  pending:      enroll request for key 'second' to $EST_URL/.well-known/est, sent .*, next poll 20\" '$T/out'"
status --json 'pkcs11:token=dev;object=second'
t_check "status --json URI: that key, pending, next poll after the 202" \
    js "len(d['keys'])==1 and k['state']=='pending' and k['certificate'] is None and k['pending']['operation']=='enroll' and k['pending']['next_poll']>k['pending']['last_reply']"
n=$(grep -c '^POST ' "$T/est/requests.log")
enroll --label second --subject CN=second
t_check "the same enroll before Retry-After has passed (--max-wait 0): WAIT, nothing sent" \
    bash -c "[ $rc -eq 4 ] && [ \$(grep -c '^POST ' '$T/est/requests.log') -eq $n ] && grep -q 'the EST server asked to be asked again after 20' '$T/err'"
t_check "  the key and the request stay" [ "$(keys_labelled second)" -eq 1 ]
before=$(token_objects dev)
enroll --label second --subject CN=second --max-wait 10
t_check "the same enroll again (--max-wait 10): waits out the rest, then ISSUED (exit 0)" bash -c "[ $rc -eq 0 ] && grep -qx 'state: ISSUED' '$T/out' && grep -q '^decision: ADMITTED' '$T/out'"
t_check "  says it sent the pending request again" err_has "sending again the request for key 'second'"
sent second >"$T/sent"
t_check "  the server got the same CSR twice (same csr= and key=)" \
    bash -c "[ \$(wc -l <'$T/sent') -eq 2 ] && [ \$(sort -u '$T/sent' | wc -l) -eq 1 ]"
t_check "  no second key was made: still one key 'second'" [ "$(keys_labelled second)" -eq 1 ]
echo "$before" >"$T/before"
token_objects dev >"$T/after"
t_check "  the token gained only the certificate" bash -c "diff '$T/before' '$T/after' | grep '^>' | grep -q 'Type: X.509 Certificate' && ! diff '$T/before' '$T/after' | grep -q '^<'"
status --json 'pkcs11:token=dev;object=second'
t_check "  status: monitoring, the pending request cleared, last enroll issued" \
    js "k['state']=='monitoring' and k['pending'] is None and k['last']=={'operation':'enroll','result':'issued','time':k['last']['time'],'message':None}"

# --- renew: the same --------------------------------------------------------------------------
mode "retry-after 01 1"
renew --key "$laptop"
t_check "renew answered 202: WAIT (exit 4)" bash -c "[ $rc -eq 4 ] && grep -qx 'state: WAIT' '$T/out'"
status --json "$laptop"
t_check "  status: pending renewal" js "k['state']=='pending' and k['pending']['operation']=='renew' and not k['pending']['rekey']"
renew --key "$laptop" --if-expires-within 1d --max-wait 5
t_check "renew again (not due by the clock, but pending): ISSUED" bash -c "[ $rc -eq 0 ] && grep -qx 'state: ISSUED' '$T/out'"
grep '^POST /.well-known/est/simplereenroll ' "$T/est/requests.log" | tail -2 | sed 's/.* csr=//' >"$T/renewed"
t_check "  the same renewal request was sent again" bash -c "[ \$(wc -l <'$T/renewed') -eq 2 ] && [ \$(sort -u '$T/renewed' | wc -l) -eq 1 ]"
status --json "$laptop"
t_check "  status: last renew issued, nothing pending" js "k['last']['operation']=='renew' and k['last']['result']=='issued' and k['pending'] is None"

# --- a pending enrolment the CA then rejects: its key goes --------------------------------------
mode "retry-after 001 1"
enroll --label third --subject CN=third
t_check "enroll third: WAIT, key kept" bash -c "[ $rc -eq 4 ] && [ $(keys_labelled third) -eq 1 ]"
mode reject
enroll --label third --subject CN=third --max-wait 5
t_check "asked again, the CA rejects: REJECTED (exit 3), with its text" bash -c "[ $rc -eq 3 ] && grep -q 'device not registered' '$T/err'"
sent third >"$T/sent"
t_check "  the same CSR was sent" bash -c "[ \$(sort -u '$T/sent' | wc -l) -eq 1 ] && [ \$(wc -l <'$T/sent') -eq 2 ]"
t_check "  the key made for it is removed" [ "$(keys_labelled third)" -eq 0 ]
t_check "  and its state file" bash -c "! grep -l '\"label\": \"third\"' '$T'/state/key-*.json"
mode ""

# --- a pending request whose key was removed by hand is dropped; a new key is made --------------
mode "retry-after 34 1"
enroll --label fourth --subject CN=fourth
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --batch --delete \
    "pkcs11:token=dev;object=fourth" >/dev/null 2>&1
mode ""
enroll --label fourth --subject CN=fourth
t_check "its key removed by hand, the pending request is dropped, said once" \
    bash -c "[ $rc -eq 0 ] && grep -q \"the request pending since .* for key 'fourth' is dropped\" '$T/err'"
sent fourth | cut -d' ' -f2 | sort -u >"$T/sent"
t_check "  and a new key made for a new request" bash -c "[ \$(wc -l <'$T/sent') -eq 2 ] && [ $(keys_labelled fourth) -eq 1 ]"

# --- a request that cannot be kept is not left behind ----------------------------------------------
before=$(token_objects dev)
: >"$T/not-a-dir"
mode "retry-after 35 1"
run env KEYBOUND_STATE_DIR="$T/not-a-dir" setsid -w "$KEYBOUND" enroll $MOD --pin-file "$T/pin" \
    --token pkcs11:token=dev --policy "$T/policy.conf" $EST --secret-file "$T/secret" --max-wait 0 \
    --label fifth --subject CN=fifth
t_check "WAIT with a state directory that cannot be written: exit 4, saying the result is not kept" \
    bash -c "[ $rc -eq 4 ] && grep -q \"the result for key 'fifth' is not kept: state directory $T/not-a-dir\" '$T/err'"
t_check "  and the new key is removed, as before" [ "$before" = "$(token_objects dev)" ]
mode ""

# --- renew --rekey: pending, then issued; the final URI is printed -----------------------------
kb keys $MOD --pin-file "$T/pin" --json "pkcs11:token=dev;object=laptop"
old_id=$(python3 -c "import json; print(json.load(open('$T/out'))['keys'][0]['id'])")
mode "retry-after 0001 1"
renew --key "pkcs11:token=dev;object=laptop" --rekey
t_check "renew --rekey answered 202: WAIT, the new key laptop.next kept" bash -c "[ $rc -eq 4 ] && [ $(keys_labelled laptop.next) -eq 1 ]"
status --json "pkcs11:token=dev;object=laptop"
t_check "  status: a pending rekey for laptop.next" js "k['pending']['rekey'] and k['pending']['label']=='laptop.next'"
renew --key "pkcs11:token=dev;object=laptop" --rekey --max-wait 5
cp "$T/out" "$T/rekey.out"
t_check "renew --rekey again: ISSUED and admitted" bash -c "[ $rc -eq 0 ] && grep -q '^decision: ADMITTED' '$T/out'"
t_check "  the same request was sent again" bash -c "[ \$(grep '^POST /.well-known/est/simplereenroll ' '$T/est/requests.log' | tail -2 | sed 's/.* csr=//' | sort -u | wc -l) -eq 1 ]"
t_check "  one key laptop, no laptop.next" bash -c "[ $(keys_labelled laptop) -eq 1 ] && [ $(keys_labelled laptop.next) -eq 0 ]"
kb keys $MOD --pin-file "$T/pin" --json "pkcs11:token=dev;object=laptop"
new_id=$(python3 -c "import json; print(json.load(open('$T/out'))['keys'][0]['id'])")
new_uri=$(python3 -c "import json; print(json.load(open('$T/out'))['keys'][0]['uri'])")
t_check "  renew --rekey prints the key's final URI (old label, new id)" bash -c "[ '$new_id' != '$old_id' ] && grep -qxF 'key: $new_uri' '$T/rekey.out'"
status --json "pkcs11:token=dev;object=laptop"
t_check "  status: the new key, last renew issued, nothing pending" js "k['key_uri']=='$new_uri' and k['last']['result']=='issued' and k['pending'] is None"
kb renew $MOD --pin-file "$T/pin" --policy "$T/policy.conf" $EST --key "pkcs11:token=dev;object=laptop" --rekey --json
t_check "renew --rekey --json: key_uri is the final one" js "d['key_uri'].endswith(';object=laptop;type=private') and 'laptop.next' not in d['key_uri']"

# --- state files keybound cannot read -----------------------------------------------------------
f=$(grep -l '"label": "second"' "$T"/state/key-*.json)
printf '{"schema": 1, "token_serial": 7}\n' >"$f"
status
t_check "a bad state file: status still works (exit 0), every key shown" bash -c "[ $rc -eq 0 ] && [ \$(grep -c '^Key ' '$T/out') -eq 3 ]"
t_check "  one line naming the file and what to do" bash -c "[ \$(wc -l <'$T/err') -eq 1 ] && grep -qF 'state file $f: \"token_serial\" is not a string' '$T/err' && grep -q 'move it away' '$T/err'"
head -c 3000 /dev/urandom >"$f"
enroll --label second --subject CN=second
t_check "  enroll over an unreadable one: one warning naming it, then its own refusal" err_has "state file $f: "
rm -f "$f"

# A pending request changed on disk to one another key signed is not sent: the device's
# credential is never spent on a key that is not the one kept for it.
mode "retry-after 36 1"
enroll --label sixth --subject CN=sixth
f=$(grep -l '"label": "sixth"' "$T"/state/key-*.json)
certtool --generate-privkey --key-type ecdsa --outfile "$T/other.key" 2>/dev/null
printf 'cn = sixth\n' >"$T/other.tmpl"
certtool --generate-request --load-privkey "$T/other.key" --template "$T/other.tmpl" \
    --outder --outfile "$T/other.csr" 2>/dev/null
python3 - "$f" "$T/other.csr" <<'PY'
import base64, json, sys
d = json.load(open(sys.argv[1]))
d["pending"]["csr"] = base64.b64encode(open(sys.argv[2], "rb").read()).decode()
json.dump(d, open(sys.argv[1], "w"))
PY
before=$(token_objects dev)
n=$(grep -c '^POST ' "$T/est/requests.log")
enroll --label sixth --subject CN=sixth
t_check "a kept request not signed by its key: exit 2, one line naming it" \
    bash -c "[ $rc -eq 2 ] && grep -q \"the request kept in $T/state for key 'sixth' is not signed by that key; move its state file away\" '$T/err' && [ \$(wc -l <'$T/err') -eq 1 ]"
t_check "  nothing was sent, nothing changed on the token" \
    bash -c "[ \$(grep -c '^POST ' '$T/est/requests.log') -eq $n ] && [ '$(token_objects dev | md5sum)' = '$(echo "$before" | md5sum)' ]"
mode ""

# --- bad input: one line, exit 2, nothing changed -------------------------------------------------
before=$(token_objects dev)
for args in "--policy $T/nonexistent" "pkcs11:token=nosuch" "--bogus" "a b" "--json=yes" "pkcs11:token=dev;bad%zz"; do
    kb status $MOD --pin-file "$T/pin" --policy "$T/policy.conf" $args
    # (--json=yes asked for JSON: its refusal is the error object, keybound(1) JSON OUTPUT.)
    t_check "status $args: exit 2, one line" bash -c "[ $rc -eq 2 ] && [ \$(wc -l <'$T/err') -eq 1 ] && if [ '$args' = --json=yes ]; then python3 -c \"import json; d=json.load(open('$T/out')); assert d['exit']==2 and 'takes no value' in d['error']\"; else [ ! -s '$T/out' ]; fi"
done
t_check "  the token is unchanged" [ "$before" = "$(token_objects dev)" ]
kb status --help
t_check "status --help" out_has "^usage: keybound status"
kb help
t_check "keybound help lists status" out_has "^  status "
t_done
