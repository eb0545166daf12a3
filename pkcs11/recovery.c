/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "recovery.h"

#include "pin.h"
#include "signer.h"
#include "src/util/log.h"

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
