#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The bash completion: commands, each command's options and the --type values, read from
# the help of the keybound under test, and every option of every command's help offered.
. "$TESTS_SRCDIR/lib/testlib.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$TESTS_SRCDIR/../contrib/bash-completion/keybound"

# complete WORD...: COMPREPLY, one per line, for the command line WORD... with the cursor at
# the end of the last word ('' for a new word).
complete_line() {
    COMP_WORDS=("$KEYBOUND" "$@")
    COMP_CWORD=$#
    COMP_LINE="${COMP_WORDS[*]}"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _keybound
    printf '%s\n' "${COMPREPLY[@]}" | sort
}
is() { [ "$1" = "$2" ] || { echo "got: $1" >"$T/err"; echo "want: $2" >>"$T/err"; false; }; }
has() { printf '%s\n' "$1" | grep -qx -- "$2"; }

t_check "complete is registered for keybound" bash -c ". '$TESTS_SRCDIR/../contrib/bash-completion/keybound'; complete -p keybound | grep -q _keybound"
t_check "the commands" is "$(complete_line '')" \
    "$(printf '%s\n' --help --version attest check connect csr enroll import-cert keygen keys network renew status tokens tunnel | sort)"
t_check "a prefix of the commands" is "$(complete_line 'k')" "$(printf '%s\n' keygen keys)"
t_check "the --type values of keygen" is "$(complete_line keygen --type '')" \
    "$(printf '%s\n' ec-p256 ec-p384 ed25519 rsa-2048 rsa-3072 rsa-4096 | sort)"
t_check "the --type values of enroll, by prefix" is "$(complete_line enroll --label x --type rsa-)" \
    "$(printf '%s\n' rsa-2048 rsa-3072 rsa-4096)"
t_check "keygen's options by prefix" is "$(complete_line keygen --t)" "--token
--type"
t_check "renew's --rekey and --if-expires-within" bash -c \
    "printf '%s\n' \"\$1\" | grep -qx -- --rekey && printf '%s\n' \"\$1\" | grep -qx -- --if-expires-within" _ \
    "$(complete_line renew --)"
touch "$T/policy-a.conf" "$T/policy-b.conf"
t_check "--policy takes a file" is "$(complete_line check --policy "$T/policy-")" \
    "$(printf '%s\n' "$T/policy-a.conf" "$T/policy-b.conf")"
t_check "--output takes a file" is "$(complete_line csr --output "$T/policy-a")" \
    "$T/policy-a.conf"
t_check "attest's --output takes a file" is "$(complete_line attest --output "$T/policy-a")" \
    "$T/policy-a.conf"
t_check "attest's --nonce takes hex: nothing offered" is "$(complete_line attest --nonce '')" ""
t_check "attest's --key takes a URI" is "$(complete_line attest --key '')" "pkcs11:"
t_check "attest's --verify takes a file" is "$(complete_line attest --verify "$T/policy-a")" \
    "$T/policy-a.conf"
t_check "attest's --pubkey takes a file" is "$(complete_line attest --pubkey "$T/policy-a")" \
    "$T/policy-a.conf"
t_check "attest's --policy takes a file" is "$(complete_line attest --policy "$T/policy-a")" \
    "$T/policy-a.conf"
t_check "--est takes a URL: nothing offered" is "$(complete_line enroll --est '')" ""
t_check "network's subcommands" is "$(complete_line network '')" "$(printf '%s\n' --help check profile)"
t_check "network profile's options by prefix" is "$(complete_line network profile --s)" "--server-name
--ssid"
mkdir "$T/dir-a"
t_check "-o of network profile takes a directory" is "$(complete_line network profile --output "$T/dir-")" \
    "$T/dir-a"
t_check "a flag takes no value: options again after --stdio" is "$(complete_line connect --stdio --std)" "--stdio"

# Every option that a command's help names is completed for that command (for a command
# with subcommands, for each of them).
for cmd in $(complete_line '' | grep -v '^-'); do
    subs=$(_keybound_subs "$KEYBOUND" "$cmd")
    for sub in ${subs:-''}; do
        missing=
        offered=$(complete_line "$cmd" $sub --)
        for o in $("$KEYBOUND" "$cmd" $sub --help | grep -oE -- '(^|[][ ,(])--[a-z][a-z0-9-]*' | sed -E 's/^[^-]+//' | sort -u); do
            has "$offered" "$o" || missing="$missing $o"
        done
        t_check "every option of $cmd${sub:+ $sub} is offered${missing:+ (missing:$missing)}" [ -z "$missing" ]
    done
done
t_done
