/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "p11.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pin.h"
#include "quirks.h"
#include "src/util/log.h"
#include "uri.h"

const char *kb_ckr_name(CK_RV rv)
{
    static const struct {
        CK_RV rv;
        const char *name;
    } names[] = {
#define N(x) {x, #x}
        N(CKR_OK),
        N(CKR_CANCEL),
        N(CKR_HOST_MEMORY),
        N(CKR_SLOT_ID_INVALID),
        N(CKR_GENERAL_ERROR),
        N(CKR_FUNCTION_FAILED),
        N(CKR_ARGUMENTS_BAD),
        N(CKR_ATTRIBUTE_READ_ONLY),
        N(CKR_ATTRIBUTE_SENSITIVE),
        N(CKR_ATTRIBUTE_TYPE_INVALID),
        N(CKR_ATTRIBUTE_VALUE_INVALID),
        N(CKR_DATA_INVALID),
        N(CKR_DEVICE_ERROR),
        N(CKR_DEVICE_MEMORY),
        N(CKR_DEVICE_REMOVED),
        N(CKR_FUNCTION_NOT_SUPPORTED),
        N(CKR_KEY_HANDLE_INVALID),
        N(CKR_KEY_TYPE_INCONSISTENT),
        N(CKR_MECHANISM_INVALID),
        N(CKR_MECHANISM_PARAM_INVALID),
        N(CKR_OBJECT_HANDLE_INVALID),
        N(CKR_OPERATION_ACTIVE),
        N(CKR_OPERATION_NOT_INITIALIZED),
        N(CKR_PIN_INCORRECT),
        N(CKR_PIN_INVALID),
        N(CKR_PIN_LEN_RANGE),
        N(CKR_PIN_EXPIRED),
        N(CKR_PIN_LOCKED),
        N(CKR_SESSION_CLOSED),
        N(CKR_SESSION_COUNT),
        N(CKR_SESSION_HANDLE_INVALID),
        N(CKR_SESSION_READ_ONLY),
        N(CKR_TEMPLATE_INCOMPLETE),
        N(CKR_TEMPLATE_INCONSISTENT),
        N(CKR_TOKEN_NOT_PRESENT),
        N(CKR_TOKEN_NOT_RECOGNIZED),
        N(CKR_TOKEN_WRITE_PROTECTED),
        N(CKR_USER_ALREADY_LOGGED_IN),
        N(CKR_USER_NOT_LOGGED_IN),
        N(CKR_USER_PIN_NOT_INITIALIZED),
        N(CKR_USER_TYPE_INVALID),
        N(CKR_BUFFER_TOO_SMALL),
        N(CKR_CRYPTOKI_NOT_INITIALIZED),
        N(CKR_CRYPTOKI_ALREADY_INITIALIZED),
#undef N
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].rv == rv)
            return names[i].name;
    static _Thread_local char buf[32];
    snprintf(buf, sizeof buf, "CKR 0x%08lx", (unsigned long)rv);
    return buf;
}

/* RFC 7512 module-name: the library's file name without "lib" and ".so...". */
static char *name_from_path(const char *path)
{
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    if (strncmp(b, "lib", 3) == 0)
        b += 3;
    size_t n = strcspn(b, ".");
    return strndup(b, n);
}

static int add_module(kb_p11 *p, CK_FUNCTION_LIST *fn, char *name, char *path)
{
    kb_module *v = realloc(p->modules, (p->n_modules + 1) * sizeof *v);
    if (v == NULL) {
        free(name);
        free(path);
        return -1;
    }
    p->modules = v;
    kb_module *m = &v[p->n_modules++];
    memset(m, 0, sizeof *m);
    m->fn = fn;
    m->name = name;
    m->path = path;
    if (fn->C_GetInfo(&m->info) != CKR_OK)
        memset(&m->info, 0, sizeof m->info);
    m->facts_source = kb_module_facts_source(m->path, &m->info);
    m->tpm = kb_module_is_tpm2(m->path, &m->info);
    return 0;
}

/* Whether name is one of the words of list (blanks or commas between them). */
static bool in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *w = list; *w;) {
        w += strspn(w, " \t,");
        size_t len = strcspn(w, " \t,");
        if (len == n && len > 0 && strncmp(w, name, n) == 0)
            return true;
        w += len;
    }
    return false;
}

/* Every word of names is the name of a registered module: a misspelt name would leave
 * out the module the user wanted, silently. */
