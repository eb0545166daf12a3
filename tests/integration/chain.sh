#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The device certificate's issuer path: built from candidates in any order (unrelated,
# duplicate, same-name and anchor certificates among them), capped, stored without the
# anchor, and sent in the handshake in order (leaf, issuing CA, its issuer...) and alone.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
command -v openssl >/dev/null || t_skip_all "openssl not installed"
kb_token dev
kb_pki
kb_pki2
P=$T/pki
# The device trusts ca.pem for the server; devices chain to root.pem.
sed 's/^trust = ca.pem$/trust = root.pem/' "$TESTS_SRCDIR/../policy/examples/softhsm-test.conf" \
    >"$T/policy.conf"
chmod 644 "$T/policy.conf"
cp "$P/ca.pem" "$P/root.pem" "$T/"
POL="--policy $T/policy.conf"

# token_cert_fps TOKEN: the SHA-256 of every certificate on the token, sorted.
token_cert_fps() {
    local url
    GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --list-all-certs --only-urls \
        "pkcs11:token=$1" 2>/dev/null | while read -r url; do
        GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --export "$url" \
            --outfile "$T/export.pem" 2>/dev/null
        sha256_of "$T/export.pem"
    done | sort
}
fps_of() {
    local f
    for f in "$@"; do sha256_of "$f"; done | sort
}
same_fps() { [ "$(token_cert_fps "$1")" = "$(fps_of "${@:2}")" ]; }
# write_cert TOKEN PEM LABEL: a CA certificate written with p11tool, not keybound.
write_cert() {
    GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --write --mark-ca \
        --load-certificate "$2" --label "$3" "pkcs11:token=$1" >/dev/null 2>&1
}

kb keygen $MOD --token pkcs11:token=dev --label laptop --pin-file "$T/pin"
laptop=$(cat "$T/out")
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --export-pubkey "$laptop" \
    --outfile "$T/laptop.pub" 2>/dev/null
kb_issue_client "$T/laptop.pub" laptop-1 "$T/laptop.pem" 30 inter2
KEY="--key pkcs11:token=dev;object=laptop"

# --- import-cert: a shuffled chain file --------------------------------------------------
cat "$P/other-inter.pem" "$P/root.pem" "$P/inter1.pem" "$P/fake-inter2.pem" "$P/inter2.pem" \
    "$P/inter1.pem" >"$T/chain.pem"
kb import-cert $MOD --pin-file "$T/pin" $KEY --chain "$T/chain.pem" "$T/laptop.pem"
t_check "import-cert with a shuffled chain file (unrelated, same-name, root, duplicate) succeeds" rc_is 0
t_check "  only the device certificate, inter2 and inter1 are on the token" \
    same_fps dev "$T/laptop.pem" "$P/inter2.pem" "$P/inter1.pem"
t_check "  it says what it stored and what it left out" \
    out_has "issuer path of 2 certificates (2 new); 4 other certificates not stored"
kb import-cert $MOD --pin-file "$T/pin" $KEY --chain "$T/chain.pem" "$T/laptop.pem"
t_check "  again: nothing new" bash -c "[ $rc -eq 0 ] && grep -q 'already had the certificate' '$T/out' && grep -q '(0 new)' '$T/out'"
t_check "  and still only those three" same_fps dev "$T/laptop.pem" "$P/inter2.pem" "$P/inter1.pem"

kb check $MOD --pin-file "$T/pin" $POL $KEY
t_check "check admits the device (root trusted, intermediates from the token)" rc_is 0

# Certificates that no keybound command would store, written to the token by hand: an
# unrelated intermediate, a same-name CA with another key, the root, and many CAs of
# another PKI. None of them is sent. check verifies the chain with the issuer path built
# from all of them (it used to take the first 15 in token order, and 25 crowded the
# issuer out).
write_cert dev "$P/other-inter.pem" other-inter
write_cert dev "$P/fake-inter2.pem" fake-inter2
write_cert dev "$P/root.pem" root
for i in $(seq 22); do
    kb_ca "unrel$i" "unrelated inter $i" other-ca
    write_cert dev "$P/unrel$i.pem" "unrel$i"
done
kb check $MOD --pin-file "$T/pin" $POL $KEY --json
t_check "check still admits the device with 25 other CA certificates on the token" \
    bash -c "[ $rc -eq 0 ] && grep -q '\"decision\": \"admit\"' '$T/out'"

