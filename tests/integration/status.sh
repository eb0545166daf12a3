#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The tunnel's /status (JSON) and /metrics (Prometheus) against what keybound.conf(5) says
# of them: on a unix socket from [global] status, and on loopback from --status.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
for tool in nginx curl; do
    command -v $tool >/dev/null || t_skip_all "$tool not installed"
done
kb_device
nport=$(free_port)
kb_nginx "$(kb_nginx_mtls "$nport" "ssl_session_tickets on;")"
wait_port "$nport" || t_fail "nginx started"
MAN=$TESTS_SRCDIR/../doc/keybound.conf.5

la=$(free_port)
lb=$(free_port)
sock=$T/status.sock
cat >"$T/keybound.conf" <<CONF
[global]
status = unix:$sock

[tunnel web]
listen = 127.0.0.1:$la
connect = localhost:$nport
key = $laptop

[tunnel elsewhere]
listen = 127.0.0.1:$lb
connect = unlisted.example.com:443
key = $laptop
CONF
setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" $POL --config "$T/keybound.conf" \
    >"$T/tunnel.log" 2>&1 </dev/null &
tun_pid=$!
kb_pids+=($tun_pid)
wait_port "$la" || t_fail "tunnel started"
wait_log "$T/tunnel.log" "status and metrics on unix:$sock"
for i in 1 2 3; do curl -sS -o /dev/null "http://127.0.0.1:$la/"; done
curl -sS -o /dev/null "http://127.0.0.1:$lb/" 2>/dev/null
sleep 0.3
get() { run curl -sS --unix-socket "$sock" -o "$T/body" -w '%{http_code} %{content_type}' "http://x$1"; }

t_check "the status socket is the owner's only (0600)" [ "$(stat -c %a "$sock")" = 600 ]
get /status
cp "$T/body" "$T/status.json"
t_check "/status: 200, application/json" bash -c "[ $rc -eq 0 ] && grep -q '^200 application/json' '$T/out'"
js() { python3 -c "import json,sys; d=json.load(open('$T/status.json')); w={t['name']: t for t in d['tunnels']}; sys.exit(0 if ($1) else 1)"; }
t_check "  one JSON object, schema 1, ready, no reloads yet" js "d['schema']==1 and d['ready'] is True and d['reloads']==0 and len(d['tunnels'])==2"
t_check "  tunnel web: name, listen, connect, admitted" js "w['web']['listen']=='127.0.0.1:$la' and w['web']['connect']=='localhost:$nport' and w['web']['admission']['decision']=='admit' and w['web']['admission']['failed_checks']==[]"
sha=$(openssl x509 -in "$T/laptop.pem" -outform der | sha256sum | cut -d' ' -f1)
t_check "  its certificate, structured: subject, issuer, serial, validity, sha256" js "(c:=w['web']['certificate'])['subject']=='CN=laptop-1' and c['issuer']=='CN=keybound test CA' and len(c['serial'])>0 and c['not_before'].endswith('Z') and c['not_after'].endswith('Z') and c['sha256']=='$sha'"
# (wait_port's probe is accepted too, and may or may not have had its handshake.)
t_check "  its counters: the 3 requests accepted, none failed, resumed handshakes, 1 token signature" js "(k:=w['web'])['connections']['accepted'] in (3, 4) and k['connections']['failed']==0 and k['handshakes']['full']==1 and k['handshakes']['resumed']>=2 and k['handshakes']['redone']==0 and k['token_signatures']==1"
t_check "  tunnel elsewhere: denied, with the failing check, and its client counted" js "(e:=w['elsewhere'])['admission']['decision']=='deny' and 'endpoint.listed' in e['admission']['failed_checks'] and e['certificate'] is None and e['connections']['failed_by_reason']['not_admitted']==1"

cat >"$T/keys.py" <<'PY'
import json, re, sys
d, man = json.load(open(sys.argv[1])), open(sys.argv[2]).read()
section = man[man.index(".SH STATUS AND METRICS"):man.index(".SH SIGNALS")]
words = set(re.findall(r"[a-z0-9_]+", section.replace("\\", "")))
keys = set()
def walk(o):
    if isinstance(o, dict):
        for k, v in o.items():
            keys.add(k)
            walk(v)
    elif isinstance(o, list):
        for v in o:
            walk(v)
walk(d)
print(" ".join(sorted(k for k in keys if k not in words)) or "all documented")
PY
run python3 "$T/keys.py" "$T/status.json" "$MAN"
t_check "  every key of /status is in keybound.conf(5)'s STATUS AND METRICS" out_has "^all documented"

