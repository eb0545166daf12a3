#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Files keybound trusts: the policy, the files it names (trust, endpoint ca, crl),
# keybound.conf, the PIN and secret files. Writable by others (or in a directory others
# can write, unless it is sticky and root's, like /tmp): refused with one line, exit 2.
# A PIN file others can read: refused unless --insecure-pin-file. A FIFO in place of
# any of them: refused at once, never a blocked open.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
kb_token dev
kb_pki
kb keygen $MOD --token pkcs11:token=dev --label k1 --pin-file "$T/pin"
key=$(cat "$T/out")

# A policy in directory $1 naming trust/crl/ca files there.
policy_in() {
    local d=$1
    mkdir -p "$d"
    cp "$T/pki/ca.pem" "$d/ca.pem"
    cp "$T/pki/ca.pem" "$d/endpoint-ca.pem"
    printf 'crl_next_update = 7\ncrl_number = 1\n' >"$T/crl.tmpl"
    certtool --generate-crl --load-ca-privkey "$T/pki/ca.key" --load-ca-certificate \
        "$T/pki/ca.pem" --template "$T/crl.tmpl" --outfile "$d/ca.crl" 2>/dev/null
    cat >"$d/policy.conf" <<EOF
[admission]
mode = enforce
[certificate]
trust = ca.pem
crl = ca.crl
[endpoint "localhost"]
ca = endpoint-ca.pem
EOF
    chmod 644 "$d/policy.conf" "$d/ca.pem" "$d/endpoint-ca.pem" "$d/ca.crl"
    chmod 755 "$d"
}

check_with() {
    kb check $MOD --pin-file "$T/pin" --policy "$1" --key "$key"
}
# refused DESC PATTERN: the last run exited 2 with one line matching PATTERN.
refused() {
    t_check "$1: exit 2" rc_is 2
    t_check "  one line on stderr" err_one_line
    t_check "  naming the file and what to do" err_has "$2"
}

P="$T/pol"
policy_in "$P"
check_with "$P/policy.conf"
t_check "a policy and its files, none writable by others: used (not an error)" bash -c "[ $rc -ne 2 ]"
ok_rc=$rc

for f in ca.pem endpoint-ca.pem ca.crl; do
    chmod g+w "$P/$f"
    check_with "$P/policy.conf"
    refused "policy names $f, writable by its group" "$P/$f is writable by its group; refusing it: chmod go-w $P/$f"
    chmod go-w "$P/$f"
    chmod o+w "$P/$f"
    check_with "$P/policy.conf"
    refused "policy names $f, writable by every user" "$P/$f is writable by every user; refusing it: chmod go-w $P/$f"
    chmod go-w "$P/$f"
done

chmod g+w "$P"
check_with "$P/policy.conf"
refused "a policy in a group-writable directory" "policy $P/policy.conf is in $P, which its group can write; refusing it: chmod go-w $P"
chmod 755 "$P"

# The named files in another directory that is world-writable (not sticky).
mkdir -p "$T/shared"
chmod 777 "$T/shared"
mv "$P/ca.pem" "$T/shared/ca.pem"
sed -i "s|^trust = ca.pem|trust = $T/shared/ca.pem|" "$P/policy.conf"
check_with "$P/policy.conf"
refused "a trust file in a world-writable directory" "$T/shared/ca.pem is in $T/shared, which every user can write; refusing it"
# Sticky but not root's (unless the tests run as root, then it is root's and accepted).
chmod 1777 "$T/shared"
check_with "$P/policy.conf"
if [ "$(id -u)" -ne 0 ]; then
    refused "a trust file in a sticky directory that is not root's" "$T/shared/ca.pem is in $T/shared, which every user can write"
fi

# /tmp itself: sticky and root's, so a file in it is accepted.
if [ -k /tmp ] && [ "$(stat -c %u /tmp)" -eq 0 ]; then
    tmpf=$(mktemp /tmp/keybound-files-ca.XXXXXX)
    cp "$T/pki/ca.pem" "$tmpf"
    chmod 644 "$tmpf"
    sed -i "s|^trust = .*|trust = $tmpf|" "$P/policy.conf"
    check_with "$P/policy.conf"
    t_check "a trust file in /tmp (sticky, root's): accepted" rc_is "$ok_rc"
    rm -f "$tmpf"
else
    t_pass "# SKIP /tmp is not sticky and root's here"
fi

# The PIN file: readable by others is refused; --insecure-pin-file allows it, --force does not.
cp "$T/pin" "$T/pin-644"
chmod 644 "$T/pin-644"
kb keys $MOD --pin-file "$T/pin-644"
refused "a PIN file others can read" "PIN file $T/pin-644 can be read by other users; refusing it: chmod 600 $T/pin-644, or pass --insecure-pin-file"
kb keys $MOD --pin-file "$T/pin-644" --force
t_check "  --force does not override it" rc_is 2
kb keys $MOD --pin-file "$T/pin-644" --insecure-pin-file
t_check "  --insecure-pin-file does, with a warning" bash -c "[ $rc -eq 0 ] && grep -q 'can be read by other users' '$T/err' && grep -q \"^Key 'k1'\" '$T/out'"
cp "$T/pin" "$T/pin-w"
chmod 620 "$T/pin-w"
kb keys $MOD --pin-file "$T/pin-w" --insecure-pin-file
refused "a PIN file its group can write (even with --insecure-pin-file)" "PIN file $T/pin-w is writable by its group"
kb keys $MOD "pkcs11:token=dev?pin-source=$T/pin-644"
refused "a pin-source others can read" "PIN file $T/pin-644 can be read by other users"

