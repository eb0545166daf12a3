# SPDX-License-Identifier: Apache-2.0
# A throwaway TPM 2.0 for the integration tests: swtpm on 127.0.0.1, tpm2-pkcs11 with its
# store in the test's temp directory, token "dev" (user PIN 1234, SO PIN 12345678).
#
# Sourced after testlib.sh. kb_tpm_setup starts it without a resource manager: one
# process at a time may use the TPM, as on a laptop whose keybound talks to /dev/tpm0.
# kb_tpm_setup abrmd puts tpm2-abrmd in front of it, on a private D-Bus session bus, so
# that several processes share it as through /dev/tpmrm0. Nothing touches the system's
# TPM, D-Bus or ~/.tpm2_pkcs11.

: "${TPM_MODULE:=/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so}"

# tpm_ports: P and P+1 free on 127.0.0.1, away from 2321/2322 (tpm2-pkcs11's default TCTI
# search tries them, so a test TPM there could answer a module nobody pointed at it), and
# below the kernel's ephemeral range: tpm_reset.sh stops swtpm and starts it again on the
# same ports, and in that gap any outgoing connection on the machine may be given one of
# them as its local port, after which swtpm cannot bind it (a CI run failed so).
tpm_ports() {
    python3 - <<'PY'
import random, socket, sys
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
for _ in range(50):
    p = random.randrange(10000, max(low, 10002) - 1)
    try:
        held = []
        for q in (p, p + 1):
            s = socket.socket()
            s.bind(("127.0.0.1", q))
            held.append(s)
    except OSError:
        continue
    print(p)
    sys.exit(0)
sys.exit(1)
PY
}

# kb_tpm_start: starts swtpm on the state in $TPM_DIR/state (a restart keeps the keys).
kb_tpm_start() {
    swtpm socket --tpm2 --tpmstate dir="$TPM_DIR/state" \
        --server type=tcp,port="$TPM_PORT",bindaddr=127.0.0.1 \
        --ctrl type=tcp,port="$((TPM_PORT + 1))",bindaddr=127.0.0.1 \
        --flags not-need-init,startup-clear --pid file="$TPM_DIR/swtpm.pid" -d ||
        return 1
    wait_port "$TPM_PORT"
}

# kb_tpm_stop: kills swtpm as a crash or a resource manager's restart would (SIGKILL).
kb_tpm_stop() {
    local pid
    pid=$(cat "$TPM_DIR/swtpm.pid" 2>/dev/null) || return 0
    kill -9 "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
    rm -f "$TPM_DIR/swtpm.pid"
}

# tpm_tools CMD...: a tpm2-tools command on the test TPM (through abrmd when it runs).
tpm_tools() {
    TPM2TOOLS_TCTI=$TPM_TCTI "$@"
}

# kb_tpm_token LABEL: a new token on the TPM with user PIN 1234. tpm2_ptool addtoken needs a
# resource manager; p11tool does not.
kb_tpm_token() {
    GNUTLS_SO_PIN=12345678 p11tool --batch --provider "$TPM_MODULE" --initialize \
        --label "$1" "pkcs11:token=;serial=0000000000000000" >/dev/null 2>&1 &&
        GNUTLS_SO_PIN=12345678 GNUTLS_PIN=1234 p11tool --batch --provider "$TPM_MODULE" \
            --initialize-pin "pkcs11:token=$1" >/dev/null 2>&1 || return 1
    [ -n "${TPM_ABRMD:-}" ] || tpm_tools tpm2_flushcontext -t
}

# tpm_transient: how many transient objects the TPM holds now (swtpm directly).
tpm_transient() {
    TPM2TOOLS_TCTI=$TPM_RAW_TCTI tpm2_getcap handles-transient | grep -c '0x80'
}

tpm_stop_all() {
    kb_tpm_stop
    [ -n "${TPM_ABRMD_PID:-}" ] && kill "$TPM_ABRMD_PID" 2>/dev/null
    [ -n "${TPM_BUS_PID:-}" ] && kill "$TPM_BUS_PID" 2>/dev/null
    kb_cleanup
}

# tpm_localca DIR: a swtpm-localca configuration of the test's own in DIR, never the
# system's (/etc/swtpm-localca.conf, /var/lib/swtpm-localca): swtpm_localca makes a root CA
# (swtpm-localca-rootca-cert.pem) and an intermediate (issuercert.pem) there on first use.
# Two such directories are two CAs with the same names and different keys.
tpm_localca() {
    local d=$1
    mkdir -p "$d"
    printf '%s\n' "statedir = $d" "signingkey = $d/signkey.pem" \
        "issuercert = $d/issuercert.pem" "certserial = $d/certserial" >"$d/swtpm-localca.conf"
    printf '%s\n' "--platform-manufacturer keybound-test" "--platform-version 2.1" \
        "--platform-model swtpm" >"$d/swtpm-localca.options"
    printf '%s\n' "create_certs_tool= /usr/bin/swtpm_localca" \
        "create_certs_tool_config = $d/swtpm-localca.conf" \
        "create_certs_tool_options = $d/swtpm-localca.options" \
        "active_pcr_banks = sha256" >"$d/swtpm_setup.conf"
}

