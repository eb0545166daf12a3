# SPDX-License-Identifier: Apache-2.0
# A throwaway RADIUS server and 802.1X peer for the integration tests: FreeRADIUS with
# EAP-TLS only, on 127.0.0.1 and a free port, and eapol_test (Debian's eapoltest: the
# supplicant of wpa_supplicant 2.10, run against a RADIUS server with no network hardware).
#
# Sourced after testlib.sh, once kb_pki has made the test PKI. Nothing here touches the
# system's FreeRADIUS (its service, /etc/freeradius) or any port but the free one chosen.
#
# What was measured on Debian 12 (FreeRADIUS 3.2.1, eapoltest 2:2.10-12+deb12u3, libp11
# 0.4.12, NetworkManager 1.42):
# - `freeradius -X -d DIR` reads DIR/radiusd.conf and the dictionaries of
#   /usr/share/freeradius; it runs in the foreground, single-threaded, and logs every request
#   to stdout (kb_bg's log). It says "Ready to process requests" once it listens.
# - The eap module needs no more than a tls-config with certificate_file, private_key_file,
#   ca_file (the CA that client certificates must chain to), tls_min_version and
#   tls_max_version. With "1.3" as maximum FreeRADIUS offers TLS 1.3, but wpa_supplicant 2.10
#   only takes it with tls_disable_tlsv1_3=0 in phase1 ("SSL: Using TLS version TLSv1.3" in
#   eapol_test's output; TLSv1.2 otherwise).
# - When it has verified a client certificate, FreeRADIUS logs its attributes, e.g.
#   "(3) eap_tls:   TLS-Client-Cert-Serial := "18ed..."": a log without "TLS-Client-Cert-"
#   is an exchange in which no client certificate reached it.
# - The post-auth Reply-Message reaches eapol_test in the Access-Accept; eapol_test prints
#   "RADIUS message: code=2 (Access-Accept)", then the attributes, among them
#   "Attribute 18 (Reply-Message) length=N" and "      Value: '...'" on the next line. It
#   ends with "SUCCESS" (exit 0), or with "FAILURE" (exit 252) when the server rejected or
#   the client aborted; a key it could not load (no PIN, a wrong one) leaves it waiting
#   ("Pending PIN/passphrase request") until its timeout.
# - Debian's wpa_supplicant and eapol_test load a PKCS#11 module or engine only from under
#   /usr/lib/ (realpath; CVE-2024-5290): "Not in trusted path /usr/lib/". So the test's
#   fault-injecting module (tests/p11shim, in the build tree) cannot be pkcs11_module_path.
#   OpenSC's pkcs11-spy (/usr/lib/<arch>/pkcs11/pkcs11-spy.so) can, and it loads whatever
#   module PKCS11SPY names: eapol_counted puts spy -> p11shim -> the profile's module in
#   the profile's place, so that P11SHIM_COUNT counts the signatures wpa_supplicant asks
#   of the token and P11SHIM_LOG its calls. (The spy's own log has the PIN in it: it stays
#   in $T, removed with it.)
# - p11-kit ignores the user's module configuration in a process running as root, so a
#   test cannot narrow what p11-kit-proxy loads (NetworkManager's way: no module path).

: "${FREERADIUS:=freeradius}"
: "${EAPOL_TEST:=eapol_test}"