static int check_names(CK_FUNCTION_LIST **mods, const char *names, const char *from, kb_err *err)
{
    char known[400] = "";
    size_t used = 0;
    for (size_t i = 0; mods[i] != NULL; i++) {
        char *name = p11_kit_module_get_name(mods[i]);
        if (name != NULL && used < sizeof known)
            used +=
                (size_t)snprintf(known + used, sizeof known - used, "%s%s", used ? ", " : "", name);
        free(name);
    }
    bool any = false;
    for (const char *w = names; *w;) {
        w += strspn(w, " \t,");
        size_t len = strcspn(w, " \t,");
        if (len == 0)
            break;
        any = true;
        bool found = false;
        for (size_t i = 0; mods[i] != NULL && !found; i++) {
            char *name = p11_kit_module_get_name(mods[i]);
            found = name != NULL && strlen(name) == len && strncmp(name, w, len) == 0;
            free(name);
        }
        if (!found)
            return kb_err_set(err,
                              "%s names '%.*s', which is not a PKCS#11 module p11-kit registers "
                              "for keybound (registered: %s); see 'p11-kit list-modules'",
                              from, (int)len, w, used ? known : "none");
        w += len;
    }
    if (!any)
        return kb_err_set(err,
                          "%s names no module; give p11-kit module names, e.g. "
                          "'softhsm2 tpm2_pkcs11'",
                          from);
    return 0;
}

/* Loads the registered modules and initialises those keybound is to use, in place:
 * p->registered ends up holding only the initialised ones. */
static int open_registered(kb_p11 *p, const char *names, const char *from, kb_err *err)
{
    int verbose = kb_log_verbosity();
    kb_quiet_module_logs(verbose);
    /* p11-kit leaves out a non-critical module that fails to load, and says why (one
     * line) only when loud: with -v. */
    if (verbose > 0)
        p11_kit_be_loud();
    p->registered = p11_kit_modules_load(NULL, 0);
    p11_kit_be_quiet();
    if (p->registered == NULL) {
        const char *why = p11_kit_message();
        return kb_err_set(err, "cannot load the PKCS#11 modules registered with p11-kit: %s",
                          why ? why : "unknown reason");
    }
    if (names != NULL && check_names(p->registered, names, from, err) != 0) {
        /* Loaded only: nothing to finalise. */
        p11_kit_modules_release(p->registered);
        p->registered = NULL;
        return -1;
    }
    CK_FUNCTION_LIST **mods = p->registered;
    size_t kept = 0, i;
    int rc = 0;
    for (i = 0; mods[i] != NULL && rc == 0; i++) {
        CK_FUNCTION_LIST *m = mods[i];
        char *name = p11_kit_module_get_name(m), *file = p11_kit_module_get_filename(m);
        const char *shown = name ? name : "?";
        bool named = names != NULL && name != NULL && in_list(names, name);
        char why[200] = "";
        if (names != NULL && !named) {
            kb_log(KB_LOG_DEBUG, "PKCS#11 module %s (%s) left out: not in %s", shown,
                   file ? file : "?", from);
            p11_kit_module_release(m);
        } else if (names == NULL && kb_module_is_tpm2(file, NULL) &&
                   !kb_tpm_reachable(why, sizeof why)) {
            /* C_Initialize is where tpm2-pkcs11 makes its directory and searches for a
             * TPM; loading it alone does neither. */
            kb_log(KB_LOG_DEBUG,
                   "PKCS#11 module %s (%s) left out: %s; name it in KEYBOUND_MODULES to "
                   "load it anyway",
                   shown, file ? file : "?", why);
            p11_kit_module_release(m);
        } else {
            CK_RV rv = p11_kit_module_initialize(m);
            if (rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
                mods[kept++] = m;
            } else if (p11_kit_module_get_flags(m) & P11_KIT_MODULE_CRITICAL) {
                rc = kb_err_set(err,
                                "PKCS#11 module %s (%s) failed to initialise: %s; p11-kit's "
                                "configuration marks it critical",
                                shown, file ? file : "?", kb_ckr_name(rv));
                p11_kit_module_release(m);
            } else {
                /* What the user did not ask for by name is no reason to speak up. */
                kb_log(named ? KB_LOG_WARN : KB_LOG_DEBUG,
                       "PKCS#11 module %s (%s) failed to initialise (%s); going on without it",
                       shown, file ? file : "?", kb_ckr_name(rv));
                p11_kit_module_release(m);
            }
        }
        free(name);
        free(file);
    }
    /* After a critical failure, the modules not reached were loaded only. */
    for (; mods[i] != NULL; i++)
        p11_kit_module_release(mods[i]);
    mods[kept] = NULL;
    return rc;
}

