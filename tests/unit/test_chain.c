/* SPDX-License-Identifier: Apache-2.0 */
/* src/tls/chain: the issuer path of a certificate, from candidates in any order. The
 * certificates are made here with GnuTLS (ECDSA P-256), no files. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "src/tls/chain.h"

struct ca {
    gnutls_x509_crt_t crt;
    gnutls_x509_privkey_t key;
};

static unsigned serial;

/* A certificate for cn, issued by issuer (NULL: self-signed), valid [from, to] relative to
 * now in days. key_ids: write subject and authority key identifiers. */
static struct ca make_keyed(const char *cn, const struct ca *issuer, bool ca, bool key_ids,
                            int from, int to, gnutls_x509_privkey_t key)
{
    struct ca c;
    assert_int_equal(gnutls_x509_privkey_init(&c.key), 0);
    if (key != NULL)
        assert_int_equal(gnutls_x509_privkey_cpy(c.key, key), 0);
    else
        assert_int_equal(
            gnutls_x509_privkey_generate(c.key, GNUTLS_PK_ECDSA,
                                         GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0),
            0);
    assert_int_equal(gnutls_x509_crt_init(&c.crt), 0);
    gnutls_x509_crt_set_version(c.crt, 3);
    unsigned char sn[4] = {0x01, 0, 0, (unsigned char)++serial};
    sn[2] = (unsigned char)(serial >> 8);
    gnutls_x509_crt_set_serial(c.crt, sn, sizeof sn);
    char dn[128];
    snprintf(dn, sizeof dn, "CN=%s", cn);
    assert_int_equal(gnutls_x509_crt_set_dn(c.crt, dn, NULL), 0);
    time_t now = time(NULL);
    gnutls_x509_crt_set_activation_time(c.crt, now + (time_t)from * 86400);
    gnutls_x509_crt_set_expiration_time(c.crt, now + (time_t)to * 86400);
    assert_int_equal(gnutls_x509_crt_set_key(c.crt, c.key), 0);
    gnutls_x509_crt_set_basic_constraints(c.crt, ca, -1);
    gnutls_x509_crt_set_key_usage(c.crt, ca ? GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN
                                            : GNUTLS_KEY_DIGITAL_SIGNATURE);
    if (key_ids) {
        unsigned char id[64];
        size_t size = sizeof id;
        assert_int_equal(gnutls_x509_crt_get_key_id(c.crt, 0, id, &size), 0);
        gnutls_x509_crt_set_subject_key_id(c.crt, id, size);
        const struct ca *by = issuer ? issuer : &c;
        size = sizeof id;
        unsigned critical;
        if (gnutls_x509_crt_get_subject_key_id(by->crt, id, &size, &critical) == 0)
            gnutls_x509_crt_set_authority_key_id(c.crt, id, size);
    }
    const struct ca *by = issuer ? issuer : &c;
    assert_int_equal(gnutls_x509_crt_sign2(c.crt, by->crt, by->key, GNUTLS_DIG_SHA256, 0), 0);
    return c;
}

static struct ca make(const char *cn, const struct ca *issuer, bool ca, bool key_ids, int from,
                      int to)
{
    return make_keyed(cn, issuer, ca, key_ids, from, to, NULL);
}

static void drop(struct ca *c)
{
    gnutls_x509_crt_deinit(c->crt);
    gnutls_x509_privkey_deinit(c->key);
}

/* root -> i1 -> i2 -> leaf, and some that are not on the path. */
struct pki {
    struct ca root, i1, i2, leaf, other, fake_i2, other_root;
};

static void make_pki(struct pki *p, bool key_ids)
{
    p->root = make("root", NULL, true, key_ids, -1, 30);
    p->i1 = make("inter 1", &p->root, true, key_ids, -1, 30);
    p->i2 = make("inter 2", &p->i1, true, key_ids, -1, 30);
    p->leaf = make("laptop-1", &p->i2, false, key_ids, -1, 30);
    p->other = make("other inter", &p->root, true, key_ids, -1, 30);
    p->fake_i2 = make("inter 2", &p->i1, true, key_ids, -1, 30); /* same name, other key */
    p->other_root = make("other root", NULL, true, key_ids, -1, 30);
}

static void drop_pki(struct pki *p)
{
    drop(&p->root);
    drop(&p->i1);
    drop(&p->i2);
    drop(&p->leaf);
    drop(&p->other);
    drop(&p->fake_i2);
    drop(&p->other_root);
}