# tpm_provision STATE CA-DIR: a new TPM state in STATE with EKs and their certificates in
# NV (RSA-2048 at 0x01c00002, ECC at 0x01c00016) and a platform certificate, signed by the
# CA in CA-DIR (tpm_localca). Run before swtpm starts on STATE.
tpm_provision() {
    mkdir -p "$1"
    swtpm_setup --tpm2 --tpmstate "$1" --create-ek-cert --create-platform-cert \
        --config "$2/swtpm_setup.conf" --overwrite >"$1.setup.log" 2>&1
}

# kb_tpm_setup [abrmd]: kb_setup, then the TPM and token "dev" on it. Sets MOD (--module
# for keybound) and TOKEN_MODULE (for testlib's p11tool helpers). With TPM_EK_CERTS=1 the
# TPM is provisioned first as a vendor's would be: EK certificates from the test's own CA
# in $T/ca (tpm_localca); TPM_CA names its root and intermediate, as a policy's tpm-ca.
kb_tpm_setup() {
    for tool in swtpm tpm2_getcap tpm2_dictionarylockout p11tool; do
        command -v "$tool" >/dev/null || t_skip_all "$tool not installed"
    done
    [ -f "$TPM_MODULE" ] || t_skip_all "tpm2-pkcs11 module not found at $TPM_MODULE"
    kb_setup
    trap tpm_stop_all EXIT
    TPM_DIR=$T/tpm
    mkdir -p "$TPM_DIR/state" "$TPM_DIR/store"
    if [ "${TPM_EK_CERTS:-}" = 1 ]; then
        command -v swtpm_setup >/dev/null && [ -x /usr/bin/swtpm_localca ] ||
            t_skip_all "swtpm_setup or swtpm_localca (swtpm-tools) not installed"
        tpm_localca "$T/ca"
        tpm_provision "$TPM_DIR/state" "$T/ca" ||
            t_skip_all "swtpm_setup cannot provision EK certificates: $(tail -3 "$TPM_DIR/state.setup.log")"
        TPM_CA=("$T/ca/swtpm-localca-rootca-cert.pem" "$T/ca/issuercert.pem")
    fi
    TPM_PORT=$(tpm_ports) || t_skip_all "no two free ports for swtpm"
    kb_tpm_start || t_skip_all "swtpm does not start"
    TPM_RAW_TCTI="swtpm:host=127.0.0.1,port=$TPM_PORT"
    TPM_TCTI=$TPM_RAW_TCTI
    if [ "${1:-}" = abrmd ]; then
        command -v tpm2-abrmd >/dev/null && command -v dbus-daemon >/dev/null ||
            t_skip_all "tpm2-abrmd or dbus-daemon not installed"
        # The daemon's package does not pull in the clients' TCTI for it; without it every
        # client fails as though the TPM did not answer.
        { ldconfig -p || /sbin/ldconfig -p; } 2>/dev/null | grep -q 'libtss2-tcti-tabrmd\.so' ||
            t_skip_all "libtss2-tcti-tabrmd0 (the TCTI of tpm2-abrmd's clients) not installed"
        TPM_ABRMD=1
        export DBUS_SESSION_BUS_ADDRESS="unix:path=$TPM_DIR/bus"
        dbus-daemon --session --address="$DBUS_SESSION_BUS_ADDRESS" --nofork \
            --print-pid >"$TPM_DIR/bus.pid" 2>"$TPM_DIR/bus.log" &
        TPM_BUS_PID=$!
        for i in $(seq 100); do [ -S "$TPM_DIR/bus" ] && break; sleep 0.02; done
        tpm2-abrmd --session --allow-root --flush-all --tcti="$TPM_RAW_TCTI" \
            >"$TPM_DIR/abrmd.log" 2>&1 &
        TPM_ABRMD_PID=$!
        TPM_TCTI=tabrmd:bus_type=session
        for i in $(seq 100); do
            tpm_tools tpm2_getcap properties-fixed >/dev/null 2>&1 && break
            sleep 0.05
        done
    fi
    export TPM2_PKCS11_TCTI=$TPM_TCTI TPM2_PKCS11_STORE=$TPM_DIR/store
    # tpm2-pkcs11's own log and tpm2-tss's stay quiet unless a test asks.
    export TPM2_PKCS11_LOG_LEVEL=0
    # swtpm's default lockout (3 tries, 1000 s) would stop the suite after a wrong PIN.
    tpm_tools tpm2_dictionarylockout --setup-parameters --max-tries=1000 --recovery-time=1 \
        --lockout-recovery-time=1 || t_skip_all "the test TPM does not answer"
    kb_tpm_token dev || t_skip_all "cannot make a token on the test TPM"
    MOD="--module $TPM_MODULE"
    TOKEN_MODULE=$TPM_MODULE
}

# kb_tpm_policy: kb_pki_policy, with the token rule for the test TPM (IBM's "SW   TPM",
# which the shipped TPM example, admitting hardware vendors only, refuses) and RSA-2048
# allowed. POL is --policy for it.
kb_tpm_policy() {
    kb_pki_policy
    sed -e 's/^allow = manufacturer=.*/allow = manufacturer=IBM model="SW   TPM"/' \
        -e 's/^algorithms = .*/algorithms = ec-p256 ec-p384 rsa-2048+/' \
        "$T/policy.conf" >"$T/tpm-policy.conf"
    POL="--policy $T/tpm-policy.conf"
}