int kb_p11_open_registered(kb_p11 **out, const char *names, const char *from, kb_err *err)
{
    *out = NULL;
    kb_p11 *p = calloc(1, sizeof *p);
    if (p == NULL)
        return kb_err_set(err, "out of memory");
    if (open_registered(p, names, from ? from : "the module list", err) != 0)
        goto fail;
    for (CK_FUNCTION_LIST **m = p->registered; *m; m++) {
        char *path = p11_kit_module_get_filename(*m);
        char *name = p11_kit_module_get_name(*m);
        if (name == NULL && path != NULL)
            name = name_from_path(path);
        if (path == NULL)
            path = strdup("?");
        if (name == NULL)
            name = strdup("?");
        if (add_module(p, *m, name, path) != 0) {
            kb_err_set(err, "out of memory");
            goto fail;
        }
    }
    *out = p;
    return 0;
fail:
    kb_p11_close(p);
    return -1;
}

int kb_p11_open(kb_p11 **out, const char *module_path, kb_err *err)
{
    if (module_path == NULL)
        return kb_p11_open_registered(out, NULL, NULL, err);
    *out = NULL;
    kb_p11 *p = calloc(1, sizeof *p);
    if (p == NULL)
        return kb_err_set(err, "out of memory");
    struct stat st;
    if (stat(module_path, &st) != 0 || !S_ISREG(st.st_mode)) {
        kb_err_set(err,
                   "module %s does not exist or is not a file; give the path of a "
                   "PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so)",
                   module_path);
        goto fail;
    }
    bool quieted = kb_quiet_module_logs(kb_log_verbosity());
    CK_FUNCTION_LIST *fn = p11_kit_module_load(module_path, 0);
    if (fn == NULL) {
        const char *why = p11_kit_message();
        kb_err_set(err,
                   "module %s cannot be loaded: %s; is it a PKCS#11 module for this "
                   "architecture?",
                   module_path, why ? why : "unknown reason");
        goto fail;
    }
    CK_RV rv = p11_kit_module_initialize(fn);
    if (rv != CKR_OK) {
        p11_kit_module_release(fn);
        /* tpm2-pkcs11 answers CKR_GENERAL_ERROR for a missing TPM as for anything else. */
        bool tpm2 = kb_module_is_tpm2(module_path, NULL);
        char why[200] = "";
        if (tpm2 && !kb_tpm_reachable(why + 2, sizeof why - 2))
            memcpy(why, "; ", 2);
        kb_err_set(err, "module %s failed to initialise: %s%s%s", module_path, kb_ckr_name(rv), why,
                   tpm2 && quieted ? "; -v shows what the TPM stack says" : "");
        goto fail;
    }
    char *path = strdup(module_path), *name = name_from_path(module_path);
    if (path == NULL || name == NULL || add_module(p, fn, name, path) != 0) {
        p11_kit_module_finalize(fn);
        p11_kit_module_release(fn);
        kb_err_set(err, "out of memory");
        goto fail;
    }
    *out = p;
    return 0;
fail:
    kb_p11_close(p);
    return -1;
}

void kb_p11_close(kb_p11 *p)
{
    if (p == NULL)
        return;
    if (p->registered != NULL) {
        p11_kit_modules_finalize_and_release(p->registered);
    } else {
        for (size_t i = 0; i < p->n_modules; i++) {
            p11_kit_module_finalize(p->modules[i].fn);
            p11_kit_module_release(p->modules[i].fn);
        }
    }
    for (size_t i = 0; i < p->n_modules; i++) {
        free(p->modules[i].name);
        free(p->modules[i].path);
    }
    free(p->modules);
    free(p);
}