# keybound.conf
cat >"$T/keybound.conf" <<EOF
[tunnel one]
listen = 127.0.0.1:$(free_port)
connect = localhost:1
key = $key
EOF
chmod 666 "$T/keybound.conf"
kb tunnel $MOD --pin-file "$T/pin" --config "$T/keybound.conf"
refused "keybound.conf writable by every user" "config $T/keybound.conf is writable by every user; refusing it: chmod go-w $T/keybound.conf"
chmod 644 "$T/keybound.conf"
mkdir -p "$T/confdir"
cp "$T/keybound.conf" "$T/confdir/keybound.conf"
chmod 775 "$T/confdir"
kb tunnel $MOD --pin-file "$T/pin" --config "$T/confdir/keybound.conf"
refused "keybound.conf in a group-writable directory" "config $T/confdir/keybound.conf is in $T/confdir, which its group can write"

# FIFOs: refused at once. timeout turns a blocked open into rc 124 instead of a hang.
mkfifo -m 600 "$T/fifo"
fifo_refused() {
    t_check "$1: refused promptly (exit 2, not a timeout)" rc_is 2
    t_check "  one line saying it is not a regular file" bash -c "[ \$(wc -l <'$T/err') -eq 1 ] && grep -q '$T/fifo is not a regular file' '$T/err'"
}
run timeout 10 setsid -w "$KEYBOUND" keys $MOD --pin-file "$T/fifo"
fifo_refused "a FIFO as the PIN file"
run timeout 10 setsid -w "$KEYBOUND" keys $MOD "pkcs11:token=dev?pin-source=$T/fifo"
fifo_refused "a FIFO as the URI's pin-source"
run timeout 10 setsid -w "$KEYBOUND" check $MOD --pin-file "$T/pin" --policy "$T/fifo" --key "$key"
fifo_refused "a FIFO as the policy"
run timeout 10 setsid -w "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" --config "$T/fifo"
fifo_refused "a FIFO as keybound.conf"
run timeout 10 setsid -w "$KEYBOUND" enroll $MOD --pin-file "$T/pin" --token pkcs11:token=dev \
    --label x --est https://127.0.0.1:1 --ca "$T/pki/ca.pem" --secret-file "$T/fifo"
fifo_refused "a FIFO as the enrolment secret file"
mkdir -p "$T/creds"
mkfifo -m 600 "$T/creds/keybound.pin"
run timeout 10 env CREDENTIALS_DIRECTORY="$T/creds" setsid -w "$KEYBOUND" keys $MOD
t_check "a FIFO as the systemd credential: refused promptly (exit 2)" bash -c "[ $rc -eq 2 ] && grep -q 'is not a regular file' '$T/err'"
policy_in "$T/pol2"
rm "$T/pol2/ca.pem"
mkfifo -m 644 "$T/pol2/ca.pem"
run timeout 10 setsid -w "$KEYBOUND" check $MOD --pin-file "$T/pin" --policy "$T/pol2/policy.conf" --key "$key"
t_check "a FIFO as the policy's trust file: refused promptly (exit 2)" bash -c "[ $rc -eq 2 ] && grep -q '$T/pol2/ca.pem is not a regular file' '$T/err'"
# --- Owners: whoever owns a file, or the directory that really holds it, can change it -----
# (as root a file of another user's can be made; otherwise there is none to make)
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
    O="$T/owned"
    policy_in "$O"
    chown nobody "$O/ca.pem"
    check_with "$O/policy.conf"
    refused "a trust file that belongs to another user (mode 0644)" "$O/ca.pem belongs to uid $(id -u nobody), neither root nor you"
    chown root "$O/ca.pem"
    # In /tmp (sticky, root's), a file another user made is theirs to rewrite.
    tmpf=$(mktemp /tmp/keybound-owned.XXXXXX)
    cp "$O/policy.conf" "$tmpf"
    sed -i "s|= ca.pem|= $O/ca.pem|; s|= ca.crl|= $O/ca.crl|; s|= endpoint-ca.pem|= $O/endpoint-ca.pem|" "$tmpf"
    chmod 644 "$tmpf"
    chown nobody "$tmpf"
    check_with "$tmpf"
    refused "a policy in /tmp that another user made" "$tmpf belongs to uid $(id -u nobody)"
    rm -f "$tmpf"
    mkdir -p "$T/theirs"
    policy_in "$T/theirs"
    chown nobody "$T/theirs"
    check_with "$T/theirs/policy.conf"
    refused "a policy in a directory of another user's (mode 0755)" "is in $T/theirs, which belongs to uid $(id -u nobody)"
    # A symlink in a safe directory is judged by the directory of its target.
    mkdir -p "$T/open" "$T/safe"
    chmod 775 "$T/open"
    cp "$O/ca.pem" "$T/open/ca.pem"
    chmod 644 "$T/open/ca.pem"
    policy_in "$T/safe"
    ln -sf "$T/open/ca.pem" "$T/safe/link.pem"
    sed -i 's|^trust = ca.pem|trust = link.pem|' "$T/safe/policy.conf"
    check_with "$T/safe/policy.conf"
    refused "a trust file that is a symlink into a group-writable directory" "is in $T/open, which its group can write"
else
    t_pass "# SKIP files of another user's can only be made as root"
fi

t_done
