#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The signer contract: after a PKCS#11 error the key object is dropped and re-imported;
# the next signature works and never hangs on the broken object.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
kb_token dev
for type in ec-p256 rsa-2048 ed25519; do
    kb keygen $MOD --token pkcs11:token=dev --label "k-$type" --type $type --pin-file "$T/pin"
    uri=$(cat "$T/out")
    [ $type = ec-p256 ] && ec_uri=$uri
    run timeout 60 "$P11PROBE" sign "$SOFTHSM_MODULE" "$T/pin" "$uri" 3
    t_check "$type: three signatures verify with one import" bash -c "[ \$(grep -c 'ok, verified' '$T/out') -eq 3 ] && grep -qx 'imports=1' '$T/out'"
done
uri=$ec_uri

# The token fails the second signature once (each signature is two C_Sign calls: the
# first asks for the length).
run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_FAIL_FUNC=C_Sign P11SHIM_FAIL_AFTER=2 \
    P11SHIM_FAIL_COUNT=1 timeout 60 "$P11PROBE" sign "$P11SHIM" "$T/pin" "$uri" 4
t_check "C_Sign error: that signature fails" grep -q '^sign 2: error: the token failed to sign' "$T/out"
t_check "  the next ones succeed (no hang)" bash -c "grep -qx 'sign 3: ok, verified' '$T/out' && grep -qx 'sign 4: ok, verified' '$T/out'"
t_check "  on a freshly imported key object" grep -qx 'imports=2' "$T/out"

# P11SHIM_COUNT, which the benchmarks count with: one line per signature made, not one per
# C_Sign (the length query makes none), and none for a signature that failed.
run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_COUNT="$T/sigs" P11SHIM_FAIL_FUNC=C_Sign \
    P11SHIM_FAIL_AFTER=2 P11SHIM_FAIL_COUNT=1 timeout 60 "$P11PROBE" sign "$P11SHIM" "$T/pin" "$uri" 4
t_check "P11SHIM_COUNT: 3 lines for 3 signatures made of 4" [ "$(grep -cx C_Sign "$T/sigs")" -eq 3 ]
t_check "  and nothing else in it" [ "$(wc -l <"$T/sigs")" -eq 3 ]

# The token goes away for a while: the session cannot re-open, then it can again.
run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_FAIL_FUNC=C_Sign P11SHIM_FAIL_RV=CKR_DEVICE_REMOVED \
    P11SHIM_FAIL_AFTER=2 P11SHIM_FAIL_COUNT=2 timeout 60 "$P11PROBE" sign "$P11SHIM" "$T/pin" "$uri" 5
t_check "device removed twice: two errors" [ "$(grep -c 'error' "$T/out")" -eq 2 ]
t_check "  then signing recovers" grep -qx 'sign 5: ok, verified' "$T/out"
t_check "  the probe did not hang" [ "$rc" -ne 124 ]

run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_FAIL_FUNC=C_OpenSession P11SHIM_FAIL_AFTER=1 \
    P11SHIM_FAIL_COUNT=1 P11SHIM_LOG="$T/shim.log" timeout 60 "$P11PROBE" sign "$P11SHIM" "$T/pin" "$uri" 3
t_check "C_OpenSession failing once does not hang the signer" [ "$rc" -ne 124 ]
t_check "  and signatures verify afterwards" grep -qx 'sign 3: ok, verified' "$T/out"
t_done