# --- connect to a server that trusts only the root ---------------------------------------
oport=$(free_port)
kb_bg "$T/s_server.log" openssl s_server -accept "127.0.0.1:$oport" -cert "$P/server.pem" \
    -key "$P/server.key" -CAfile "$P/root.pem" -Verify 1 -verify_return_error -rev -trace
wait_port "$oport" || t_fail "s_server started"
printf 'token\n' >"$T/in"
RUN_STDIN=$T/in run setsid -w "$KEYBOUND" connect $MOD --pin-file "$T/pin" $POL $KEY --stdio "localhost:$oport"
t_check "connect through s_server -CAfile root.pem -Verify 1 -verify_return_error succeeds" out_has "nekot"

# The subjects of the certificates in the Certificate message s_server received, in order.
sent_chain() {
    python3 - "$T/s_server.log" <<'PY'
import re, sys
lines = open(sys.argv[1], errors="replace").read().splitlines()
out, inmsg = [], False
for i, l in enumerate(lines):
    if l.startswith("Received Record"):
        inmsg = False
    if re.match(r"^\s+Certificate, Length=", l) and any(
            lines[j].startswith("Received Record") for j in range(max(0, i - 8), i)):
        inmsg = True
        continue
    if inmsg and re.match(r"^\s+Subject: ", l):
        out.append(l.split("Subject:", 1)[1].strip())
    if inmsg and re.match(r"^\s+(CertificateVerify|Finished)", l):
        break
print("\n".join(out))
PY
}
sent_chain >"$T/sent.txt"
t_check "  the Certificate message carries exactly laptop-1, inter 2, inter 1, in that order" \
    bash -c "diff <(printf 'CN = laptop-1\nCN = keybound inter 2\nCN = keybound inter 1\n') '$T/sent.txt' >&2 || { echo sent:; cat '$T/sent.txt'; false; } >&2"
t_check "  no unrelated, same-name or root certificate was sent" \
    bash -c "! grep -q -e 'unrelated\|other inter\|root' '$T/sent.txt'"

# --- a failure while storing leaves the token as it was -----------------------------------
kb_token undo
kb keygen $MOD --token pkcs11:token=undo --label k --pin-file "$T/pin"
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --export-pubkey "$(cat "$T/out")" \
    --outfile "$T/undo.pub" 2>/dev/null
kb_issue_client "$T/undo.pub" undo-1 "$T/undo.pem" 30 inter2
before=$(token_objects undo)
# The first two C_CreateObject calls pass, the third fails.
kbshim P11SHIM_FAIL_FUNC=C_CreateObject P11SHIM_FAIL_AFTER=2 import-cert --module "$P11SHIM" \
    --pin-file "$T/pin" --key "pkcs11:token=undo;object=k" --chain "$T/chain.pem" "$T/undo.pem"
t_check "the token refuses the third object: import-cert fails (exit 2) with one line" \
    bash -c "[ $rc -eq 2 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q 'the 2 chain certificates written were removed again' '$T/err'"
t_check "  and what it had written is removed again: the token is unchanged" \
    [ "$(token_objects undo)" = "$before" ]

# --- the cap on the path length ---------------------------------------------------------
kb_token deep
kb keygen $MOD --token pkcs11:token=deep --label deep --pin-file "$T/pin"
deep=$(cat "$T/out")
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --export-pubkey "$deep" \
    --outfile "$T/deep.pub" 2>/dev/null
issuer=root
: >"$T/deep-chain.pem"
for i in 1 2 3 4 5 6 7 8 9; do
    kb_ca "c$i" "deep inter $i" "$issuer"
    issuer=c$i
    cat "$P/c$i.pem" >>"$T/deep-chain.pem"
done
kb_issue_client "$T/deep.pub" deep-1 "$T/deep9.pem" 30 c9
kb_issue_client "$T/deep.pub" deep-1 "$T/deep8.pem" 30 c8
before=$(token_objects deep)
kb import-cert $MOD --pin-file "$T/pin" --key "pkcs11:token=deep;object=deep" \
    --chain "$T/deep-chain.pem" "$T/deep9.pem"