# radius_peers_or_skip: the test skips (t_skip_all) when FreeRADIUS or eapol_test is missing.
radius_peers_or_skip() {
    command -v "$FREERADIUS" >/dev/null || t_skip_all "freeradius not installed"
    command -v "$EAPOL_TEST" >/dev/null || t_skip_all "eapol_test (eapoltest) not installed"
    [ -d /usr/share/freeradius ] || t_skip_all "FreeRADIUS's dictionaries are not installed"
    ls /usr/lib/*/engines-3/pkcs11.so >/dev/null 2>&1 ||
        t_skip_all "libengine-pkcs11-openssl (wpa_supplicant's way to a pkcs11: key) not installed"
}

# free_udp_port: a UDP port on 127.0.0.1 that nothing is bound to now (RADIUS is UDP).
free_udp_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# radius_start [TLS-MIN [TLS-MAX]]: FreeRADIUS from a configuration in $T/radius (the
# default TLS 1.2 to 1.3), its certificate radius.pem for the DNS name $RADIUS_NAME issued
# by the test CA, trusting the test CA ($T/pki/ca.pem: the devices' CA) for client
# certificates. Sets RADIUS_PORT, RADIUS_SECRET and RADIUS_LOG (the -X output); stopped
# with the test's other background processes (kb_bg). A port taken meanwhile costs another
# try (3 at most); returns non-zero when it did not get ready.
RADIUS_NAME=radius.keybound.test
radius_start() {
    local d=$T/radius tls_min=${1:-1.2} tls_max=${2:-1.3}
    mkdir -p "$d/log" "$d/run"
    [ -f "$T/pki/radius.pem" ] ||
        kb_issue_tls_cert radius ca "$RADIUS_NAME" tls_www_server
    local try
    for try in 1 2 3; do
        RADIUS_PORT=$(free_udp_port)
        RADIUS_SECRET=kb-radius-$$
        RADIUS_LOG=$d/radius.log
        cat >"$d/radiusd.conf" <<CONF
prefix = /usr
exec_prefix = /usr
sysconfdir = $d
localstatedir = $d
sbindir = /usr/sbin
logdir = $d/log
raddbdir = $d
radacctdir = $d/log
name = freeradius
confdir = $d
modconfdir = $d
certdir = $d
cadir = $d
run_dir = $d/run
db_dir = $d
libdir = /usr/lib/freeradius
pidfile = $d/run/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 1024
hostname_lookups = no
log {
	destination = stdout
	auth = yes
}
security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = no
}
proxy_requests = no
client localhost {
	ipaddr = 127.0.0.1
	secret = $RADIUS_SECRET
}
thread pool {
	start_servers = 1
	max_servers = 1
	min_spare_servers = 1
	max_spare_servers = 1
	max_requests_per_server = 0
}
modules {
	eap {
		default_eap_type = tls
		timer_expire = 60
		ignore_unknown_eap_types = no
		max_sessions = 64
		tls-config tls-common {
			certificate_file = $T/pki/radius.pem
			private_key_file = $T/pki/radius.key
			ca_file = $T/pki/ca.pem
			cipher_list = "DEFAULT"
			tls_min_version = "$tls_min"
			tls_max_version = "$tls_max"
			ecdh_curve = ""
			cache {
				enable = no
			}
		}
		tls {
			tls = tls-common
		}
	}
}
instantiate {
}
policy {
}
server default {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $RADIUS_PORT
	}
	authorize {
		eap
	}
	authenticate {
		Auth-Type eap {
			eap
		}
	}
	post-auth {
		update reply {
			Reply-Message := "device %{TLS-Client-Cert-Common-Name} serial %{TLS-Client-Cert-Serial}"
		}
		Post-Auth-Type REJECT {
		}
	}
}
CONF
        kb_bg "$RADIUS_LOG" "$FREERADIUS" -X -d "$d"
        RADIUS_PID=${kb_pids[-1]}
        # Ready, or dead because the port was taken between the choice and the bind: then
        # again on another one.
        for _ in $(seq 100); do
            grep -q '^Ready to process requests' "$RADIUS_LOG" && return 0
            kill -0 "$RADIUS_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill "$RADIUS_PID" 2>/dev/null
        wait "$RADIUS_PID" 2>/dev/null
        mv "$RADIUS_LOG" "$RADIUS_LOG.$try"
    done
    return 1
}

# radius_mark: the current length of the server's log (the start of the next slice).
radius_mark() {
    stat -c %s "$RADIUS_LOG"
}

# radius_slice OFFSET OUT: what the server logged since OFFSET, in OUT.
radius_slice() {
    tail -c +"$(($1 + 1))" "$RADIUS_LOG" >"$2"
}

# radius_saw_client_cert FILE: the server verified a client certificate (its attributes).
radius_saw_client_cert() { grep -q -a 'TLS-Client-Cert-' "$1"; }

# eapol NAME CONF [VAR=VALUE...]: eapol_test with CONF against the server (no
# re-authentication, $EAPOL_TIMEOUT s at most: 10), with the variables in its environment
# and HOME in $T (tpm2-pkcs11, loaded by p11-kit-proxy, makes ~/.tpm2_pkcs11). Its output is
# left in $T/NAME.eapol, the server's log of the exchange in $T/NAME.radius, and its exit
# code in eapol_rc.
eapol() {
    local name=$1 conf=$2 mark
    shift 2
    mark=$(radius_mark)
    eapol_rc=0
    mkdir -p "$T/home"
    env HOME="$T/home" "$@" "$EAPOL_TEST" -c "$conf" -a 127.0.0.1 -p "$RADIUS_PORT" \
        -s "$RADIUS_SECRET" -r0 -t "${EAPOL_TIMEOUT:-10}" >"$T/$name.eapol" 2>&1 </dev/null ||
        eapol_rc=$?
    # FreeRADIUS logs the exchange as it goes; the last packet has been logged by the time
    # eapol_test has its answer, give or take the write.
    sleep 0.1
    radius_slice "$mark" "$T/$name.radius"
}

# eapol_ok NAME: the exchange ended in success (exit 0, "SUCCESS", an Access-Accept).
eapol_ok() {
    [ "$eapol_rc" -eq 0 ] && [ "$(tail -1 "$T/$1.eapol")" = SUCCESS ] &&
        grep -q 'RADIUS message: code=2 (Access-Accept)' "$T/$1.eapol"
}

# eapol_failed NAME: the exchange failed (non-zero exit, "FAILURE", no Access-Accept).
eapol_failed() {
    [ "$eapol_rc" -ne 0 ] && [ "$(tail -1 "$T/$1.eapol")" = FAILURE ] &&
        ! grep -q 'RADIUS message: code=2 (Access-Accept)' "$T/$1.eapol"
}

# eapol_reply NAME: the Reply-Message of the Access-Accept, as eapol_test printed it.
eapol_reply() {
    sed -n "/Attribute 18 (Reply-Message)/{n;s/^ *Value: '\(.*\)'\$/\1/p}" "$T/$1.eapol" | tail -1
}

# cert_serial PEM: the certificate's serial as FreeRADIUS writes TLS-Client-Cert-Serial
# (lower-case hex digits, no separator or leading 0x).
cert_serial() {
    openssl x509 -in "$1" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'
}

# The pass-through module that eapol_counted puts in a profile's place.
PKCS11_SPY=$(ls /usr/lib/*/pkcs11/pkcs11-spy.so 2>/dev/null | head -1)

