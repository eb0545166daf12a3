/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "tpmblobs.h"

#include <stdlib.h>
#include <string.h>

#include "quirks.h"

int kb_tpm_token_check(const kb_token *t, kb_err *err)
{
    /* The module's own word (CK_INFO), read at load: a copy of tpm2-pkcs11 under another
     * file name is still one, and another vendor's module answering 0x8f000001 is not. */
    if (t->module->tpm && kb_module_is_tpm2(NULL, &t->module->info))
        return 0;
    return kb_err_set(err, "token '%s' (%s) cannot attest: not a tpm2-pkcs11 token", t->facts.label,
                      t->facts.manufacturer);
}

static int get(kb_session *s, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type, const char *what,
               unsigned char **v, size_t *len, kb_err *err)
{
    CK_ULONG n = 0;
    CK_RV rv = kb_attr_get(s, obj, type, v, &n);
    if (rv != CKR_OK || n == 0) {
        free(*v);
        *v = NULL;
        return kb_err_set(err, "token '%s' gives no %s for the key (%s)", s->token->facts.label,
                          what, rv != CKR_OK ? kb_ckr_name(rv) : "empty");
    }
    *len = n;
    return 0;
}

int kb_tpm_blobs_read(kb_session *s, CK_OBJECT_HANDLE obj, struct kb_tpm_blobs *out, kb_err *err)
{
    memset(out, 0, sizeof *out);
    unsigned char *enc = NULL;
    size_t enc_len = 0;
    if (get(s, obj, KB_CKA_TPM2_PUB_BLOB, "TPM public blob (CKA_TPM2_PUB_BLOB)", &out->pub,
            &out->pub_len, err) != 0 ||
        get(s, obj, KB_CKA_TPM2_PRIV_BLOB, "TPM private blob (CKA_TPM2_PRIV_BLOB)", &out->priv,
            &out->priv_len, err) != 0 ||
        get(s, obj, KB_CKA_TPM2_OBJAUTH_ENC, "encrypted TPM auth (CKA_TPM2_OBJAUTH_ENC)", &enc,
            &enc_len, err) != 0) {
        kb_tpm_blobs_free(out);
        return -1;
    }
    /* Text for the store's parser: a NUL inside would end it early, so refuse it here. */
    if (memchr(enc, '\0', enc_len) != NULL || (out->objauth_enc = malloc(enc_len + 1)) == NULL) {
        free(enc);
        kb_tpm_blobs_free(out);
        return kb_err_set(err, "token '%s': the key's CKA_TPM2_OBJAUTH_ENC is not text",
                          s->token->facts.label);
    }
    memcpy(out->objauth_enc, enc, enc_len);
    out->objauth_enc[enc_len] = '\0';
    free(enc);
    return 0;
}

void kb_tpm_blobs_free(struct kb_tpm_blobs *b)
{
    free(b->pub);
    free(b->priv);
    free(b->objauth_enc);
    memset(b, 0, sizeof *b);
}

int kb_tpm_key_find(kb_session *s, const kb_key *k, CK_OBJECT_HANDLE *out, kb_err *err)
{
    CK_OBJECT_HANDLE *h = NULL;
    size_t n = 0, hit = 0;
    if (kb_find(s, CKO_PRIVATE_KEY, CKA_ID, k->facts.id, k->facts.id_len, &h, &n, err) != 0)
        return -1;
    /* Several keys may share an id (keybound never makes them, others do): the label
     * tells them apart, and two that still look alike are not guessed between. */
    for (size_t i = 0; i < n; i++) {
        unsigned char *label = NULL;
        CK_ULONG len = 0;
        if (kb_attr_get(s, h[i], CKA_LABEL, &label, &len) == CKR_OK &&
            len == strlen(k->facts.label) && memcmp(label, k->facts.label, len) == 0) {
            *out = h[i];
            hit++;
        }
        free(label);
    }
    free(h);
    if (hit == 1)
        return 0;
    return kb_err_set(err, "token '%s': %s private key with the id and label of '%s'",
                      s->token->facts.label, hit == 0 ? "no" : "more than one", k->facts.label);
}
