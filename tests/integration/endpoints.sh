#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# keybound connect and tunnel against real servers, each asking for the client certificate
# its own way: Apache httpd for one <Location> only, after the request (TLS 1.3
# post-handshake authentication, TLS 1.2 renegotiation), or else in the handshake; HAProxy
# and lighttpd in the handshake, full and resumed; OpenSSL s_server on command (c: a
# post-handshake request, R: a renegotiation that asks; and k/K: KeyUpdate).
# Each server runs from a configuration written here, on a free 127.0.0.1 port, in the
# foreground, and stops at exit. A server that is not installed has its section skipped
# (TAP "# SKIP").
#
# The reference client for each set-up is curl (or s_client) with a certificate and key in
# files from the same CA: those checks say the server is configured right, so that a
# failure of the keybound checks next to them is keybound's.
. "$TESTS_SRCDIR/lib/testlib.sh"
kb_setup
for tool in openssl curl python3 certtool p11tool; do
    command -v $tool >/dev/null || t_skip_all "$tool not installed"
done
kb_device
# The reference client's certificate and key, in files.
certtool --generate-privkey --key-type ecdsa --outfile "$P/ref.key" 2>/dev/null
certtool --load-privkey "$P/ref.key" --pubkey-info --outfile "$P/ref.pub" 2>/dev/null
kb_issue_client "$P/ref.pub" "ref-client" "$P/ref.pem"
REF="--cacert $P/ca.pem --cert $P/ref.pem --key $P/ref.key"

# t_skip DESC REASON: a check that cannot run here, as a TAP skip.
t_skip() {
    t_n=$((t_n + 1))
    echo "ok $t_n - $1 # SKIP $2"
}

# wait_in FILE OFFSET REGEX [PID]: until a line of FILE past byte OFFSET matches (10 s at
# most; sooner given up when process PID, the client, is gone and the line is not there).
wait_in() {
    local i
    for i in $(seq 100); do
        tail -c +"$(($2 + 1))" "$1" 2>/dev/null | grep -q -a -E -e "$3" && return 0
        if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then
            tail -c +"$(($2 + 1))" "$1" 2>/dev/null | grep -q -a -E -e "$3"
            return
        fi
        sleep 0.1
    done
    return 1
}
size_of() { stat -c %s "$1"; }

# stdio_get PORT PATH: keybound connect --stdio to localhost:PORT with one HTTP/1.1 GET
# (Connection: close) on its standard input. The input stays open until keybound ends, as
# an interactive client's would: a server that asks for the certificate only after reading
# the request needs the client's side still open to answer it. (Once GnuTLS has sent its
# close_notify, it answers no TLS 1.3 certificate request: gnutls-cli, its stdin at an
# end, says "Re-auth failed: The specified session has been invalidated".) keybound ends
# when the server closes after its answer.
cat >"$T/hold.py" <<'PY'
import subprocess, sys
req = open(sys.argv[1], "rb").read()
p = subprocess.Popen(sys.argv[2:], stdin=subprocess.PIPE)
try:
    p.stdin.write(req)
    p.stdin.flush()
except BrokenPipeError:
    pass
rc = p.wait()
try:
    p.stdin.close()
except BrokenPipeError:
    pass
sys.exit(rc)
PY
stdio_get() {
    printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$2" >"$T/req"
    run python3 "$T/hold.py" "$T/req" setsid -w timeout 20 "$KEYBOUND" connect $MOD \
        --pin-file "$T/pin" $POL $KEY --stdio "localhost:$1"
}

# tun NAME ARGS...: keybound tunnel in the background, its log in $T/tun-NAME.log, its pid in
# $tun_pid, its port in $tun_port. Its listener is awaited in its log, not with wait_port:
# the probe connection would be a handshake of its own and spoil the counts.
tun() {
    local name=$1
    shift
    tun_port=$(free_port)
    setsid "$KEYBOUND" tunnel $MOD --pin-file "$T/pin" --listen "127.0.0.1:$tun_port" \
        --ca "$P/ca.pem" --key "$laptop" "$@" >"$T/tun-$name.log" 2>&1 </dev/null &
    tun_pid=$!
    kb_pids+=($tun_pid)
    wait_log "$T/tun-$name.log" "listening on 127.0.0.1:$tun_port"
}

