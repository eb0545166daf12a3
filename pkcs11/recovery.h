/* SPDX-License-Identifier: Apache-2.0 */
/* A module that lost its state, told from an ordinary token error, and brought back.
 *
 * A TPM or its resource manager that restarts under a running keybound leaves tpm2-pkcs11
 * with a dead connection and stale handles; a token failure that is only an error (a key
 * the token refuses, no free object slot) leaves it working. After a failed signature,
 * kb_module_answers asks the module for one random byte on a fresh session: a module that
 * cannot do even that has lost its state and is marked lost. Nothing is signed on a lost
 * module (signer.h): on a TPM each signature on stale handles may count as a failed
 * authorisation against its device-wide lockout. The probe and the mark are p11.h's
 * (kb_module_answers, kb_module_mark_lost); kb_p11_recover initialises the lost modules
 * again; the PIN is then asked once more through the same source, by the next key
 * import. */
#ifndef KB_RECOVERY_H
#define KB_RECOVERY_H

#include "p11.h"

struct kb_pin_opts;

/* Initialises every lost module of p again: all signers drop their key objects and sign
 * nothing meanwhile, GnuTLS's PKCS#11 layer is shut down (it shares each module with p, and
 * p11-kit finalises a module only when both let go), each lost module is finalised and
 * initialised, and GnuTLS gets its providers and the PIN callback back. 0 when no module
 * is lost any more; -1 with err naming one that cannot be initialised yet (call again
 * later). Call it from one thread, the one that makes signers. */
int kb_p11_recover(kb_p11 *p, const struct kb_pin_opts *pin, kb_err *err);

#endif