static void fill_facts(kb_token *t)
{
    struct kb_token_facts *f = &t->facts;
    kb_trim_field(f->label, t->info.label, sizeof t->info.label);
    kb_trim_field(f->manufacturer, t->info.manufacturerID, sizeof t->info.manufacturerID);
    kb_trim_field(f->model, t->info.model, sizeof t->info.model);
    kb_trim_field(f->serial, t->info.serialNumber, sizeof t->info.serialNumber);
    CK_FLAGS tf = t->info.flags, sf = t->slot_info.flags;
    f->hw_slot = sf & CKF_HW_SLOT;
    f->removable = sf & CKF_REMOVABLE_DEVICE;
    f->login_required = tf & CKF_LOGIN_REQUIRED;
    f->protected_auth = tf & CKF_PROTECTED_AUTHENTICATION_PATH;
    f->rng = tf & CKF_RNG;
    f->initialized = tf & CKF_TOKEN_INITIALIZED;
    f->write_protected = tf & CKF_WRITE_PROTECTED;
    f->pin_count_low = tf & CKF_USER_PIN_COUNT_LOW;
    f->pin_final_try = tf & CKF_USER_PIN_FINAL_TRY;
    f->pin_locked = tf & CKF_USER_PIN_LOCKED;
    f->pin_to_be_changed = tf & CKF_USER_PIN_TO_BE_CHANGED;
}

int kb_token_refresh(kb_token *t, kb_err *err)
{
    CK_RV rv = t->module->fn->C_GetTokenInfo(t->slot, &t->info);
    if (rv != CKR_OK)
        return kb_err_set(err, "token '%s' does not answer (%s); is it still inserted?",
                          t->facts.label, kb_ckr_name(rv));
    fill_facts(t);
    return 0;
}

static void (*lost_hook)(void *);
static void *lost_hook_arg;

bool kb_module_answers(kb_module *m, CK_SLOT_ID slot)
{
    CK_SESSION_HANDLE h;
    CK_RV rv = m->fn->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
    if (rv != CKR_OK) {
        kb_log(KB_LOG_DEBUG, "module %s: no session (%s)", m->name, kb_ckr_name(rv));
        return rv == CKR_SESSION_COUNT; /* busy, not gone */
    }
    CK_BYTE b;
    rv = m->fn->C_GenerateRandom(h, &b, 1);
    m->fn->C_CloseSession(h);
    if (rv != CKR_OK)
        kb_log(KB_LOG_DEBUG, "module %s: no random byte (%s)", m->name, kb_ckr_name(rv));
    /* A token without a generator still answered. */
    return rv == CKR_OK || rv == CKR_FUNCTION_NOT_SUPPORTED || rv == CKR_RANDOM_NO_RNG;
}

void kb_module_mark_lost(kb_module *m, const char *token_label)
{
    if (atomic_exchange(&m->lost, true))
        return;
    kb_log(KB_LOG_ERROR,
           "token '%s' (module %s) stopped answering%s; nothing is signed on it until it is "
           "initialised again",
           token_label, m->name,
           m->tpm ? ": the TPM or its resource manager was restarted, or the connection to it "
                    "is gone"
                  : "");
    if (lost_hook != NULL)
        lost_hook(lost_hook_arg);
}

void kb_p11_set_lost_hook(void (*fn)(void *arg), void *arg)
{
    lost_hook = fn;
    lost_hook_arg = arg;
}

bool kb_p11_any_lost(const kb_p11 *p)
{
    for (size_t i = 0; i < p->n_modules; i++)
        if (atomic_load(&p->modules[i].lost))
            return true;
    return false;
}

const char *kb_tpm_failure_hint(kb_token *t)
{
    if (!kb_module_answers(t->module, t->slot)) {
        kb_module_mark_lost(t->module, t->facts.label);
        return "the TPM does not answer: it, its resource manager or the connection to it is "
               "gone";
    }
    return "the TPM answers otherwise, so it has no free object slots: another program may be "
           "using it without a resource manager";
}

int kb_session_unload(kb_session *s, const kb_pin_opts *pin, kb_err *err)
{
    if (s->token == NULL || !s->token->module->tpm)
        return 0;
    s->token->module->fn->C_Logout(s->h);
    s->logged_in = false;
    return kb_session_login(s, pin, err);
}

bool kb_token_has_mechanism(const kb_token *t, CK_MECHANISM_TYPE m, CK_FLAGS flags)
{
    CK_MECHANISM_INFO mi;
    return t->module->fn->C_GetMechanismInfo(t->slot, m, &mi) == CKR_OK &&
           (mi.flags & flags) == flags;
}

void kb_token_list_free(kb_token_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].uri);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

