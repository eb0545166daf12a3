#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keybound network profile and network check against the real 802.1X peers: FreeRADIUS
# (EAP-TLS only, on 127.0.0.1) and eapol_test, the supplicant of wpa_supplicant 2.10, for the
# wpa_supplicant file as written and for the NetworkManager keyfile as NetworkManager would
# hand it to wpa_supplicant; nmcli --offline for the keyfile itself. SoftHSM token; the
# p11shim counts what keybound and the supplicant ask of it (tests/lib/radius.sh says how).
. "$TESTS_SRCDIR/lib/testlib.sh"
. "$TESTS_SRCDIR/lib/radius.sh"
radius_peers_or_skip
command -v nmcli >/dev/null || t_skip_all "nmcli (network-manager) not installed"
[ -n "$PKCS11_SPY" ] || t_skip_all "OpenSC's pkcs11-spy (opensc-pkcs11) not installed"
[ -f "${P11SHIM:-}" ] || t_skip_all "the p11shim was not built"
kb_setup
# kb_device's setup, with laptop-1 valid since yesterday: the test EST server backdates what
# it issues by a minute, and the renewed certificate must be the newest.
kb_token dev
kb_pki_policy
kb keygen $MOD --token pkcs11:token=dev --label laptop --pin-file "$T/pin"
laptop=$(cat "$T/out")
CERT_FROM=$(kb_when "-1 day") CERT_TO=$(kb_when "+29 days") kb_device_cert dev "$laptop" laptop-1 laptop
json_is() { python3 -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if ($1) else 1)"; }
mode_is() { [ "$(stat -c %a "$2")" = "$1" ]; }
# all_0600 DIR FILE...: each file is in DIR with mode 0600, and DIR holds nothing else.
all_0600() {
    local d=$1 f
    shift
    for f in "$@"; do mode_is 600 "$d/$f" || return 1; done
    [ "$(ls -A "$d" | sort)" = "$(printf '%s\n' "$@" | sort)" ]
}
first_cert() { openssl x509 -in "$1"; }
same_cert() { [ "$(first_cert "$1" | sha256sum)" = "$(first_cert "$2" | sha256sum)" ]; }
tls13() { grep -q 'SSL: Using TLS version TLSv1.3' "$T/$1.eapol"; }
# shown NAME: eapol_test's last words and the server's, for a check that failed.
shown() {
    grep -a -E 'CTRL-EVENT|ENGINE:|SSL3 alert|SUCCESS|FAILURE' "$T/$1.eapol" | tail -8 | sed 's/^/# eapol_test: /'
    grep -a -E 'ERROR|rejected|Login incorrect|TLS Alert' "$T/$1.radius" | tail -4 | sed 's/^/# freeradius: /'
    return 1
}
# as_laptop1 NAME: the exchange succeeded and FreeRADIUS echoed laptop-1's serial.
as_laptop1() {
    eapol_ok "$1" && [ "$(eapol_reply "$1")" = "device laptop-1 serial $serial1" ] || shown "$1"
}
# failed NAME: the exchange failed.
failed() { eapol_failed "$1" || shown "$1"; }
no_client_cert() { ! radius_saw_client_cert "$T/$1.radius"; }
# one_wrong_login: exactly one login in $T/shim.log, refused as a wrong PIN.
one_wrong_login() {
    [ "$(calls C_Login)" -eq 1 ] && grep -q '^C_Login 0x000000a0$' "$T/shim.log"
}
empty_dir() { [ -z "$(ls -A "$1" 2>/dev/null)" ]; }
# entry NAME FIELD-EXPR: network check --json in $T/out has profile NAME with p satisfying it.
entry() {
    python3 - "$T/out" "$1" "$2" <<'PY2'
import json, sys
ps = [p for p in json.load(open(sys.argv[1]))["profiles"] if p["name"] == sys.argv[2]]
sys.exit(0 if len(ps) == 1 and eval(sys.argv[3], {"p": ps[0]}) else 1)
PY2
}

# The device: key "laptop" with laptop-1 (valid from yesterday, 30 days) and laptop-0, older
# but valid 60 days: keybound takes the newest valid one, laptop-1; libp11 would take the one
# with the latest notAfter. The networks the policy lists (it admits no unlisted one).
CERT_FROM=$(kb_when "-5 days") CERT_TO=$(kb_when "+60 days") \
    kb_device_cert dev "$laptop" laptop-0 laptop-0