static void shuffled_with_strangers(void **state)
{
    (void)state;
    struct pki p;
    make_pki(&p, true);
    gnutls_x509_crt_t c[] = {p.other.crt, p.root.crt, p.i1.crt,   p.fake_i2.crt,
                             p.i2.crt,    p.i1.crt,   p.leaf.crt, p.other_root.crt};
    unsigned path[KB_CHAIN_MAX], len = 99;
    kb_err err;
    assert_int_equal(kb_chain_build(p.leaf.crt, c, 8, KB_CHAIN_MAX, time(NULL), path, &len, &err),
                     0);
    assert_int_equal(len, 2);
    assert_int_equal(path[0], 4); /* inter 2, not its same-name impostor */
    assert_true(path[1] == 2 || path[1] == 5);
    drop_pki(&p);
}

static void without_key_ids_the_signature_decides(void **state)
{
    (void)state;
    struct pki p;
    make_pki(&p, false);
    gnutls_x509_crt_t c[] = {p.fake_i2.crt, p.i1.crt, p.i2.crt};
    unsigned path[KB_CHAIN_MAX], len;
    kb_err err;
    assert_int_equal(kb_chain_build(p.leaf.crt, c, 3, KB_CHAIN_MAX, time(NULL), path, &len, &err),
                     0);
    assert_int_equal(len, 2);
    assert_int_equal(path[0], 2);
    assert_int_equal(path[1], 1);
    assert_false(kb_chain_issues(p.fake_i2.crt, p.leaf.crt));
    assert_true(kb_chain_issues(p.i2.crt, p.leaf.crt));
    drop_pki(&p);
}

static void partial_and_empty(void **state)
{
    (void)state;
    struct pki p;
    make_pki(&p, true);
    unsigned path[KB_CHAIN_MAX], len = 99;
    kb_err err;
    /* Only inter 2 given: the path stops there (its issuer is the peer's business). */
    gnutls_x509_crt_t c1[] = {p.other.crt, p.i2.crt};
    assert_int_equal(kb_chain_build(p.leaf.crt, c1, 2, KB_CHAIN_MAX, time(NULL), path, &len, &err),
                     0);
    assert_int_equal(len, 1);
    assert_int_equal(path[0], 1);
    /* Nothing that issues it. */
    gnutls_x509_crt_t c2[] = {p.other.crt, p.root.crt};
    assert_int_equal(kb_chain_build(p.leaf.crt, c2, 2, KB_CHAIN_MAX, time(NULL), path, &len, &err),
                     0);
    assert_int_equal(len, 0);
    assert_int_equal(
        kb_chain_build(p.leaf.crt, NULL, 0, KB_CHAIN_MAX, time(NULL), path, &len, &err), 0);
    assert_int_equal(len, 0);
    /* Issued by the root directly: the root is the anchor, not part of the path. */
    gnutls_x509_crt_t c3[] = {p.root.crt, p.i1.crt};
    assert_int_equal(kb_chain_build(p.i1.crt, c3, 2, KB_CHAIN_MAX, time(NULL), path, &len, &err),
                     0);
    assert_int_equal(len, 0);
    /* A self-signed leaf has no path. */
    assert_int_equal(kb_chain_build(p.root.crt, c3, 2, KB_CHAIN_MAX, time(NULL), path, &len, &err),
                     0);
    assert_int_equal(len, 0);
    drop_pki(&p);
}

static void not_a_ca_does_not_issue(void **state)
{
    (void)state;
    struct ca root = make("root", NULL, true, true, -1, 30);
    struct ca notca = make("inter", &root, false, true, -1, 30);
    struct ca leaf = make("leaf", &notca, false, true, -1, 30);
    gnutls_x509_crt_t c[] = {notca.crt, root.crt};
    unsigned path[KB_CHAIN_MAX], len = 99;
    kb_err err;
    assert_int_equal(kb_chain_build(leaf.crt, c, 2, KB_CHAIN_MAX, time(NULL), path, &len, &err), 0);
    assert_int_equal(len, 0);
    drop(&root);
    drop(&notca);
    drop(&leaf);
}

