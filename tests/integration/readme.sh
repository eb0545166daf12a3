#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# README.md's "Your first token, step by step", run as written (in a home directory of the
# test's own, on a free port instead of 8443), so that the walkthrough stays true.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
for tool in certtool gnutls-serv softhsm2-util; do
    command -v "$tool" >/dev/null || t_skip_all "$tool is not installed"
done
p11-kit list-modules 2>/dev/null | grep -q '^softhsm2: ' ||
    t_skip_all "p11-kit has no softhsm2 module registered (KEYBOUND_MODULES=softhsm2)"
port=$(free_port)
mkdir -p "$T/home" "$T/bin"
ln -s "$KEYBOUND" "$T/bin/keybound"
# The section's shell blocks, in order; what a background server is left with is stopped.
{
    echo "set -e; trap 'kill \$(jobs -p) 2>/dev/null || true' EXIT"
    sed -n '/^## Your first token/,/^## /p' "$TESTS_SRCDIR/../README.md" |
        sed -n '/^```sh$/,/^```$/{/^```/d;p}' | sed "s/8443/$port/g"
} >"$T/steps.sh"
t_check "the walkthrough has its steps" grep -q '^keybound connect ' "$T/steps.sh"
run env -u SOFTHSM2_CONF -u KEYBOUND_MODULES HOME="$T/home" PATH="$T/bin:$PATH" \
    timeout 120 setsid -w bash "$T/steps.sh"
t_check "every command succeeds (exit 0)" rc_is 0
t_check "keygen prints the new key's URI" out_has '^pkcs11:.*token=laptop;.*object=device;type=private$'
t_check "import-cert stores the certificate" out_has "^stored certificate for key 'device' on token 'laptop'"
t_check "keys shows the protection the README names" \
    out_has '  protection: sensitive, not-extractable, never-extractable, always-sensitive, generated-on-token'
t_check "check: ADMITTED" out_has '^Decision: ADMITTED$'
t_check "connect sends the certificate from the token" \
    out_has "client cert:  CN=laptop-1, valid to .*, key on token 'laptop' (sent)"
t_check "gnutls-serv trusted it" out_has 'Status: The certificate is trusted'
t_check "  and saw CN=laptop-1" out_has 'Subject: CN=laptop-1'
t_check "no file outside ~/keybound-first was written" \
    bash -c "[ -z \"\$(find '$T/home' -path '$T/home/keybound-first' -prune -o -type f -print)\" ]"
t_done