int kb_p11_tokens(kb_p11 *p, P11KitUri *filter, unsigned flags, kb_token_list *out, kb_err *err)
{
    out->v = NULL;
    out->n = 0;
    for (size_t i = 0; i < p->n_modules; i++) {
        kb_module *m = &p->modules[i];
        if (filter != NULL && !kb_uri_match_module(filter, m))
            continue;
        CK_ULONG n = 0;
        CK_RV rv = m->fn->C_GetSlotList(CK_TRUE, NULL, &n);
        CK_SLOT_ID *slots = NULL;
        if (rv == CKR_OK && n > 0) {
            slots = calloc(n, sizeof *slots);
            if (slots == NULL)
                goto oom;
            rv = m->fn->C_GetSlotList(CK_TRUE, slots, &n);
        }
        if (rv != CKR_OK) {
            /* One module that cannot list its slots must not hide the others. */
            kb_log(KB_LOG_WARN, "PKCS#11 module %s cannot list its slots (%s); skipped", m->name,
                   kb_ckr_name(rv));
            free(slots);
            continue;
        }
        for (CK_ULONG s = 0; s < n; s++) {
            kb_token t = {.module = m, .slot = slots[s]};
            if (m->fn->C_GetSlotInfo(slots[s], &t.slot_info) != CKR_OK ||
                (rv = m->fn->C_GetTokenInfo(slots[s], &t.info)) != CKR_OK) {
                kb_log(KB_LOG_DEBUG, "module %s slot %lu: no token info (%s)", m->name,
                       (unsigned long)slots[s], kb_ckr_name(rv));
                continue;
            }
            fill_facts(&t);
            if ((filter != NULL && !kb_uri_match_token(filter, &t)) ||
                ((flags & KB_TOKENS_INITIALIZED) && !t.facts.initialized))
                continue;
            t.uri = kb_uri_for(&t, NULL, NULL, NULL, 0);
            kb_token *v = realloc(out->v, (out->n + 1) * sizeof *v);
            if (t.uri == NULL || v == NULL) {
                free(t.uri);
                free(slots);
                goto oom;
            }
            out->v = v;
            out->v[out->n++] = t;
        }
        free(slots);
    }
    return 0;
oom:
    kb_token_list_free(out);
    return kb_err_set(err, "out of memory");
}

/* "'label' (serial S), 'label2' (serial S2)" for error messages. */
static void describe_tokens(const kb_token_list *l, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < l->n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s'%s' (serial %s)", i ? ", " : "",
                                 l->v[i].facts.label, l->v[i].facts.serial);
}

int kb_p11_no_match(kb_p11 *p, const char *uri_text, const char *what, kb_err *err)
{
    kb_token_list all;
    if (kb_p11_tokens(p, NULL, KB_TOKENS_INITIALIZED, &all, err) != 0)
        return -1;
    char names[400], *shown = kb_uri_redact(uri_text);
    describe_tokens(&all, names, sizeof names);
    kb_err_set(err, "URI '%s' matches no %s; tokens present: %s; see 'keybound tokens'",
               shown ? shown : "?", what, all.n ? names : "none");
    free(shown);
    kb_token_list_free(&all);
    return -1;
}

int kb_p11_one_token(kb_p11 *p, P11KitUri *uri, const char *uri_text, kb_token_list *list,
                     kb_token **out, kb_err *err)
{
    if (kb_p11_tokens(p, uri, KB_TOKENS_INITIALIZED, list, err) != 0)
        return -1;
    if (list->n == 1) {
        *out = &list->v[0];
        return 0;
    }
    if (list->n == 0)
        return kb_p11_no_match(p, uri_text, "token", err);
    char names[400], *shown = kb_uri_redact(uri_text);
    describe_tokens(list, names, sizeof names);
    kb_err_set(err, "URI '%s' matches %zu tokens: %s; add token= or serial= to choose one",
               shown ? shown : "?", list->n, names);
    free(shown);
    kb_token_list_free(list);
    return -1;
}

int kb_session_open(kb_token *t, bool rw, kb_session *s, kb_err *err)
{
    memset(s, 0, sizeof *s);
    CK_FLAGS flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
    CK_RV rv = t->module->fn->C_OpenSession(t->slot, flags, NULL, NULL, &s->h);
    if (rv != CKR_OK)
        return kb_err_set(err, "cannot open a session on token '%s': %s%s", t->facts.label,
                          kb_ckr_name(rv),
                          rv == CKR_TOKEN_WRITE_PROTECTED ? " (the token is write-protected)" : "");
    s->token = t;
    s->rw = rw;
    return 0;
}

