#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# PIN sources and PIN safety: never in argv, never retried, final try and lock respected.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
kb_token dev
PIN=1234
kb keygen $MOD --token pkcs11:token=dev --label k1 --pin-file "$T/pin"
t_check "--pin-file with a trailing newline logs in" rc_is 0

shown() { grep -q "^Key 'k1'" "$T/out"; }

printf '1234\r\n' >"$T/pin-crlf"
chmod 600 "$T/pin-crlf"
kb keys $MOD --pin-file "$T/pin-crlf"
t_check "--pin-file with CRLF logs in" shown
printf '1234\n\n' >"$T/pin-2nl"
chmod 600 "$T/pin-2nl"
kb keys $MOD --pin-file "$T/pin-2nl"
t_check "--pin-file strips only one newline (PIN+newline is wrong, exit 6)" bash -c "[ $rc -eq 6 ] && grep -q 'wrong PIN' '$T/err'"

run env MY_PIN=1234 setsid -w "$KEYBOUND" keys $MOD --pin-env MY_PIN
t_check "--pin-env NAME reads the named variable" shown
kb keys $MOD --pin-env UNSET_PIN_VAR_FOR_TEST
t_check "--pin-env with an unset variable: exit 2 naming it" bash -c "[ $rc -eq 2 ] && grep -q 'UNSET_PIN_VAR_FOR_TEST.*is not set' '$T/err'"

kb keys $MOD "pkcs11:token=dev?pin-source=$T/pin"
t_check "pin-source=PATH in the URI" shown
kb keys $MOD "pkcs11:token=dev?pin-source=file://$T/pin"
t_check "pin-source=file:///PATH in the URI" shown

mkdir -p "$T/creds"
cp "$T/pin" "$T/creds/keybound.pin"
run env CREDENTIALS_DIRECTORY="$T/creds" setsid -w "$KEYBOUND" keys $MOD
t_check "the systemd credential keybound.pin" shown

kb keys $MOD "pkcs11:token=dev?pin-value=$PIN"
t_check "pin-value on the command line is refused (exit 2)" rc_is 2
t_check "  telling what to use instead" err_has "use --pin-file FILE or pin-source=FILE"
t_check "  without repeating the PIN" err_lacks "$PIN"

kb keys $MOD --pin "$PIN"
t_check "there is no --pin option" rc_is 2

# The terminal: no echo. A pseudo-terminal types the PIN after the prompt, as a person
# would, and records what the terminal showed.
run "$TESTS_SRCDIR/lib/pty_answer.py" "$T/typescript" "PIN for token 'dev':" "$PIN" -- \
    "$KEYBOUND" keys $MOD
t_check "a PIN typed at the terminal prompt logs in" grep -q "Key 'k1'" "$T/typescript"
t_check "  the prompt names the token" grep -q "PIN for token 'dev':" "$T/typescript"
t_check "  and the PIN is not echoed" bash -c "! grep -q '$PIN' '$T/typescript'"
run "$TESTS_SRCDIR/lib/pty_answer.py" "$T/typescript" "PIN for token 'dev':" "" -- \
    "$KEYBOUND" keys $MOD
t_check "an empty answer at the prompt is an error, not a login" bash -c "[ $rc -eq 2 ] && grep -q \"no PIN was typed for token 'dev'\" '$T/typescript'"

# Wrong PIN: one clear error, exactly one C_Login, never a retry.
printf '9999\n' >"$T/wrong"
chmod 600 "$T/wrong"
: >"$T/shim.log"
kbshim keys --module "$P11SHIM" --pin-file "$T/wrong"
t_check "a wrong PIN: exit 6" rc_is 6
t_check "  one line saying so and that it is not retried" bash -c "[ \$(wc -l <'$T/err') -eq 1 ] && grep -q \"wrong PIN for token 'dev' (from --pin-file $T/wrong); not retried\" '$T/err'"
t_check "  exactly one C_Login reached the token" [ "$(calls C_Login)" -eq 1 ]
t_check "  the PIN appears nowhere in the output" bash -c "! grep -q 9999 '$T/err' '$T/out'"

