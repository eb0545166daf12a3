#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A [renew] file keybound renew --config cannot use: one line naming the file, the line and
# what to do, exit 2; nothing is asked of the EST server and the token stays as it was.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
kb_est_enrolled

before=$(token_objects dev)
requests=$(wc -l <"$T/est/requests.log")
good="key = pkcs11:token=dev;object=laptop
est = $EST_URL
ca = $T/pki/ca.pem
policy = $T/policy.conf
pin-file = $T/pin"

# bad DESC PATTERN BODY [OPTIONS...]: renew --config with BODY as the file.
bad() {
    local desc=$1 pattern=$2 body=$3
    shift 3
    printf '%s\n' "$body" >"$T/renew.conf"
    chmod 644 "$T/renew.conf"
    kb renew --config "$T/renew.conf" $MOD "$@"
    t_check "$desc: exit 2" rc_is 2
    t_check "  one line on stderr" err_one_line
    t_check "  saying where and what" err_has "$pattern"
    t_check "  nothing on stdout" [ ! -s "$T/out" ]
    t_check "  the token is unchanged" [ "$before" = "$(token_objects dev)" ]
    t_check "  nothing was asked of the EST server" [ "$(wc -l <"$T/est/requests.log")" -eq "$requests" ]
}

bad "a misspelt key" \
    "^keybound: error: $T/renew.conf:3: unknown key 'est-url' in \[renew\]; keys are the long options of keybound renew: est, ca, ca-fingerprint, " \
    "[renew]
key = pkcs11:token=dev;object=laptop
est-url = $EST_URL"
bad "the PIN in the file" "renew.conf:7: 'pin': a renew file never holds the PIN; write pin-file = FILE" \
    "[renew]
$good
pin = 1234"
t_check "  the PIN is not echoed" err_lacks "1234"
bad "a pin-value in the key's URI" "renew.conf:2: key: the URI carries pin-value; a renew file never holds the PIN" \
    "[renew]
key = pkcs11:token=dev;object=laptop?pin-value=1234
est = $EST_URL"
t_check "  the PIN is not echoed" err_lacks "1234"
bad "a bad duration" "renew.conf:7: if-expires-within '30' is not a duration such as 30d or 12h" \
    "[renew]
$good
if-expires-within = 30"
bad "a yes/no key with another value" "renew.conf:7: rekey must be yes, no, true or false, not 'on'" \
    "[renew]
$good
rekey = on"
bad "a misspelt URI attribute" "renew.conf:2: key: .*has an attribute keybound does not know" \
    "[renew]
key = pkcs11:tokn=dev;object=laptop
est = $EST_URL"
bad "an http:// EST URL" "renew.conf:3: est: EST URL 'http://localhost' must start with https://" \
    "[renew]
key = pkcs11:token=dev;object=laptop
est = http://localhost"
bad "ca and ca-fingerprint together" "renew.conf:7: ca-fingerprint and ca do not go together" \
    "[renew]
$good
ca-fingerprint = sha256:$(printf '0%.0s' $(seq 64))"
bad "a key set twice" "renew.conf:7: 'est' is set twice in \[renew\]" \
    "[renew]
$good
est = $EST_URL"
bad "--force in the file" "renew.conf:7: 'force' is for the command line only (keybound renew --force)" \
    "[renew]
$good
force = yes"
bad "a section other than [renew]" "renew.conf:1: unknown section \[tunnel db\]; a renew file has one \[renew\] section" \
    "[tunnel db]
$good"
bad "no [renew] section" "renew.conf: no \[renew\] section; see keybound.conf(5)" \
    "; empty"
bad "an indented key" "renew.conf:3: this line is indented" \
    "[renew]
key = pkcs11:token=dev;object=laptop
  est = $EST_URL"
bad "no est, in the file or on the command line" "renew.conf: no est in \[renew\]: write est = URL there, or give --est URL" \
    "[renew]
key = pkcs11:token=dev;object=laptop"
bad "a bad value on the command line over a good file" "keybound renew: --max-wait takes seconds from 0 to 86400, not 'soon'" \
    "[renew]
$good" --max-wait soon

# The file names the policy and the PIN file: it is trusted as they are.
printf '[renew]\n%s\n' "$good" >"$T/renew.conf"
chmod 666 "$T/renew.conf"
kb renew --config "$T/renew.conf" $MOD
t_check "a file every user can write: exit 2, refused, saying so" \
    bash -c "[ $rc -eq 2 ] && grep -q 'renew config $T/renew.conf is writable by every user' '$T/err'"
kb renew --config "$T/missing.conf" $MOD
t_check "a file that is not there: exit 2, naming it" bash -c "[ $rc -eq 2 ] && grep -q 'missing.conf' '$T/err'"
t_check "  one line" err_one_line
t_check "nothing was asked of the EST server by any of them" [ "$(wc -l <"$T/est/requests.log")" -eq "$requests" ]
t_done
