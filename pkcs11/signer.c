/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include "signer.h"

#include <gnutls/pkcs11.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/util/log.h"
#include "uri.h"

/* One imported key object, that is one session; GnuTLS serialises its signatures. */
struct slot {
    pthread_mutex_t lock;
    gnutls_privkey_t key; /* NULL: not imported yet, or dropped after an error */
};

struct kb_signer {
    pthread_mutex_t lock; /* guards the counters and next */
    char *uri;
    char *shown; /* uri for messages: never a pin-value */
    struct slot slots[KB_SIGNER_POOL_MAX];
    unsigned n_slots;
    unsigned next;
    unsigned imports;
    unsigned long signatures; /* made by the token, successfully */
    struct kb_sign_latency latency;
    kb_module *module; /* NULL: not told (kb_signer_set_token) */
    CK_SLOT_ID slot;
    char token[33];
    struct kb_signer *next_all;
};

/* Every signer, so that a module's recovery can take all their key objects away. */
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static kb_signer *all;
static atomic_bool paused;
static atomic_bool feedback; /* kb_signer_feedback */
static bool gnutls_ready;

/* What the last failed signature on this thread said, for the handshake's error. */
static _Thread_local kb_err last_failure;

int kb_gnutls_pkcs11_init(const kb_p11 *p, kb_err *err)
{
    /* Once: GnuTLS counts its initialisations, and recovery must undo them all. */
    if (gnutls_ready)
        return 0;
    int rc = gnutls_pkcs11_init(GNUTLS_PKCS11_FLAG_MANUAL, NULL);
    if (rc < 0)
        return kb_err_set(err, "GnuTLS PKCS#11 initialisation failed: %s", gnutls_strerror(rc));
    gnutls_ready = true;
    for (size_t i = 0; i < p->n_modules; i++) {
        if (p->modules[i].finalized)
            continue; /* recovery adds it when it is back */
        rc = gnutls_pkcs11_add_provider(p->modules[i].path, NULL);
        if (rc < 0)
            kb_log(KB_LOG_WARN, "GnuTLS cannot use PKCS#11 module %s: %s", p->modules[i].path,
                   gnutls_strerror(rc));
    }
    return 0;
}

void kb_gnutls_pkcs11_deinit(void)
{
    if (gnutls_ready)
        gnutls_pkcs11_deinit();
    gnutls_ready = false;
}

/* Whether the key may be used now; with slot locked. */
static int usable(const kb_signer *s, kb_err *err)
{
    if (atomic_load(&paused))
        return kb_err_set(err,
                          "token '%s' is being initialised again; key '%s' is not used meanwhile",
                          s->token[0] ? s->token : "?", s->shown);
    if (s->module != NULL && atomic_load(&s->module->lost))
        return kb_err_set(err,
                          "token '%s' stopped answering; key '%s' is not used until the token is "
                          "initialised again",
                          s->token, s->shown);
    return 0;
}

