#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The JSON contract: every command that takes --json prints exactly one document on stdout
# for every outcome (result, refusal, error), with "schema" first, and its keys are the
# ones keybound(1)'s JSON OUTPUT section gives for that command, read from the page itself
# so that the page and the program cannot drift apart. csr, import-cert, tunnel and
# connect --stdio refuse --json.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
command -v gnutls-serv >/dev/null || t_skip_all "gnutls-serv not installed"
MAN=$TESTS_SRCDIR/../doc/keybound.1
PY=/usr/bin/python3

# contract.py MAN SHAPE FILE [EXIT]: FILE holds one JSON object whose first key is
# "schema" (1) and whose keys, at every depth, are exactly those the page's shape SHAPE
# (a command, or ERROR) has; an object-valued key may be null. With EXIT, the document's
# "exit" must be it. Prints "ok" or what differs.
cat >"$T/contract.py" <<'PY'
import json, re, sys

def section(man):
    s = man[man.index(".SH JSON OUTPUT"):]
    return s[: s.index("\n.SH ", 1)].replace("\\-", "-")

def shapes(man):
    """{name: skeleton}: a command's shape for each command its .SS title names, and the
    capitalised names the blocks define. A skeleton is None (a plain value), ("obj",
    {key: skeleton}, [merged names]), ("list", skeleton) or ("ref", NAME)."""
    out = {}
    for part in section(man).split("\n.SS ")[1:]:
        title, body = part.split("\n", 1)
        for block in re.findall(r"^\.nf\n(.*?)^\.fi$", body, re.S | re.M):
            if "..." in block:
                continue
            toks = re.findall(r'[{}\[\],:=]|"[a-z0-9_]+"|[A-Z][A-Z0-9_]*', block)
            pos = 0
            def value():
                nonlocal pos
                t = toks[pos]; pos += 1
                if t == "{":
                    keys, merged = {}, []
                    while toks[pos] != "}":
                        t = toks[pos]; pos += 1
                        if t.startswith('"'):
                            keys[t[1:-1]] = None
                            if toks[pos] == ":":
                                pos += 1
                                keys[t[1:-1]] = value()
                        else:
                            merged.append(t)
                        if toks[pos] == ",":
                            pos += 1
                    pos += 1
                    return ("obj", keys, merged)
                if t == "[":
                    v = value(); pos += 1
                    return ("list", v)
                return ("ref", t)
            while pos < len(toks):
                if toks[pos + 1 : pos + 2] == ["="]:
                    name = toks[pos]; pos += 2
                    out[name] = value()
                else:
                    v = value()
                    for cmd in title.split(", "):
                        out[cmd.strip()] = v
    return out

def flat(sk, defs):
    """An object skeleton with its merged names' keys in it."""
    while sk[0] == "ref":
        sk = defs[sk[1]]
    keys = dict(sk[1])
    for name in sk[2]:
        keys.update(flat(defs[name], defs)[1])
    return ("obj", keys, [])

def match(v, sk, defs, where, errs):
    if sk is None:
        if isinstance(v, dict) or (isinstance(v, list) and any(isinstance(x, (dict, list)) for x in v)):
            errs.append("%s: undocumented structure %r" % (where, v))
        return
    if v is None:
        return
    if sk[0] == "list":
        if not isinstance(v, list):
            errs.append("%s: not a list" % where)
            return
        for i, x in enumerate(v):
            match(x, sk[1], defs, "%s[%d]" % (where, i), errs)
        return
    sk = flat(sk, defs)
    if not isinstance(v, dict):
        errs.append("%s: not an object" % where)
        return
    for k in sorted(set(v) - set(sk[1])):
        errs.append("%s.%s: not in keybound(1)" % (where, k))
    for k in sorted(set(sk[1]) - set(v)):
        errs.append("%s.%s: documented, missing" % (where, k))
    for k in set(v) & set(sk[1]):
        match(v[k], sk[1][k], defs, "%s.%s" % (where, k), errs)