get /metrics
cp "$T/body" "$T/metrics.txt"
t_check "/metrics: 200, the Prometheus text format" bash -c "[ $rc -eq 0 ] && grep -q '^200 text/plain; version=0.0.4' '$T/out'"
# Every line parsed; every metric of keybound.conf(5)'s table present with its type and
# labels; the histogram's buckets cumulative and its count the signatures'.
cat >"$T/prom.py" <<'PY'
import re, sys
text, man = open(sys.argv[1]).read(), open(sys.argv[2]).read()
table = man[man.index(".TS"):man.index(".TE")].splitlines()[3:]
doc = {}
for row in table:
    name, typ, labels = row.split("\t")
    doc[name] = (typ, set() if labels == "\\-" else {l.strip() for l in labels.split(",")})
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*)?\})? (-?[0-9.e+]+|\+Inf|NaN)$')
types, seen, bad = {}, {}, []
for line in text.splitlines():
    m = re.match(r"^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$", line)
    if m:
        if m.group(1) == "TYPE":
            types[m.group(2)] = m.group(3)
        continue
    m = sample.match(line)
    if not m:
        bad.append(line)
        continue
    name = m.group(1)
    labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)=', m.group(3) or ""))
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in doc:
            name = name[: -len(suffix)]
            if suffix != "_bucket":
                labels |= {"le"}
    seen.setdefault(name, set()).update(labels)
for line in bad:
    print("unparsed: %r" % line)
for name, (typ, labels) in doc.items():
    if name not in seen:
        print("missing: %s" % name)
    elif types.get(name) != typ:
        print("type of %s: %s, documented %s" % (name, types.get(name), typ))
    elif seen[name] != labels:
        print("labels of %s: %s, documented %s" % (name, sorted(seen[name]), sorted(labels)))
for name in seen:
    if name not in doc:
        print("undocumented: %s" % name)
print("%d documented metrics checked" % len(doc))
PY
run python3 "$T/prom.py" "$T/metrics.txt" "$MAN"
t_check "  every line parses; every documented metric is there, with its type and labels" \
    bash -c "grep -q '^11 documented metrics checked' '$T/out' && [ \$(wc -l <'$T/out') -eq 1 ]"
metric() { sed -n "s/^$1 //p" "$T/metrics.txt"; }
accepted=$(python3 -c "import json; d=json.load(open('$T/status.json')); print(d['tunnels'][0]['connections']['accepted'], d['tunnels'][0]['handshakes']['resumed'])")
t_check "  counters agree with /status ($accepted)" bash -c "[ '$(metric 'keybound_connections_accepted_total{tunnel="web"}') $(metric 'keybound_handshakes_total{tunnel="web",kind="resumed"}')' = '$accepted' ] && [ '$(metric 'keybound_connections_failed_total{tunnel="elsewhere",reason="not_admitted"}')' = 1 ]"
t_check "  the signature histogram counts the one signature" bash -c "[ '$(metric 'keybound_token_signature_seconds_count{tunnel="web"}')' = 1 ] && [ '$(metric 'keybound_token_signature_seconds_bucket{tunnel="web",le="+Inf"}')' = 1 ]"
t_check "  admission and expiry per tunnel" bash -c "[ '$(metric 'keybound_tunnel_admitted{tunnel="web"}')' = 1 ] && [ '$(metric 'keybound_tunnel_admitted{tunnel="elsewhere"}')' = 0 ] && [ '$(metric 'keybound_certificate_expiry_seconds{tunnel="web"}')' -gt 2500000 ]"

get /other
t_check "any other path: 404" bash -c "grep -q '^404' '$T/out'"
run curl -sS --unix-socket "$sock" -o /dev/null -w '%{http_code}' -X POST -d x "http://x/status"
t_check "POST: 405" out_has "^405"
kill -HUP $tun_pid
wait_log "$T/tunnel.log" "reloading the settings"
sleep 0.3
get /status
cp "$T/body" "$T/status.json"
t_check "a reload is counted" js "d['reloads']==1"
kill $tun_pid
wait $tun_pid 2>/dev/null
t_check "the socket is removed when the tunnel stops" [ ! -e "$sock" ]

# --status on loopback, overriding the file; nothing but loopback or a unix socket.
sport=$(free_port)
lc=$(free_port)
setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" $POL --status "127.0.0.1:$sport" \
    --listen "127.0.0.1:$lc" --connect "localhost:$nport" --key "$laptop" >"$T/tcp.log" 2>&1 </dev/null &
kb_pids+=($!)
wait_port "$sport" || t_fail "status port"
run curl -sS "http://127.0.0.1:$sport/status"
t_check "--status 127.0.0.1:PORT serves /status" bash -c "python3 -c 'import json,sys; d=json.load(open(\"$T/out\")); sys.exit(0 if d[\"ready\"] else 1)'"
kb tunnel $MOD --pin-file "$T/pin" $POL --status "0.0.0.0:$(free_port)" --listen "127.0.0.1:$(free_port)" \
    --connect "localhost:$nport" --key "$laptop"
t_check "--status 0.0.0.0:PORT: refused, exit 2, one line" bash -c "[ $rc -eq 2 ] && grep -q 'loopback' '$T/err' && [ \$(grep -c '^keybound' '$T/err') -eq 1 ]"
printf '[global]\nstatus = 10.0.0.1:80\n[tunnel a]\nlisten = 127.0.0.1:1\nconnect = localhost:1\n' >"$T/bad.conf"
kb tunnel $MOD --pin-file "$T/pin" --config "$T/bad.conf"
t_check "status = a remote address in [global]: refused, exit 2, naming the line" bash -c "[ $rc -eq 2 ] && grep -q 'bad.conf:2: status .10.0.0.1:80.: the status server listens on loopback' '$T/err'"
t_done
