/* SPDX-License-Identifier: Apache-2.0 */
/* The per-key state file (src/enroll/keystate.h): what is written reads back the same; a
 * file that is not keybound's is one error naming it and saying what to do, never a guess;
 * files are 0600 and named by what cannot become a path. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/gnutls.h>

#include "src/enroll/keystate.h"

/* A P-256 PKCS#10 request for CN=second, as enroll sends it. */
static const char CSR[] =
    "MIIBBTCBrAIBADARMQ8wDQYDVQQDEwZzZWNvbmQwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARNI59CON5m0u/"
    "Qk1iEnmhONNCT1a/sqW3BZE97q1Ef4qnHvsZchb4O1eAv3LqRo1MXy9iGlZyvnEWJEMDrS2KpoDkwNwYJKoZIhvcN"
    "AQkOMSowKDAOBgNVHQ8BAf8EBAMCB4AwFgYDVR0lAQH/BAwwCgYIKwYBBQUHAwIwCgYIKoZIzj0EAwIDSAAwRQIhAJ5w"
    "W5MUfShBvVrdI1Nzr51URCgV5g/8Y32CnAw+0vSjAiBFYzMEX+pMMILukkkeTY6aDPVx/AUBemFfcazXdfspDQ==";

static const unsigned char ID[] = {0x63, 0x7f, 0xb9, 0x22};

static void fill(kb_keystate *s)
{
    memset(s, 0, sizeof *s);
    strcpy(s->token_serial, "8cf8c40999018819");
    strcpy(s->token_label, "dev");
    strcpy(s->key_id, "637fb922");
    strcpy(s->label, "second");
    strcpy(s->key_uri, "pkcs11:token=dev;id=%63%7F%B9%22;object=second;type=private");
    strcpy(s->last_op, "enroll");
    strcpy(s->last_result, "wait");
    s->last_time = 1796177797;
    strcpy(s->last_message, "the EST server has not issued the certificate \"yet\"");
    struct kb_pending *p = &s->pending;
    gnutls_datum_t in = {(unsigned char *)CSR, sizeof CSR - 1}, der;
    assert_int_equal(gnutls_base64_decode2(&in, &der), 0);
    assert_int_equal(kb_pending_set_csr(p, der.data, der.size), 0);
    gnutls_free(der.data);
    p->active = true;
    strcpy(p->key_id, "637fb922");
    strcpy(p->label, "second");
    strcpy(p->url, "https://localhost:4443/.well-known/est");
    p->submitted = 1796177797;
    p->last_reply = 1796177798;
    p->next_poll = 1796177828;
}

static void round_trip(void **state)
{
    (void)state;
    kb_keystate a, b;
    kb_err err;
    fill(&a);
    char *text = kb_keystate_format(&a);
    assert_non_null(text);
    assert_int_equal(kb_keystate_parse(text, strlen(text), "f", &b, &err), 0);
    assert_string_equal(b.token_serial, a.token_serial);
    assert_string_equal(b.key_id, a.key_id);
    assert_string_equal(b.key_uri, a.key_uri);
    assert_string_equal(b.last_result, "wait");
    assert_string_equal(b.last_message, a.last_message);
    assert_int_equal(b.last_time, a.last_time);
    assert_true(b.pending.active);
    assert_false(b.pending.renew);
    assert_int_equal(b.pending.next_poll, 1796177828);
    assert_int_equal(b.pending.csr_len, a.pending.csr_len);
    assert_memory_equal(b.pending.csr, a.pending.csr, a.pending.csr_len);
    free(text);
    /* No pending request and no last result: both absent, and read back so. */
    kb_pending_clear(&b.pending);
    b.last_op[0] = '\0';
    text = kb_keystate_format(&b);
    assert_null(strstr(text, "pending"));
    kb_keystate_clear(&a);
    assert_int_equal(kb_keystate_parse(text, strlen(text), "f", &a, &err), 0);
    assert_false(a.pending.active);
    assert_string_equal(a.last_op, "");
    free(text);
    kb_keystate_clear(&a);
    kb_keystate_clear(&b);
}

static void names(void **state)
{
    (void)state;
    char name[128];
    assert_int_equal(kb_keystate_name("8cf8c40999018819", ID, sizeof ID, name, sizeof name), 0);
    assert_string_equal(name, "key-8cf8c40999018819-637fb922.json");
    /* A token's serial is its own text: nothing of it may become a path. */
    assert_int_equal(kb_keystate_name("../../etc", ID, sizeof ID, name, sizeof name), 0);
    assert_string_equal(name, "key-______etc-637fb922.json");
    assert_int_equal(kb_keystate_name("", ID, sizeof ID, name, sizeof name), 0);
    assert_string_equal(name, "key-_-637fb922.json");
    assert_int_equal(kb_keystate_name("x", ID, 0, name, sizeof name), -1);
}

/* text with the first occurrence of from replaced by to */
static char *edit(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    assert_non_null(at);
    size_t n = strlen(text) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    size_t pre = (size_t)(at - text);
    memcpy(out, text, pre);
    strcpy(out + pre, to);
    strcat(out, at + strlen(from));
    return out;
}

static void refused(const char *text, size_t len, const char *why)
{
    kb_keystate s;
    kb_err err;
    assert_int_equal(kb_keystate_parse(text, len, "/var/lib/keybound/key-x.json", &s, &err), -1);
    assert_non_null(strstr(err.msg, "state file /var/lib/keybound/key-x.json: "));
    if (strstr(err.msg, why) == NULL)
        fail_msg("'%s' does not say '%s'", err.msg, why);
    assert_false(s.pending.active);
}