# Same through GnuTLS's PIN callback (used for signing): one C_Login, no retry, and none
# at all when the key object is opened again (a tunnel re-imports after token errors).
# (The rejection above left a marker for $T/wrong: start over without it.)
rm -f "$KEYBOUND_STATE_DIR"/pin-rejected.*
: >"$T/shim.log"
kb keygen $MOD --token pkcs11:token=dev --label k2 --pin-file "$T/pin"
k2=$(cat "$T/out")
run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_LOG="$T/shim.log" "$P11PROBE" sign "$P11SHIM" "$T/wrong" "$k2" 1
t_check "a wrong PIN through the GnuTLS callback: exactly one C_Login" [ "$(calls C_Login)" -eq 1 ]
t_check "  reported as not retried" err_has "wrong PIN for token 'dev'; not retried"
t_check "  and the key cannot be opened" err_has "cannot be opened"
rm -f "$KEYBOUND_STATE_DIR"/pin-rejected.*
: >"$T/shim.log"
run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_LOG="$T/shim.log" "$P11PROBE" reopen "$P11SHIM" "$T/wrong" "$k2" 3
t_check "opening the key three times with a wrong PIN: one C_Login in all" [ "$(calls C_Login)" -eq 1 ]
t_check "  every open fails" [ "$(grep -c '^open [123]: error' "$T/out")" -eq 3 ]
t_check "  the later ones say the PIN was rejected before" err_has "was rejected before; not tried again"
rm -f "$KEYBOUND_STATE_DIR"/pin-rejected.*
: >"$T/shim.log"
run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_LOG="$T/shim.log" "$P11PROBE" reopen "$P11SHIM" "$T/pin" "$k2" 2
t_check "with the right PIN the key opens each time" [ "$(grep -c '^open [12]: ok' "$T/out")" -eq 2 ]

# Final try and locked (SoftHSM never reports them: the shim does).
for flag in CKF_USER_PIN_FINAL_TRY CKF_USER_PIN_LOCKED; do
    : >"$T/shim.log"
    kbshim P11SHIM_TOKEN_FLAGS=$flag keys --module "$P11SHIM" --pin-file "$T/pin"
    t_check "$flag: no login without --force (exit 6: it waits for a person, not a restart)" rc_is 6
    t_check "  no C_Login was made" [ "$(calls C_Login)" -eq 0 ]
    case $flag in
    *FINAL_TRY) t_check "  the message says 1 try is left and names --force" err_has "reports 1 PIN try left.*--force" ;;
    *LOCKED) t_check "  the message says 0 tries are left" err_has "PIN is locked (0 tries left)" ;;
    esac
    : >"$T/shim.log"
    kbshim P11SHIM_TOKEN_FLAGS=$flag keys --module "$P11SHIM" --pin-file "$T/pin" --force
    t_check "$flag with --force: one login" bash -c "[ \$(grep -c '^C_Login ' '$T/shim.log') -eq 1 ]"
done
: >"$T/shim.log"
kbshim P11SHIM_TOKEN_FLAGS=CKF_USER_PIN_FINAL_TRY keygen --module "$P11SHIM" --token pkcs11:token=dev --label k3 --pin-file "$T/pin"
t_check "keygen too refuses a final-try token (exit 6)" bash -c "[ $rc -eq 6 ] && [ \$(grep -c '^C_Login ' '$T/shim.log') -eq 0 ]"

kbshim P11SHIM_TOKEN_FLAGS=CKF_USER_PIN_COUNT_LOW keys --module "$P11SHIM" --pin-file "$T/pin"
t_check "count-low: logs in with a warning" bash -c "[ $rc -eq 0 ] && grep -q 'fewer tries left' '$T/err'"

chmod 644 "$T/pin-crlf"
kb keys $MOD --pin-file "$T/pin-crlf"
t_check "a PIN file others can read is refused (exit 2), naming --insecure-pin-file" bash -c "[ $rc -eq 2 ] && grep -q 'PIN file $T/pin-crlf can be read by other users; refusing it: chmod 600 $T/pin-crlf, or pass --insecure-pin-file' '$T/err'"
kb keys $MOD --pin-file "$T/pin-crlf" --insecure-pin-file
t_check "  with --insecure-pin-file it works, with a warning" bash -c "[ $rc -eq 0 ] && grep -q 'PIN file $T/pin-crlf can be read by other users' '$T/err'"

