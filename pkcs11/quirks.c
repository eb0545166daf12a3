/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "quirks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* tpm2-pkcs11's CK_INFO manufacturerID (src/lib/general.c), blank-padded to 32. */
#define TPM2_PKCS11_MANUFACTURER "tpm2-software.github.io"

bool kb_module_is_tpm2(const char *path, const CK_INFO *info)
{
    if (path != NULL) {
        const char *b = strrchr(path, '/');
        b = b ? b + 1 : path;
        /* libtpm2_pkcs11.so, .so.1, .so.0.0.0: p11-kit's registration names the first. */
        if (strncmp(b, "libtpm2_pkcs11.so", 17) == 0)
            return true;
    }
    if (info != NULL) {
        size_t n = strlen(TPM2_PKCS11_MANUFACTURER);
        const char *m = (const char *)info->manufacturerID;
        if (memcmp(m, TPM2_PKCS11_MANUFACTURER, n) == 0 &&
            (n == sizeof info->manufacturerID || m[n] == ' ' || m[n] == '\0'))
            return true;
    }
    return false;
}

enum kb_facts_source kb_module_facts_source(const char *path, const CK_INFO *info)
{
    return kb_module_is_tpm2(path, info) ? KB_FACTS_MODULE_STORE : KB_FACTS_TOKEN;
}

const char *kb_facts_source_name(enum kb_facts_source s)
{
    return s == KB_FACTS_MODULE_STORE ? "module-store" : "token";
}

const char *kb_facts_source_note(enum kb_facts_source s)
{
    return s == KB_FACTS_MODULE_STORE
               ? "reported by the module's store; not proven - see attestation"
               : NULL;
}

bool kb_tpm_reachable(char *why, size_t len)
{
    /* The kernel makes these for a TPM it drives; without either, tpm2-tss would go on to
     * tpm2-abrmd and the simulator port, which a user would have named. Existence is
     * enough: a device the user may not open is an error worth seeing. */
    static const char *const devices[] = {"/dev/tpmrm0", "/dev/tpm0"};
    struct stat st;
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++)
        if (stat(devices[i], &st) == 0)
            return true;
    const char *tcti = getenv("TPM2_PKCS11_TCTI");
    if (tcti != NULL && *tcti != '\0')
        return true;
    if (why != NULL)
        snprintf(why, len, "no TPM (no /dev/tpmrm0 or /dev/tpm0, TPM2_PKCS11_TCTI unset)");
    return false;
}

bool kb_quiet_module_logs(int verbose)
{
    static bool set;
    if (verbose > 0 || set)
        return set;
    /* tpm2-tss logs each failed TCTI of its search as an ERROR line; tpm2-pkcs11 adds
     * warnings about its store. keybound's own line says what failed. Set before any
     * thread runs: both libraries read them at their first message. */
    if (getenv("TSS2_LOG") == NULL && setenv("TSS2_LOG", "all+none", 0) == 0)
        set = true;
    if (getenv("TPM2_PKCS11_LOG_LEVEL") == NULL && setenv("TPM2_PKCS11_LOG_LEVEL", "0", 0) == 0)
        set = true;
    return set;
}
