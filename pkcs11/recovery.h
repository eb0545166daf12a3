/* A module that lost its state, told from an ordinary token error, and brought back.
 *
 * A TPM or its resource manager that restarts under a running keybound leaves tpm2-pkcs11
 * with a dead connection and stale handles; a token failure that is only an error (a key
 * the token refuses, no free object slot) leaves it working. After a failed signature,
 * kb_module_answers asks the module for one random byte on a fresh session: a module that
 * cannot do even that has lost its state and is marked lost. Nothing is signed on a lost
 * module (signer.h): on a TPM each signature on stale handles may count as a failed
 * authorisation against its device-wide lockout. kb_p11_recover initialises the lost
 * modules again; the PIN is then asked once more through the same source, by the next key
 * import. */
#ifndef KB_RECOVERY_H
#define KB_RECOVERY_H

#include "p11.h"

struct kb_pin_opts;

/* Whether the module still does the simplest thing on the slot's token. */
bool kb_module_answers(kb_module *m, CK_SLOT_ID slot);

/* Marks m lost (once: says so once, and calls the hook once). */
void kb_module_mark_lost(kb_module *m, const char *token_label);

/* Called (from any thread) when a module is marked lost: a long-running caller schedules
 * kb_p11_recover on its own thread. One hook per process. */
void kb_p11_set_lost_hook(void (*fn)(void *arg), void *arg);

bool kb_p11_any_lost(const kb_p11 *p);

/* Initialises every lost module of p again: all signers drop their key objects and sign
 * nothing meanwhile, GnuTLS's PKCS#11 layer is shut down (it shares each module with p, and
 * p11-kit finalises a module only when both let go), each lost module is finalised and
 * initialised, and GnuTLS gets its providers and the PIN callback back. 0 when no module
 * is lost any more; -1 with err naming one that cannot be initialised yet (call again
 * later). Call it from one thread, the one that makes signers. */
int kb_p11_recover(kb_p11 *p, const struct kb_pin_opts *pin, kb_err *err);

#endif