static void bad_files(void **state)
{
    (void)state;
    kb_keystate a;
    fill(&a);
    char *good = kb_keystate_format(&a);
    kb_keystate_clear(&a);
    static const struct {
        const char *from, *to, *why;
    } cases[] = {
        {"\"schema\": 1", "\"schema\": 2", "\"schema\" is not 1"},
        {"\"token_serial\": \"8cf8c40999018819\"", "\"token_serial\": 7", "is not a string"},
        {"\"token_serial\"", "\"serial\"", "\"token_serial\" is missing"},
        {"\"key_id\": \"637fb922\"", "\"key_id\": \"637FB922\"", "lower-case hex"},
        {"\"key_id\": \"637fb922\"", "\"key_id\": \"637fb92\"", "lower-case hex"},
        {"\"time\": 1796177797", "\"time\": -1", "is not a time"},
        {"\"time\": 1796177797", "\"time\": \"today\"", "is not a time"},
        {"\"operation\": \"enroll\"", "\"operation\": \"steal\"", "neither"},
        {"\"url\": \"https://", "\"url\": \"http://", "not an https:// URL"},
        {"\"csr\": \"MIIB", "\"csr\": \"!!!!", "not a request in base64"},
        {"\"csr\": \"MIIB", "\"csr\": \"AAAA", "not a PKCS#10 request"},
        {"\"rekey\": false", "\"rekey\": \"no\"", "is not true or false"},
        {"\"rekey\": false", "\"rekey\": true", "a rekey but not a renewal"},
        {"\"last\": {", "\"last\": [], \"x\": {", "\"last\" is not an object"},
        {"\"pending\": {", "\"pending\": 3, \"x\": {", "\"pending\" is not an object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *t = edit(good, cases[i].from, cases[i].to);
        refused(t, strlen(t), cases[i].why);
        free(t);
    }
    refused("", 0, "not JSON");
    refused(good, strlen(good) / 2, "not JSON");
    refused("[1, 2]", 6, "not a JSON object");
    refused("{\"schema\": 1} {}", 16, "text after the JSON object");
    refused("{\"schema\": 1}\0", 14, "a NUL byte");
    refused("{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}", 46, "not JSON");
    char *big = calloc(KB_KEYSTATE_MAX_FILE + 2, 1);
    memset(big, ' ', KB_KEYSTATE_MAX_FILE + 1);
    refused(big, KB_KEYSTATE_MAX_FILE + 1, "larger than 64 KiB");
    free(big);
    /* A long label is refused, not cut. */
    char *longer = malloc(2 * KB_LABEL_MAX + 64);
    snprintf(longer, 2 * KB_LABEL_MAX + 64, "\"label\": \"%0*d\"", KB_LABEL_MAX, 0);
    char *t = edit(good, "\"label\": \"second\"", longer);
    refused(t, strlen(t), "\"label\" is too long");
    free(t);
    free(longer);
    free(good);
}

static void files(void **state)
{
    (void)state;
    char dir[] = "/tmp/keybound-keystate-XXXXXX";
    assert_non_null(mkdtemp(dir));
    kb_keystate a, b;
    kb_err err;
    assert_int_equal(kb_keystate_load(dir, "8cf8c40999018819", ID, sizeof ID, &b, &err), 1);
    assert_int_equal(kb_keystate_find_enroll(dir, "8cf8c40999018819", "second", &b), 1);
    fill(&a);
    assert_int_equal(kb_keystate_save(dir, &a, &err), 0);
    char path[512], other[512];
    snprintf(path, sizeof path, "%s/key-8cf8c40999018819-637fb922.json", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(kb_keystate_load(dir, "8cf8c40999018819", ID, sizeof ID, &b, &err), 0);
    assert_string_equal(b.label, "second");
    kb_keystate_clear(&b);
    assert_int_equal(kb_keystate_find_enroll(dir, "8cf8c40999018819", "second", &b), 0);
    assert_string_equal(b.pending.key_id, "637fb922");
    kb_keystate_clear(&b);
    assert_int_equal(kb_keystate_find_enroll(dir, "8cf8c40999018819", "other", &b), 1);
    assert_int_equal(kb_keystate_find_enroll(dir, "0000000000000000", "second", &b), 1);
    /* A file under another key's name is not that key's. */
    static const unsigned char id2[] = {0x01};
    snprintf(other, sizeof other, "%s/key-8cf8c40999018819-01.json", dir);
    assert_int_equal(rename(path, other), 0);
    assert_int_equal(kb_keystate_load(dir, "8cf8c40999018819", id2, sizeof id2, &b, &err), -1);
    assert_non_null(strstr(err.msg, "for another key than its name says"));
    assert_int_equal(kb_keystate_remove(dir, "8cf8c40999018819", id2, sizeof id2, &err), 0);
    assert_int_equal(kb_keystate_remove(dir, "8cf8c40999018819", id2, sizeof id2, &err), 0);
    assert_int_equal(kb_keystate_save(dir, &a, &err), 0);
    assert_int_equal(kb_keystate_forget(dir, &a, &err), 0);
    assert_int_equal(stat(path, &st), -1);
    kb_keystate_clear(&a);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(names),
        cmocka_unit_test(bad_files),
        cmocka_unit_test(files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