# eapol_counted NAME CONF [VAR=VALUE...]: eapol NAME with CONF, its pkcs11_module_path
# replaced by the spy loading the p11shim loading that module (nothing else changed; the
# copy is $T/NAME.spied.conf). The signatures in $T/NAME.sigs (sigs NAME), the PKCS#11
# calls in $T/NAME.shim (logins NAME). Needs $P11SHIM and $PKCS11_SPY.
eapol_counted() {
    local name=$1 conf=$2 module
    shift 2
    module=$(sed -n 's/^pkcs11_module_path=//p' "$conf")
    sed "s|^pkcs11_module_path=.*|pkcs11_module_path=$PKCS11_SPY|" "$conf" >"$T/$name.spied.conf"
    : >"$T/$name.sigs"
    : >"$T/$name.shim"
    eapol "$name" "$T/$name.spied.conf" PKCS11SPY="$P11SHIM" PKCS11SPY_OUTPUT="$T/$name.spy" \
        P11SHIM_MODULE="$module" P11SHIM_COUNT="$T/$name.sigs" P11SHIM_LOG="$T/$name.shim" "$@"
}
# sigs NAME: the signatures the token made in eapol_counted NAME.
sigs() { wc -l <"$T/$1.sigs"; }
# logins NAME [RV]: its C_Login calls (those that returned RV, e.g. 0x000000a0, if given).
logins() { grep -c "^C_Login ${2:-}" "$T/$1.shim" || true; }
# sensitive_reads LOG: calls in a p11shim log refused with CKR_ATTRIBUTE_SENSITIVE (0x11):
# attempts to read a sensitive attribute (CKA_VALUE, CKA_PRIVATE_EXPONENT...) of a key.
sensitive_reads() { grep -c '^C_GetAttributeValue 0x00000011$' "$1" || true; }

