/* SPDX-License-Identifier: Apache-2.0 */
/* The tunnel: local plaintext listeners forwarded over mTLS with the token's key.
 *
 * About one libev loop per core pumps the established connections, spread over them, with
 * bounded buffers (taken only while bytes wait), half-close in both directions and
 * backpressure; a control loop of its own holds the listeners, the signals and reloads and
 * pumps nothing. TCP connects, handshakes and answers to the server's later requests for
 * the certificate run on a small pool of worker threads, so a slow token never stalls a
 * loop; while the first full handshake to an endpoint is under way, the others wait for
 * its ticket and resume (no signature). The policy is evaluated at start and on SIGHUP,
 * which also re-reads the config file (a changed listen address or a new tunnel waits for a
 * restart) and picks up a renewed certificate; established connections keep flowing with
 * the settings they started with. SIGTERM and SIGINT stop accepting and drain; SIGUSR1
 * logs the counters. One log line per connection opened and closed, never a PIN. The rooms
 * inside are described in shared.h. */
#ifndef KB_TUNNEL_H
#define KB_TUNNEL_H

#include "pkcs11/pin.h"
#include "policy/policy.h"
#include "src/tunnel/settings.h"

struct kb_p11;

struct kb_tunnel_env {
    struct kb_p11 *p11;
    const kb_pin_opts *pin;
    const char *policy_path; /* NULL: default file or baseline */
    const char *config_path; /* re-read on SIGHUP; NULL: tunnels from the command line */
    unsigned workers;
    unsigned drain_timeout_s;
    unsigned admission_recheck_s; /* 0: every 600 s */
    bool recheck_from_cli;        /* a reload's [global] does not override it */
    const char *status_addr;      /* /status and /metrics here (status.c); NULL: none */
    bool check_only;              /* evaluate admission, then return: listen on nothing */
};

/* Runs until SIGTERM/SIGINT. Returns 0, 1 when the policy denies every tunnel at start, or
 * -1 with err set. With check_only it returns after the first evaluation: 0 when every
 * tunnel is admitted, 1 (err says how many are not) otherwise. */
int kb_tunnel_run(kb_tunnel_conf *confs, size_t n, const struct kb_tunnel_env *env, kb_err *err);

#endif
