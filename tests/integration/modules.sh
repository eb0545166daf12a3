#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Which of the modules registered with p11-kit keybound loads, and what it says about
# them: only what the user asked for. A machine with tpm2-pkcs11 installed and no TPM gets
# no TPM noise and no ~/.tpm2_pkcs11; a TPM the user points at is used; KEYBOUND_MODULES,
# --modules and p11-kit's enable-in:/disable-in: choose.
. "$TESTS_SRCDIR/lib/testlib.sh"
. "$TESTS_SRCDIR/lib/tpmlib.sh"
command -v unshare >/dev/null || t_skip_all "unshare not installed"
kb_tpm_setup
kb_token soft

# A private p11-kit registry in $T/home/.config/pkcs11, with "user-config: only" so that
# the machine's own registrations stay out. p11-kit reads no user config in a process
# running as root: as root, keybound runs in a user namespace as uid 1000, which maps to
# root outside, so the test's files stay its own.
REG=$T/home/.config/pkcs11
mkdir -p "$REG/modules"
echo "user-config: only" >"$REG/pkcs11.conf"
as_user=()
if [ "$(id -u)" -eq 0 ]; then
    as_user=(unshare --user --map-user=1000 --map-group=1000)
    "${as_user[@]}" true 2>/dev/null ||
        t_skip_all "running as root without user namespaces: p11-kit would not read the test's registry"
