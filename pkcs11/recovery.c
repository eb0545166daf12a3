#include "config.h"

#include "recovery.h"

#include "pin.h"
#include "signer.h"
#include "src/util/log.h"

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

int kb_p11_recover(kb_p11 *p, const kb_pin_opts *pin, kb_err *err)
{
    if (!kb_p11_any_lost(p))
        return 0;
    /* No GnuTLS PKCS#11 object may outlive its module's finalisation. */
    kb_signers_pause();
    kb_gnutls_pkcs11_deinit();
    int rc = 0;
    for (size_t i = 0; i < p->n_modules; i++) {
        kb_module *m = &p->modules[i];
        if (!atomic_load(&m->lost))
            continue;
        if (!m->finalized) {
            p11_kit_module_finalize(m->fn);
            m->finalized = true;
        }
        CK_RV rv = p11_kit_module_initialize(m->fn);
        if (rv != CKR_OK) {
            rc = kb_err_set(err, "module %s cannot be initialised again yet: %s", m->name,
                            kb_ckr_name(rv));
            continue;
        }
        m->finalized = false;
        atomic_store(&m->lost, false);
        kb_log(KB_LOG_INFO, "module %s is initialised again", m->name);
    }
    kb_err e;
    if (kb_gnutls_pkcs11_init(p, &e) != 0)
        rc = kb_err_set(err, "%s", e.msg);
    kb_pin_install_gnutls(pin);
    kb_signers_resume();
    return rc;
}