static void cap(void **state)
{
    (void)state;
    struct ca chain[11];
    chain[0] = make("root", NULL, true, true, -1, 30);
    for (int i = 1; i <= 9; i++) {
        char cn[32];
        snprintf(cn, sizeof cn, "inter %d", i);
        chain[i] = make(cn, &chain[i - 1], true, true, -1, 30);
    }
    struct ca leaf9 = make("leaf", &chain[9], false, true, -1, 30);
    struct ca leaf8 = make("leaf", &chain[8], false, true, -1, 30);
    gnutls_x509_crt_t c[10];
    for (int i = 0; i < 10; i++)
        c[i] = chain[9 - i].crt; /* top-down order, the root last */
    unsigned path[KB_CHAIN_MAX], len = 99;
    kb_err err;
    assert_int_equal(kb_chain_build(leaf9.crt, c, 10, KB_CHAIN_MAX, time(NULL), path, &len, &err),
                     -1);
    assert_non_null(strstr(err.msg, "longer than 8"));
    assert_non_null(strstr(err.msg, "CN=leaf"));
    assert_int_equal(kb_chain_build(leaf8.crt, c, 10, KB_CHAIN_MAX, time(NULL), path, &len, &err),
                     0);
    assert_int_equal(len, 8);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(path[i], i + 1); /* inter 8 .. inter 1 */
    /* A smaller cap. */
    assert_int_equal(kb_chain_build(leaf8.crt, c, 10, 3, time(NULL), path, &len, &err), -1);
    for (int i = 0; i < 10; i++)
        drop(&chain[i]);
    drop(&leaf9);
    drop(&leaf8);
}

static void prefers_valid_then_newest(void **state)
{
    (void)state;
    struct ca root = make("root", NULL, true, true, -1, 30);
    struct ca inter = make("inter", &root, true, true, -1, 30);
    struct ca leaf = make("leaf", &inter, false, true, -1, 30);
    /* inter's key, certified again: an expired one and a newer one. */
    struct ca old = make_keyed("inter", &root, true, true, -40, -1, inter.key);
    struct ca fresh = make_keyed("inter", &root, true, true, 0, 30, inter.key);
    gnutls_x509_crt_t expired = old.crt, newer = fresh.crt;
    time_t now = time(NULL);
    gnutls_x509_crt_t c[] = {expired, inter.crt, newer, root.crt};
    unsigned path[KB_CHAIN_MAX], len;
    kb_err err;
    assert_int_equal(kb_chain_build(leaf.crt, c, 4, KB_CHAIN_MAX, now, path, &len, &err), 0);
    assert_int_equal(len, 1);
    assert_int_equal(path[0], 2);
    gnutls_x509_crt_t d[] = {expired, root.crt};
    assert_int_equal(kb_chain_build(leaf.crt, d, 2, KB_CHAIN_MAX, now, path, &len, &err), 0);
    assert_int_equal(len, 1); /* an expired issuer still beats none: the peer judges time */
    drop(&old);
    drop(&fresh);
    drop(&root);
    drop(&inter);
    drop(&leaf);
}

static void cross_certified_loop_ends(void **state)
{
    (void)state;
    /* A and B certify each other; the leaf is under A. */
    struct ca root_a = make("A", NULL, true, true, -1, 30);
    struct ca root_b = make("B", NULL, true, true, -1, 30);
    struct ca a_by_b = make("A", &root_b, true, false, -1, 30);
    struct ca b_by_a = make("B", &root_a, true, false, -1, 30);
    /* a_by_b has a fresh key: re-sign it with A's key material instead. */
    gnutls_x509_crt_set_key(a_by_b.crt, root_a.key);
    assert_int_equal(
        gnutls_x509_crt_sign2(a_by_b.crt, root_b.crt, root_b.key, GNUTLS_DIG_SHA256, 0), 0);
    gnutls_x509_crt_set_key(b_by_a.crt, root_b.key);
    assert_int_equal(
        gnutls_x509_crt_sign2(b_by_a.crt, root_a.crt, root_a.key, GNUTLS_DIG_SHA256, 0), 0);
    struct ca leaf = make("leaf", &root_a, false, false, -1, 30);
    gnutls_x509_crt_t c[] = {a_by_b.crt, b_by_a.crt};
    unsigned path[KB_CHAIN_MAX], len;
    kb_err err;
    assert_int_equal(kb_chain_build(leaf.crt, c, 2, KB_CHAIN_MAX, time(NULL), path, &len, &err), 0);
    assert_true(len <= 2);
    drop(&root_a);
    drop(&root_b);
    drop(&a_by_b);
    drop(&b_by_a);
    drop(&leaf);
}

int main(void)
{
    gnutls_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shuffled_with_strangers),
        cmocka_unit_test(without_key_ids_the_signature_decides),
        cmocka_unit_test(partial_and_empty),
        cmocka_unit_test(not_a_ca_does_not_issue),
        cmocka_unit_test(cap),
        cmocka_unit_test(prefers_valid_then_newest),
        cmocka_unit_test(cross_certified_loop_ends),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    gnutls_global_deinit();
    return rc;
}
