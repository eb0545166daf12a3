/* SPDX-License-Identifier: Apache-2.0 */
/* Modules, tokens and sessions: the only door to PKCS#11.
 *
 * kb_p11_open loads either the modules registered with p11-kit or the one module the
 * user named. A registered module that fails to load or initialise is left out (said
 * under -v); the others stay usable. Tokens are listed with their facts and a pkcs11: URI
 * naming each. A session belongs to one token; kb_session_login logs in at most once
 * per call, never retries a wrong PIN, and refuses a token that reports its final try
 * or a locked PIN unless forced. */
#ifndef KB_P11_H
#define KB_P11_H

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "pkcs11/quirks.h"
#include "policy/facts.h"
#include "src/util/err.h"

struct kb_pin_opts;

typedef struct kb_module {
    CK_FUNCTION_LIST *fn;
    char *name; /* p11-kit's name for it, or the file name without lib and .so */
    char *path;
    CK_INFO info;
    enum kb_facts_source facts_source; /* whose word its key facts are (quirks.h) */
    bool tpm;                          /* tpm2-pkcs11 (kb_module_is_tpm2): its token is a TPM */
    atomic_bool lost;                  /* it lost its state: nothing is signed on it (recovery.h) */
    bool finalized; /* recovery finalised it and has not initialised it again yet */
} kb_module;

typedef struct kb_p11 {
    kb_module *modules;
    size_t n_modules;
    CK_FUNCTION_LIST **registered; /* from p11-kit, NULL with an explicit module */
} kb_p11;

typedef struct kb_token {
    kb_module *module;
    CK_SLOT_ID slot;
    CK_SLOT_INFO slot_info;
    CK_TOKEN_INFO info;
    struct kb_token_facts facts;
    char *uri;
} kb_token;

typedef struct kb_token_list {
    kb_token *v;
    size_t n;
} kb_token_list;

typedef struct kb_session {
    kb_token *token;
    CK_SESSION_HANDLE h;
    bool rw;
    bool logged_in;
} kb_session;

/* module_path NULL: the modules registered with p11-kit, as kb_p11_open_registered with
 * no names. */
int kb_p11_open(kb_p11 **out, const char *module_path, kb_err *err);

/* The modules p11-kit registers for keybound (its enable-in: and disable-in: apply).
 * names NULL: all of them, but tpm2-pkcs11 only where it has a TPM to talk to
 * (kb_tpm_reachable), since its C_Initialize makes a directory and noise without one.
 * names: only those, by p11-kit's module name (blanks or commas between them), named
 * tpm2-pkcs11 included; a name p11-kit does not register is an error naming `from`,
 * where the list came from (e.g. "KEYBOUND_MODULES"). A module that fails to initialise
 * is left out with one line under -v, or a warning when it was named; one that p11-kit
 * marks critical fails the call. */
int kb_p11_open_registered(kb_p11 **out, const char *names, const char *from, kb_err *err);
void kb_p11_close(kb_p11 *p);

enum {
    /* Leave out tokens that are not initialised (a blank card, SoftHSM's free slot):
     * they hold nothing and refuse sessions. */
    KB_TOKENS_INITIALIZED = 1 << 0,
};

/* Tokens present in any slot of the loaded modules that match filter (NULL: all).
 * Only the module and token parts of the URI are used. */
int kb_p11_tokens(kb_p11 *p, P11KitUri *filter, unsigned flags, kb_token_list *out, kb_err *err);
void kb_token_list_free(kb_token_list *l);

/* Fails with "URI matches no WHAT" and the tokens that are present. Returns -1. */
int kb_p11_no_match(kb_p11 *p, const char *uri_text, const char *what, kb_err *err);

/* Exactly one token matching uri, or an error that lists what matched. */
int kb_p11_one_token(kb_p11 *p, P11KitUri *uri, const char *uri_text, kb_token_list *list,
                     kb_token **out, kb_err *err);

/* Re-reads the token's flags (PIN counters change with every login). */
int kb_token_refresh(kb_token *t, kb_err *err);

int kb_session_open(kb_token *t, bool rw, kb_session *s, kb_err *err);
void kb_session_close(kb_session *s);

/* Logs in as the user when the token requires it. At most one C_Login. */
int kb_session_login(kb_session *s, const struct kb_pin_opts *pin, kb_err *err);

/* A module that lost its state (recovery.h says what that is and how it comes back).
 * Whether the module still does the simplest thing on the slot's token: */
bool kb_module_answers(kb_module *m, CK_SLOT_ID slot);

/* Marks m lost (once: says so once, and calls the hook once). */
void kb_module_mark_lost(kb_module *m, const char *token_label);

/* Called (from any thread) when a module is marked lost: a long-running caller schedules
 * kb_p11_recover on its own thread. One hook per process. */
void kb_p11_set_lost_hook(void (*fn)(void *arg), void *arg);

bool kb_p11_any_lost(const kb_p11 *p);

/* What a TPM's failure (tpm2-pkcs11 says CKR_GENERAL_ERROR for nearly all) means, asked of
 * the TPM itself: gone (the module is then marked lost, recovery.h), or out of object
 * slots. One clause for a message. */
const char *kb_tpm_failure_hint(kb_token *t);

/* Before a key is destroyed. tpm2-pkcs11 keeps each key it used loaded in the TPM until
 * logout, and its C_DestroyObject (1.9.0) does not unload it: the object slot stays taken
 * until the TPM restarts, and with all three taken the TPM refuses every login. Logging
 * out unloads them all; the login that follows asks the same PIN source. A no-op (0) on
 * tokens that are not TPMs. */
int kb_session_unload(kb_session *s, const struct kb_pin_opts *pin, kb_err *err);

/* Whether the token can do mechanism m with all of flags (e.g. CKF_SIGN). */
bool kb_token_has_mechanism(const kb_token *t, CK_MECHANISM_TYPE m, CK_FLAGS flags);

/* The text of a CKR_ code, e.g. "CKR_PIN_INCORRECT". */
const char *kb_ckr_name(CK_RV rv);

#endif