# nm_to_wpa KEYFILE OUT: the wpa_supplicant network block that NetworkManager 1.42 makes of
# a keyfile's EAP-TLS settings (src/core/supplicant/nm-supplicant-config.c): wired:
# key_mgmt=IEEE8021X, eapol_flags=0; wifi (key-mgmt=wpa-eap): ssid, key_mgmt=WPA-EAP; eap
# upper-cased; identity; ca-cert -> ca_cert; client-cert -> client_cert; domain-match ->
# domain_match; domain-suffix-match -> domain_suffix_match; private-key (a pkcs11: URI) ->
# private_key as it is (NM appends ?pin-value= only for a private-key-password: there must be
# none); pin -> pin; phase1-auth-flags -> phase1 (1: tls_disable_tlsv1_0=1, 2:
# tls_disable_tlsv1_1=1, 4: tls_disable_tlsv1_2=1, 8: tls_disable_time_checks=1, 16:
# tls_disable_tlsv1_3=1, 32/64/128: tls_disable_tlsv1_0/1/2=0, 256: tls_disable_tlsv1_3=0);
# fragment_size=1266 (from an MTU of 1500). No pkcs11_module_path: NM has none, and libp11
# then loads p11-kit-proxy. Any other 802-1x key, or a password, fails the translation
# (exit 1, naming it) rather than drop a setting that matters.
nm_to_wpa() {
    python3 - "$1" "$2" <<'PY'
import configparser, sys

kf = configparser.ConfigParser(interpolation=None, strict=False)
kf.optionxform = str
kf.read(sys.argv[1])


def fail(why):
    sys.stderr.write("nm_to_wpa: %s: %s\n" % (sys.argv[1], why))
    sys.exit(1)


c, x = kf["connection"], kf["802-1x"]
out = ["# what NetworkManager 1.42 hands wpa_supplicant for " + c["id"], "network={"]


def opt(k, v, quote=True):
    out.append("\t%s=%s" % (k, '"%s"' % v if quote else v))


if c["type"] in ("ethernet", "802-3-ethernet"):
    opt("key_mgmt", "IEEE8021X", False)
    opt("eapol_flags", "0", False)
elif c["type"] in ("wifi", "802-11-wireless"):
    opt("ssid", kf["wifi"]["ssid"])
    if kf["wifi-security"]["key-mgmt"] != "wpa-eap":
        fail("wifi-security.key-mgmt is not wpa-eap")
    opt("key_mgmt", "WPA-EAP", False)
else:
    fail("connection.type " + c["type"])
opt("eap", " ".join(m.upper() for m in x["eap"].split(";") if m), False)
opt("fragment_size", "1266", False)
plain = {"identity": "identity", "domain-match": "domain_match",
         "domain-suffix-match": "domain_suffix_match", "pin": "pin"}
flags = [(1, "tls_disable_tlsv1_0=1"), (32, "tls_disable_tlsv1_0=0"),
         (2, "tls_disable_tlsv1_1=1"), (64, "tls_disable_tlsv1_1=0"),
         (4, "tls_disable_tlsv1_2=1"), (128, "tls_disable_tlsv1_2=0"),
         (16, "tls_disable_tlsv1_3=1"), (256, "tls_disable_tlsv1_3=0"),
         (8, "tls_disable_time_checks=1")]
for k, v in x.items():
    if k in plain:
        opt(plain[k], v)
    elif k in ("ca-cert", "client-cert"):
        opt(k.replace("-", "_"), v[len("file://"):] if v.startswith("file://") else v)
    elif k == "private-key":
        if not v.startswith("pkcs11:") or "pin-value" in v:
            fail("private-key is not a pkcs11: URI without a PIN")
        opt("private_key", v)
    elif k == "phase1-auth-flags":
        if int(v) & ~0x1ff:
            fail("phase1-auth-flags " + v)
        opt("phase1", " ".join(w for bit, w in flags if int(v) & bit))
    elif k == "eap" or k in ("pin-flags", "private-key-password-flags",
                             "client-cert-password-flags"):
        pass
    else:
        fail("802-1x.%s has no translation here" % k)
out.append("}")
open(sys.argv[2], "w").write("\n".join(out) + "\n")
PY
}
