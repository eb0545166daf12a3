#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keybound tokens: listing, URI filters, JSON, and a registry with broken modules.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
kb_token alpha
kb_token beta

kb tokens $MOD
t_check "tokens lists both tokens" rc_is 0
t_check "  alpha is there" out_has "^Token 'alpha'"
t_check "  beta is there" out_has "^Token 'beta'"
t_check "  with SoftHSM's manufacturer and model" out_has "manufacturer: SoftHSM project"
t_check "  with its flags as words" out_has "flags: *login-required, rng, initialized"
t_check "  with a token URI" out_has "uri: *pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=[0-9a-f]*;token=alpha"

kb tokens $MOD 'pkcs11:token=beta'
t_check "a URI narrows the list to one token" out_has "^Token 'beta'"
t_check "  and leaves the other out" out_lacks "Token 'alpha'"

kb tokens $MOD --json
t_check "--json is valid JSON with both tokens" python3 -c "
import json,sys
d=json.load(open('$T/out'))
labels=sorted(t['label'] for t in d['tokens'] if 'initialized' in t['flags'])
assert labels==['alpha','beta'], labels
t=[t for t in d['tokens'] if t['label']=='alpha'][0]
assert t['manufacturer']=='SoftHSM project' and t['model']=='SoftHSM v2', t
assert len(t['serial'])==16 and 'login-required' in t['flags'], t
assert t['uri'].startswith('pkcs11:') and t['module_path']=='$SOFTHSM_MODULE', t
"

# The token URI printed by 'tokens' selects that token again.
uri=$(python3 -c "import json; print([t['uri'] for t in json.load(open('$T/out'))['tokens'] if t['label']=='beta'][0])")
kb tokens $MOD "$uri"
t_check "the printed URI selects its token" bash -c "grep -c '^Token' '$T/out' | grep -qx 1 && grep -q \"Token 'beta'\" '$T/out'"

kbshim P11SHIM_SLOT_FLAGS=CKF_HW_SLOT P11SHIM_TOKEN_FLAGS=CKF_USER_PIN_COUNT_LOW tokens --module "$P11SHIM" 'pkcs11:token=alpha'
t_check "slot and PIN flags are shown (via the shim)" out_has "flags: *login-required, hardware-slot, rng, initialized, pin-count-low"

# A registry with a module that does not exist, one that is no PKCS#11 module and one that
# fails C_Initialize must still show SoftHSM's tokens. p11-kit reads its registry from a
# system directory, so this runs in a private mount namespace with a temp registry bound
# over it; nothing outside the namespace changes.
if unshare --mount true 2>/dev/null; then
    mkdir -p "$T/registry"
    echo "module: $SOFTHSM_MODULE" >"$T/registry/softhsm2.module"
    echo "module: $T/no-such-module.so" >"$T/registry/missing.module"
    echo "module: $(command -v bash)" >"$T/registry/not-pkcs11.module"
    echo "module: $P11SHIM" >"$T/registry/fails-init.module"
    # The shim fails C_Initialize when P11SHIM_MODULE is not set (and says so itself).
    run env -u P11SHIM_MODULE unshare --mount sh -c \
        "mount --bind '$T/registry' /usr/share/p11-kit/modules && exec setsid -w '$KEYBOUND' tokens"
    t_check "broken registered modules do not hide the others" out_has "^Token 'alpha'"
    t_check "  and the command succeeds" rc_is 0
    t_check "  nothing from keybound or p11-kit on stderr without -v" \
        bash -c "! grep -v '^p11shim: ' '$T/err' | grep -q ."
    run env -u P11SHIM_MODULE unshare --mount sh -c \
        "mount --bind '$T/registry' /usr/share/p11-kit/modules && exec setsid -w '$KEYBOUND' tokens -v"
    t_check "  with -v, the missing module is reported" err_has "no-such-module.so"
    t_check "  with -v, the module that failed to initialise is reported, once" \
        bash -c "[ \$(grep -c 'fails-init' '$T/err') -eq 1 ] && grep -q 'fails-init.*failed to initialise' '$T/err'"
else
    t_pass "# SKIP unshare not permitted here: registry test"
fi

t_done
