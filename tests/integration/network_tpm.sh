#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keybound network profile and network check on a TPM key (swtpm, tpm2-pkcs11 under
# tpm2-abrmd, which flushes each client's transient objects), against FreeRADIUS and
# eapol_test as in network.sh: the profile with its wpa_supplicant.service drop-in
# authenticates, a wrong server name gets no signature, and the TPM's dictionary-attack
# counter counts no more than the wrong PINs the test itself sends, each once: keybound
# refuses to send a rejected PIN again, and network check takes it out of the profile so
# that the supplicant cannot.
. "$TESTS_SRCDIR/lib/testlib.sh"
. "$TESTS_SRCDIR/lib/tpmlib.sh"
. "$TESTS_SRCDIR/lib/radius.sh"
radius_peers_or_skip
[ -n "$PKCS11_SPY" ] || t_skip_all "OpenSC's pkcs11-spy (opensc-pkcs11) not installed"
[ -f "${P11SHIM:-}" ] || t_skip_all "the p11shim was not built"
kb_tpm_setup abrmd
kb_tpm_policy
POLFILE=$T/tpm-policy.conf
cat >>"$POLFILE" <<POLICY

[network "wired"]
ca = ca.pem

[network "rogue"]
ca = ca.pem

[network "office"]
ca = ca.pem

[network "rsa"]
ca = ca.pem

[network "guest"]
ca = ca.pem
POLICY
# The counter must not decay while the test runs (tpmlib sets a recovery time of 1 s).
tpm_tools tpm2_dictionarylockout --setup-parameters --max-tries=1000 --recovery-time=10000 \
    --lockout-recovery-time=1