if __name__ == "__main__":
    defs = shapes(open(sys.argv[1]).read())
    if sys.argv[2] == "--commands":
        print(" ".join(sorted(k.replace(" ", "-") for k in defs if k.islower())))
        sys.exit(0 if {"ERROR", "CERTIFICATE"} <= set(defs) else 1)
    try:
        d = json.loads(open(sys.argv[3]).read())
    except ValueError as e:
        print("not one JSON document: %s" % e)
        sys.exit(1)
    errs = []
    if not isinstance(d, dict) or list(d)[:1] != ["schema"] or d["schema"] != 1:
        errs.append("schema is not the first key, or not 1")
    else:
        match(d, defs[sys.argv[2]], defs, sys.argv[2], errs)
    if len(sys.argv) > 4 and d.get("exit") != int(sys.argv[4]):
        errs.append("exit is %r, the command exited %s" % (d.get("exit"), sys.argv[4]))
    print("\n".join(errs) or "ok")
    sys.exit(1 if errs else 0)
PY
# doc_is SHAPE [exit]: the last run's stdout is that shape; "exit" says the document's exit
# key must be the exit status too.
doc_is() {
    cp "$T/out" "$T/doc.json"
    if [ "${2:-}" = exit ]; then
        python3 "$T/contract.py" "$MAN" "$1" "$T/doc.json" "$rc" >"$T/contract.out"
    else
        python3 "$T/contract.py" "$MAN" "$1" "$T/doc.json" >"$T/contract.out"
    fi || {
        sed 's/^/# /' "$T/contract.out"
        return 1
    }
}
rc_doc() { rc_is "$1" && doc_is "$2" "${3:-}"; }
json_is() { python3 -c "import json,sys; d=json.load(open('$T/out')); sys.exit(0 if ($1) else 1)"; }
# error_doc CODE: exit CODE, the error object with it, and the one line on stderr still.
error_doc() { rc_is "$1" && doc_is ERROR exit && [ -s "$T/err" ] && err_one_line; }
no_doc() { rc_is 2 && [ ! -s "$T/out" ] && err_one_line && err_has -- "--json"; }

# --- the page: which commands have a shape, and that they are the ones with --json -----
run python3 "$T/contract.py" "$MAN" --commands
documented=$(cat "$T/out")
t_check "JSON OUTPUT defines ERROR and CERTIFICATE, and the shapes of $documented" \
    bash -c "[ $rc -eq 0 ] && [ -n '$documented' ]"
with_json=""
for cmd in $("$KEYBOUND" --help | sed -n 's/^  \([a-z-]*\)  .*/\1/p'); do
    # A command with subcommands (network profile, network check): each is "CMD-SUB".
    subs=$("$KEYBOUND" "$cmd" --help | sed -n "s/^\(usage:\)\{0,1\} *keybound $cmd \([a-z][a-z-]*\)\( .*\)\{0,1\}$/\2/p")
    for sub in $subs; do
        "$KEYBOUND" "$cmd" "$sub" --help | grep -q -- '^  --json ' && with_json="$with_json $cmd-$sub"
    done
    [ -z "$subs" ] && "$KEYBOUND" "$cmd" --help | grep -q -- '^  --json ' && with_json="$with_json $cmd"
done
t_check "  exactly the commands whose --help offers --json ($with_json)" \
    bash -c "[ \"\$(echo $with_json | tr ' ' '\n' | sort | xargs)\" = '$documented' ]"