fi
# register NAME PATH [LINE...]: NAME.module in the private registry.
register() {
    local name=$1 path=$2
    shift 2
    printf 'module: %s\n' "$path" >"$REG/modules/$name.module"
    [ $# -eq 0 ] || printf '%s\n' "$@" >>"$REG/modules/$name.module"
}
register softhsm2 "$SOFTHSM_MODULE"
register tpm2_pkcs11 "$TPM_MODULE"

# kbr [VAR=VALUE...] ARGS...: keybound (as kb) on the private registry, HOME in $T/home,
# with none of the TPM settings the test TPM exported (tpmlib quiets tpm2-pkcs11 itself):
# the VAR=VALUE given are all it gets.
kbr() {
    local envs=()
    while [ $# -gt 0 ] && [[ $1 == [A-Z]*=* ]]; do
        envs+=("$1")
        shift
    done
    run env -u TPM2_PKCS11_TCTI -u TPM2_PKCS11_STORE -u TPM2_PKCS11_LOG_LEVEL -u TSS2_LOG \
        -u XDG_CONFIG_HOME -u KEYBOUND_MODULES HOME="$T/home" "${envs[@]}" \
        "${as_user[@]}" setsid -w "$KEYBOUND" "$@"
}
TPM_ENV=("TPM2_PKCS11_TCTI=$TPM_TCTI" "TPM2_PKCS11_STORE=$TPM_DIR/store")
lists() { grep -q "^Token '$1'" "$T/out"; }
err_empty() { [ ! -s "$T/err" ]; }
err_lines() { [ "$(wc -l <"$T/err")" -eq "$1" ]; }
no_tpm_dir() { [ ! -e "$T/home/.tpm2_pkcs11" ]; }
# The machine's own TPM would rightly be used: those checks need a machine without one.
machine_tpm=
[ -e /dev/tpmrm0 ] || [ -e /dev/tpm0 ] && machine_tpm=1
t_check_no_tpm() {
    if [ -n "$machine_tpm" ]; then
        t_pass "$1 # SKIP this machine has a TPM"
    else
        t_check "$@"
    fi
}

# --- tpm2-pkcs11 registered, no TPM: quiet -------------------------------------------------
kbr tokens
t_check "tokens: SoftHSM's token listed from the registry" bash -c "[ $rc -eq 0 ] && grep -q \"^Token 'soft'\" '$T/out'"
t_check_no_tpm "  nothing on stderr (no TPM stack errors)" err_empty
t_check_no_tpm "  no \$HOME/.tpm2_pkcs11 made" no_tpm_dir
kbr tokens -v
t_check_no_tpm "tokens -v: one line, naming tpm2_pkcs11 and why it was left out" \
    bash -c "[ $rc -eq 0 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q 'tpm2_pkcs11 .*left out: no TPM' '$T/err'"
t_check_no_tpm "  still no \$HOME/.tpm2_pkcs11" no_tpm_dir

# --- a TPM the user points at (TPM2_PKCS11_TCTI) is used, quietly --------------------------
kbr "${TPM_ENV[@]}" tokens
t_check "tokens with TPM2_PKCS11_TCTI: the TPM's token and SoftHSM's" bash -c "[ $rc -eq 0 ] && grep -q \"^Token 'dev'\" '$T/out' && grep -q \"^Token 'soft'\" '$T/out'"
t_check "  nothing on stderr (tpm2-pkcs11's warnings quieted)" err_empty

# --- KEYBOUND_MODULES and --modules choose ------------------------------------------------
kbr "${TPM_ENV[@]}" KEYBOUND_MODULES=softhsm2 tokens
t_check "KEYBOUND_MODULES=softhsm2: only SoftHSM's token" bash -c "[ $rc -eq 0 ] && grep -q \"^Token 'soft'\" '$T/out' && ! grep -q \"^Token 'dev'\" '$T/out'"
kbr "${TPM_ENV[@]}" KEYBOUND_MODULES=tpm2_pkcs11 tokens
t_check "KEYBOUND_MODULES=tpm2_pkcs11: only the TPM's token" bash -c "[ $rc -eq 0 ] && grep -q \"^Token 'dev'\" '$T/out' && ! grep -q \"^Token 'soft'\" '$T/out'"
kbr "${TPM_ENV[@]}" KEYBOUND_MODULES=softhsm2 tokens --modules tpm2_pkcs11
t_check "--modules tpm2_pkcs11 over KEYBOUND_MODULES: only the TPM's token" bash -c "[ $rc -eq 0 ] && grep -q \"^Token 'dev'\" '$T/out' && ! grep -q \"^Token 'soft'\" '$T/out'"
kbr "${TPM_ENV[@]}" keys --modules "softhsm2, tpm2_pkcs11" --pin-file "$T/pin" pkcs11:token=dev
t_check "keys --modules 'softhsm2, tpm2_pkcs11': the TPM's token found" rc_is 0
kbr KEYBOUND_MODULES=softhsm tokens
t_check "KEYBOUND_MODULES=softhsm (a typo): exit 2, one line naming it" bash -c "[ $rc -eq 2 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q \"KEYBOUND_MODULES names 'softhsm'\" '$T/err'"
kbr tokens --modules softhsm2 --module "$SOFTHSM_MODULE"
t_check "--modules with --module: exit 2, one line saying to give one" bash -c "[ $rc -eq 2 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q -- '--module PATH and --modules NAMES both' '$T/err'"

# --- a registered module that fails to initialise --------------------------------------------
# The fault-injecting module in front of SoftHSM, failing C_Initialize: it says nothing.
register broken "$P11SHIM"
SHIM_ENV=("P11SHIM_MODULE=$SOFTHSM_MODULE" "P11SHIM_FAIL_FUNC=C_Initialize")
kbr "${SHIM_ENV[@]}" "${TPM_ENV[@]}" tokens
t_check "a registered module failing C_Initialize: nothing on stderr, the others listed" \
    bash -c "[ $rc -eq 0 ] && [ ! -s '$T/err' ] && grep -q \"^Token 'soft'\" '$T/out'"
kbr "${SHIM_ENV[@]}" "${TPM_ENV[@]}" tokens -v
t_check "  with -v: one line, naming it" bash -c "[ $rc -eq 0 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q 'module broken .*failed to initialise (CKR_DEVICE_ERROR)' '$T/err'"
kbr "${SHIM_ENV[@]}" KEYBOUND_MODULES="softhsm2 broken" tokens
t_check "  named in KEYBOUND_MODULES: one warning without -v" bash -c "[ $rc -eq 0 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q 'warning: PKCS#11 module broken' '$T/err'"
rm "$REG/modules/broken.module"

# --- p11-kit's enable-in: and disable-in: compare with "keybound" --------------------------
register softhsm2 "$SOFTHSM_MODULE" "disable-in: keybound"
kbr "${TPM_ENV[@]}" tokens
t_check "disable-in: keybound hides the module" bash -c "[ $rc -eq 0 ] && ! grep -q \"^Token 'soft'\" '$T/out' && grep -q \"^Token 'dev'\" '$T/out'"
kbr "${TPM_ENV[@]}" KEYBOUND_MODULES=softhsm2 tokens
t_check "  and naming it then is an error (exit 2, one line)" bash -c "[ $rc -eq 2 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q \"names 'softhsm2', which is not a PKCS#11 module p11-kit registers for keybound\" '$T/err'"
register softhsm2 "$SOFTHSM_MODULE" "disable-in: p11tool"
kbr tokens
t_check "disable-in: p11tool leaves it to keybound" lists soft
register softhsm2 "$SOFTHSM_MODULE" "enable-in: p11tool"
kbr tokens
t_check "enable-in: p11tool hides it from keybound" bash -c "! grep -q \"^Token 'soft'\" '$T/out'"
register softhsm2 "$SOFTHSM_MODULE" "enable-in: p11tool, keybound"
kbr tokens
t_check "enable-in: p11tool, keybound shows it" lists soft
register softhsm2 "$SOFTHSM_MODULE"

# --- the TPM token's identity: trimmed to read, raw in URIs ----------------------------------
# tpm2-pkcs11 pads the model with NULs ("SW   TPM" then 8 NULs). People, JSON and the policy
# see it trimmed; a URI keybound prints keeps the NULs, since p11-kit matches byte for byte.
MOD="--module $TPM_MODULE"
json_is() { python3 -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if ($1) else 1)"; }
no_nul_in_json() { ! grep -q 'u0000' "$T/out"; }
kb tokens $MOD --json
t_check "tokens --json: the TPM token's model, manufacturer and serial trimmed" \
    json_is "[(t['model'], t['manufacturer'], t['serial']) for t in d['tokens'] if t['label']=='dev']==[('SW   TPM', 'IBM', '0000000000000000')]"
t_check "  no NUL anywhere in the JSON" no_nul_in_json
t_check "  its URI keeps the model's NUL padding" json_is "'model=SW%20%20%20TPM%00%00%00%00%00%00%00%00;' in [t for t in d['tokens'] if t['label']=='dev'][0]['uri']"
token_uri=$(python3 -c "import json; print([t['uri'] for t in json.load(open('$T/out'))['tokens'] if t['label']=='dev'][0])")
kb keygen $MOD --token "$token_uri" --label ident --pin-file "$T/pin"
t_check "keygen --token with the URI tokens printed: the TPM token opens" rc_is 0
key_uri=$(cat "$T/out")
t_check "  the key URI it prints keeps the NULs too" bash -c "grep -q 'model=SW%20%20%20TPM%00%00%00%00%00%00%00%00;.*object=ident;type=private' '$T/out'"
kb keys $MOD --pin-file "$T/pin" --json "$key_uri"
t_check "keys with the printed key URI: that one key, no NUL in the JSON" \
    bash -c "[ $rc -eq 0 ] && ! grep -q u0000 '$T/out' && python3 -c \"import json; d=json.load(open('$T/out')); assert [k['label'] for k in d['keys']]==['ident']\""
kbr "${TPM_ENV[@]}" keys --pin-file "$T/pin" "$key_uri"
t_check "  through the registry too" bash -c "[ $rc -eq 0 ] && grep -q \"^Key 'ident'\" '$T/out'"
run env GNUTLS_PIN=1234 p11tool --provider "$TPM_MODULE" --login --list-privkeys "$key_uri"
t_check "  and GnuTLS (p11tool) opens it" bash -c "grep -q 'Label: ident' '$T/out'"
kb csr $MOD --pin-file "$T/pin" --key "$key_uri" --subject CN=ident -o "$T/ident.csr"
t_check "csr --key with the printed URI: signed in the TPM" bash -c "[ $rc -eq 0 ] && certtool --crq-info --infile '$T/ident.csr' 2>&1 | grep -q 'Self signature: verified'"

# --- whose word the key facts are --------------------------------------------------------
# tpm2-pkcs11's never-extractable, local, ... are rows in its sqlite store, not the TPM's
# word: check and keys say so. SoftHSM's are the token's own.
kb_pki_policy
sed -e 's/^allow = manufacturer=.*/allow = manufacturer=IBM model="SW   TPM"/' \
    -e 's/^algorithms = .*/algorithms = ec-p256 ec-p384 rsa-2048+/' \
    "$T/policy.conf" >"$T/tpm-policy.conf"
kb_device_cert dev "$key_uri" ident-1 ident
kb check $MOD --pin-file "$T/pin" --policy "$T/tpm-policy.conf" --key "$key_uri"
t_check "check on the TPM key: its facts said to be the module store's, not proven" \
    bash -c "[ $rc -eq 0 ] && grep -qx \"  key facts:    reported by the module's store; not proven - see attestation\" '$T/out'"
kb check $MOD --pin-file "$T/pin" --policy "$T/tpm-policy.conf" --key "$key_uri" --json
t_check "check --json: key_facts_source module-store, admitted" \
    json_is "d['devices'][0]['key']['facts_source']=='module-store' and d['decision']=='admit'"
t_check "  the policy saw the trimmed model" \
    json_is "[c['observed'] for c in d['devices'][0]['checks'] if c['id']=='token.allow']==[\"manufacturer 'IBM', model 'SW   TPM', serial '0000000000000000'\"]"
t_check "  no NUL anywhere in the JSON" no_nul_in_json
kb keys $MOD --pin-file "$T/pin" --json "$key_uri"
t_check "keys --json on the TPM: facts_source module-store" json_is "d['keys'][0]['facts_source']=='module-store'"
kb keys $MOD --pin-file "$T/pin" "$key_uri"
t_check "keys on the TPM: the note beside the protection" out_has "^  facts:      reported by the module's store; not proven"

SOFT="--module $SOFTHSM_MODULE"
kb keygen $SOFT --token pkcs11:token=soft --label s1 --pin-file "$T/pin"
soft_key=$(cat "$T/out")
TOKEN_MODULE=$SOFTHSM_MODULE kb_device_cert soft "$soft_key" soft-1 soft1
kb check $SOFT --pin-file "$T/pin" $POL --key "$soft_key" --json
t_check "check --json on SoftHSM: key_facts_source token" json_is "d['devices'][0]['key']['facts_source']=='token' and d['decision']=='admit'"
kb check $SOFT --pin-file "$T/pin" $POL --key "$soft_key"
t_check "  and no note in the text" out_lacks "key facts:"
kb keys $SOFT --pin-file "$T/pin" --json "$soft_key"
t_check "keys --json on SoftHSM: facts_source token" json_is "d['keys'][0]['facts_source']=='token'"
# The shim in front of tpm2-pkcs11 has another file name: the module is told by its CK_INFO.
kbshim P11SHIM_MODULE="$TPM_MODULE" keys --module "$P11SHIM" --pin-file "$T/pin" --json "$key_uri"
t_check "tpm2-pkcs11 under another file name: still module-store" json_is "d['keys'][0]['facts_source']=='module-store'"

t_done