kb keys $MOD --pin-file "$T/no-such-pin-file"
t_check "a missing PIN file: exit 2 naming it" bash -c "[ $rc -eq 2 ] && grep -q 'PIN file $T/no-such-pin-file cannot be read' '$T/err'"
# Two tokens with different PINs: one PIN is never tried on both.
softhsm2-util --init-token --free --label other --so-pin 12345678 --pin 5678 >/dev/null
: >"$T/shim.log"
kbshim keys --module "$P11SHIM" --pin-file "$T/pin"
t_check "one PIN file and two tokens: no login at all" [ "$(calls C_Login)" -eq 0 ]
t_check "  and the user is told to choose a token" err_has "add token= or serial= to choose one"
: >"$T/shim.log"
kbshim keys --module "$P11SHIM" --pin-file "$T/pin" pkcs11:token=dev
t_check "with token= the PIN goes to that token only" bash -c "[ \$(grep -c '^C_Login ' '$T/shim.log') -eq 1 ] && grep -q \"^Key 'k1'\" '$T/out'"
# A rejected PIN is not tried again by the next run either (a restart, a timer): each run
# below is a new process; the shim's log is kept across them and counts every C_Login.
S="$KEYBOUND_STATE_DIR"
rm -rf "$S"
softhsm2-util --delete-token --token other >/dev/null 2>&1
printf '9999\n' >"$T/wrong3"
chmod 600 "$T/wrong3"
: >"$T/shim.log"
rcs=""
for i in 1 2 3; do
    kbshim keys --module "$P11SHIM" --pin-file "$T/wrong3"
    rcs="$rcs $rc"
done
t_check "a wrong PIN over three runs: exactly one C_Login in all" [ "$(calls C_Login)" -eq 1 ]
t_check "  every run exits 6 (rc:$rcs)" [ "$rcs" = " 6 6 6" ]
t_check "  the third says it was rejected before and how to clear it, in one line" bash -c "[ \$(wc -l <'$T/err') -eq 1 ] && grep -q \"the PIN from --pin-file $T/wrong3 was rejected by token 'dev' before; not trying it again: change the PIN source, or delete $S/pin-rejected\..*, or pass --force\" '$T/err'"
marker=$(ls "$S"/pin-rejected.* 2>/dev/null | head -1)
t_check "  one marker file in KEYBOUND_STATE_DIR" [ "$(ls "$S" | grep -c '^pin-rejected\.')" -eq 1 ]
t_check "  the state directory is 0700, the marker 0600" bash -c "[ \$(stat -c %a '$S') = 700 ] && [ \$(stat -c %a '$marker') = 600 ]"
t_check "  the marker names the token" bash -c "grep -qx 'token-manufacturer = SoftHSM project' '$marker' && grep -qx 'token-model = SoftHSM v2' '$marker' && grep -qx 'token-label = dev' '$marker' && grep -q '^token-serial = [0-9a-f]\{16\}$' '$marker'"
t_check "  and the PIN source by path, inode, mtime and size" bash -c "grep -qx 'source = file' '$marker' && grep -qx 'source-path = $T/wrong3' '$marker' && grep -qx \"source-inode = \$(stat -c %i '$T/wrong3')\" '$marker' && grep -q '^source-mtime = [0-9]*\.[0-9]\{9\}$' '$marker' && grep -qx 'source-size = 5' '$marker'"
t_check "  and not the PIN" bash -c "! grep -q 9999 '$marker'"

: >"$T/shim.log"
kbshim keys --module "$P11SHIM" --pin-file "$T/wrong3" --force
t_check "--force tries the same PIN once more: one C_Login, exit 6" bash -c "[ $rc -eq 6 ] && [ \$(grep -c '^C_Login ' '$T/shim.log') -eq 1 ]"
kbshim keys --module "$P11SHIM" --pin-file "$T/wrong3"
t_check "  and the run after that tries nothing" bash -c "[ $rc -eq 6 ] && [ \$(grep -c '^C_Login ' '$T/shim.log') -eq 1 ]"

: >"$T/shim.log"
printf '8888\n' >"$T/wrong3.new"
chmod 600 "$T/wrong3.new"
mv "$T/wrong3.new" "$T/wrong3"
kbshim keys --module "$P11SHIM" --pin-file "$T/wrong3"
kbshim keys --module "$P11SHIM" --pin-file "$T/wrong3"
t_check "a changed PIN file gets one new try (two runs, one C_Login)" bash -c "[ $rc -eq 6 ] && [ \$(grep -c '^C_Login ' '$T/shim.log') -eq 1 ]"

: >"$T/shim.log"
kbshim keygen --module "$P11SHIM" --token pkcs11:token=dev --label k9 --pin-file "$T/wrong3"
t_check "keygen too refuses a PIN rejected before: exit 6, no C_Login" bash -c "[ $rc -eq 6 ] && [ \$(grep -c '^C_Login ' '$T/shim.log') -eq 0 ]"
kbshim csr --module "$P11SHIM" --key "$k2" --subject CN=x --pin-file "$T/wrong3"
t_check "csr too: exit 6, no C_Login" bash -c "[ $rc -eq 6 ] && [ \$(grep -c '^C_Login ' '$T/shim.log') -eq 0 ]"