opts=$(python3 -c "
import re, sys
man = open(sys.argv[1]).read()
o = man[man.index('.SH OPTIONS'):]
o = o[o.index('.B \\\\-\\\\-json\\n'):]
o = o[: o.index('.TP')]
print(' '.join(sorted((q or w).replace(' ', '-') for q, w in re.findall(r'^\\.BR? (?:\"([a-z -]+)\"|([a-z-]+))', o, re.M))))" "$MAN")
t_check "  and the ones OPTIONS lists for --json ($opts)" [ "$opts" = "$documented" ]

# --- tokens -------------------------------------------------------------------------------
kb_device
kb tokens $MOD --json
t_check "tokens: the documented shape" doc_is tokens
t_check "  with the token" json_is "[t['label'] for t in d['tokens'] if t['label']]==['dev']"
python3 -c "
import json; d = json.load(open('$T/out'))
d['tokens'][0]['bogus'] = 1; json.dump(d, open('$T/extra.json', 'w'))
del d['tokens'][0]['bogus'], d['tokens'][0]['slot']; json.dump(d, open('$T/less.json', 'w'))"
t_check "  (the comparison sees a key the page lacks, and one the document lacks)" bash -c "
    python3 '$T/contract.py' '$MAN' tokens '$T/extra.json' | grep -q 'tokens\[0\]\.bogus: not in' &&
    python3 '$T/contract.py' '$MAN' tokens '$T/less.json' | grep -q 'tokens\[0\]\.slot: documented, missing'"
kb tokens $MOD --json 'pkcs11:token=nothing'
t_check "tokens, a URI matching no token: ERROR, exit 2" error_doc 2
t_check "  naming the URI" json_is "'pkcs11:token=nothing' in d['error']"
kb tokens --bogus $MOD --json
t_check "a usage error before --json is JSON too" error_doc 2
t_check "  with the message stderr got, without its prefix" \
    json_is "d['error']==\"unknown option '--bogus'; see 'keybound tokens --help'\""
kb tokens $MOD --json=yes
t_check "--json=yes: ERROR saying --json takes no value" \
    bash -c "[ $rc -eq 2 ] && python3 '$T/contract.py' '$MAN' ERROR '$T/out' 2 >/dev/null && grep -q 'takes no value' '$T/out'"

# --- keys ---------------------------------------------------------------------------------
GNUTLS_PIN=1234 p11tool --provider "$SOFTHSM_MODULE" --login --write --load-certificate \
    "$P/ca.pem" --label ca --mark-ca "pkcs11:token=dev" >/dev/null 2>&1
kb keys $MOD --pin-file "$T/pin" --json
t_check "keys: the documented shape, KEYCERT with CERTIFICATE's keys" doc_is keys
sha=$(sha256_of "$T/laptop.pem")
serial=$(certtool -i --infile "$T/laptop.pem" | sed -n 's/^\tSerial Number (hex): //p')
t_check "  the key's certificate: structured fields, the DER's sha256, the serial" \
    json_is "(c:=d['keys'][0]['certificates'][0])['subject']=='CN=laptop-1' and c['issuer']=='CN=keybound test CA' and c['sha256']=='$sha' and c['serial']=='$serial' and c['not_before'].endswith('Z') and c['not_after'].endswith('Z')"
t_check "  the CA apart, nothing hidden" \
    json_is "[c['subject'] for c in d['other_certificates']]==['CN=keybound test CA'] and d['hidden_private_keys']==0"
kb keys $MOD --json
t_check "keys without a PIN: the same shape" doc_is keys
t_check "  hidden_private_keys says the token's keys were not listed" \
    json_is "d['hidden_private_keys']==1 and d['keys']==[]"
kb keys $MOD --pin-file "$T/pin" --json 'pkcs11:token=dev;object=nothing'
t_check "keys, a URI matching no object: ERROR, exit 2" error_doc 2

# --- keygen -------------------------------------------------------------------------------
kb keygen $MOD --pin-file "$T/pin" --token pkcs11:token=dev --label second --json
t_check "keygen: the documented shape" doc_is keygen
kb keygen $MOD --pin-file "$T/pin" --token pkcs11:token=dev --label second --json
t_check "keygen, a label the token has: ERROR, exit 2" error_doc 2
kb keygen $MOD --json --token pkcs11:token=dev
t_check "keygen without --label: ERROR, exit 2" error_doc 2

# --- check --------------------------------------------------------------------------------
kb check $MOD --pin-file "$T/pin" $POL --json $KEY
t_check "check --key, admitted: the documented shape, exit 0" rc_doc 0 check
t_check "  one device: key, chosen certificate (structured), checks" \
    json_is "d['decision']=='admit' and len(d['devices'])==1 and d['devices'][0]['key']['label']=='laptop' and d['devices'][0]['certificate']['sha256']=='$sha' and d['devices'][0]['certificates'][0]['selection']=='chosen' and d['reason'] is None and d['endpoint'] is None"
kb keygen $MOD --pin-file "$T/pin" --token pkcs11:token=dev --label bare
kb check $MOD --pin-file "$T/pin" $POL --json --key "pkcs11:token=dev;object=bare" --endpoint localhost:443
t_check "check, a key without certificate: denied, the same shape, exit 1" \
    rc_doc 1 check
t_check "  certificate null, the endpoint named" \
    json_is "d['decision']=='deny' and d['devices'][0]['certificate'] is None and d['devices'][0]['certificates']==[] and d['endpoint']=='localhost:443'"
kb keygen $MOD --pin-file "$T/pin" --token pkcs11:token=dev --label other
other=$(cat "$T/out")
kb_device_cert dev "$other" laptop-2 other
kb check $MOD --pin-file "$T/pin" $POL --json
t_check "check without --key, two keys with certificates: one object, two devices" \
    rc_doc 0 check
t_check "  each with its key and certificate" \
    json_is "sorted(x['certificate']['subject'] for x in d['devices'])==['CN=laptop-1', 'CN=laptop-2']"
kb_token empty
kb check $MOD --pin-file "$T/pin" $POL --json --key pkcs11:token=empty
t_check "check, a token with no key: ERROR, exit 2" error_doc 2
cp "$T/policy.conf" "$T/bad-policy.conf"
echo "nonsense = yes" >>"$T/bad-policy.conf"
kb check $MOD --pin-file "$T/pin" --policy "$T/bad-policy.conf" --json $KEY
t_check "check, a bad policy: ERROR, exit 2" error_doc 2
t_check "  naming the file" json_is "'bad-policy.conf' in d['error']"

# --- no identity at all: the refusal keeps check's shape -------------------------------
mkdir "$T/bare-tokens"
SOFTHSM2_CONF=$T/bare.conf
sed "s|$T/tokens|$T/bare-tokens|" "$T/softhsm2.conf" >"$SOFTHSM2_CONF"
export SOFTHSM2_CONF
kb_token lonely
kb check $MOD --pin-file "$T/pin" $POL --json
t_check "check, no key with a certificate anywhere: the same shape, exit 1" \
    rc_doc 1 check
t_check "  devices empty, the reason given, as on stderr" \
    json_is "d['decision']=='deny' and d['devices']==[] and 'no key with a certificate' in d['reason']"
SOFTHSM2_CONF=$T/softhsm2.conf

# --- status -------------------------------------------------------------------------------
kb status $MOD --pin-file "$T/pin" $POL --json pkcs11:token=dev
t_check "status: the documented shape" rc_doc 0 status
t_check "  the keys with certificates, structured, no state yet" \
    json_is "sorted(k['certificate']['subject'] for k in d['keys'])==['CN=laptop-1', 'CN=laptop-2'] and all(k['last'] is None and k['pending'] is None for k in d['keys']) and d['hidden_private_keys']==0"
kb status $MOD --pin-file "$T/pin" $POL --json 'pkcs11:token=nothing'
t_check "status, a URI matching no token: ERROR, exit 2" error_doc 2

# --- network profile, network check -------------------------------------------------------
printf '[network "wired"]\nserver-name = radius.example.com\n' >>"$T/policy.conf"
kb network profile $MOD --pin-file "$T/pin" $POL $KEY --ca "$P/ca.pem" --wired \
    -o "$T/net" --json
t_check "network profile: the documented shape" rc_doc 0 "network profile"
t_check "  wired, the PIN stored, no drop-in on SoftHSM" \
    json_is "d['wired'] and d['ssid'] is None and d['pin_stored'] and d['files']['dropin'] is None"
kb network profile $MOD --pin-file "$T/pin" $POL $KEY --ca "$P/ca.pem" --ssid corp -o "$T/net" --json
t_check "network profile, a network the policy does not list: ERROR, exit 1" error_doc 1
kb network check $MOD --json
t_check "network check: the documented shape" rc_doc 0 "network check"
t_check "  the profile, its PIN accepted" \
    json_is "[(p['name'], p['ok'], p['pin']) for p in d['profiles']]==[('wired', True, 'accepted')]"
kb status $MOD --pin-file "$T/pin" $POL --json pkcs11:token=dev
t_check "status names the key's network profile" \
    json_is "sorted(n for k in d['keys'] for n in k['network_profiles'])==['wired']"

# --- connect ------------------------------------------------------------------------------
gport=$(free_port)
kb_bg "$T/gnutls-serv.log" gnutls-serv --port "$gport" --require-client-cert --verify-client-cert \
    --x509cafile "$P/ca.pem" --x509certfile "$P/server.pem" --x509keyfile "$P/server.key" --echo
wait_port "$gport" || t_fail "gnutls-serv started"
kb connect $MOD --pin-file "$T/pin" $POL $KEY --json "localhost:$gport"
t_check "connect: the documented shape, exit 0" rc_doc 0 connect
server_sha=$(sha256_of "$P/server.pem")
t_check "  both certificates structured; no resume test" \
    json_is "d['server_certificate']['subject']=='CN=localhost' and d['server_certificate']['sha256']=='$server_sha' and d['client_certificate']['sha256']=='$sha' and d['client_certificate']['sent'] is True and d['resume_test'] is None"
kb connect $MOD --pin-file "$T/pin" $POL $KEY --json --resume-test 3 "localhost:$gport"
t_check "connect --resume-test: the same shape" rc_doc 0 connect
t_check "  with the counts in resume_test" json_is "d['resume_test']['handshakes']==3 and d['resume_test']['resumed']+d['resume_test']['full']==3"
kb connect $MOD --pin-file "$T/pin" $POL $KEY --json unlisted.example.com:443
t_check "connect, an endpoint the policy does not list: ERROR, exit 1" error_doc 1
t_check "  saying so" json_is "d['error'].startswith('denied: the policy does not list unlisted.example.com:443')"
kb connect $MOD --pin-file "$T/pin" $POL --key "pkcs11:token=dev;object=bare" --json "localhost:$gport"
t_check "connect, a key the policy denies: ERROR, exit 1" error_doc 1
cport=$(free_port)
kb connect $MOD --pin-file "$T/pin" $POL $KEY --json --connect-timeout 2 "localhost:$cport"
t_check "connect, nothing listening: ERROR, exit 2" error_doc 2
kb connect $MOD --pin-file "$T/pin" $POL $KEY --json --stdio "localhost:$gport"
t_check "connect --stdio --json: refused, ERROR, exit 2" error_doc 2

# --- commands without a document refuse --json ------------------------------------------
kb csr $MOD --pin-file "$T/pin" $KEY --subject CN=x --json
t_check "csr --json: refused (exit 2), nothing on stdout" no_doc
printf 'x' >"$T/junk.pem"
kb import-cert $MOD --pin-file "$T/pin" $KEY --json "$T/junk.pem"
t_check "import-cert --json: refused" no_doc
kb tunnel $MOD --pin-file "$T/pin" --listen 127.0.0.1:1 --connect localhost:1 $KEY --json
t_check "tunnel --json: refused" no_doc

# --- a rejected PIN: exit 6 in the document too -----------------------------------------
printf '9999\n' >"$T/wrong-pin"
chmod 600 "$T/wrong-pin"
kb keys $MOD --pin-file "$T/wrong-pin" --json pkcs11:token=dev
t_check "keys with a PIN the token rejects: ERROR with exit 6" error_doc 6
t_check "  the PIN in no output" bash -c "! grep -q 9999 '$T/out' '$T/err'"

# --- enroll and renew ---------------------------------------------------------------------
if ! $PY -c 'import cryptography.hazmat.primitives.serialization.pkcs7' 2>/dev/null; then
    t_pass "enroll and renew # SKIP Debian's python3-cryptography is not installed"
    t_done
    exit
fi
kb_est_start
enroll() { kb enroll $MOD --pin-file "$T/pin" --token pkcs11:token=dev $POL $EST "$@"; }
enroll --label enrolled --subject CN=laptop-3 --secret-file "$T/secret" --json
t_check "enroll, ISSUED: the documented shape, exit 0" doc_is enroll exit
t_check "  state, key and the issued certificate, structured" \
    json_is "d['state']=='ISSUED' and 'object=enrolled' in d['key_uri'] and d['certificate']['subject']=='CN=laptop-3' and d['certificate']['issuer']=='CN=keybound test CA' and d['decision']=='admit' and d['error'] is None"
enrolled=$(python3 -c "import json; print(json.load(open('$T/out'))['key_uri'])")
printf 'enrol:wrong\n' >"$T/wrong-secret"
chmod 600 "$T/wrong-secret"
enroll --label x --subject CN=x --secret-file "$T/wrong-secret" --json
t_check "enroll, REJECTED: the same shape, exit 3 in it" rc_doc 3 enroll exit
t_check "  the server's reason in error, no certificate" json_is "d['state']=='REJECTED' and d['certificate'] is None and 'rejected' in d['error']"
kb enroll $MOD --pin-file "$T/pin" --token pkcs11:token=dev $POL --est "https://localhost:$(free_port)" \
    --ca "$P/ca.pem" --label y --subject CN=y --secret-file "$T/secret" --json
t_check "enroll, UNREACHABLE: the same shape, exit 5 in it" rc_doc 5 enroll exit
kb enroll $MOD --json --token pkcs11:token=dev
t_check "enroll without --est: ERROR, exit 2" error_doc 2
printf 'retry-forever 60\n' >"$T/est/mode"
enroll --label later --subject CN=later --secret-file "$T/secret" --max-wait 1 --json
t_check "enroll, WAIT: the same shape, exit 4 in it" rc_doc 4 enroll exit
: >"$T/est/mode"
kb status $MOD --pin-file "$T/pin" $POL --json 'pkcs11:token=dev;object=later'
t_check "status of the key waiting for its certificate: the same shape" rc_doc 0 status
t_check "  pending and last filled in, the certificate null" \
    json_is "(k:=d['keys'][0])['state']=='pending' and k['pending']['operation']=='enroll' and k['last']['result']=='wait' and k['certificate'] is None"

renew() { kb renew $MOD --pin-file "$T/pin" --key "$enrolled" $POL $EST "$@"; }
renew --if-expires-within 1d --json
t_check "renew, not due: MONITORING as JSON, the enroll shape, exit 0" \
    rc_doc 0 renew exit
t_check "  with the current certificate and renewal_due false" \
    json_is "d['state']=='MONITORING' and d['renewal_due'] is False and d['certificate']['subject']=='CN=laptop-3'"
renew --json
t_check "renew: ISSUED, the same shape" doc_is renew exit
t_check "  a new certificate" json_is "d['state']=='ISSUED' and d['certificate']['subject']=='CN=laptop-3'"
kb renew $MOD --json --key "$enrolled"
t_check "renew without --est: ERROR, exit 2" error_doc 2
cat >"$T/renew.conf" <<CONF
[renew]
key = $enrolled
est = $EST_URL
ca = $P/ca.pem
policy = $T/policy.conf
if-expires-within = 1d
json = yes
CONF
chmod 600 "$T/renew.conf"
kb renew $MOD --pin-file "$T/pin" --config "$T/renew.conf"
t_check "renew.conf's json = yes: MONITORING as JSON too" \
    rc_doc 0 renew exit
grep -v '^est = ' "$T/renew.conf" >"$T/no-est.conf"
chmod 600 "$T/no-est.conf"
kb renew $MOD --pin-file "$T/pin" --config "$T/no-est.conf"
t_check "  and a setting the file lacks: ERROR, exit 2" error_doc 2
t_done
