#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Rogue EST servers never learn the device identity or the enrolment secret (doc/design.md,
# invariant 4; issue 9, item 1). Each rogue server fails verification in one way: a
# certificate from another CA, the right CA but another name, the right CA and name but
# clientAuth only (no serverAuth), expired; each in TLS 1.3 and in TLS 1.2. It asks for a
# client certificate and logs what it receives (see witness_start in testlib.sh). Against
# each: enroll with a secret, enroll --auth-key, renew, renew --rekey, all with --ca the
# right CA. Each must exit non-zero with one line naming the failure, the server's log
# must show no client Certificate, no CertificateVerify, no Authorization header and not
# the secret, and the token must be unchanged.
#
# Two controls per server keep the witness honest: keybound connect (which verifies the
# server inside the handshake) leaves a log in which the checks pass, and openssl
# s_client (which does not verify) with a certificate and an Authorization header leaves
# one in which all of them fire.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
command -v openssl >/dev/null || t_skip_all "openssl not installed"
kb_token dev
kb_pki_policy
SECRET=enrol:s3cret-one-time
SECRET_B64=$(printf '%s' "$SECRET" | base64)
printf '%s\n' "$SECRET" >"$T/secret"
chmod 600 "$T/secret"

# The device: a key on the token with a certificate from the right CA (the one the real
# EST server would use), stored next to it.
kb keygen $MOD --token pkcs11:token=dev --label laptop --pin-file "$T/pin"
laptop=$(cat "$T/out")
kb_device_cert dev "$laptop" "laptop-1" laptop
if [ -z "$laptop" ] || ! grep -q 'BEGIN CERTIFICATE' "$T/laptop.pem"; then
    t_fail "the device key and its certificate were made"
fi

# A software client certificate from the right CA, for the s_client control.
certtool --generate-privkey --key-type ecdsa --outfile "$P/control.key" 2>/dev/null
certtool --load-privkey "$P/control.key" --pubkey-info --outfile "$P/control.pub" 2>/dev/null
kb_issue_client "$P/control.pub" "control-client" "$P/control.pem"

# The rogue server certificates, and what keybound's one line must name for each.
kb_issue_server rogue-other-ca other-ca
kb_issue_tls_cert rogue-wrong-name ca evil.example.com tls_www_server
kb_issue_tls_cert rogue-client-only ca localhost tls_www_client
CERT_FROM=$(kb_when "-40 days") CERT_TO=$(kb_when "-10 days") kb_issue_server rogue-expired
declare -A why=(
    [other-ca]='verif|not trusted|issuer is unknown|unknown issuer'
    [wrong-name]='mismatch|does not match|is for |not for '
    [client-only]='serverAuth|not meant for a TLS server|key usage|purpose'
    [expired]='expired'
    [bootstrap]='HTTP 503'
)
# The trust each run gives: the right CA file, or (the bootstrap) the right CA's pinned
# fingerprint, where /cacerts is fetched before the server can be verified.
TRUST="--ca $P/ca.pem"
CA_FP=$(certtool --fingerprint --hash sha256 --infile "$P/ca.pem" 2>/dev/null)

before=$(token_objects dev)
unchanged() { [ "$before" = "$(token_objects dev)" ]; }
one_line_naming() { [ "$rc" -ne 0 ] && err_one_line && grep -q -i -E "$1" "$T/err"; }
no_secret() { ! grep -q -a -F -e "$SECRET" -e "$SECRET_B64" -e "s3cret-one-time" "$1"; }
kbt() { run setsid -w timeout 60 "$KEYBOUND" "$@"; }