# tun_gets NAME PORT PATH...: a tunnel NAME to localhost:PORT, then one curl through it per
# PATH, one after another (each a connection of its own); the N-th answer, headers and
# body, in $T/NAME.N. Then SIGUSR1: the stats line is awaited in the log, and the tunnel is
# stopped (SIGTERM) and waited for. For a failure report, $T/out gets the heads of the
# answers and $T/err the tunnel's log.
tun_gets() {
    local name=$1 port=$2 i=0 path
    shift 2
    tun "$name" --connect "localhost:$port"
    for path in "$@"; do
        i=$((i + 1))
        curl -sS -i --max-time 10 "http://127.0.0.1:$tun_port$path" >"$T/$name.$i" 2>&1
    done
    kill -USR1 $tun_pid
    wait_log "$T/tun-$name.log" "token signatures"
    kill -TERM $tun_pid
    wait $tun_pid 2>/dev/null
    last_cmd="curl through keybound tunnel to localhost:$port: $*"
    rc=0
    for i in $(seq $#); do
        echo "== answer $i"
        head -n 12 "$T/$name.$i"
    done >"$T/out"
    cp "$T/tun-$name.log" "$T/err"
}
# opened NAME N: the kind of handshake ("full" or "resumed") of the tunnel's N-th connection.
opened() {
    grep "tunnel cli: open " "$T/tun-$1.log" | sed -n "$2p" | grep -o -E '(full|resumed) handshake' |
        head -1 | cut -d' ' -f1
}
# opened_all NAME KIND FROM TO: connections FROM..TO all had a KIND handshake.
opened_all() {
    local i
    for i in $(seq "$3" "$4"); do [ "$(opened "$1" "$i")" = "$2" ] || return 1; done
}
# signatures_are NAME K: the stats line counts K token signatures. The line may carry more
# counters than it does today; only "K token signatures" is asserted. The line is put in
# $T/out for the failure report.
signatures_are() {
    grep "token signatures" "$T/tun-$1.log" | tail -1 >"$T/out"
    grep -q -E "[^0-9]$2 token signatures" "$T/out"
}
# answers_all NAME FROM TO REGEX...: the answers FROM..TO each match every REGEX.
answers_all() {
    local name=$1 from=$2 to=$3 i re
    shift 3
    for i in $(seq "$from" "$to"); do
        for re in "$@"; do grep -q -a -E -e "$re" "$T/$name.$i" || return 1; done
    done
}

# ============================================================================================
# Apache httpd 2.4 with mod_ssl
# ============================================================================================
APACHE=$(command -v apache2 || echo /usr/sbin/apache2)
AMOD=/usr/lib/apache2/modules
if [ -x "$APACHE" ] && [ -f "$AMOD/mod_ssl.so" ]; then
    A=$T/apache
    mkdir -p "$A/run" "$A/htdocs/secure"
    echo "public page" >"$A/htdocs/index.html"
    echo "secure page" >"$A/htdocs/secure/index.html"
    # Started as root, Apache serves as the User below (it refuses to serve as root). That
    # user must reach the document root through the test's temp directory, which mktemp
    # made 0700: it gets o+x (search, no listing); what is secret in it keeps its own mode
    # (the PIN file and keys 0600, the token directory 0700).
    chmod 711 "$T"
    chmod -R a+rX "$A/htdocs"
    a13=$(free_port)
    a12=$(free_port)
    areq=$(free_port)
    # One Apache, three name-less vhosts, one per port: TLS 1.3 only and TLS 1.2 only, each
    # with no certificate asked for at server level and one required for /secure (Apache
    # then asks after the request: post-handshake authentication in TLS 1.3, a
    # renegotiation in TLS 1.2); and one that requires a certificate in the handshake.
    # X-Client-DN says which certificate Apache verified for the request.
    vhost() {
        cat <<VH
<VirtualHost 127.0.0.1:$1>
    SSLEngine on
    ${2:+SSLProtocol $2}
    SSLCertificateFile $P/server.pem
    SSLCertificateKeyFile $P/server.key
    SSLCACertificateFile $P/ca.pem
    SSLVerifyClient $3
    SSLVerifyDepth 2
    $4
</VirtualHost>
VH
    }
    secure='<Location /secure>
        SSLVerifyClient require
        SSLVerifyDepth 2
        Header always set X-Client-DN "%{SSL_CLIENT_S_DN}s"
    </Location>'
    cat >"$A/httpd.conf" <<CONF
ServerRoot $A
ServerName localhost
PidFile $A/run/httpd.pid
DefaultRuntimeDir $A/run
ErrorLog $A/error.log
LogLevel info
LoadModule mpm_event_module $AMOD/mod_mpm_event.so
LoadModule authz_core_module $AMOD/mod_authz_core.so
LoadModule dir_module $AMOD/mod_dir.so
LoadModule headers_module $AMOD/mod_headers.so
LoadModule socache_shmcb_module $AMOD/mod_socache_shmcb.so
LoadModule ssl_module $AMOD/mod_ssl.so
User www-data
Group www-data
DocumentRoot $A/htdocs
DirectoryIndex index.html
<Directory />
    AllowOverride None
    Require all granted
</Directory>
LogFormat "%{local}p \"%r\" %>s %{SSL_PROTOCOL}x %{SSL_SESSION_RESUMED}x verify=%{SSL_CLIENT_VERIFY}x dn=%{SSL_CLIENT_S_DN}x" kb
CustomLog $A/access.log kb
# TLS 1.2 session IDs and TLS 1.3 tickets both resume from this cache.
SSLSessionCache shmcb:$A/run/ssl_scache(512000)
Listen 127.0.0.1:$a13
Listen 127.0.0.1:$a12
Listen 127.0.0.1:$areq
$(vhost "$a13" "-all +TLSv1.3" none "$secure")
$(vhost "$a12" "-all +TLSv1.2" none "$secure")
$(vhost "$areq" "" require 'Header always set X-Client-DN "%{SSL_CLIENT_S_DN}s"')
CONF
    # -X: one process in the foreground, the one kb_bg started (and stops).
    kb_bg "$T/apache.out" "$APACHE" -X -f "$A/httpd.conf"
    wait_port "$a13" && wait_port "$a12" && wait_port "$areq" || t_fail "Apache started" "$(cat "$T/apache.out" "$A/error.log")"

    for v in 13 12; do
        eval "ap=\$a$v"
        V=1.${v#1}
        # --- the reference: curl with a file key (curl enables post-handshake auth) -------
        run curl -sS -i $REF "https://localhost:$ap/secure/"
        t_check "Apache TLS $V: reference curl, /secure/: 200 with its DN (the set-up is right)" \
            bash -c "grep -q '^HTTP/1.1 200' '$T/out' && grep -q '^X-Client-DN: CN=ref-client' '$T/out'"

        # --- keybound connect --stdio ------------------------------------------------------
        stdio_get "$ap" /
        t_check "Apache TLS $V: connect --stdio, GET /: 200 (public)" out_has "^HTTP/1.1 200"
        t_check "  and Apache asked for no certificate in the handshake (its log: no DN)" \
            wait_log "$A/access.log" "^$ap \"GET / HTTP/1.1\" 200 TLSv$V .* dn=-$"
        stdio_get "$ap" /secure/
        cp "$T/out" "$T/apache$v-secure.out"
        cp "$T/err" "$T/apache$v-secure.err"
        t_check "Apache TLS $V: connect --stdio, GET /secure/: 200" out_has "^HTTP/1.1 200"
        t_check "  with the device's certificate (X-Client-DN: CN=laptop-1)" out_has "^X-Client-DN: CN=laptop-1"
        t_check "  and keybound exits 0" rc_is 0

        # --- keybound tunnel: one full handshake, then resumed ones ----------------------
        tun_gets "apache$v" "$ap" /secure/ /secure/ /secure/ /secure/ /
        t_check "Apache TLS $V tunnel: 1st connection, full handshake: /secure/ 200 with CN=laptop-1" \
            eval "[ \"\$(opened apache$v 1)\" = full ] && answers_all apache$v 1 1 '^HTTP/1.1 200' '^X-Client-DN: CN=laptop-1'"
        # Resumed in TLS 1.2 is the session of the first handshake: a session saved after a
        # renegotiation (s_client -sess_out saves that one) gets a full handshake from Apache.
        t_check "  connections 2-4 resumed, each /secure/ 200 with CN=laptop-1" \
            eval "opened_all apache$v resumed 2 4 && answers_all apache$v 2 4 '^HTTP/1.1 200' '^X-Client-DN: CN=laptop-1'"
        t_check "  connection 5 resumed, / 200 (public)" \
            eval "opened_all apache$v resumed 5 5 && answers_all apache$v 5 5 '^HTTP/1.1 200' 'public page'"
        # The full handshake asked for no certificate: no signature. Each /secure/ answer
        # (a connection of its own) is one certificate request after the handshake, answered
        # with one CertificateVerify: one signature each, resumed connection or not (Apache
        # asks again on a connection resumed from a ticket issued after an earlier answer;
        # and in TLS 1.2 the renegotiation is a full handshake). / costs nothing: 4.
        t_check "  SIGUSR1 stats: 4 token signatures (one per /secure/ answer, none for the rest)" \
            signatures_are "apache$v" 4
    done
    t_check "Apache TLS 1.2: /secure/ was reached through renegotiation (AH02221 in its log)" \
        grep -q "AH02221: Requesting connection re-negotiation" "$A/error.log"

    # --- SSLVerifyClient require at server level: the certificate in the handshake ---------
    run curl -sS -i $REF "https://localhost:$areq/"
    t_check "Apache, require at server level: reference curl: 200 with its DN" \
        bash -c "grep -q '^HTTP/1.1 200' '$T/out' && grep -q '^X-Client-DN: CN=ref-client' '$T/out'"
    stdio_get "$areq" /
    t_check "Apache, require at server level: connect --stdio: 200 with CN=laptop-1" \
        bash -c "grep -q '^HTTP/1.1 200' '$T/out' && grep -q '^X-Client-DN: CN=laptop-1' '$T/out'"
    tun_gets apachereq "$areq" / / /
    t_check "  tunnel: full, then 2 resumed, each 200 with CN=laptop-1" \
        eval "opened_all apachereq full 1 1 && opened_all apachereq resumed 2 3 && answers_all apachereq 1 3 '^HTTP/1.1 200' '^X-Client-DN: CN=laptop-1'"
    t_check "  SIGUSR1 stats: 1 token signature (the full handshake only)" signatures_are apachereq 1

    run grep -E 'AH10158|AH02263' "$A/error.log"
    t_check "Apache's error log: no AH10158 (post-handshake auth impossible) nor AH02263 (renegotiation failed)" \
        rc_is 1
    # After that check: this one makes Apache log AH02263 on purpose. The request is piped
    # in and stdin ends at once, so the close_notify is out before Apache asks, and TLS 1.3
    # allows no answer after it. One line says so.
    printf 'GET /secure/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >"$T/req"
    RUN_STDIN=$T/req kb connect $MOD --pin-file "$T/pin" $POL $KEY --stdio "localhost:$a13"
    t_check "Apache TLS 1.3: stdin ended before it asked: exit 2, one line saying to keep it open" \
        bash -c "[ $rc -eq 2 ] && [ \$(wc -l <'$T/err') -eq 1 ] && grep -q 'asked for the certificate after standard input had ended.*keep standard input open' '$T/err'"
else
    t_skip "Apache httpd (post-handshake auth, renegotiation)" "apache2 with mod_ssl not installed"
fi

# ============================================================================================
# HAProxy 2.6: verify required in the handshake; it answers by itself, no backend
# ============================================================================================
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)
if [ -x "$HAPROXY" ]; then
    H=$T/haproxy
    mkdir -p "$H"
    cat "$P/server.pem" "$P/server.key" >"$H/server.pem"
    h13=$(free_port)
    h12=$(free_port)
    # The TLS 1.2 bind issues no tickets (no-tls-tickets): its resumption is by session ID,
    # from HAProxy's own cache. resumed= is HAProxy's own view of the connection.
    answer='http-request return status 200 content-type text/plain lf-string "dn=%[ssl_c_s_dn] resumed=%[ssl_fc_is_resumed] %[ssl_fc_protocol]\n"'
    cat >"$H/haproxy.cfg" <<CONF
global
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    timeout client 10s
    timeout connect 5s
    timeout server 10s
frontend tls13
    bind 127.0.0.1:$h13 ssl crt $H/server.pem ca-file $P/ca.pem verify required ssl-min-ver TLSv1.3
    $answer
frontend tls12
    bind 127.0.0.1:$h12 ssl crt $H/server.pem ca-file $P/ca.pem verify required ssl-max-ver TLSv1.2 no-tls-tickets
    $answer
CONF
    # -db: in the foreground, no daemon.
    kb_bg "$T/haproxy.log" "$HAPROXY" -db -f "$H/haproxy.cfg"
    wait_port "$h13" && wait_port "$h12" || t_fail "HAProxy started" "$(cat "$T/haproxy.log")"
    for v in 13 12; do
        eval "hp=\$h$v"
        V=1.${v#1}
        run curl -sS $REF "https://localhost:$hp/"
        t_check "HAProxy TLS $V: reference curl: 200 with its DN (the set-up is right)" out_has "^dn=/CN=ref-client resumed=0 TLSv$V"
        stdio_get "$hp" /
        t_check "HAProxy TLS $V: connect --stdio: 200 with CN=laptop-1" \
            bash -c "grep -q '^HTTP/1.1 200' '$T/out' && grep -q '^dn=/CN=laptop-1 resumed=0 TLSv$V' '$T/out'"
        tun_gets "haproxy$v" "$hp" / / /
        t_check "HAProxy TLS $V tunnel: 1st connection full, 200 with CN=laptop-1" \
            eval "opened_all haproxy$v full 1 1 && answers_all haproxy$v 1 1 '^HTTP/1.1 200' '^dn=/CN=laptop-1 resumed=0 TLSv$V'"
        t_check "  connections 2-3 resumed (HAProxy says so too), 200 with CN=laptop-1" \
            eval "opened_all haproxy$v resumed 2 3 && answers_all haproxy$v 2 3 '^HTTP/1.1 200' '^dn=/CN=laptop-1 resumed=1 TLSv$V'"
        t_check "  SIGUSR1 stats: 1 token signature (the full handshake only)" signatures_are "haproxy$v" 1
    done
else
    t_skip "HAProxy (certificate in the handshake, resumption)" "haproxy not installed"
fi

# ============================================================================================
# lighttpd 1.4 with mod_openssl: ssl.verifyclient.activate + enforce
# ============================================================================================
LIGHTTPD=$(command -v lighttpd || echo /usr/sbin/lighttpd)
if [ -x "$LIGHTTPD" ] && [ -f /usr/lib/lighttpd/mod_openssl.so ]; then
    L=$T/lighttpd
    mkdir -p "$L/htdocs"
    # A CGI says what lighttpd verified: the client's DN, the user that
    # ssl.verifyclient.username makes of it, SSL_CLIENT_VERIFY, the protocol. (lighttpd's
    # access log would show the user too, but writes it out only every few seconds.) It runs
    # as root here (no server.username), and so does the CGI.
    cat >"$L/htdocs/dn.sh" <<'SH'
printf 'Content-Type: text/plain\r\n\r\ndn=%s user=%s verify=%s %s\n' \
    "$SSL_CLIENT_S_DN" "$REMOTE_USER" "$SSL_CLIENT_VERIFY" "$SSL_PROTOCOL"
SH
    l13=$(free_port)
    l12=$(free_port)
    tls() {
        cat <<TLS
    ssl.engine = "enable"
    ssl.pemfile = "$P/server.pem"
    ssl.privkey = "$P/server.key"
    ssl.verifyclient.ca-file = "$P/ca.pem"
    ssl.verifyclient.activate = "enable"
    ssl.verifyclient.enforce = "enable"
    ssl.verifyclient.username = "SSL_CLIENT_S_DN_CN"
    ssl.openssl.ssl-conf-cmd = ("MinProtocol" => "$1", "MaxProtocol" => "$1")
TLS
    }
    cat >"$L/lighttpd.conf" <<CONF
server.modules = ("mod_openssl", "mod_cgi")
server.document-root = "$L/htdocs"
server.errorlog = "$L/error.log"
cgi.assign = (".sh" => "/bin/sh")
server.bind = "127.0.0.1"
server.port = $l13
$(tls TLSv1.3)
\$SERVER["socket"] == "127.0.0.1:$l12" {
$(tls TLSv1.2)
}
CONF
    # -D: in the foreground.
    kb_bg "$T/lighttpd.log" "$LIGHTTPD" -D -f "$L/lighttpd.conf"
    wait_port "$l13" && wait_port "$l12" || t_fail "lighttpd started" "$(cat "$T/lighttpd.log" "$L/error.log")"
    for v in 13 12; do
        eval "lp=\$l$v"
        V=1.${v#1}
        run curl -sS $REF "https://localhost:$lp/dn.sh"
        t_check "lighttpd TLS $V: reference curl: 200, verified user ref-client (the set-up is right)" \
            out_has "^dn=CN = ref-client user=ref-client verify=SUCCESS TLSv$V"
        stdio_get "$lp" /dn.sh
        t_check "lighttpd TLS $V: connect --stdio: 200, verified user laptop-1" \
            eval "out_has '^HTTP/1.1 200' && out_has '^dn=CN = laptop-1 user=laptop-1 verify=SUCCESS TLSv$V'"
        tun_gets "lighttpd$v" "$lp" /dn.sh /dn.sh /dn.sh
        t_check "lighttpd TLS $V tunnel: 3 connections, each 200, verified user laptop-1" \
            answers_all "lighttpd$v" 1 3 '^HTTP/1.1 200' "^dn=CN = laptop-1 user=laptop-1 verify=SUCCESS TLSv$V"
        # lighttpd 1.4.69 resumes TLS 1.2 from tickets only: its sessions carry no session
        # ID (s_client -no_ticket shows an empty Session-ID). keybound keeps TLS 1.2 tickets
        # for resumption (and turns them off only for a renegotiation), so both resume.
        t_check "  1st full, then resumed from a ticket" \
            eval "opened_all lighttpd$v full 1 1 && opened_all lighttpd$v resumed 2 3"
        t_check "  SIGUSR1 stats: 1 token signature" signatures_are "lighttpd$v" 1
    done
else
    t_skip "lighttpd (certificate in the handshake)" "lighttpd with mod_openssl not installed"
fi

# ============================================================================================
# OpenSSL s_server, driven by commands on its stdin
# ============================================================================================
# s_server reads its stdin only while a connection is up. A line that is one letter is a
# command (apps/s_server.c; off under -quiet and -brief): c, a TLS 1.3 post-handshake
# certificate request; R, a TLS 1.2 renegotiation that asks for a certificate; k and K, a
# TLS 1.3 KeyUpdate without and with update_requested. Other lines go to the client, and
# what the client sends is printed. Here it asks for no certificate in the handshake (no
# -verify); -CAfile is the store that c and R verify against; its verify callback prints
# "depth=0 CN = ..." then "verify return:1" for a certificate it verified; -msg prints
# each handshake message ("<<< TLS 1.3, Handshake [length ...], CertificateVerify"). Its
# stdin is a FIFO held open by this shell (s_server quits at EOF of its stdin); after each
# connection it prints "CONNECTION CLOSED" and waits for the next.
#
# sserver NAME PORT ARGS...: log in $T/NAME.log, the command FIFO's fd in $ss_fd.
sserver() {
    local name=$1 port=$2
    shift 2
    rm -f "$T/$name.in"
    mkfifo "$T/$name.in"
    (
        trap '' PIPE
        exec stdbuf -oL openssl s_server -accept "127.0.0.1:$port" -cert "$P/server.pem" \
            -key "$P/server.key" -CAfile "$P/ca.pem" -msg "$@"
    ) >"$T/$name.log" 2>&1 <"$T/$name.in" &
    kb_pids+=($!)
    exec {ss_fd}>"$T/$name.in"
    wait_port "$port"
}
# to_fd FD LINE: a line into a FIFO, never killing this shell when the reader is gone.
to_fd() {
    (
        trap '' PIPE
        printf '%s\n' "$2" >&"$1"
    ) 2>/dev/null || true
}

# live LOG LABEL CMD CLIENT...: one connection of CLIENT (keybound connect --stdio, or a
# relay through a tunnel, or the reference s_client) to the s_server whose log is LOG, and
# on it: a line each way; the command CMD; its outcome awaited in s_server's log (a
# certificate verified or not, a failure, the end of the connection); a line each way
# again; then the client's stdin closes. The slice of s_server's log for this connection
# is left in $T/live-LABEL.slice, what the client received in $T/live-LABEL.out, its
# stderr in $T/live-LABEL.err; for a failure report, $T/out gets the slice from the first
# line on, without -msg's hex dumps and record headers, $T/err the client's stderr and
# $rc its exit code.
live() {
    local log=$1 label=$2 cmd=$3 mark pid fd outcome i f=$T/live-$2
    shift 3
    last_cmd="$* (s_server command $cmd)"
    mark=$(size_of "$log")
    rm -f "$f.cin"
    mkfifo "$f.cin"
    "$@" >"$f.out" 2>"$f.err" <"$f.cin" &
    pid=$!
    kb_pids+=($pid)
    exec {fd}>"$f.cin"
    to_fd $fd "up-$label"
    wait_in "$log" "$mark" "^up-$label\$" $pid
    to_fd $ss_fd "down-$label"
    wait_in "$f.out" 0 "down-$label\$" $pid
    to_fd $ss_fd "$cmd"
    case $cmd in
    c | R) outcome='^verify (return|error)|^Failed to initiate|^ERROR|^CONNECTION CLOSED' ;;
    *) outcome='^SSL_do_handshake -> |^ERROR|^CONNECTION CLOSED' ;;
    esac
    wait_in "$log" "$mark" "$outcome" $pid
    to_fd $fd "after-$label"
    wait_in "$log" "$mark" "^after-$label\$" $pid
    to_fd $ss_fd "back-$label"
    wait_in "$f.out" 0 "back-$label\$" $pid
    exec {fd}>&-
    wait_in "$log" "$mark" "^CONNECTION CLOSED"
    for i in $(seq 50); do
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
    done
    kill $pid 2>/dev/null
    wait $pid 2>/dev/null
    rc=$?
    tail -c +"$((mark + 1))" "$log" >"$f.slice"
    sed -n "/^up-$label\$/,\$p" "$f.slice" | grep -a -v -E '^ |RecordHeader|InnerContent' >"$T/out"
    cp "$f.err" "$T/err"
}
# verified LABEL CN: after the command's "SSL_do_handshake -> N", s_server verified a
# certificate for CN (its "depth=0" line followed by "verify return:1", and no "verify
# error") and received the client's CertificateVerify.
verified() {
    awk -v cn="$2" '
        /^SSL_do_handshake -> / { started = 1 }
        started && $0 == "depth=0 CN = " cn { d0 = NR }
        started && d0 && NR == d0 + 1 && /^verify return:1$/ { ok = 1 }
        started && /^<<< .*Handshake .*CertificateVerify$/ { cv = 1 }
        /^verify error/ { bad = 1 }
        END { exit !(ok && cv && !bad) }' "$T/live-$1.slice"
}
# streamed LABEL: both lines after the command got through (s_client, the reference, may
# print the line from the server right after a hex dump of its own, with no newline).
streamed() { grep -q -a -x "after-$1" "$T/live-$1.slice" && grep -q -a "back-$1\$" "$T/live-$1.out"; }

# A plaintext client for a tunnel that keeps its connection open: standard input to the
# socket, the socket to standard output (half-closes at EOF of its input).
cat >"$T/relay.py" <<'PY'
import os, socket, sys, threading
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def up():
    while True:
        d = os.read(0, 65536)
        if not d:
            break
        s.sendall(d)
    s.shutdown(socket.SHUT_WR)
threading.Thread(target=up, daemon=True).start()
while True:
    d = s.recv(65536)
    if not d:
        break
    os.write(1, d)
PY

KBSTDIO="setsid -w timeout 30 $KEYBOUND connect $MOD --pin-file $T/pin $POL $KEY --stdio"
# The reference client: s_client with a file key. Its own command letters start no line
# sent here.
SCLIENT="timeout 30 openssl s_client -CAfile $P/ca.pem -cert $P/ref.pem -key $P/ref.key -servername localhost"

s13=$(free_port)
sserver ss13 "$s13" -tls1_3 || t_fail "s_server -tls1_3 started"
live "$T/ss13.log" ref13c c $SCLIENT -enable_pha -connect "127.0.0.1:$s13"
t_check "s_server -tls1_3, c: reference s_client -enable_pha: certificate verified, stream goes on" \
    eval "verified ref13c ref-client && streamed ref13c"
live "$T/ss13.log" c13 c $KBSTDIO "localhost:$s13"
t_check "s_server -tls1_3, c (post-handshake certificate request) to connect --stdio: CN=laptop-1 received and verified" \
    verified c13 laptop-1
t_check "  and the data stream goes on both ways afterwards" streamed c13
live "$T/ss13.log" k13 k $KBSTDIO "localhost:$s13"
t_check "s_server -tls1_3, k (KeyUpdate) to connect --stdio: sent, and the data stream goes on both ways" \
    eval "grep -q -a '^>>> .*KeyUpdate\$' '$T/live-k13.slice' && streamed k13"
live "$T/ss13.log" K13 K $KBSTDIO "localhost:$s13"
# The answer to update_requested may wait for the client's next record (RFC 8446 4.6.3:
# before its next application data); GnuTLS sends it then.
t_check "s_server -tls1_3, K (KeyUpdate, update requested): keybound answers with its own KeyUpdate, before its next data" \
    awk '/^<<< .*KeyUpdate$/ { k = 1 } $0 == "after-K13" { exit !k } END { exit !k }' "$T/live-K13.slice"
t_check "  and the data stream goes on both ways" streamed K13
tun ss13 --connect "localhost:$s13"
live "$T/ss13.log" tun13c c python3 "$T/relay.py" "$tun_port"
t_check "s_server -tls1_3, c through the tunnel: CN=laptop-1 received and verified" \
    verified tun13c laptop-1
t_check "  and the data stream goes on both ways afterwards" streamed tun13c
kill -TERM $tun_pid
wait $tun_pid 2>/dev/null

# -no_resumption_on_reneg: the renegotiation after R is a full handshake, with its
# certificate request, even when the client offers to resume the session in it (s_client
# does, and s_server then resumes and asks for nothing).
s12=$(free_port)
sserver ss12 "$s12" -tls1_2 -no_resumption_on_reneg || t_fail "s_server -tls1_2 started"
live "$T/ss12.log" ref12R R $SCLIENT -connect "127.0.0.1:$s12"
t_check "s_server -tls1_2, R: reference s_client: certificate verified, stream goes on" \
    eval "verified ref12R ref-client && streamed ref12R"
live "$T/ss12.log" R12 R $KBSTDIO "localhost:$s12"
t_check "s_server -tls1_2, R (renegotiation asking for a certificate) to connect --stdio: CN=laptop-1 received and verified" \
    verified R12 laptop-1
t_check "  and the data stream goes on both ways afterwards" streamed R12
tun ss12 --connect "localhost:$s12"
live "$T/ss12.log" tun12R R python3 "$T/relay.py" "$tun_port"
t_check "s_server -tls1_2, R through the tunnel: CN=laptop-1 received and verified" \
    verified tun12R laptop-1
t_check "  and the data stream goes on both ways afterwards" streamed tun12R
kill -TERM $tun_pid
wait $tun_pid 2>/dev/null

# The keybound processes that ran in the background (tunnels, live clients) had no run()
# to look at their output: t_done searches $T/tun-*.log, $T/live-*.err and the rest.
t_done