cat >>"$T/policy.conf" <<POLICY

[network "wired"]
ca = ca.pem

[network "office"]
ca = ca.pem

[network "corp"]
ca = ca.pem
server-name = $RADIUS_NAME
min-tls = 1.3

[network "rogue"]
ca = ca.pem

[network "guest"]
ca = ca.pem
POLICY
radius_start
t_check "FreeRADIUS is ready on 127.0.0.1:$RADIUS_PORT (EAP-TLS, TLS 1.2-1.3)" \
    grep -q '^Ready to process requests' "$RADIUS_LOG"
serial1=$(cert_serial "$T/laptop.pem")
prof=(network profile $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=laptop")

# --- the wpa_supplicant file, wired ------------------------------------------------------
kb "${prof[@]}" --ca "$T/ca.pem" --server-name "$RADIUS_NAME" --wired --format wpa -o "$T/wpa"
t_check "network profile --wired --format wpa -o DIR: exit 0" rc_is 0
t_check "  SoftHSM's module is under /usr/lib/: no warning about the trusted path" \
    err_lacks "not under /usr/lib/"
W=$T/wpa/keybound-wired.conf
t_check "  DIR is 0700" mode_is 700 "$T/wpa"
t_check "  it holds the profile, the certificate and the CA, each 0600, nothing else" \
    all_0600 "$T/wpa" keybound-wired.conf keybound-wired-cert.pem keybound-wired-ca.pem
t_check "  the certificate file is laptop-1 (the newest valid one), not laptop-0" \
    same_cert "$T/wpa/keybound-wired-cert.pem" "$T/laptop.pem"
t_check "  and nothing else: its issuer is the trust anchor, which is left out" \
    [ "$(grep -c -- '-----BEGIN CERTIFICATE-----' "$T/wpa/keybound-wired-cert.pem")" -eq 1 ]
t_check "  the CA file is a copy of --ca" cmp -s "$T/wpa/keybound-wired-ca.pem" "$T/ca.pem"
t_check "  module lines: libp11's engine and the token's own module" bash -c "
    grep -qx 'pkcs11_engine_path=/usr/lib/.*/engines-3/pkcs11.so' '$W' &&
    grep -qx 'pkcs11_module_path=$SOFTHSM_MODULE' '$W'"
t_check "  network block: wired EAP-TLS, identity laptop-1, domain_match, the files" bash -c "
    grep -qx '	key_mgmt=IEEE8021X' '$W' && grep -qx '	eapol_flags=0' '$W' &&
    grep -qx '	eap=TLS' '$W' && grep -qx '	identity=\"laptop-1\"' '$W' &&
    grep -qx '	domain_match=\"$RADIUS_NAME\"' '$W' &&
    grep -qx '	ca_cert=\"$T/wpa/keybound-wired-ca.pem\"' '$W' &&
    grep -qx '	client_cert=\"$T/wpa/keybound-wired-cert.pem\"' '$W'"
t_check "  the key by token and id, the PIN in pin= only (never ?pin-value=)" bash -c "
    grep -qx '	private_key=\"pkcs11:.*token=dev.*;id=%[0-9A-Fa-f%]*;type=private\"' '$W' &&
    grep -qx '	pin=\"1234\"' '$W' && ! grep -q 'pin-value' '$W'"
cp "$W" "$T/wired.conf.orig"

eapol wired "$W"
t_check "eapol_test with the profile as written: SUCCESS, Access-Accept" eapol_ok wired
t_check "  FreeRADIUS saw laptop-1: the serial it echoes is that of keybound's certificate" \
    bash -c "[ '$(eapol_reply wired)' = 'device laptop-1 serial $serial1' ] &&
        [ '$serial1' = '$(cert_serial "$T/wpa/keybound-wired-cert.pem")' ]"
t_check "  TLS 1.3 (the server allows 1.2 and 1.3)" tls13 wired
eapol_counted wired-counted "$W"
t_check "  through the counting module too: SUCCESS, laptop-1" as_laptop1 wired-counted
t_check "  one login, accepted, and one token signature" bash -c "
    [ $(logins wired-counted 0x00000000) -eq 1 ] && [ $(logins wired-counted) -eq 1 ] &&
    [ $(sigs wired-counted) -eq 1 ]"
t_check "  and the supplicant read no sensitive attribute of the key" \
    [ "$(sensitive_reads "$T/wired-counted.shim")" -eq 0 ]

kb "${prof[@]}" --ca "$T/ca.pem" --server-name "$RADIUS_NAME" --wired --format wpa \
    -o "$T/wpa-json" --json
t_check "--json: name, format, files, the certificate, server name, wired, pin stored" json_is "
    d['schema']==1 and d['name']=='wired' and d['format']=='wpa' and d['wired'] is True and
    d['ssid'] is None and d['server_name']=='$RADIUS_NAME' and d['identity']=='laptop-1' and
    d['pin_stored'] is True and d['files']['dropin'] is None and
    d['files']['profile']=='$T/wpa-json/keybound-wired.conf' and
    d['certificate']['sha256']=='$(sha256_of "$T/laptop.pem")'"

# --- Wi-Fi, the server name and TLS 1.3 fixed by the policy's [network "corp"] ----------
kb "${prof[@]}" --ssid corp-net --name corp --format wpa -o "$T/corp"
C=$T/corp/keybound-corp.conf
t_check "--ssid corp-net --name corp: exit 0, server name and CA from the policy" bash -c "
    [ $rc -eq 0 ] && grep -qx '	ssid=\"corp-net\"' '$C' && grep -qx '	key_mgmt=WPA-EAP' '$C' &&
    grep -qx '	domain_match=\"$RADIUS_NAME\"' '$C' && cmp -s '$T/corp/keybound-corp-ca.pem' '$T/ca.pem'"
t_check "  min-tls 1.3: phase1 disables TLS 1.2 too" grep -q '^	phase1=".*tls_disable_tlsv1_2=1' "$C"
eapol corp "$C"
t_check "  eapol_test: SUCCESS, laptop-1's serial echoed" as_laptop1 corp
t_check "  with TLS 1.3" tls13 corp
kb "${prof[@]}" --ssid corp-net --name corp --server-name evil.keybound.test --format wpa -o "$T/corp2"
t_check "  a --server-name other than the policy's: exit 2 naming the policy's and the option" \
    bash -c "[ $rc -eq 2 ] && grep -q -- '$RADIUS_NAME.*--server-name' '$T/err' && [ \$(wc -l <'$T/err') -eq 1 ]"
t_check "  and nothing written" empty_dir "$T/corp2"

# --- the NetworkManager keyfile -----------------------------------------------------------
kb "${prof[@]}" --ca "$T/ca.pem" --server-name "$RADIUS_NAME" --wired --name office -o "$T/nm"
N=$T/nm/keybound-office.nmconnection
t_check "network profile --name office (nm, the default): exit 0" rc_is 0
t_check "  keyfile, certificate and CA, each 0600" \
    all_0600 "$T/nm" keybound-office.nmconnection keybound-office-cert.pem keybound-office-ca.pem
RUN_STDIN=$N run nmcli --offline connection modify
t_check "  nmcli --offline connection modify < keyfile: valid (exit 0)" rc_is 0
cp "$T/out" "$T/office.normalised"
t_check "  as NetworkManager reads it: ethernet, EAP-TLS, domain match, key URI, pin, TLS flags" \
    bash -c "f='$T/office.normalised'; grep -qx 'id=keybound-office' \$f && grep -qx 'type=ethernet' \$f &&
        grep -qx 'eap=tls;' \$f && grep -qx 'identity=laptop-1' \$f &&
        grep -qE '^domain(-suffix)?-match=$RADIUS_NAME\$' \$f && grep -qx 'pin=1234' \$f &&
        grep -qx 'private-key=pkcs11:.*token=dev.*;type=private' \$f && ! grep -q pin-value \$f &&
        grep -qx 'private-key-password-flags=4' \$f && grep -qx 'ca-cert=$T/nm/keybound-office-ca.pem' \$f &&
        grep -qx 'client-cert=$T/nm/keybound-office-cert.pem' \$f && grep -qx 'phase1-auth-flags=[0-9]*' \$f"
t_check "  the keyfile says pin-flags=0 (the PIN is NetworkManager's to keep, not an agent's)" \
    grep -qx 'pin-flags=0' "$N"
sed 's/^eap=tls;$/eap=bogus;/' "$N" >"$T/office.broken"
RUN_STDIN=$T/office.broken run nmcli --offline connection modify
t_check "  (nmcli --offline does refuse a broken keyfile: eap=bogus, exit 1)" rc_is 1
run nm_to_wpa "$N" "$T/office-nm.conf"
t_check "  translated as NetworkManager hands it to wpa_supplicant (tests/lib/radius.sh)" rc_is 0
eapol office-nm "$T/office-nm.conf"
t_check "  eapol_test with those settings (p11-kit-proxy, no module path): SUCCESS, laptop-1" \
    as_laptop1 office-nm
t_check "  TLS 1.3 (phase1-auth-flags)" tls13 office-nm

# --- a wrong server name: no signature, no client certificate sent ------------------------
kb "${prof[@]}" --ca "$T/ca.pem" --server-name evil.keybound.test --wired --name rogue \
    --format wpa -o "$T/rogue"
t_check "network profile --server-name evil.keybound.test: written (keybound cannot know)" rc_is 0
eapol_counted rogue "$T/rogue/keybound-rogue.conf"
t_check "  eapol_test fails: the server's certificate does not match the name" failed rogue
t_check "  'Domain mismatch'" grep -q "CTRL-EVENT-EAP-TLS-CERT-ERROR .*err='Domain mismatch'" "$T/rogue.eapol"
t_check "  no token signature was made (p11shim count 0)" [ "$(sigs rogue)" -eq 0 ]
t_check "  FreeRADIUS never saw a client certificate" no_client_cert rogue
# The control: the same file with the right name authenticates, through the same counting.
sed "s/evil\.keybound\.test/$RADIUS_NAME/" "$T/rogue/keybound-rogue.conf" >"$T/rogue-fixed.conf"
eapol_counted rogue-fixed "$T/rogue-fixed.conf"
t_check "  (control: the same file with the right name: SUCCESS, laptop-1)" as_laptop1 rogue-fixed
t_check "  (control: with 1 signature and the client certificate seen)" \
    bash -c "[ $(sigs rogue-fixed) -eq 1 ] && grep -q TLS-Client-Cert- '$T/rogue-fixed.radius'"

# --- a wrong PIN: exit 6, nothing written, never retried -----------------------------------
printf 'not-the-pin\n' >"$T/wrong-pin"
chmod 600 "$T/wrong-pin"
: >"$T/shim.log"
kbshim network profile --module "$P11SHIM" --pin-file "$T/wrong-pin" $POL \
    --key "pkcs11:token=dev;object=laptop" --ca "$T/ca.pem" --server-name "$RADIUS_NAME" \
    --wired --name guest --format wpa -o "$T/badpin"
t_check "a wrong PIN: network profile exits 6" rc_is 6
t_check "  after one login, refused" one_wrong_login
t_check "  nothing written: no file in DIR" empty_dir "$T/badpin"
t_check "  no registry entry" [ ! -e "$KEYBOUND_STATE_DIR/network-guest.json" ]
t_check "  the PIN appears in no output" bash -c "! grep -q not-the-pin '$T/out' '$T/err'"
: >"$T/shim.log"
kbshim network profile --module "$P11SHIM" --pin-file "$T/wrong-pin" $POL \
    --key "pkcs11:token=dev;object=laptop" --ca "$T/ca.pem" --server-name "$RADIUS_NAME" \
    --wired --name guest --format wpa -o "$T/badpin"
t_check "  again with the same PIN: exit 6 without a login (the marker)" \
    bash -c "[ $rc -eq 6 ] && [ $(calls C_Login) -eq 0 ]"

# --- no sensitive attribute is ever read --------------------------------------------------
: >"$T/shim.log"
kbshim network profile --module "$P11SHIM" --pin-file "$T/pin" $POL \
    --key "pkcs11:token=dev;object=laptop" --ca "$T/ca.pem" --server-name "$RADIUS_NAME" \
    --wired --format wpa -o "$T/shimmed"
t_check "network profile through the p11shim: exit 0, no sensitive attribute read" bash -c "
    [ $rc -eq 0 ] && [ -s '$T/shim.log' ] && [ $(sensitive_reads "$T/shim.log") -eq 0 ]"
t_check "  a module outside /usr/lib/ (the shim): a warning that Debian's wpa_supplicant refuses it" \
    err_has "is not under /usr/lib/: Debian's wpa_supplicant refuses"
: >"$T/shim.log"
run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_LOG="$T/shim.log" "$P11PROBE" attr "$P11SHIM" \
    "$T/pin" dev laptop CKA_VALUE
t_check "  (control: reading CKA_VALUE through the shim is seen as one)" \
    [ "$(sensitive_reads "$T/shim.log")" -eq 1 ]

# --- a not-yet-valid second certificate ---------------------------------------------------
CERT_FROM=$(kb_when "+7 days") CERT_TO=$(kb_when "+90 days") \
    kb_issue_client "$T/laptop.pub" laptop-future "$T/laptop-future.pem"
kb import-cert $MOD --pin-file "$T/pin" --key "pkcs11:token=dev;object=laptop" "$T/laptop-future.pem"
t_check "import-cert stores a certificate valid from next week for the same key" rc_is 0
kb "${prof[@]}" --ca "$T/ca.pem" --server-name "$RADIUS_NAME" --wired --format wpa -o "$T/wpa"
t_check "  network profile again: exit 0" rc_is 0
t_check "  the certificate is still laptop-1" same_cert "$T/wpa/keybound-wired-cert.pem" "$T/laptop.pem"
t_check "  the profile itself is unchanged" cmp -s "$W" "$T/wired.conf.orig"
eapol wired-again "$W"
t_check "  eapol_test: SUCCESS, laptop-1's serial" as_laptop1 wired-again
# The control: a profile that took the future certificate (as libp11's choice by notAfter
# would) is rejected by the server: the check above can tell the two apart.
sed "s|^	client_cert=.*|	client_cert=\"$T/laptop-future.pem\"|" "$W" >"$T/future.conf"
eapol future "$T/future.conf"
t_check "  (control: with the future certificate instead, FreeRADIUS rejects the device)" \
    failed future

# --- --install ----------------------------------------------------------------------------
R=$T/root
run env KEYBOUND_INSTALL_ROOT="$R" setsid -w "$KEYBOUND" "${prof[@]}" --ca "$T/ca.pem" \
    --server-name "$RADIUS_NAME" --wired --name office --install
t_check "--install (nm): exit 0" rc_is 0
t_check "  into etc/NetworkManager/system-connections, each file 0600" \
    all_0600 "$R/etc/NetworkManager/system-connections" keybound-office.nmconnection \
    keybound-office-cert.pem keybound-office-ca.pem
RUN_STDIN=$R/etc/NetworkManager/system-connections/keybound-office.nmconnection run nmcli --offline connection modify
t_check "  the installed keyfile validates (nmcli --offline)" rc_is 0
run env KEYBOUND_INSTALL_ROOT="$R" setsid -w "$KEYBOUND" "${prof[@]}" --ca "$T/ca.pem" \
    --server-name "$RADIUS_NAME" --wired --name office --format wpa --install
t_check "--install --format wpa: exit 0" rc_is 0
t_check "  into etc/wpa_supplicant, each file 0600" \
    all_0600 "$R/etc/wpa_supplicant" keybound-office.conf keybound-office-cert.pem keybound-office-ca.pem
t_check "  nothing else under the install root (no drop-in for a SoftHSM key)" bash -c "
    [ \"\$(cd '$R' && find . -type f | sort)\" = \"\$(printf '%s\n' ./etc/NetworkManager/system-connections/keybound-office-ca.pem ./etc/NetworkManager/system-connections/keybound-office-cert.pem ./etc/NetworkManager/system-connections/keybound-office.nmconnection ./etc/wpa_supplicant/keybound-office-ca.pem ./etc/wpa_supplicant/keybound-office-cert.pem ./etc/wpa_supplicant/keybound-office.conf)\" ]"
eapol installed "$R/etc/wpa_supplicant/keybound-office.conf"
t_check "  its paths are the installed files" grep -qx \
    "	client_cert=\"$R/etc/wpa_supplicant/keybound-office-cert.pem\"" "$R/etc/wpa_supplicant/keybound-office.conf"
t_check "  the installed wpa profile authenticates" as_laptop1 installed

# --- renew: the profiles that use the key get the new certificate -------------------------
if /usr/bin/python3 -c 'import cryptography.hazmat.primitives.serialization.pkcs7' 2>/dev/null; then
    kb_est_start
    kb renew $MOD --pin-file "$T/pin" $POL $EST --key "pkcs11:token=dev;object=laptop" \
        --if-expires-within 60d
    t_check "renew over EST: exit 0" rc_is 0
    kb check $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=laptop" --json
    renewed=$(python3 -c "import json; print(json.load(open('$T/out'))['devices'][0]['certificate']['sha256'])")
    t_check "  the wired profile's certificate file is now the renewed certificate" bash -c "
        [ '$(certtool --certificate-info --infile "$T/wpa/keybound-wired-cert.pem" --outder 2>/dev/null | sha256sum | cut -d' ' -f1)' = '$renewed' ] &&
        [ '$renewed' != '$(sha256_of "$T/laptop.pem")' ]"
    t_check "  and so is that of the other profile of the key (office, as last installed)" \
        same_cert "$R/etc/wpa_supplicant/keybound-office-cert.pem" "$T/wpa/keybound-wired-cert.pem"
    t_check "  the profile itself is unchanged" bash -c "[ \$(stat -c %a '$W') = 600 ] && cmp -s '$W' '$T/wired.conf.orig'"
    eapol renewed "$W"
    t_check "  eapol_test: SUCCESS, FreeRADIUS echoes the renewed certificate's serial" bash -c "
        [ $eapol_rc -eq 0 ] && [ '$(eapol_reply renewed)' = 'device laptop-1 serial $(cert_serial "$T/wpa/keybound-wired-cert.pem")' ] &&
        [ '$(cert_serial "$T/wpa/keybound-wired-cert.pem")' != '$serial1' ]"
    old_key=$(grep '^	private_key=' "$W")
    kb renew $MOD --pin-file "$T/pin" $POL $EST --key "pkcs11:token=dev;object=laptop" --rekey
    t_check "renew --rekey: exit 0" rc_is 0
    t_check "  the profile now names the new key, its PIN line kept" bash -c "
        grep -q '^	private_key=\"pkcs11:.*;type=private\"\$' '$W' && [ \"\$(grep '^	private_key=' '$W')\" != '$old_key' ] &&
        grep -qx '	pin=\"1234\"' '$W' && [ \$(stat -c %a '$W') = 600 ]"
    eapol_counted rekeyed "$W"
    t_check "  eapol_test: SUCCESS with the new key's certificate, one signature" bash -c "
        [ $eapol_rc -eq 0 ] && [ $(sigs rekeyed) -eq 1 ] &&
        [ '$(eapol_reply rekeyed)' = 'device laptop-1 serial $(cert_serial "$T/wpa/keybound-wired-cert.pem")' ]"
else
    t_check "renew: (skipped: Debian's python3-cryptography, for the test EST server, is not installed)" true
fi

# --- network check, and a PIN changed on the token ----------------------------------------
kb network check $MOD --name wired $POL --json
t_check "network check --name wired: exit 0" rc_is 0
t_check "  PIN accepted, certificate current, admitted" \
    entry wired "p['ok'] and p['pin'] == 'accepted' and p['certificate_current'] and p['admitted']"
cp "$W" "$T/wired.conf.before"
GNUTLS_SO_PIN=12345678 GNUTLS_PIN=5678 p11tool --batch --provider "$SOFTHSM_MODULE" \
    --initialize-pin "pkcs11:token=dev" >/dev/null 2>&1
: >"$T/shim.log"
kbshim network check --module "$P11SHIM" --name wired $POL
t_check "the PIN changed on the token: network check exits 6" rc_is 6
t_check "  after one login, refused" one_wrong_login
t_check "  and says, in one line, that it removed the stored PIN" \
    bash -c "cat '$T/out' '$T/err' | grep -i 'PIN' | grep -q 'removed' && [ \$(cat '$T/out' '$T/err' | wc -l) -eq 1 ]"
t_check "  the profile has no pin line left, is still 0600, and is otherwise unchanged" bash -c "
    ! grep -q '^	pin=' '$W' && [ \$(stat -c %a '$W') = 600 ] &&
    diff <(grep -v '^	pin=' '$T/wired.conf.before') '$W' >/dev/null"
t_check "  the old PIN appears in no output" bash -c "! grep -q 1234 '$T/out' '$T/err'"
EAPOL_TIMEOUT=3 eapol_counted wired-nopin "$W"
t_check "  eapol_test with the profile now: fails" failed wired-nopin
t_check "  without logging in (no try spent) or signing" \
    bash -c "[ $(logins wired-nopin) -eq 0 ] && [ $(sigs wired-nopin) -eq 0 ]"
: >"$T/shim.log"
kbshim network check --module "$P11SHIM" --name wired $POL --json
t_check "  network check again: no login" [ "$(calls C_Login)" -eq 0 ]
t_check "  and pin \"none\"" entry wired "p['pin'] == 'none'"
t_done
