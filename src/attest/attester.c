/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attester.h"
#include "policy/facts.h"
#include "src/attest/attest.h"
#include "src/attest/verify.h"

/* One key's last result. A key is its URI and its public key's hash: a key replaced under
 * the same URI (renew --rekey) is a new key. */
struct entry {
    char *uri;
    unsigned char spki[32];
    bool has_spki;
    long long at; /* when it was proved (the caller's clock) */
    struct kb_attest_facts facts;
};

struct kb_attester {
    kb_p11 *p;
    const struct kb_pin_opts *pin;
    struct kb_attest_anchors anchors;
    bool anchors_loaded;
    unsigned char anchors_sha256[32]; /* of the tpm-ca paths and bytes the results rest on */
    long long reuse;
    struct entry *v;
    size_t n;
};

/* SHA-256 over each tpm-ca path and its bytes: whether the anchors changed under a reload.
 * A file that cannot be read hashes as its path alone; loading it fails anyway. */
static void anchors_digest(const kb_policy *pol, unsigned char out[32])
{
    gnutls_hash_hd_t h;
    memset(out, 0, 32);
    if (gnutls_hash_init(&h, GNUTLS_DIG_SHA256) < 0)
        return;
    for (size_t i = 0; i < pol->n_tpm_ca; i++) {
        gnutls_hash(h, pol->tpm_ca[i], strlen(pol->tpm_ca[i]) + 1);
        FILE *f = fopen(pol->tpm_ca[i], "rb");
        unsigned char buf[4096];
        size_t n;
        while (f != NULL && (n = fread(buf, 1, sizeof buf, f)) > 0)
            gnutls_hash(h, buf, n);
        if (f != NULL)
            fclose(f);
    }
    gnutls_hash_deinit(h, out);
}

static void drop_results(kb_attester *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i].uri);
    free(a->v);
    a->v = NULL;
    a->n = 0;
}

void kb_attester_sync(kb_attester *a, const kb_policy *pol, long long reuse)
{
    a->reuse = reuse > 0 ? reuse : 0;
    unsigned char d[32];
    anchors_digest(pol, d);
    if (memcmp(d, a->anchors_sha256, 32) != 0)
        drop_results(a);
    memcpy(a->anchors_sha256, d, 32);
    if (a->anchors_loaded)
        kb_attest_anchors_free(&a->anchors);
    memset(&a->anchors, 0, sizeof a->anchors);
    kb_attest_anchors_load((const char *const *)pol->tpm_ca, pol->n_tpm_ca, &a->anchors);
    a->anchors_loaded = true;
}

kb_attester *kb_attester_new(const kb_policy *pol, kb_p11 *p, const struct kb_pin_opts *pin,
                             long long reuse)
{
    kb_attester *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->p = p;
    a->pin = pin;
    /* A file that cannot be loaded is kept in anchors.error: every key is then denied with
     * it, which is what the policy's author needs to read. */
    kb_attester_sync(a, pol, reuse);
    return a;
}

void kb_attester_free(kb_attester *a)
{
    if (a == NULL)
        return;
    if (a->anchors_loaded)
        kb_attest_anchors_free(&a->anchors);
    drop_results(a);
    free(a);
}

static struct entry *find(kb_attester *a, const kb_key *key)
{
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->v[i].uri, key->uri) == 0 && a->v[i].has_spki == key->has_spki &&
            (!key->has_spki || memcmp(a->v[i].spki, key->spki_sha256, 32) == 0))
            return &a->v[i];
    return NULL;
}

void kb_attester_run(void *ctx, const kb_key *key, long long now, struct kb_attest_facts *f)
{
    kb_attester *a = ctx;
    struct entry *e = find(a, key);
    /* Reuse is bounded by the caller's interval, and a clock that went back voids it. */
    if (e != NULL && a->reuse > 0 && now >= e->at && now - e->at < a->reuse) {
        *f = e->facts;
        return;
    }
    memset(f, 0, sizeof *f);
    kb_err err = {0};
    if (kb_attest_prove(a->p, key, a->pin, &a->anchors, now, f, &err) != 0 && !f->attested &&
        f->reason[0] == '\0')
        snprintf(f->reason, sizeof f->reason, "%.*s", (int)sizeof f->reason - 1,
                 err.msg[0] ? err.msg : "attestation failed");
    f->checked = true;
    if (a->reuse == 0)
        return;
    if (e == NULL) {
        struct entry *nv = realloc(a->v, (a->n + 1) * sizeof *nv);
        char *uri = strdup(key->uri);
        if (nv == NULL || uri == NULL) {
            free(uri);
            if (nv != NULL)
                a->v = nv;
            return; /* not kept: the next evaluation attests again */
        }
        a->v = nv;
        e = &a->v[a->n++];
        *e = (struct entry){.uri = uri, .has_spki = key->has_spki};
        if (key->has_spki)
            memcpy(e->spki, key->spki_sha256, 32);
    }
    e->at = now;
    e->facts = *f;
}

int kb_attester_attach(kb_trust *t, const kb_policy *pol, kb_p11 *p, const struct kb_pin_opts *pin,
                       long long reuse, kb_attester **out, kb_err *err)
{
    *out = NULL;
    if (!pol->require_attestation)
        return 0;
    if ((*out = kb_attester_new(pol, p, pin, reuse)) == NULL)
        return kb_err_set(err, "out of memory");
    kb_trust_set_attester(t, kb_attester_run, *out);
    return 0;
}