t_check "import-cert refuses an issuer path of 9 intermediates (the cap is 8)" \
    bash -c "[ $rc -ne 0 ] && grep -q 'longer than 8' '$T/err'"
t_check "  with one line" err_one_line
t_check "  and the token is unchanged" [ "$(token_objects deep)" = "$before" ]
kb import-cert $MOD --pin-file "$T/pin" --key "pkcs11:token=deep;object=deep" \
    --chain "$T/deep-chain.pem" "$T/deep8.pem"
t_check "  a path of exactly 8 is stored (c9 is not on it)" \
    bash -c "[ $rc -eq 0 ] && grep -q 'issuer path of 8 certificates (8 new); 1 other' '$T/out'"
t_check "  the token holds the device certificate and c8..c1" \
    same_fps deep "$T/deep8.pem" "$P/c1.pem" "$P/c2.pem" "$P/c3.pem" "$P/c4.pem" "$P/c5.pem" \
    "$P/c6.pem" "$P/c7.pem" "$P/c8.pem"

# The same cap when sending: a token holding a path of 9 gives an error, not a truncated or
# overlong chain.
kb_token deep2
kb keygen $MOD --token pkcs11:token=deep2 --label deep2 --pin-file "$T/pin"
kb_device_cert deep2 "$(cat "$T/out")" deep-2 deep2 30 c9
for i in 1 2 3 4 5 6 7 8 9; do
    write_cert deep2 "$P/c$i.pem" "c$i"
done
kb connect $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=deep2;object=deep2" \
    "localhost:$(free_port)"
t_check "connect with a path of 9 on the token: denied (exit 1) on cert.trust, nothing sent" \
    bash -c "[ $rc -eq 1 ] && grep -q 'DENIED: cert.trust' '$T/err' && [ \$(wc -l <'$T/err') -eq 1 ]"
kb check $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=deep2;object=deep2"
t_check "  check says the issuer path is too long" bash -c "[ $rc -eq 1 ] && grep -q 'longer than 8' '$T/out'"

# --- EST: enroll, enroll --store-chain and renew store only the path ---------------------
# The test EST server, wrapped: its enrol replies carry extra certificates (the files in
# $T/estc/extra.pem, and $T/estc/unrelated many CAs of a PKI of their own), /cacerts the
# certificates in $T/estc/cacerts.pem, and a client certificate must chain to the root
# alone (the device has to send its path).
if /usr/bin/python3 -c 'import cryptography.hazmat.primitives.serialization.pkcs7' 2>/dev/null; then
    mkdir -p "$T/estc" "$T/est"
    cat >"$T/est_chain.py" <<'PY'
import datetime, importlib.util, os, re, ssl, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

spec = importlib.util.spec_from_file_location("est_server", sys.argv[1])
est = importlib.util.module_from_spec(spec)
spec.loader.exec_module(est)
d, root = sys.argv[2], sys.argv[3]
del sys.argv[1:4]

def ca(cn, issuer=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    ikey, iname = (key, name) if issuer is None else (issuer[1], issuer[0].subject)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(iname)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ikey, hashes.SHA256()))
    return cert, key

other_root = ca("est unrelated root")
unrelated = [ca("est unrelated %d" % i, other_root)[0] for i in range(60)]

def load(name):
    try:
        data = open(os.path.join(d, name), "rb").read()
    except FileNotFoundError:
        return []
    blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", data, re.S)
    return [x509.load_pem_x509_certificate(b) for b in blocks]

orig = est.certs_only_der
def certs_only_der(certs):
    if len(certs) == 1:
        bc = certs[0].extensions.get_extension_for_class(x509.BasicConstraints).value
        if bc.ca:  # /cacerts
            return orig(load("cacerts.pem") or certs)
        try:
            n = int(open(os.path.join(d, "unrelated")).read().strip() or 0)
        except FileNotFoundError:
            n = 0
        return orig(certs + load("extra.pem") + unrelated[:n])
    return orig(certs)
est.certs_only_der = certs_only_der

orig_ctx = est.tls_context
def tls_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(cafile=root)
    return ctx
