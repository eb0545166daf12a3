#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Bad input: one clear line, exit 2, the token unchanged.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
kb_token one
kb_token two
kb keygen $MOD --token pkcs11:token=one --label k --pin-file "$T/pin"
before_one=$(token_objects one)
before_two=$(token_objects two)

unchanged() { [ "$before_one" = "$(token_objects one)" ] && [ "$before_two" = "$(token_objects two)" ]; }

bad() {
    local desc=$1 pattern=$2
    shift 2
    kb "$@"
    t_check "$desc: exit 2" rc_is 2
    t_check "  one line on stderr" err_one_line
    t_check "  saying what is wrong" err_has "$pattern"
    t_check "  the tokens are unchanged" unchanged
}

bad "module path that does not exist" "module /nonexistent/libp11.so does not exist" \
    keygen --module /nonexistent/libp11.so --token pkcs11:token=one --label x --pin-file "$T/pin"
bad "module that is not a PKCS#11 module" "cannot be loaded" \
    tokens --module "$(command -v bash)"
bad "URI that matches no token" "matches no token; tokens present: '\(one\|two\)' (serial [0-9a-f]\{16\}), '\(one\|two\)'" \
    keygen $MOD --token pkcs11:token=three --label x --pin-file "$T/pin"
bad "URI that matches two tokens" "matches 2 tokens: '\(one\|two\)' (serial [0-9a-f]\{16\}), '\(one\|two\)'.*add token= or serial=" \
    keygen $MOD --token 'pkcs11:model=SoftHSM%20v2' --label x --pin-file "$T/pin"
bad "malformed URI (not pkcs11:)" "is not a valid pkcs11: URI: it does not start with pkcs11:" \
    keygen $MOD --token 'pkcs12:token=one' --label x --pin-file "$T/pin"
bad "malformed URI (bad escape)" "is not a valid pkcs11: URI" \
    keygen $MOD --token 'pkcs11:token=%zz' --label x --pin-file "$T/pin"
bad "URI with a misspelt attribute" "has an attribute keybound does not know" \
    keygen $MOD --token 'pkcs11:tokn=one' --label x --pin-file "$T/pin"
bad "tokens: a URI that matches no token" "URI 'pkcs11:token=three' matches no token; tokens present: '\\(one\\|two\\)'" \
    tokens $MOD 'pkcs11:token=three'
bad "URI that matches no key" "matches no key or certificate" \
    keys $MOD --pin-file "$T/pin" 'pkcs11:token=one;object=missing'
bad "unknown command" "'frobnicate' is not a command; see" frobnicate
bad "misspelt command" "'tunel' is not a command (did you mean 'tunnel'?)" tunel
bad "help for a misspelt command" "'kyes' is not a command (did you mean 'keys'?)" help kyes
bad "unknown option" "unknown option '--frobnicate'; see" tokens --frobnicate
bad "misspelt option" "unknown option '--pin-fiel' (did you mean --pin-file?)" \
    keygen $MOD --token pkcs11:token=one --label x --pin-fiel "$T/pin"
bad "ambiguous option" "option '--pin' is ambiguous: --pin-file, --pin-env" \
    keygen $MOD --token pkcs11:token=one --label x --pin "$T/pin"
bad "a value for a flag" "--json takes no value" keys $MOD --json=yes
bad "option without its value" "option '--label' needs a value" keygen --token pkcs11:token=one --label
# keybound help COMMAND is the command's --help, on stdout.
kb help tunnel
t_check "help tunnel: the tunnel's usage, exit 0" \
    bash -c "[ $rc -eq 0 ] && head -1 '$T/out' | grep -q '^usage: keybound tunnel '"
: >"$T/empty-pin"
chmod 600 "$T/empty-pin"
bad "empty PIN file" "PIN file .* is empty" keygen $MOD --token pkcs11:token=one --label x --pin-file "$T/empty-pin"
bad "PIN file that is a device" "is not a regular file" keygen $MOD --token pkcs11:token=one --label x --pin-file /dev/null

# keybound tunnel takes a tunnel's settings as keybound.conf does: the same checks and
# messages (the option named as given), before any token is touched.
tunnel_bad() {
    local desc=$1 pattern=$2
    shift 2
    bad "tunnel $desc" "$pattern" tunnel $MOD --pin-file "$T/pin" \
        --listen 127.0.0.1:1 --connect localhost:1 "$@"
}
tunnel_bad "--key that is not a pkcs11: URI" \
    "^keybound tunnel: --key: URI 'key.pem' is not a valid pkcs11: URI" --key key.pem
tunnel_bad "--proxy that is not http://" \
    "^keybound tunnel: --proxy: proxy 'socks5://127.0.0.1:1080' must be http://HOST:PORT" \
    --proxy socks5://127.0.0.1:1080
tunnel_bad "--proxy without a port" "^keybound tunnel: --proxy: 'proxy.example' is not HOST:PORT" \
    --proxy http://proxy.example
tunnel_bad "--workers out of range" "^keybound tunnel: --workers must be from 1 to 64, not '65'" \
    --workers 65
tunnel_bad "--alpn longer than 255 bytes" \
    "^keybound tunnel: --alpn: at most 8 protocols of 1 to 255 bytes" --alpn "$(printf '%0256d' 0)"
printf '[tunnel a]\nlisten = 127.0.0.1:1\nconnect = localhost:1\nkey = key.pem\n' >"$T/key.conf"
bad "keybound.conf with a key that is not a pkcs11: URI" \
    "^keybound: error: $T/key.conf:4: key: URI 'key.pem' is not a valid pkcs11: URI" \
    tunnel $MOD --pin-file "$T/pin" --config "$T/key.conf"

kb --version
t_check "--version prints the version" bash -c "[ $rc -eq 0 ] && grep -q '^keybound [0-9]' '$T/out'"
t_check "  and the optional features, each + or -" grep -qxE 'features: [+-]systemd [+-]explicit_bzero' "$T/out"
# As configured: config.h has "#undef HAVE_SYSTEMD" when it is not, so match the #define.
grep -q '^#define HAVE_SYSTEMD 1' "$TESTS_BUILDDIR/../config.h" && want=+systemd || want=-systemd
t_check "  libsystemd as configured ($want)" grep -q -- "^features: $want " "$T/out"
grep -q '^#define HAVE_EXPLICIT_BZERO 1' "$TESTS_BUILDDIR/../config.h" && want=+ || want=-
t_check "  explicit_bzero as configured (${want}explicit_bzero)" grep -q -- " ${want}explicit_bzero$" "$T/out"
t_check "  and the libraries it runs with" grep -qE '^libraries: GnuTLS [0-9.]+, p11-kit, libev [0-9]+\.[0-9]+, libmicrohttpd [0-9.]+, json-c [0-9.]+$' "$T/out"
for cmd in tokens keys keygen; do
    kb $cmd --help
    t_check "$cmd --help prints usage and exits 0" bash -c "[ $rc -eq 0 ] && grep -q '^usage: keybound $cmd' '$T/out'"
done
t_done