# rogue_run LABEL CASE KEYBOUND-ARGS...: one keybound run against the current witness and
# every check on it.
rogue_run() {
    local label=$1 case=$2 mark
    shift 2
    witness_reply
    mark=$(witness_mark)
    kbt "$@" $MOD --pin-file "$T/pin" $POL --est "https://localhost:$port" $TRUST
    local s="$T/slice.$name.${label// /_}"
    witness_slice "$mark" "$s"
    cp "$T/err" "$s.err"
    t_check "$name: $label: exits non-zero with one line naming the failure ($case)" \
        one_line_naming "${why[$case]}"
    t_check "$name: $label: reached the rogue server (its ClientHello is logged)" witness_saw_hello "$s"
    t_check "$name: $label: no client Certificate reached the server" bash -c "! witness_saw_cert '$s'"
    t_check "$name: $label: no CertificateVerify reached the server" bash -c "! witness_saw_cert_verify '$s'"
    t_check "$name: $label: no Authorization header reached the server" bash -c "! witness_saw_authorization '$s'"
    t_check "$name: $label: the secret did not reach the server" no_secret "$s"
    t_check "$name: $label: the token is unchanged" unchanged
    before=$(token_objects dev) # an unexpected change is reported once, not by every run after
}
export -f witness_saw_hello witness_saw_cert witness_saw_cert_verify witness_saw_authorization

for case in other-ca wrong-name client-only expired; do
    for version in tls1_3 tls1_2; do
        name="rogue $case ${version/_/.}"
        port=$(free_port)
        witness_start "rogue-$case-$version" "$port" -cert "$P/rogue-$case.pem" \
            -key "$P/rogue-$case.key" -CAfile "$P/ca.pem" -"$version" ||
            t_fail "$name: the rogue server started"

        # Control: keybound's own TLS client refuses before anything leaves.
        mark=$(witness_mark)
        kbt connect $MOD --pin-file "$T/pin" $POL --key "$laptop" "localhost:$port"
        s="$T/slice.$name.connect"
        witness_slice "$mark" "$s"
        t_check "$name: control: keybound connect is refused and the witness saw its ClientHello only" \
            bash -c "[ $rc -ne 0 ] && witness_saw_hello '$s' && ! witness_saw_cert '$s' && ! witness_saw_cert_verify '$s' && ! witness_saw_authorization '$s'"

        rogue_run "enroll --secret-file" "$case" enroll --token pkcs11:token=dev --label rogue-new \
            --subject CN=laptop-new --secret-file "$T/secret"
        rogue_run "enroll --auth-key" "$case" enroll --token pkcs11:token=dev --label rogue-new \
            --subject CN=laptop-1 --auth-key "$laptop"
        rogue_run "renew --key" "$case" renew --key "$laptop"
        rogue_run "renew --key --rekey" "$case" renew --key "$laptop" --rekey
        # The fingerprint bootstrap talks to a server not verified yet: it must carry
        # neither the identity nor the secret, whoever answers.
        TRUST="--ca-fingerprint sha256:$CA_FP"
        rogue_run "bootstrap: enroll --secret-file --ca-fingerprint" bootstrap enroll \
            --token pkcs11:token=dev --label rogue-new --subject CN=laptop-new --secret-file "$T/secret"
        rogue_run "bootstrap: enroll --auth-key --ca-fingerprint" bootstrap enroll \
            --token pkcs11:token=dev --label rogue-new --subject CN=laptop-1 --auth-key "$laptop"
        rogue_run "bootstrap: renew --key --ca-fingerprint" bootstrap renew --key "$laptop"
        TRUST="--ca $P/ca.pem"

        # Control: a client that does not verify the server, with a certificate and an
        # Authorization header: every witness check fires on its log.
        witness_reply
        mark=$(witness_mark)
        { printf 'GET /.well-known/est/cacerts HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic %s\r\n\r\n' "$SECRET_B64"; sleep 1; } |
            timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername localhost \
                -cert "$P/control.pem" -key "$P/control.key" -"$version" >"$T/s_client.out" 2>&1
        s="$T/slice.$name.s_client"
        witness_slice "$mark" "$s"
        t_check "$name: control: the witness logs the Certificate, CertificateVerify and Authorization of a client that sends them" \
            bash -c "witness_saw_cert '$s' && witness_saw_cert_verify '$s' && witness_saw_authorization '$s' && grep -q -F '$SECRET_B64' '$s'"
        witness_stop
    done
done
t_done