est.tls_context = tls_context
est.main()
PY
    eport=$(free_port)
    kb_bg "$T/est.log" /usr/bin/python3 "$T/est_chain.py" "$TESTS_SRCDIR/lib/est_server.py" \
        "$T/estc" "$P/root.pem" --port "$eport" --ca-cert "$P/inter2.pem" --ca-key "$P/inter2.key" \
        --tls-cert "$P/server.pem" --tls-key "$P/server.key" --secret enrol:s3cret --state "$T/est"
    wait_port "$eport" || t_fail "EST server started"
    printf 'enrol:s3cret\n' >"$T/secret"
    chmod 600 "$T/secret"
    EST="--est https://localhost:$eport --ca $P/ca.pem"
    token_certs() {
        GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --list-all-certs \
            "pkcs11:token=$1" 2>/dev/null | grep -c '^Object'
    }

    kb_token est
    cat "$P/root.pem" "$P/inter1.pem" "$P/other-inter.pem" "$P/fake-inter2.pem" "$P/inter2.pem" \
        "$P/inter1.pem" >"$T/estc/extra.pem"
    echo 54 >"$T/estc/unrelated"
    kb enroll $MOD --pin-file "$T/pin" --token pkcs11:token=est --label e1 --subject CN=est-1 \
        --policy "$T/policy.conf" $EST --secret-file "$T/secret"
    t_check "enroll, the reply carrying 60 CA certificates: ISSUED and admitted" \
        bash -c "[ $rc -eq 0 ] && grep -qx 'state: ISSUED' '$T/out' && grep -q '^decision: ADMITTED' '$T/out'"
    t_check "  3 certificates on the token (not 63)" [ "$(token_certs est)" = 3 ]
    e1=$(sed -n 's/^key: //p' "$T/out")
    GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --export \
        "pkcs11:token=est;object=e1;type=cert" --outfile "$T/e1.pem" 2>/dev/null
    t_check "  the device certificate, inter2 and inter1" \
        same_fps est "$T/e1.pem" "$P/inter2.pem" "$P/inter1.pem"

    # renew: the EST server trusts only the root for client certificates, so the path must
    # be sent; the reply's extras are left out again.
    echo 30 >"$T/estc/unrelated"
    kb renew $MOD --pin-file "$T/pin" --policy "$T/policy.conf" $EST --key "$e1"
    t_check "renew to a server that verifies the client against the root alone: ISSUED" \
        bash -c "[ $rc -eq 0 ] && grep -qx 'state: ISSUED' '$T/out'"
    t_check "  it saw our certificate" grep -q "^POST /.well-known/est/simplereenroll 200 auth=cert" "$T/est/requests.log"
    t_check "  4 certificates on the token: two device certificates, inter2, inter1" \
        [ "$(token_certs est)" = 4 ]

    # enroll --store-chain: /cacerts certificates are candidates too, the path alone stored.
    kb_token est2
    : >"$T/estc/extra.pem"
    echo 0 >"$T/estc/unrelated"
    cat "$P/other-inter.pem" "$P/root.pem" "$P/inter1.pem" "$P/inter2.pem" >"$T/estc/cacerts.pem"
    kb enroll $MOD --pin-file "$T/pin" --token pkcs11:token=est2 --label e2 --subject CN=est-2 \
        --policy "$T/policy.conf" $EST --secret-file "$T/secret" --store-chain
    t_check "enroll --store-chain, the reply holding the certificate alone: ISSUED and admitted" \
        bash -c "[ $rc -eq 0 ] && grep -q '^decision: ADMITTED' '$T/out'"
    GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --export \
        "pkcs11:token=est2;object=e2;type=cert" --outfile "$T/e2.pem" 2>/dev/null
    t_check "  the /cacerts path is stored: the certificate, inter2 and inter1 (not the root or other-inter)" \
        same_fps est2 "$T/e2.pem" "$P/inter2.pem" "$P/inter1.pem"
    kb enroll $MOD --pin-file "$T/pin" --token pkcs11:token=est2 --label e3 --subject CN=est-3 \
        --policy "$T/policy.conf" $EST --secret-file "$T/secret"
    t_check "enroll without --store-chain stores no chain" \
        bash -c "[ $rc -eq 0 ] && [ \$(GNUTLS_PIN=1234 p11tool --provider '$SOFTHSM_MODULE' --login --list-all-certs pkcs11:token=est2 2>/dev/null | grep -c '^Object') = 4 ]"
else
    t_pass "# SKIP EST chain tests: python3-cryptography is not installed"
fi

t_done