tpm_tools tpm2_dictionarylockout --clear-lockout
lockout() { printf "%d" "$(tpm_tools tpm2_getcap properties-variable | sed -n "s/^TPM2_PT_LOCKOUT_COUNTER: *//p")"; }
# counted WHY N: the counter is N; its history goes to the TAP output.
counted() {
    local n
    n=$(lockout)
    echo "# TPM2_PT_LOCKOUT_COUNTER = $n ($1)"
    [ "$n" = "$2" ]
}
t_check "the TPM's dictionary-attack counter is 0 at the start" counted start 0

mode_is() { [ "$(stat -c %a "$2")" = "$1" ]; }
all_0600() {
    local d=$1 f
    shift
    for f in "$@"; do mode_is 600 "$d/$f" || return 1; done
    [ "$(ls -A "$d" | sort)" = "$(printf '%s\n' "$@" | sort)" ]
}
shown() {
    grep -a -E 'CTRL-EVENT|ENGINE:|SSL3 alert|SUCCESS|FAILURE' "$T/$1.eapol" | tail -8 | sed 's/^/# eapol_test: /'
    return 1
}
as_laptop1() {
    eapol_ok "$1" && [ "$(eapol_reply "$1")" = "device laptop-1 serial $serial1" ] || shown "$1"
}
failed() { eapol_failed "$1" || shown "$1"; }
one_wrong_login() { [ "$(calls C_Login)" -eq 1 ] && grep -q '^C_Login 0x000000a0$' "$T/shim.log"; }

kb keygen $MOD --token pkcs11:token=dev --label laptop --type ec-p256 --pin-file "$T/pin"
laptop=$(cat "$T/out")
kb_device_cert dev "$laptop" laptop-1 laptop
serial1=$(cert_serial "$T/laptop.pem")
t_check "a P-256 key made in the TPM by keybound, with its certificate laptop-1" \
    bash -c "[ -n '$laptop' ] && [ -n '$serial1' ]"
radius_start
t_check "FreeRADIUS is ready on 127.0.0.1:$RADIUS_PORT" grep -q '^Ready to process requests' "$RADIUS_LOG"
prof=(network profile $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=laptop")

# --- the profile and its drop-in -------------------------------------------------------------
kb "${prof[@]}" --ca "$T/ca.pem" --server-name "$RADIUS_NAME" --wired --format wpa -o "$T/wpa"
t_check "network profile --format wpa on the TPM key: exit 0" rc_is 0
W=$T/wpa/keybound-wired.conf
D=$T/wpa/keybound-wired-wpa_supplicant.conf
t_check "  the profile, certificate, CA and a wpa_supplicant.service drop-in, each 0600" \
    all_0600 "$T/wpa" keybound-wired.conf keybound-wired-cert.pem keybound-wired-ca.pem \
    keybound-wired-wpa_supplicant.conf
t_check "  the profile loads tpm2-pkcs11 only" grep -qx "pkcs11_module_path=$TPM_MODULE" "$W"
t_check "  the drop-in sets the store and the TCTI this enrolment used" bash -c "
    [ \"\$(grep -v '^#' '$D' | grep .)\" = \"\$(printf '%s\n' '[Service]' \
        'Environment=TPM2_PKCS11_STORE=$TPM_DIR/store' 'Environment=TPM2_PKCS11_TCTI=$TPM_TCTI')\" ]"
# The supplicant gets the drop-in's environment and nothing of the test's: wpa_supplicant.service
# would run with no TPM2_PKCS11_* of its own.
mapfile -t dropin < <(sed -n 's/^Environment=//p' "$D")
with_dropin() {
    local store=$TPM2_PKCS11_STORE tcti=$TPM2_PKCS11_TCTI
    unset TPM2_PKCS11_STORE TPM2_PKCS11_TCTI
    "$@"
    export TPM2_PKCS11_STORE=$store TPM2_PKCS11_TCTI=$tcti
}
with_dropin eapol wired "$W" "${dropin[@]}"
t_check "eapol_test with the profile and the drop-in's environment: SUCCESS, laptop-1's serial" \
    as_laptop1 wired
t_check "  the echoed serial is that of the profile's certificate" \
    [ "$serial1" = "$(cert_serial "$T/wpa/keybound-wired-cert.pem")" ]
t_check "  TLS 1.3" grep -q 'SSL: Using TLS version TLSv1.3' "$T/wired.eapol"
with_dropin eapol_counted wired-counted "$W" "${dropin[@]}"
t_check "  through the counting module: SUCCESS, one login, one signature in the TPM" bash -c "
    [ $(logins wired-counted 0x00000000) -eq 1 ] && [ $(logins wired-counted) -eq 1 ] &&
    [ $(sigs wired-counted) -eq 1 ] && [ $eapol_rc -eq 0 ]"
t_check "  no sensitive attribute read" [ "$(sensitive_reads "$T/wired-counted.shim")" -eq 0 ]
with_dropin eapol no-dropin "$W"
t_check "  (control: without the drop-in's environment the token is not found: FAILURE)" \
    bash -c "[ $eapol_rc -ne 0 ] && grep -q 'ENGINE: cannot load private key' '$T/no-dropin.eapol'"
t_check "the counter is still 0 after keygen, profile and three supplicant runs" \
    counted "right PIN only" 0

# --- an RSA-2048 key: TLS 1.3 signs with RSA-PSS, in the TPM -----------------------------------
kb keygen $MOD --token pkcs11:token=dev --label laptop-rsa --type rsa-2048 --pin-file "$T/pin"
kb_device_cert dev "$(cat "$T/out")" laptop-rsa laptop-rsa
kb network profile $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=laptop-rsa" \
    --ca "$T/ca.pem" --server-name "$RADIUS_NAME" --wired --name rsa --format wpa -o "$T/rsa"
with_dropin eapol rsa "$T/rsa/keybound-rsa.conf" "${dropin[@]}"
t_check "an RSA-2048 key in the TPM: SUCCESS with TLS 1.3, laptop-rsa's serial echoed" bash -c "
    [ $eapol_rc -eq 0 ] && grep -q 'SSL: Using TLS version TLSv1.3' '$T/rsa.eapol' &&
    [ '$(eapol_reply rsa)' = 'device laptop-rsa serial $(cert_serial "$T/laptop-rsa.pem")' ]"

# --- a wrong server name --------------------------------------------------------------------
kb "${prof[@]}" --ca "$T/ca.pem" --server-name evil.keybound.test --wired --name rogue \
    --format wpa -o "$T/rogue"
with_dropin eapol_counted rogue "$T/rogue/keybound-rogue.conf" "${dropin[@]}"
t_check "a wrong --server-name: eapol_test fails" failed rogue
t_check "  on 'Domain mismatch'" grep -q "err='Domain mismatch'" "$T/rogue.eapol"
t_check "  no signature in the TPM" [ "$(sigs rogue)" -eq 0 ]
t_check "  FreeRADIUS never saw a client certificate" \
    bash -c "! grep -q TLS-Client-Cert- '$T/rogue.radius'"
sed "s/evil\.keybound\.test/$RADIUS_NAME/" "$T/rogue/keybound-rogue.conf" >"$T/rogue-fixed.conf"
with_dropin eapol_counted rogue-fixed "$T/rogue-fixed.conf" "${dropin[@]}"
t_check "  (control: the right name in the same file: SUCCESS with 1 signature)" \
    bash -c "[ $eapol_rc -eq 0 ] && [ $(sigs rogue-fixed) -eq 1 ]"
t_check "  the counter is still 0" counted "wrong server name" 0

# --- the NetworkManager keyfile, as NetworkManager hands it to wpa_supplicant -----------------
kb "${prof[@]}" --ca "$T/ca.pem" --server-name "$RADIUS_NAME" --wired --name office -o "$T/nm"
t_check "network profile (nm) on the TPM key: exit 0, with the drop-in too" bash -c "
    [ $rc -eq 0 ] && cmp -s '$T/nm/keybound-office-wpa_supplicant.conf' '$D'"
if command -v nmcli >/dev/null; then
    RUN_STDIN=$T/nm/keybound-office.nmconnection run nmcli --offline connection modify
    t_check "  nmcli --offline: valid" rc_is 0
else
    t_check "  nmcli --offline: (skipped: network-manager not installed)" true
fi
run nm_to_wpa "$T/nm/keybound-office.nmconnection" "$T/office-nm.conf"
with_dropin eapol office-nm "$T/office-nm.conf" "${dropin[@]}"
t_check "  its settings through p11-kit-proxy, with the drop-in's environment: SUCCESS, laptop-1" \
    as_laptop1 office-nm
t_check "  the counter is still 0" counted "nm keyfile" 0

# --- a wrong PIN: the one try the test sends, and no other --------------------------------------
printf 'not-the-pin\n' >"$T/wrong-pin"
chmod 600 "$T/wrong-pin"
: >"$T/shim.log"
kbshim P11SHIM_MODULE="$TPM_MODULE" network profile --module "$P11SHIM" --pin-file "$T/wrong-pin" \
    $POL --key "pkcs11:token=dev;object=laptop" --ca "$T/ca.pem" --server-name "$RADIUS_NAME" \
    --wired --name guest --format wpa -o "$T/badpin"
t_check "a wrong PIN: network profile exits 6" rc_is 6
t_check "  after one refused login" one_wrong_login
t_check "  writing nothing" bash -c "[ -z \"\$(ls -A '$T/badpin' 2>/dev/null)\" ] &&
    [ ! -e '$KEYBOUND_STATE_DIR/network-guest.json' ]"
t_check "  the counter is 1: the one wrong PIN the test sent" counted "one wrong PIN sent" 1
: >"$T/shim.log"
kbshim P11SHIM_MODULE="$TPM_MODULE" network profile --module "$P11SHIM" --pin-file "$T/wrong-pin" \
    $POL --key "pkcs11:token=dev;object=laptop" --ca "$T/ca.pem" --server-name "$RADIUS_NAME" \
    --wired --name guest --format wpa -o "$T/badpin"
t_check "  again: exit 6 without a login" bash -c "[ $rc -eq 6 ] && [ $(calls C_Login) -eq 0 ]"
t_check "  the counter stays 1" counted "the same wrong PIN refused without a try" 1

# --- the PIN changed on the token: network check removes it from the profile --------------------
GNUTLS_SO_PIN=12345678 GNUTLS_PIN=5678 p11tool --batch --provider "$TPM_MODULE" \
    --initialize-pin "pkcs11:token=dev" >/dev/null 2>&1
t_check "the PIN changed with the SO PIN: the counter stays 1" counted "PIN changed" 1
: >"$T/shim.log"
kbshim P11SHIM_MODULE="$TPM_MODULE" network check --module "$P11SHIM" --name wired $POL
t_check "network check with the old PIN in the profile: exit 6" rc_is 6
t_check "  after one refused login" one_wrong_login
t_check "  the profile's pin line is gone" bash -c "! grep -q '^	pin=' '$W' && [ \$(stat -c %a '$W') = 600 ]"
t_check "  the counter is 2: the stored PIN, tried once" counted "stored PIN tried once" 2
EAPOL_TIMEOUT=3 with_dropin eapol_counted wired-nopin "$W" "${dropin[@]}"
t_check "eapol_test with the profile now: fails without logging in" \
    bash -c "[ $eapol_rc -ne 0 ] && [ $(logins wired-nopin) -eq 0 ] && [ $(sigs wired-nopin) -eq 0 ]"
: >"$T/shim.log"
kbshim P11SHIM_MODULE="$TPM_MODULE" network check --module "$P11SHIM" --name wired $POL
t_check "network check again: no login" [ "$(calls C_Login)" -eq 0 ]
t_check "the counter at the end is 2: the two wrong PINs the test sent, each once" \
    counted end 2
# The control: the supplicant's own tries do show in the counter. A copy of the profile with
# the old PIN put back costs one try in one eapol_test run (and would in every restart).
sed "s|^	private_key=.*|&\n	pin=\"1234\"|" "$W" >"$T/old-pin.conf"
EAPOL_TIMEOUT=3 with_dropin eapol_counted old-pin "$T/old-pin.conf" "${dropin[@]}"
t_check "(control: the profile with the old PIN put back: one refused login by the supplicant)" \
    [ "$(logins old-pin 0x000000a0)" -eq 1 ]
t_check "(control: and the counter sees it: 3)" counted "control: the supplicant's own try" 3
t_done