void kb_session_close(kb_session *s)
{
    if (s->token == NULL)
        return;
    if (s->logged_in)
        s->token->module->fn->C_Logout(s->h);
    s->token->module->fn->C_CloseSession(s->h);
    s->token = NULL;
}

int kb_session_login(kb_session *s, const kb_pin_opts *pin, kb_err *err)
{
    kb_token *t = s->token;
    if (kb_token_refresh(t, err) != 0)
        return -1;
    const struct kb_token_facts *f = &t->facts;
    if (!f->login_required)
        return 0;
    /* Locked or at its last try, the token waits for a person: exit 6 like a rejected PIN,
     * so that a service is not restarted over and over. */
    if ((f->pin_locked || f->pin_final_try) && !pin->force)
        kb_pin_note_refusal();
    if (f->pin_locked && !pin->force)
        return kb_err_set(err,
                          "token '%s' reports its user PIN is locked (0 tries left); not "
                          "logging in; unlock it with the SO PIN, or pass --force to try anyway",
                          f->label);
    if (f->pin_final_try && !pin->force)
        return kb_err_set(err,
                          "token '%s' reports 1 PIN try left: a wrong PIN now locks it; "
                          "not logging in; make sure of the PIN and pass --force",
                          f->label);
    if (kb_pin_was_rejected(f->label))
        return kb_err_set(err, "the PIN for token '%s' was rejected earlier; not tried again",
                          f->label);
    /* A PIN this token rejected in an earlier run (a restart, a timer) is not tried again
     * while its source is unchanged. */
    kb_pin_token tok;
    kb_pin_token_from_info(&t->info, &tok);
    if (!f->protected_auth && kb_pin_mark_check(pin, &tok, err) != 0)
        return -1;
    if (f->pin_count_low)
        kb_log(KB_LOG_WARN, "token '%s' reports a wrong PIN was entered before: fewer tries left",
               f->label);
    CK_FUNCTION_LIST *fn = t->module->fn;
    CK_RV rv;
    char source[300] = "the reader's PIN pad";
    if (f->protected_auth) {
        kb_log(KB_LOG_INFO, "enter the PIN for token '%s' on the reader's PIN pad", f->label);
        rv = fn->C_Login(s->h, CKU_USER, NULL, 0);
    } else {
        kb_secret *secret = NULL;
        if (kb_pin_get(pin, f->label, &secret, source, sizeof source, err) != 0)
            return -1;
        rv = fn->C_Login(s->h, CKU_USER, (CK_UTF8CHAR_PTR)secret->buf, secret->len);
        /* Only a PIN this very C_Login proved goes on (into a network profile). */
        if (rv == CKR_OK && pin->accepted != NULL && *pin->accepted == NULL)
            *pin->accepted = secret;
        else
            kb_secret_free(secret);
    }
    switch (rv) {
    case CKR_OK:
    case CKR_USER_ALREADY_LOGGED_IN:
        s->logged_in = rv == CKR_OK;
        if (rv == CKR_OK)
            kb_pin_mark_clear(&tok);
        return 0;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_LEN_RANGE:
        kb_pin_rejected(f->label);
        if (!f->protected_auth)
            kb_pin_mark_rejected(pin, &tok);
        kb_token_refresh(t, NULL);
        return kb_err_set(err,
                          "wrong PIN for token '%s' (from %s); not retried, since the "
                          "token counts failed tries%s",
                          f->label, source,
                          t->facts.pin_final_try ? "; 1 try left before it locks" : "");
    case CKR_PIN_LOCKED:
        kb_pin_rejected(f->label);
        return kb_err_set(err,
                          "token '%s' has locked its user PIN (0 tries left); unlock it with "
                          "the SO PIN",
                          f->label);
    case CKR_PIN_EXPIRED:
        return kb_err_set(err, "the PIN of token '%s' has expired; change it first", f->label);
    default:
        if (t->module->tpm)
            return kb_err_set(err, "login to token '%s' failed (%s): %s", f->label, kb_ckr_name(rv),
                              kb_tpm_failure_hint(t));
        return kb_err_set(err, "login to token '%s' failed: %s", f->label, kb_ckr_name(rv));
    }
}
