# SPDX-License-Identifier: Apache-2.0
# Shared by the integration tests: TAP output, a throwaway SoftHSM token, a throwaway PKI.
#
# Each test script sources this file, calls kb_setup, and ends with t_done. Everything it
# makes lives in one temp directory (removed on exit), with its own SOFTHSM2_CONF, so tests
# run in parallel and never touch the system's token directory. The user PIN of every
# token is 1234 (in $T/pin), the SO PIN 12345678.
set -u

: "${KEYBOUND:?run through make check}"
: "${SOFTHSM_MODULE:=/usr/lib/softhsm/libsofthsm2.so}"

t_n=0
t_failed=0

t_skip_all() {
    echo "1..0 # SKIP $*"
    exit 0
}

t_pass() {
    t_n=$((t_n + 1))
    echo "ok $t_n - $1"
}

t_fail() {
    t_n=$((t_n + 1))
    t_failed=$((t_failed + 1))
    echo "not ok $t_n - $1"
    shift
    local line
    for line in "$@"; do
        printf '%s\n' "$line" | sed 's/^/# /'
    done
}

# t_check DESC CONDITION-COMMAND...: passes when the command succeeds. On failure the last
# run's output is shown.
t_check() {
    local desc=$1
    shift
    if "$@"; then
        t_pass "$desc"
    else
        t_fail "$desc" "failed: $*" "last command: ${last_cmd:-}" "rc=${rc:-}" \
            "stdout: $(head -c 2000 "$T/out" 2>/dev/null)" "stderr: $(head -c 2000 "$T/err" 2>/dev/null)"
    fi
}

t_done() {
    bg_findings
    echo "1..$t_n"
    [ "$t_failed" -eq 0 ]
}

# What a sanitizer prints when it finds something: ASan, LSan, UBSan, and ThreadSanitizer's
# reports ("WARNING: ThreadSanitizer: data race") and its own failures ("FATAL: ...").
san_finding='ERROR: (Address|Leak)Sanitizer|runtime error:|(WARNING|ERROR|FATAL): ThreadSanitizer'

# bg_findings: the processes a test started in the background (kb_bg, and those it added to
# kb_pids itself: tunnels, clients) write to files in $T that no run() looks at. They are
# stopped here, so that what a sanitizer says as they exit is written too, and then every
# file in $T is searched: one failed check naming the files with a finding, or one passed
# check when the test had processes in the background. ($T/out and $T/err are run()'s,
# which checked them already.)
bg_findings() {
    [ -n "${T:-}" ] && [ -d "$T" ] || return 0
    kb_stop_bg
    local files f
    files=$(grep -r -l -a -E -D skip --exclude=out --exclude=err --exclude-dir=tokens \
        "$san_finding" "$T" 2>/dev/null)
    if [ -n "$files" ]; then
        t_fail "no sanitizer finding in the output of the processes in the background" \
            "$(for f in $files; do
                echo "== ${f#"$T"/}"
                # Each report to its SUMMARY line (ASan, UBSan and TSan all end so).
                awk -v re="$san_finding" '$0 ~ re { on = 1 } on { print } /^SUMMARY: / { on = 0 }' \
                    "$f" | head -c 8000
            done)"
    elif [ "${kb_bg_started:-0}" -gt 0 ]; then
        t_pass "no sanitizer finding in the output of the processes in the background"
    fi
}

# run CMD...: runs with stdout in $T/out, stderr in $T/err, exit code in $rc; never fails.
# Standard input is /dev/null, or the file $RUN_STDIN names.
run() {
    last_cmd="$*"
    rc=0
    "$@" >"$T/out" 2>"$T/err" <"${RUN_STDIN:-/dev/null}" || rc=$?
    # In the sanitizer builds a finding is a failure of its own, whatever the test checks.
    if grep -q -a -E "$san_finding" "$T/err" "$T/out"; then
        t_fail "no sanitizer finding in: $*" "$(head -c 12000 "$T/err")"
    fi
}

# kb ARGS...: runs keybound without a controlling terminal, so it can never prompt.
kb() {
    run setsid -w "$KEYBOUND" "$@"
}