static int import_key(kb_signer *s, struct slot *slot, kb_err *err)
{
    if (usable(s, err) != 0)
        return -1;
    gnutls_privkey_t key = NULL;
    int rc = gnutls_privkey_init(&key);
    if (rc == 0)
        rc = gnutls_privkey_import_pkcs11_url(key, s->uri);
    if (rc < 0) {
        if (key != NULL)
            gnutls_privkey_deinit(key);
        kb_err_set(err, "key '%s' cannot be opened: %s", s->shown, gnutls_strerror(rc));
        return -1;
    }
    slot->key = key;
    pthread_mutex_lock(&s->lock);
    s->imports++;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

int kb_signer_open(const char *key_uri, kb_signer **out, kb_err *err)
{
    kb_signer *s = calloc(1, sizeof *s);
    if (s == NULL || (s->uri = strdup(key_uri)) == NULL ||
        (s->shown = kb_uri_redact(key_uri)) == NULL) {
        if (s)
            free(s->uri);
        free(s);
        return kb_err_set(err, "out of memory");
    }
    pthread_mutex_init(&s->lock, NULL);
    for (unsigned i = 0; i < KB_SIGNER_POOL_MAX; i++)
        pthread_mutex_init(&s->slots[i].lock, NULL);
    s->n_slots = 1;
    pthread_mutex_lock(&all_lock);
    s->next_all = all;
    all = s;
    pthread_mutex_unlock(&all_lock);
    if (import_key(s, &s->slots[0], err) != 0) {
        kb_signer_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void kb_signer_set_token(kb_signer *s, kb_token *t)
{
    s->module = t->module;
    s->slot = t->slot;
    snprintf(s->token, sizeof s->token, "%s", t->facts.label);
}

void kb_signers_pause(void)
{
    atomic_store(&paused, true);
    pthread_mutex_lock(&all_lock);
    for (kb_signer *s = all; s != NULL; s = s->next_all) {
        for (unsigned i = 0; i < KB_SIGNER_POOL_MAX; i++) {
            /* Waits for a signature in progress; the next one sees paused. */
            pthread_mutex_lock(&s->slots[i].lock);
            if (s->slots[i].key != NULL)
                gnutls_privkey_deinit(s->slots[i].key);
            s->slots[i].key = NULL;
            pthread_mutex_unlock(&s->slots[i].lock);
        }
    }
    pthread_mutex_unlock(&all_lock);
}

void kb_signers_resume(void)
{
    atomic_store(&paused, false);
}

const char *kb_signer_thread_failure(void)
{
    return last_failure.msg[0] ? last_failure.msg : NULL;
}

void kb_signer_free(kb_signer *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&all_lock);
    for (kb_signer **pp = &all; *pp != NULL; pp = &(*pp)->next_all)
        if (*pp == s) {
            *pp = s->next_all;
            break;
        }
    pthread_mutex_unlock(&all_lock);
    for (unsigned i = 0; i < KB_SIGNER_POOL_MAX; i++) {
        if (s->slots[i].key != NULL)
            gnutls_privkey_deinit(s->slots[i].key);
        pthread_mutex_destroy(&s->slots[i].lock);
    }
    pthread_mutex_destroy(&s->lock);
    free(s->uri);
    free(s->shown);
    free(s);
}

void kb_signer_set_pool(kb_signer *s, unsigned n)
{
    pthread_mutex_lock(&s->lock);
    if (n > KB_SIGNER_POOL_MAX)
        n = KB_SIGNER_POOL_MAX;
    /* tpm2-pkcs11 signs one thing at a time on its one connection to the TPM: more key
     * objects would only hold more sessions. */
    if (s->module != NULL && s->module->tpm)
        n = 1;
    if (n > s->n_slots)
        s->n_slots = n; /* the new objects are imported when first needed */
    pthread_mutex_unlock(&s->lock);
}

/* A free key object, locked: the next in turn if it is free, else any free one, else wait
 * for the one in turn. */
static struct slot *take_slot(kb_signer *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->n_slots, first = s->next++ % n;
    pthread_mutex_unlock(&s->lock);
    for (unsigned i = 0; i < n; i++) {
        struct slot *slot = &s->slots[(first + i) % n];
        if (pthread_mutex_trylock(&slot->lock) == 0)
            return slot;
    }
    pthread_mutex_lock(&s->slots[first].lock);
    return &s->slots[first];
}

void kb_signer_feedback(bool on)
{
    feedback = on;
}

/* A signature that a card makes slowly, or only once touched, must not look like a hang:
 * after a second a watcher thread says what the token waits for. */
struct watch {
    pthread_mutex_t lock;
    pthread_cond_t done_cv;
    bool done;
    const char *token;
};

static void *watch_run(void *arg)
{
    struct watch *w = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    pthread_mutex_lock(&w->lock);
    int rc = 0;
    while (!w->done && rc == 0)
        rc = pthread_cond_timedwait(&w->done_cv, &w->lock, &until);
    if (!w->done)
        kb_log(KB_LOG_INFO, "waiting for token '%s' (touch it or use its PIN pad)...", w->token);
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* One signature on one key object, with the drop-and-reimport contract. */
static int sign_op(kb_signer *s, bool prehashed, gnutls_sign_algorithm_t algo, unsigned flags,
                   const gnutls_datum_t *in, gnutls_datum_t *sig, kb_err *err)
{
    struct slot *slot = take_slot(s);
    int rc = -1;
    if (usable(s, err) != 0 || (slot->key == NULL && import_key(s, slot, err) != 0))
        goto out;
    struct timespec t0, t1;
    struct watch w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false,
                      s->token[0] ? s->token : s->shown};
    pthread_t watcher;
    bool watching = feedback && pthread_create(&watcher, NULL, watch_run, &w) == 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int g = prehashed ? gnutls_privkey_sign_hash2(slot->key, algo, flags, in, sig)
                      : gnutls_privkey_sign_data2(slot->key, algo, flags, in, sig);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (watching) {
        pthread_mutex_lock(&w.lock);
        w.done = true;
        pthread_cond_signal(&w.done_cv);
        pthread_mutex_unlock(&w.lock);
        pthread_join(watcher, NULL);
    }
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    /* Where nobody watches a terminal (the tunnel, a script), a line afterwards. */
    if (!watching && took >= 1.0)
        kb_log(KB_LOG_INFO, "token '%s' took %.1f s to sign with key '%s'",
               s->token[0] ? s->token : "?", took, s->shown);
    unsigned b = 0;
    while (b < KB_SIGN_BUCKETS - 1 && took > kb_sign_bucket_le[b])
        b++;
    pthread_mutex_lock(&s->lock);
    s->latency.count[b]++;
    s->latency.sum_s += took;
    pthread_mutex_unlock(&s->lock);
    if (g < 0) {
        /* Never sign again on this object: see the contract in signer.h. */
        gnutls_privkey_deinit(slot->key);
        slot->key = NULL;
        if (s->module != NULL && !kb_module_answers(s->module, s->slot)) {
            kb_module_mark_lost(s->module, s->token);
            kb_err_set(err,
                       "token '%s' stopped answering while signing with key '%s' (%s); "
                       "nothing is signed on it until it is initialised again",
                       s->token, s->shown, gnutls_strerror(g));
        } else if (s->module != NULL && s->module->tpm) {
            kb_err_set(err,
                       "the TPM failed to sign with key '%s' (%s) though it answers otherwise: "
                       "it may have no free object slots, if another program uses it without "
                       "a resource manager; the key will be reopened on next use",
                       s->shown, gnutls_strerror(g));
        } else {
            kb_err_set(err,
                       "the token failed to sign with key '%s': %s; the key will be reopened "
                       "on next use",
                       s->shown, gnutls_strerror(g));
        }
        goto out;
    }
    pthread_mutex_lock(&s->lock);
    s->signatures++;
    pthread_mutex_unlock(&s->lock);
    rc = 0;
out:
    pthread_mutex_unlock(&slot->lock);
    return rc;
}

int kb_signer_sign(kb_signer *s, const gnutls_datum_t *data, gnutls_datum_t *sig,
                   gnutls_sign_algorithm_t *algo, kb_err *err)
{
    int pk;
    unsigned bits;
    if (kb_signer_info(s, &pk, &bits, err) != 0)
        return -1;
    *algo = pk == GNUTLS_PK_RSA ? GNUTLS_SIGN_RSA_SHA256
            : pk == GNUTLS_PK_ECDSA
                ? (bits > 256 ? GNUTLS_SIGN_ECDSA_SHA384 : GNUTLS_SIGN_ECDSA_SHA256)
            : pk == GNUTLS_PK_EDDSA_ED25519 ? GNUTLS_SIGN_EDDSA_ED25519
            : pk == GNUTLS_PK_EDDSA_ED448   ? GNUTLS_SIGN_EDDSA_ED448
                                            : GNUTLS_SIGN_UNKNOWN;
    if (*algo == GNUTLS_SIGN_UNKNOWN)
        return kb_err_set(err, "key '%s' has an algorithm keybound cannot sign with", s->shown);
    return sign_op(s, false, *algo, 0, data, sig, err);
}

int kb_signer_sign_data2(kb_signer *s, gnutls_sign_algorithm_t algo, unsigned flags,
                         const gnutls_datum_t *data, gnutls_datum_t *sig, kb_err *err)
{
    return sign_op(s, false, algo, flags, data, sig, err);
}

int kb_signer_sign_hash2(kb_signer *s, gnutls_sign_algorithm_t algo, unsigned flags,
                         const gnutls_datum_t *hash, gnutls_datum_t *sig, kb_err *err)
{
    return sign_op(s, true, algo, flags, hash, sig, err);
}

int kb_signer_info(kb_signer *s, int *pk, unsigned *bits, kb_err *err)
{
    struct slot *slot = &s->slots[0];
    pthread_mutex_lock(&slot->lock);
    int rc = -1;
    if (slot->key != NULL || import_key(s, slot, err) == 0) {
        *bits = 0;
        *pk = gnutls_privkey_get_pk_algorithm(slot->key, bits);
        rc = 0;
    }
    pthread_mutex_unlock(&slot->lock);
    return rc;
}

/* From a fast HSM (a millisecond) to a card behind a PIN pad (seconds). */
const double kb_sign_bucket_le[KB_SIGN_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                       0.1,   0.25,   0.5,   1,    2.5};

void kb_signer_latency(kb_signer *s, struct kb_sign_latency *sum)
{
    pthread_mutex_lock(&s->lock);
    for (unsigned i = 0; i < KB_SIGN_BUCKETS; i++)
        sum->count[i] += s->latency.count[i];
    sum->sum_s += s->latency.sum_s;
    pthread_mutex_unlock(&s->lock);
}

unsigned long kb_signer_signatures(kb_signer *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned long n = s->signatures;
    pthread_mutex_unlock(&s->lock);
    return n;
}

int kb_signer_pubkey(kb_signer *s, gnutls_pubkey_t *out, kb_err *err)
{
    struct slot *slot = &s->slots[0];
    pthread_mutex_lock(&slot->lock);
    int rc = -1;
    if (slot->key == NULL && import_key(s, slot, err) != 0)
        goto out;
    gnutls_pubkey_t pub;
    if (gnutls_pubkey_init(&pub) < 0) {
        kb_err_set(err, "out of memory");
        goto out;
    }
    int g = gnutls_pubkey_import_privkey(pub, slot->key, 0, 0);
    if (g < 0) {
        gnutls_pubkey_deinit(pub);
        kb_err_set(err, "cannot read the public key of '%s': %s", s->shown, gnutls_strerror(g));
        goto out;
    }
    *out = pub;
    rc = 0;
out:
    pthread_mutex_unlock(&slot->lock);
    return rc;
}

unsigned kb_signer_imports(kb_signer *s)
{
    pthread_mutex_lock(&s->lock);
    unsigned n = s->imports;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* What the external GnuTLS key needs to answer GnuTLS's questions without the token. */
struct ext_key {
    kb_signer *signer;
    int pk;
    unsigned bits;
    bool no_pss;
};

static int ext_sign_data(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata,
                         unsigned flags, const gnutls_datum_t *data, gnutls_datum_t *sig)
{
    (void)key;
    struct ext_key *k = userdata;
    kb_err err;
    if (kb_signer_sign_data2(k->signer, algo, flags, data, sig, &err) != 0) {
        kb_log(KB_LOG_ERROR, "%s", err.msg);
        last_failure = err;
        return GNUTLS_E_PK_SIGN_FAILED;
    }
    return 0;
}

static int ext_sign_hash(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *userdata,
                         unsigned flags, const gnutls_datum_t *hash, gnutls_datum_t *sig)
{
    (void)key;
    struct ext_key *k = userdata;
    kb_err err;
    if (kb_signer_sign_hash2(k->signer, algo, flags, hash, sig, &err) != 0) {
        kb_log(KB_LOG_ERROR, "%s", err.msg);
        last_failure = err;
        return GNUTLS_E_PK_SIGN_FAILED;
    }
    return 0;
}

static int ext_info(gnutls_privkey_t key, unsigned flags, void *userdata)
{
    (void)key;
    const struct ext_key *k = userdata;
    if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO)
        return k->pk;
    if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO_BITS)
        return (int)k->bits;
    if (flags & GNUTLS_PRIVKEY_INFO_SIGN_ALGO) {
        if (k->pk == GNUTLS_PK_EDDSA_ED25519)
            return GNUTLS_SIGN_EDDSA_ED25519;
        if (k->pk == GNUTLS_PK_EDDSA_ED448)
            return GNUTLS_SIGN_EDDSA_ED448;
        return 0;
    }
    if (flags & GNUTLS_PRIVKEY_INFO_HAVE_SIGN_ALGO) {
        gnutls_sign_algorithm_t algo = GNUTLS_FLAGS_TO_SIGN_ALGO(flags);
        if (!gnutls_sign_supports_pk_algorithm(algo, (gnutls_pk_algorithm_t)k->pk))
            return 0;
        /* The token must have the PSS mechanism for an RSA-PSS signature. */
        return !(k->no_pss && gnutls_sign_get_pk_algorithm(algo) == GNUTLS_PK_RSA_PSS);
    }
    return GNUTLS_E_UNKNOWN_PK_ALGORITHM;
}

static void ext_deinit(gnutls_privkey_t key, void *userdata)
{
    (void)key;
    free(userdata);
}

int kb_signer_privkey(kb_signer *s, bool no_pss, gnutls_privkey_t *out, kb_err *err)
{
    struct ext_key *k = calloc(1, sizeof *k);
    if (k == NULL)
        return kb_err_set(err, "out of memory");
    k->signer = s;
    k->no_pss = no_pss;
    if (kb_signer_info(s, &k->pk, &k->bits, err) != 0) {
        free(k);
        return -1;
    }
    gnutls_privkey_t key;
    int rc = gnutls_privkey_init(&key);
    if (rc < 0) {
        free(k);
        return kb_err_set(err, "%s", gnutls_strerror(rc));
    }
    rc = gnutls_privkey_import_ext4(key, k, ext_sign_data, ext_sign_hash, NULL, ext_deinit,
                                    ext_info, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
    if (rc < 0) {
        gnutls_privkey_deinit(key);
        free(k);
        return kb_err_set(err, "cannot set up a GnuTLS key for '%s': %s", s->shown,
                          gnutls_strerror(rc));
    }
    *out = key;
    return 0;
}
