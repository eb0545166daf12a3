#!/bin/bash
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
t_check "--pin-file strips only one newline (PIN+newline is wrong)" bash -c "[ $rc -eq 2 ] && grep -q 'wrong PIN' '$T/err'"

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
t_check "a wrong PIN: exit 2" rc_is 2
t_check "  one line saying so and that it is not retried" bash -c "[ \$(wc -l <'$T/err') -eq 1 ] && grep -q \"wrong PIN for token 'dev' (from --pin-file $T/wrong); not retried\" '$T/err'"
t_check "  exactly one C_Login reached the token" [ "$(calls C_Login)" -eq 1 ]
t_check "  the PIN appears nowhere in the output" bash -c "! grep -q 9999 '$T/err' '$T/out'"

# Same through GnuTLS's PIN callback (used for signing): one C_Login, no retry, and none
# at all when the key object is opened again (a tunnel re-imports after token errors).
: >"$T/shim.log"
kb keygen $MOD --token pkcs11:token=dev --label k2 --pin-file "$T/pin"
k2=$(cat "$T/out")
run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_LOG="$T/shim.log" "$P11PROBE" sign "$P11SHIM" "$T/wrong" "$k2" 1
t_check "a wrong PIN through the GnuTLS callback: exactly one C_Login" [ "$(calls C_Login)" -eq 1 ]
t_check "  reported as not retried" err_has "wrong PIN for token 'dev'; not retried"
t_check "  and the key cannot be opened" err_has "cannot be opened"
: >"$T/shim.log"
run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_LOG="$T/shim.log" "$P11PROBE" reopen "$P11SHIM" "$T/wrong" "$k2" 3
t_check "opening the key three times with a wrong PIN: one C_Login in all" [ "$(calls C_Login)" -eq 1 ]
t_check "  every open fails" [ "$(grep -c '^open [123]: error' "$T/out")" -eq 3 ]
t_check "  the later ones say the PIN was rejected before" err_has "was rejected before; not tried again"
: >"$T/shim.log"
run env P11SHIM_MODULE="$SOFTHSM_MODULE" P11SHIM_LOG="$T/shim.log" "$P11PROBE" reopen "$P11SHIM" "$T/pin" "$k2" 2
t_check "with the right PIN the key opens each time" [ "$(grep -c '^open [12]: ok' "$T/out")" -eq 2 ]

# Final try and locked (SoftHSM never reports them: the shim does).
for flag in CKF_USER_PIN_FINAL_TRY CKF_USER_PIN_LOCKED; do
    : >"$T/shim.log"
    kbshim P11SHIM_TOKEN_FLAGS=$flag keys --module "$P11SHIM" --pin-file "$T/pin"
    t_check "$flag: no login without --force (exit 2)" rc_is 2
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
t_check "keygen too refuses a final-try token" bash -c "[ $rc -eq 2 ] && [ \$(grep -c '^C_Login ' '$T/shim.log') -eq 0 ]"

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
t_done
