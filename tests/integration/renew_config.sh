#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keybound renew --config FILE against the test EST server: the [renew] file alone renews,
# the command line overrides it, and every kind of key (text, duration, yes/no) is read.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
kb_est_enrolled
json_is() { python3 -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if ($1) else 1)"; }
reenrolls() { grep -c '^POST /.well-known/est/simplereenroll 200 auth=cert' "$T/est/requests.log" 2>/dev/null || true; }

# The file a unit would run with, every path absolute.
cat >"$T/renew.conf" <<CONF
# the device's renewal
[renew]
key = $laptop
est = $EST_URL
ca = $T/pki/ca.pem
policy = $T/policy.conf
module = $SOFTHSM_MODULE
pin-file = $T/pin
if-expires-within = 7d
prune = no
CONF
chmod 644 "$T/renew.conf"

kb renew --config "$T/renew.conf"
t_check "renew --config with 30 days left and if-expires-within = 7d: MONITORING, exit 0" \
    bash -c "[ $rc -eq 0 ] && grep -qx 'state: MONITORING' '$T/out'"
t_check "  nothing was asked of the server" [ "$(reenrolls)" -eq 0 ]

sleep 1 # the new certificate's notBefore must differ from the old one's by a second
kb renew --config "$T/renew.conf" --if-expires-within 60d
t_check "--if-expires-within 60d on the command line overrides the file: ISSUED and admitted" \
    bash -c "[ $rc -eq 0 ] && grep -qx 'state: ISSUED' '$T/out' && grep -q '^decision: ADMITTED' '$T/out'"
t_check "  over /simplereenroll with the current certificate" [ "$(reenrolls)" -eq 1 ]

# json, rekey and the fingerprint from the file; the command line's --module replaces the
# file's modules, and its --ca the file's fingerprint.
kb keys $MOD --pin-file "$T/pin" --json "pkcs11:token=dev;object=laptop"
old_id=$(python3 -c "import json; print(json.load(open('$T/out'))['keys'][0]['id'])")
fp=$(certtool --fingerprint --hash sha256 --infile "$T/pki/ca.pem" 2>/dev/null)
cat >"$T/rekey.conf" <<CONF
[renew]
key = pkcs11:token=dev;object=laptop
est = $EST_URL
ca-fingerprint = sha256:$fp
save-cacerts = $T/cacerts.pem
max-wait = 5
policy = $T/policy.conf
modules = softhsm2
pin-env = KB_TEST_PIN
rekey = true
prune = yes
json = yes
CONF
chmod 644 "$T/rekey.conf"
run env KB_TEST_PIN=1234 setsid -w "$KEYBOUND" renew --config "$T/rekey.conf" --module "$SOFTHSM_MODULE"
t_check "rekey = true, json = yes, pin-env, ca-fingerprint from the file: ISSUED, as JSON" \
    json_is "d['state']=='ISSUED' and d['decision']=='admit'"
t_check "  the fingerprint bootstrap saved /cacerts (save-cacerts)" grep -q "BEGIN CERTIFICATE" "$T/cacerts.pem"
kb keys $MOD --pin-file "$T/pin" --json "pkcs11:token=dev;object=laptop"
t_check "  a new key under the old label, with its certificate" \
    json_is "len(d['keys'])==1 and d['keys'][0]['id']!='$old_id' and len(d['keys'][0]['certificates'])==1"

rm -f "$T/cacerts.pem"
sleep 1
run env KB_TEST_PIN=1234 setsid -w "$KEYBOUND" renew --config "$T/rekey.conf" --module "$SOFTHSM_MODULE" \
    --ca "$T/pki/other-ca.pem"
t_check "--ca on the command line replaces the file's ca-fingerprint (an untrusted CA: UNREACHABLE)" \
    bash -c "[ $rc -eq 5 ] && grep -q 'not trusted by the anchors in .*other-ca.pem' '$T/err'"
t_check "  no bootstrap by fingerprint was made" [ ! -e "$T/cacerts.pem" ]

# The example shipped for the unit parses, and names its own settings.
sed -e "s#^key = .*#key = pkcs11:token=dev;object=laptop#" -e "s#^est = .*#est = $EST_URL#" \
    -e "s#^ca = .*#ca = $T/pki/ca.pem#" -e "s#^policy = .*#policy = $T/policy.conf#" \
    "$TESTS_SRCDIR/../contrib/renew.conf" >"$T/example.conf"
chmod 644 "$T/example.conf"
kb renew --config "$T/example.conf" $MOD --pin-file "$T/pin"
t_check "contrib/renew.conf with this test's key, server and files: ISSUED (less than 30d left)" \
    bash -c "[ $rc -eq 0 ] && grep -qx 'state: ISSUED' '$T/out'"
t_done