sleep 0.05
printf '1234\n' >"$T/wrong3"
kbshim keys --module "$P11SHIM" --pin-file "$T/wrong3"
t_check "the right PIN in the same file (changed): logs in" bash -c "[ $rc -eq 0 ] && grep -q \"^Key 'k1'\" '$T/out'"
t_check "  and the marker is gone" bash -c "! ls '$S'/pin-rejected.* >/dev/null 2>&1"

# --pin-env: the source is the variable's name and its value's length (never the value).
: >"$T/shim.log"
for i in 1 2; do
    run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_LOG="$T/shim.log" BAD_PIN=7777 \
        setsid -w "$KEYBOUND" keys --module "$P11SHIM" --pin-env BAD_PIN
done
t_check "a wrong --pin-env PIN over two runs: one C_Login, exit 6" bash -c "[ $rc -eq 6 ] && [ \$(grep -c '^C_Login ' '$T/shim.log') -eq 1 ] && grep -q 'the PIN from --pin-env BAD_PIN was rejected' '$T/err'"
t_check "  the marker names the variable, not its value" bash -c "grep -qx 'source = environment' $S/pin-rejected.* && grep -qx 'source-name = BAD_PIN' $S/pin-rejected.* && ! grep -q 7777 $S/pin-rejected.*"
rm -f "$S"/pin-rejected.*

# tunnel and connect (what systemd and ssh run): exit 6 too, and no second try.
kb_pki
: >"$T/shim.log"
kbshim tunnel --module "$P11SHIM" --pin-file "$T/wrong" --listen 127.0.0.1:$(free_port) \
    --connect localhost:1 --key "$k2" --ca "$T/pki/ca.pem"
t_check "tunnel with a wrong PIN: exit 6 (systemd does not restart it), one C_Login" bash -c "[ $rc -eq 6 ] && [ \$(grep -c '^C_Login ' '$T/shim.log') -eq 1 ]"
kbshim connect --module "$P11SHIM" --pin-file "$T/wrong" --key "$k2" --ca "$T/pki/ca.pem" localhost:1
t_check "  then connect with the same PIN file: exit 6, no C_Login" bash -c "[ $rc -eq 6 ] && [ \$(grep -c '^C_Login ' '$T/shim.log') -eq 1 ]"
rm -f "$S"/pin-rejected.*

# The GnuTLS callback (signing) keeps the same memory across processes.
: >"$T/shim.log"
for i in 1 2 3; do
    run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_LOG="$T/shim.log" "$P11PROBE" sign "$P11SHIM" "$T/wrong" "$k2" 1
done
t_check "a wrong PIN through the GnuTLS callback over three runs: one C_Login" [ "$(calls C_Login)" -eq 1 ]
t_check "  the later runs say it was rejected before" err_has "was rejected by token 'dev' before; not trying it again"
t_check "  and a marker was written" bash -c "grep -qx 'source-path = $T/wrong' $S/pin-rejected.*"
rm -f "$S"/pin-rejected.*

# The state directory when KEYBOUND_STATE_DIR is not set: $STATE_DIRECTORY's first path
# (systemd), else $XDG_STATE_HOME/keybound (not root), created 0700.
: >"$T/shim.log"
run env -u KEYBOUND_STATE_DIR STATE_DIRECTORY="$T/sd1:$T/sd2" P11SHIM_MODULE="$SOFTHSM_MODULE" \
    P11SHIM_LOG="$T/shim.log" setsid -w "$KEYBOUND" keys --module "$P11SHIM" --pin-file "$T/wrong"
t_check "under systemd the marker goes to the first \$STATE_DIRECTORY" bash -c "[ $rc -eq 6 ] && ls '$T/sd1'/pin-rejected.* >/dev/null && [ ! -e '$T/sd2' ]"
if [ "$(id -u)" -ne 0 ]; then
    run env -u KEYBOUND_STATE_DIR -u STATE_DIRECTORY XDG_STATE_HOME="$T/xdg" P11SHIM_MODULE="$SOFTHSM_MODULE" \
        P11SHIM_LOG="$T/shim.log" setsid -w "$KEYBOUND" keys --module "$P11SHIM" --pin-file "$T/wrong"
    t_check "else in \$XDG_STATE_HOME/keybound, made 0700" bash -c "[ $rc -eq 6 ] && ls '$T/xdg/keybound'/pin-rejected.* >/dev/null && [ \$(stat -c %a '$T/xdg/keybound') = 700 ]"
fi

for u in keybound-tunnel@.service keybound-renew.service; do
    t_check "$u does not restart after exit 6" grep -qx 'RestartPreventExitStatus=6' "$TESTS_SRCDIR/../contrib/systemd/$u.in"
done
t_done
