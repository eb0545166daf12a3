#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# An EST URL that points at something else: a web site, a path that is not EST, a server
# that speaks plain HTTP. Each gets one line that says the URL does not answer as an EST
# server and what the base URL looks like, exit 2 (the user's setting to fix), and the
# token unchanged: nothing is made on it before the server has answered as EST.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
for tool in nginx python3; do
    command -v $tool >/dev/null || t_skip_all "$tool not installed"
done
kb_token dev
kb_pki
P=$T/pki
before=$(token_objects dev)
printf 'device:secret\n' >"$T/secret"
chmod 600 "$T/secret"
printf '[admission]\nmode = enforce\n' >"$T/policy.conf"
chmod 644 "$T/policy.conf"

web=$(free_port)
plain=$(free_port)
kb_nginx "    server {
        listen 127.0.0.1:$web ssl;
        ssl_certificate $P/server.pem;
        ssl_certificate_key $P/server.key;
        location = / { default_type text/html; return 200 '<html><body>a web site</body></html>'; }
        location /.well-known/est/ { default_type text/html; return 200 '<html><body>a web page</body></html>'; }
        location / { return 404; }
    }"
mkdir -p "$T/www"
echo '<html>plain</html>' >"$T/www/index.html"
kb_bg "$T/plain.log" python3 -m http.server "$plain" --bind 127.0.0.1 --directory "$T/www"
wait_port "$web" || t_fail "nginx started"
wait_port "$plain" || t_fail "the plain HTTP server started"

enrol() {
    kb enroll $MOD --est "$1" --token pkcs11:token=dev --label device --ca "$P/ca.pem" \
        --pin-file "$T/pin" --secret-file "$T/secret" --policy "$T/policy.conf"
}
wrong() {
    local desc=$1 url=$2 why=$3
    enrol "$url"
    t_check "$desc: exit 2" rc_is 2
    t_check "  one line: $url does not answer as an EST server ($why)" \
        bash -c "[ \$(wc -l <'$T/err') -eq 1 ] && grep -qF '$url does not answer as an EST server ($why); is the base URL https://' '$T/err' && grep -q '/.well-known/est?\$' '$T/err'"
    t_check "  the token is unchanged" bash -c "[ '$before' = '$(token_objects dev)' ]"
}
wrong "a web site's root" "https://localhost:$web/nothing-here" "HTTP 404 for /cacerts"
wrong "a web page where EST should be" "https://localhost:$web/.well-known/est" \
    "/cacerts is a text/html page"
# A URL without a path is the server's /.well-known/est (RFC 7030), as the message says.
enrol "https://localhost:$plain"
t_check "a server that speaks plain HTTP: exit 2, one line saying so" \
    bash -c "[ $rc -eq 2 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -qF 'https://localhost:$plain/.well-known/est does not answer as an EST server (it answers in plain HTTP, not TLS)' '$T/err'"
t_check "  the token is unchanged" bash -c "[ '$before' = '$(token_objects dev)' ]"
t_done
