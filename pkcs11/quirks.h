/* SPDX-License-Identifier: Apache-2.0 */
/* What keybound knows about particular PKCS#11 modules, in one place.
 *
 * One module is treated apart today: tpm2-pkcs11 (libtpm2_pkcs11.so, CK_INFO manufacturer
 * "tpm2-software.github.io").
 * - Its C_Initialize creates ~/.tpm2_pkcs11/ and, when no TPM answers, writes the TPM
 *   stack's errors to stderr (its default TCTI search ends on TCP port 2321). Installed,
 *   it registers itself with p11-kit, so every program that loads the registered modules
 *   pays that on a machine without a TPM: keybound leaves it out there.
 * - The key facts it reports (CKA_NEVER_EXTRACTABLE, CKA_LOCAL, ...) are rows in its own
 *   store (sqlite), not the TPM's word: whoever can write the store can change them. Only
 *   the TPM's attestation proves them. */
#ifndef KB_QUIRKS_H
#define KB_QUIRKS_H

#include <p11-kit/pkcs11.h>
#include <stdbool.h>
#include <stddef.h>

/* How many keys one program may use on a TPM token at once: tpm2-pkcs11 keeps each key
 * it used loaded until logout, the TPM holds three objects (per connection through a
 * resource manager), and loading a key under its persistent parent takes a free slot for
 * the parent while it lasts. Seen on swtpm: the third key fails to load. */
#define KB_TPM_KEYS_MAX 2

/* Whether a module is tpm2-pkcs11: by its file name, which is all there is before
 * C_Initialize, or by its CK_INFO when info is not NULL (a copy under another name). */
bool kb_module_is_tpm2(const char *path, const CK_INFO *info);

/* Where a module's key facts come from. */
enum kb_facts_source {
    KB_FACTS_TOKEN,        /* the token's own word (a card, an HSM, SoftHSM itself) */
    KB_FACTS_MODULE_STORE, /* metadata the module keeps beside the keys: not proven */
};

enum kb_facts_source kb_module_facts_source(const char *path, const CK_INFO *info);

/* "token" or "module-store", as in the JSON output. */
const char *kb_facts_source_name(enum kb_facts_source s);

/* What to tell people beside facts from s, or NULL when there is nothing to add. */
const char *kb_facts_source_note(enum kb_facts_source s);

/* Whether tpm2-pkcs11 has a TPM to talk to: the machine has one (/dev/tpmrm0 or
 * /dev/tpm0), or the user pointed the module at one (TPM2_PKCS11_TCTI). When not, why
 * gets the reason, for the -v line. */
bool kb_tpm_reachable(char *why, size_t len);

/* Unless verbose, quiets the TPM stack's own logging on stderr where the user has not
 * set it: TSS2_LOG (tpm2-tss) and TPM2_PKCS11_LOG_LEVEL (errors only), in keybound's own
 * environment, before any module is loaded. Returns whether it set either. */
bool kb_quiet_module_logs(int verbose);

#endif