rc_is() { [ "$rc" -eq "$1" ]; }
out_has() { grep -q -e "$1" "$T/out"; }
err_has() { grep -q -e "$1" "$T/err"; }
err_lacks() { ! grep -q -e "$1" "$T/err"; }
out_lacks() { ! grep -q -e "$1" "$T/out"; }
# Bad input gets exactly one line on stderr.
err_one_line() { [ "$(wc -l <"$T/err")" -eq 1 ]; }

# Servers a test started (kb_bg) are stopped on exit, with the temp directory.
kb_pids=()
# kb_stop_bg: stops them (SIGTERM) and waits for them; kb_bg_started counts them.
kb_stop_bg() {
    local pid
    kb_bg_started=$((${kb_bg_started:-0} + ${#kb_pids[@]}))
    for pid in "${kb_pids[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${kb_pids[@]}"; do
        wait "$pid" 2>/dev/null
    done
    kb_pids=()
}
kb_cleanup() {
    kb_stop_bg
    rm -rf "$T"
}

# kb_bg LOG CMD...: starts a server in the background, its output in LOG.
kb_bg() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 </dev/null &
    kb_pids+=($!)
}

# wait_log FILE REGEX: until a line matches (10 s at most); the caller checks with t_check.
wait_log() {
    local i
    for i in $(seq 100); do
        grep -q -e "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT [ADDRESS]: until something accepts on ADDRESS (127.0.0.1):PORT (10 s at
# most).
wait_port() {
    python3 - "$1" "${2:-127.0.0.1}" <<'PY'
import socket, sys, time
end = time.monotonic() + 10
while time.monotonic() < end:
    try:
        socket.create_connection((sys.argv[2], int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
PY
}

kb_setup() {
    [ -f "$SOFTHSM_MODULE" ] || t_skip_all "SoftHSM module not found at $SOFTHSM_MODULE"
    command -v softhsm2-util >/dev/null || t_skip_all "softhsm2-util not installed"
    T=$(mktemp -d "${TMPDIR:-/tmp}/keybound-test.XXXXXX")
    # Markers of rejected PINs (keybound's state directory) stay inside the test.
    export KEYBOUND_STATE_DIR="$T/state"
    trap kb_cleanup EXIT
    mkdir -p "$T/tokens"
    cat >"$T/softhsm2.conf" <<CONF
directories.tokendir = $T/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
    export SOFTHSM2_CONF="$T/softhsm2.conf"
    printf '1234\n' >"$T/pin"
    chmod 600 "$T/pin"
    MOD="--module $SOFTHSM_MODULE"
}

# kb_token LABEL: initialises a new token with user PIN 1234.
kb_token() {
    softhsm2-util --init-token --free --label "$1" --so-pin 12345678 --pin 1234 >/dev/null
}

# kbshim [VAR=VALUE...] ARGS...: runs keybound (like kb) with the fault-injecting module's
# variables set; the test passes --module "$P11SHIM" itself. Calls land in $T/shim.log.
kbshim() {
    local envs=()
    while [ $# -gt 0 ] && [[ $1 == P11SHIM_*=* ]]; do
        envs+=("$1")
        shift
    done
    run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_LOG="$T/shim.log" "${envs[@]}" \
        setsid -w "$KEYBOUND" "$@"
}

# calls NAME: how many times the shim saw PKCS#11 function NAME.
calls() {
    grep -c "^$1 " "$T/shim.log" 2>/dev/null || true
}

# token_objects LABEL: a stable listing of every object on the token, read with p11tool
# (independent of keybound), for before/after comparisons.
token_objects() {
    GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --list-all \
        "pkcs11:token=$1" 2>/dev/null | grep -E '^Object|Label|ID:|Type' | sort
}

# kb_pki: a throwaway PKI in $T/pki made with certtool: ca.pem/ca.key, server.pem for
# localhost and 127.0.0.1, and other-ca.pem (an unrelated CA).
kb_pki() {
    local d="$T/pki"
    mkdir -p "$d"
    certtool --generate-privkey --key-type ecdsa --outfile "$d/ca.key" 2>/dev/null
    cat >"$d/ca.tmpl" <<TMPL
cn = "keybound test CA"
ca
cert_signing_key
crl_signing_key
expiration_days = 30
TMPL
    certtool --generate-self-signed --load-privkey "$d/ca.key" --template "$d/ca.tmpl" \
        --outfile "$d/ca.pem" 2>/dev/null
    certtool --generate-privkey --key-type ecdsa --outfile "$d/server.key" 2>/dev/null
    cat >"$d/server.tmpl" <<TMPL
cn = "localhost"
dns_name = "localhost"
ip_address = "127.0.0.1"
tls_www_server
signing_key
expiration_days = 30
TMPL
    certtool --generate-certificate --load-privkey "$d/server.key" --load-ca-certificate \
        "$d/ca.pem" --load-ca-privkey "$d/ca.key" --template "$d/server.tmpl" \
        --outfile "$d/server.pem" 2>/dev/null
    certtool --generate-privkey --key-type ecdsa --outfile "$d/other-ca.key" 2>/dev/null
    sed 's/keybound test CA/unrelated CA/' "$d/ca.tmpl" >"$d/other-ca.tmpl"
    certtool --generate-self-signed --load-privkey "$d/other-ca.key" \
        --template "$d/other-ca.tmpl" --outfile "$d/other-ca.pem" 2>/dev/null
}

# kb_pki_policy: the test PKI (kb_pki; P names it) and the example policy as shipped in
# $T/policy.conf, with the CA file it names (relatively) next to it; POL is --policy.
kb_pki_policy() {
    kb_pki
    P=$T/pki
    cp "$TESTS_SRCDIR/../policy/examples/softhsm-test.conf" "$T/policy.conf"
    chmod 644 "$T/policy.conf"
    cp "$P/ca.pem" "$T/ca.pem"
    POL="--policy $T/policy.conf"
}

# kb_device: the device most TLS tests use: token "dev" with key "laptop" (made by
# keybound) and its certificate CN=laptop-1 from the test PKI (kb_pki), and the example
# policy in $T/policy.conf with its CA file next to it. Sets P (the PKI), POL (--policy),
# laptop (the key's URI) and KEY (--key).
kb_device() {
    kb_token dev
    kb_pki_policy
    kb keygen $MOD --token pkcs11:token=dev --label laptop --pin-file "$T/pin"
    laptop=$(cat "$T/out")
    kb_device_cert dev "$laptop" "laptop-1" laptop
    KEY="--key pkcs11:token=dev;object=laptop"
}

# kb_issue_server NAME [CA]: a server certificate for localhost/127.0.0.1 in
# $T/pki/NAME.pem and NAME.key, from the test CA (or "other-ca"); $CERT_FROM and $CERT_TO as
# for kb_issue_client.
kb_issue_server() {
    kb_issue_tls_cert "$1" "${2:-ca}" localhost tls_www_server 127.0.0.1
}

# kb_issue_client PUBKEY_PEM CN OUT [DAYS] [CA]: a client certificate (clientAuth) for a
# public key, issued by the test CA (or by CA "other-ca"). $CERT_FROM and $CERT_TO, when
# set, give its validity ("2020-01-01 00:00:00 UTC") instead of DAYS from now.
kb_issue_client() {
    local d="$T/pki" ca=${5:-ca}
    {
        echo "cn = \"$2\""
        echo "tls_www_client"
        echo "signing_key"
        echo "serial = $(date +%s%N)"
        if [ -n "${CERT_TO:-}" ]; then
            echo "activation_date = \"$CERT_FROM\""
            echo "expiration_date = \"$CERT_TO\""
        else
            echo "expiration_days = ${4:-30}"
        fi
    } >"$d/client.tmpl"
    certtool --generate-certificate --load-pubkey "$1" --load-ca-certificate "$d/$ca.pem" \
        --load-ca-privkey "$d/$ca.key" --template "$d/client.tmpl" --outfile "$3" 2>/dev/null
}

# kb_when OFFSET: a date for certtool templates, e.g. kb_when "-3 days".
kb_when() {
    date -u -d "$1" '+%Y-%m-%d %H:%M:%S UTC'
}

# kb_device_cert TOKEN KEY-URI CN CERT-LABEL [DAYS] [CA]: issues a certificate for the key
# and stores it on the token with the key's CKA_ID (p11tool, not keybound, through
# $TOKEN_MODULE: SoftHSM unless a test set another). The PEM is
# left in $T/CERT-LABEL.pem.
kb_device_cert() {
    local id
    id=$(printf '%s' "$2" | sed 's/.*;id=\([^;]*\).*/\1/' | tr -d %)
    GNUTLS_PIN=1234 p11tool --provider "${TOKEN_MODULE:-$SOFTHSM_MODULE}" --login \
        --export-pubkey "$2" --outfile "$T/$4.pub" 2>/dev/null
    kb_issue_client "$T/$4.pub" "$3" "$T/$4.pem" "${5:-30}" "${6:-ca}"
    GNUTLS_PIN=1234 p11tool --provider "${TOKEN_MODULE:-$SOFTHSM_MODULE}" --login --write \
        --load-certificate "$T/$4.pem" --label "$4" --id "$id" "pkcs11:token=$1" >/dev/null 2>&1
}

# sha256_of PEM: the certificate's SHA-256 fingerprint in lower-case hex.
sha256_of() {
    certtool --certificate-info --infile "$1" --outder 2>/dev/null | sha256sum | cut -d' ' -f1
}

# kb_ca NAME CN [ISSUER]: a CA certificate in $T/pki/NAME.pem and NAME.key (ECDSA), issued
# by ISSUER (a CA made here before, or by kb_pki) or self-signed when ISSUER is empty.
kb_ca() {
    local d="$T/pki"
    mkdir -p "$d"
    certtool --generate-privkey --key-type ecdsa --outfile "$d/$1.key" 2>/dev/null
    {
        echo "cn = \"$2\""
        echo "ca"
        echo "cert_signing_key"
        echo "crl_signing_key"
        echo "serial = $(date +%s%N)"
        echo "expiration_days = 30"
    } >"$d/$1.tmpl"
    if [ -z "${3:-}" ]; then
        certtool --generate-self-signed --load-privkey "$d/$1.key" --template "$d/$1.tmpl" \
            --outfile "$d/$1.pem" 2>/dev/null
    else
        certtool --generate-certificate --load-privkey "$d/$1.key" --load-ca-certificate \
            "$d/$3.pem" --load-ca-privkey "$d/$3.key" --template "$d/$1.tmpl" \
            --outfile "$d/$1.pem" 2>/dev/null
    fi
}

# kb_pki2: a two-level intermediate PKI in $T/pki: root.pem (self-signed "keybound root
# CA") -> inter1.pem ("keybound inter 1") -> inter2.pem ("keybound inter 2"), which issues
# devices (kb_issue_client PUB CN OUT DAYS inter2); other-inter.pem, a second
# intermediate under the root that is on no device's path; and fake-inter2.pem, a CA with
# inter2's very name but another key (issued by inter1).
kb_pki2() {
    kb_ca root "keybound root CA"
    kb_ca inter1 "keybound inter 1" root
    kb_ca inter2 "keybound inter 2" inter1
    kb_ca other-inter "keybound other inter" root
    kb_ca fake-inter2 "keybound inter 2" inter1
}

# subject_cn PEM: the certificate's common name.
subject_cn() {
    openssl x509 -in "$1" -noout -subject -nameopt multiline | sed -n 's/^ *commonName *= *//p'
}

# kb_issue_tls_cert NAME CA DNS-NAME PURPOSE [IP]: a certificate in $T/pki/NAME.pem and
# NAME.key from CA ("ca" or "other-ca") for DNS-NAME (and the address IP), with certtool
# PURPOSE tls_www_server (serverAuth) or tls_www_client (clientAuth only); $CERT_FROM and
# $CERT_TO as for kb_issue_client. For servers that must fail verification in one precise
# way.
kb_issue_tls_cert() {
    local d="$T/pki"
    certtool --generate-privkey --key-type ecdsa --outfile "$d/$1.key" 2>/dev/null
    {
        echo "cn = \"$3\""
        echo "dns_name = \"$3\""
        [ -n "${5:-}" ] && echo "ip_address = \"$5\""
        echo "$4"
        echo "signing_key"
        echo "serial = $(date +%s%N)"
        if [ -n "${CERT_TO:-}" ]; then
            echo "activation_date = \"$CERT_FROM\""
            echo "expiration_date = \"$CERT_TO\""
        else
            echo "expiration_days = 30"
        fi
    } >"$d/$1.tmpl"
    certtool --generate-certificate --load-privkey "$d/$1.key" --load-ca-certificate \
        "$d/$2.pem" --load-ca-privkey "$d/$2.key" --template "$d/$1.tmpl" \
        --outfile "$d/$1.pem" 2>/dev/null
}

# A witness server: `openssl s_server -msg -verify 1` in its default mode. It asks for a
# client certificate (without requiring one, so a client with none still goes on to send
# its HTTP request) and logs every TLS message it receives ("<<< ... Certificate",
# "<<< ... CertificateVerify"), the client certificate's subject, and the application
# data it receives, raw (a request's Authorization header included). It writes to the
# client what arrives on its stdin: witness_reply feeds it one HTTP reply, so that a client
# which does talk HTTP to it gets an answer at once instead of waiting for its timeout.
# Its stdin is a FIFO held open by this shell (s_server quits at EOF of its stdin);
# witness_stop closes it. SIGPIPE is ignored: a client may close while it writes. Its
# stdout is line-buffered (stdbuf): fully buffered, the end of one connection ("CONNECTION
# CLOSED") would only be logged when the next one comes.
#
# witness_start NAME PORT S_SERVER-ARGS...: log in $T/NAME.log; waits for the port.
witness_start() {
    local name=$1 port=$2
    shift 2
    rm -f "$T/$name.in"
    mkfifo "$T/$name.in"
    (
        trap '' PIPE
        exec stdbuf -oL openssl s_server -accept "127.0.0.1:$port" -msg -verify 1 "$@"
    ) >"$T/$name.log" 2>&1 <"$T/$name.in" &
    kb_pids+=($!)
    exec {witness_fd}>"$T/$name.in"
    witness_log=$T/$name.log
    wait_port "$port"
}

# witness_reply: queue one HTTP reply for the next connection that reaches the
# application-data phase (replies queued for connections that never got there are sent
# together to a later one; a client reads the first and closes).
witness_reply() {
    (
        trap '' PIPE # a witness that did not start: its checks fail, not the script
        printf 'HTTP/1.1 503 rogue witness\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nrogue\n' >&"$witness_fd"
    ) 2>/dev/null || true
}

witness_stop() {
    exec {witness_fd}>&-
}

# witness_mark: the current length of the witness log (the start of the next slice).
witness_mark() {
    stat -c %s "$witness_log"
}

# witness_slice OFFSET OUT: what the witness logged since OFFSET, in OUT, once the
# connection(s) made since then have been logged to their end: a ClientHello, and after
# the last one s_server's "CONNECTION CLOSED", and then no growth for 0.3 s (5 s at most;
# the caller's checks then see what there is).
witness_slice() {
    local i quiet=0 prev=-1 now
    for i in $(seq 50); do
        now=$(stat -c %s "$witness_log")
        if tail -c +"$(($1 + 1))" "$witness_log" |
            awk '/ClientHello$/ { h = 1; c = 0 } /^CONNECTION CLOSED/ { c = 1 } END { exit !(h && c) }'; then
            [ "$now" = "$prev" ] && quiet=$((quiet + 1)) || quiet=0
            [ "$quiet" -ge 3 ] && break
        fi
        prev=$now
        sleep 0.1
    done
    tail -c +"$(($1 + 1))" "$witness_log" >"$2"
}

# Checks on a slice of a witness log (FILE). A client Certificate message that carries a
# certificate: "<<< ..., Handshake [length N], Certificate" with N above 8 (an empty one,
# the answer of a client without a certificate, is 7 bytes in TLS 1.2, 8 in TLS 1.3), or
# the subject s_server prints for a certificate it received.
witness_saw_cert() {
    grep -a -E '^<<< .*Handshake \[length [0-9a-f]+\], Certificate$' "$1" |
        sed 's/.*length \([0-9a-f]*\).*/\1/' | while read -r n; do
        [ $((16#$n)) -gt 8 ] && echo yes
    done | grep -q yes && return 0
    grep -q -a -E '^(depth=0 |subject=)' "$1"
}
witness_saw_cert_verify() { grep -q -a -E '^<<< .*Handshake .*CertificateVerify$' "$1"; }
witness_saw_authorization() { grep -q -i -a '^Authorization:' "$1"; }
witness_saw_hello() { grep -q -a -E '^<<< .*ClientHello$' "$1"; }

# kb_nginx_mtls PORT [DIRECTIVE...]: an nginx server block on 127.0.0.1:PORT with the test
# PKI's server certificate, insisting on a client certificate from the test CA and
# answering "hello <its subject>"; TLS 1.2 and 1.3, session tickets unless a directive
# (e.g. "ssl_session_tickets off;") says otherwise.
kb_nginx_mtls() {
    local port=$1 d
    shift
    echo "    server {"
    echo "        listen 127.0.0.1:$port ssl;"
    echo "        ssl_certificate $T/pki/server.pem;"
    echo "        ssl_certificate_key $T/pki/server.key;"
    echo "        ssl_client_certificate $T/pki/ca.pem;"
    echo "        ssl_verify_client on;"
    # nginx 1.22 leaves TLS 1.3 off unless asked.
    echo "        ssl_protocols TLSv1.2 TLSv1.3;"
    for d in "$@"; do echo "        $d"; done
    echo "        location / { return 200 \"hello \$ssl_client_s_dn\n\"; }"
    echo "    }"
}

# kb_nginx SERVER-BLOCKS: nginx in the background (kb_bg; one worker, its files in
# $T/nginx) serving the blocks (kb_nginx_mtls's); the caller waits for its ports.
kb_nginx() {
    mkdir -p "$T/nginx"
    cat >"$T/nginx.conf" <<CONF
daemon off;
pid $T/nginx/nginx.pid;
error_log $T/nginx/error.log;
worker_processes 1;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $T/nginx/body;
    proxy_temp_path $T/nginx/proxy;
    fastcgi_temp_path $T/nginx/fastcgi;
    uwsgi_temp_path $T/nginx/uwsgi;
    scgi_temp_path $T/nginx/scgi;
$1
}
CONF
    kb_bg "$T/nginx.log" nginx -c "$T/nginx.conf" -p "$T/nginx" -e "$T/nginx/error.log"
}

# kb_est_start: the test EST server (tests/lib/est_server.py, Debian's python3-cryptography)
# on a free port, issuing from the test PKI, its state in $T/est; the enrolment secret
# enrol:s3cret in $T/secret. EST is --est URL --ca CA for keybound, EST_URL the URL alone.
kb_est_start() {
    printf 'enrol:s3cret\n' >"$T/secret"
    chmod 600 "$T/secret"
    mkdir -p "$T/est"
    local port
    port=$(free_port)
    kb_bg "$T/est.log" /usr/bin/python3 "$TESTS_SRCDIR/lib/est_server.py" --port "$port" \
        --ca-cert "$T/pki/ca.pem" --ca-key "$T/pki/ca.key" --tls-cert "$T/pki/server.pem" \
        --tls-key "$T/pki/server.key" --secret enrol:s3cret --state "$T/est"
    wait_port "$port" || t_fail "EST server started"
    EST_URL=https://localhost:$port
    EST="--est $EST_URL --ca $T/pki/ca.pem"
}

# kb_est_enrolled: token "dev", the test PKI and policy (kb_pki_policy), the EST server
# (kb_est_start) and key "laptop" enrolled over it as CN=laptop-1; laptop is its URI.
# Skips the test without Debian's python3-cryptography.
kb_est_enrolled() {
    /usr/bin/python3 -c 'import cryptography.hazmat.primitives.serialization.pkcs7' 2>/dev/null ||
        t_skip_all "Debian's python3-cryptography is not installed"
    kb_token dev
    kb_pki_policy
    kb_est_start
    kb enroll $MOD --pin-file "$T/pin" --token pkcs11:token=dev --policy "$T/policy.conf" $EST \
        --label laptop --subject CN=laptop-1 --secret-file "$T/secret"
    t_check "enrolled key laptop over EST" rc_is 0
    laptop=$(sed -n 's/^key: //p' "$T/out")
}
