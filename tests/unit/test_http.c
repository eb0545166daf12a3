/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/1.1 reply reader of the EST client: framings, limits, malformed replies, and the
 * request head. Every reply is also fed one byte at a time: a network read may end
 * anywhere. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "src/enroll/http.h"

/* Feeds text whole (step 0) or in pieces of step bytes, then the close when eof; returns
 * what the last feed returned. */
static int feed(struct kb_http_reply *r, const char *text, size_t len, size_t step, bool eof,
                kb_err *err)
{
    assert_int_equal(kb_http_reply_init(r, err), 0);
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        size_t n = step == 0 || step > len - i ? len - i : step;
        rc = kb_http_reply_feed(r, "/cacerts", text + i, n, err);
        i += n;
    }
    if (rc == 0 && eof)
        rc = kb_http_reply_feed(r, "/cacerts", "", 0, err);
    return rc;
}

static void framings(void **state)
{
    (void)state;
    const char *replies[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: application/pkcs7-mime\r\nContent-Length: "
        "5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\ncontent-type: application/pkcs7-mime\r\nTransfer-Encoding: "
        "chunked\r\n\r\n2\r\nhe\r\n3;ext=1\r\nllo\r\n0\r\nTrailer: x\r\n\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: "
        "application/pkcs7-mime\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.0 200 OK\r\nContent-Type: application/pkcs7-mime\r\n\r\nhello",
    };
    for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
        for (size_t step = 0; step < 3; step++) {
            struct kb_http_reply r;
            kb_err err;
            /* The last form ends at the close; the others before it. */
            int rc = feed(&r, replies[i], strlen(replies[i]), step, i == 3, &err);
            assert_int_equal(rc, 1);
            assert_int_equal(r.status, 200);
            assert_string_equal(r.content_type, "application/pkcs7-mime");
            assert_int_equal(r.len, 5);
            assert_memory_equal(r.body, "hello", 5);
            kb_http_reply_free(&r);
        }
    }
}

static void headers(void **state)
{
    (void)state;
    const char *text =
        "HTTP/1.1 202 Accepted\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nRetry-"
        "After: 120\r\nContent-Length: 0\r\n\r\n";
    for (size_t step = 0; step < 4; step++) {
        struct kb_http_reply r;
        kb_err err;
        assert_int_equal(feed(&r, text, strlen(text), step, false, &err), 1);
        assert_int_equal(r.status, 202);
        assert_true(r.has_retry_after);
        assert_string_equal(r.retry_after, "120");
        assert_int_equal(r.len, 0);
        kb_http_reply_free(&r);
    }
    /* No Retry-After: said so, not an empty one. */
    const char *none = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
    struct kb_http_reply r;
    kb_err err;
    assert_int_equal(feed(&r, none, strlen(none), 0, false, &err), 1);
    assert_false(r.has_retry_after);
    kb_http_reply_free(&r);
}

/* A value longer than keybound keeps is refused, not cut short. */
static void long_values(void **state)
{
    (void)state;
    char text[1024];
    char value[400];
    memset(value, 'x', sizeof value - 1);
    value[sizeof value - 1] = '\0';
    const char *names[] = {"Content-Type", "Retry-After"};
    for (size_t i = 0; i < 2; i++) {
        snprintf(text, sizeof text, "HTTP/1.1 200 OK\r\n%s: %s\r\nContent-Length: 0\r\n\r\n",
                 names[i], value);
        struct kb_http_reply r;
        kb_err err;
        assert_int_equal(feed(&r, text, strlen(text), 0, false, &err), -1);
        assert_true(r.malformed);
        assert_non_null(strstr(err.msg, "too long"));
        kb_http_reply_free(&r);
    }
}

static void limits(void **state)
{
    (void)state;
    struct kb_http_reply r;
    kb_err err;
    const char *big = "HTTP/1.1 200 OK\r\nContent-Length: 6291456\r\n\r\n";
    assert_int_equal(feed(&r, big, strlen(big), 0, false, &err), -1);
    assert_non_null(strstr(err.msg, "larger than 4 MiB"));
    kb_http_reply_free(&r);

    /* Without a length, the body is counted as it comes. */
    assert_int_equal(kb_http_reply_init(&r, &err), 0);
    const char *head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    assert_int_equal(kb_http_reply_feed(&r, "/cacerts", head, strlen(head), &err), 0);
    char *chunk = malloc(1024 * 1024);
    assert_non_null(chunk);
    memset(chunk, 'A', 1024 * 1024);
    int rc = 0;
    for (int i = 0; i < 5 && rc == 0; i++)
        rc = kb_http_reply_feed(&r, "/cacerts", chunk, 1024 * 1024, &err);
    assert_int_equal(rc, -1);
    assert_true(r.malformed);
    assert_non_null(strstr(err.msg, "body is larger than 4 MiB"));
    free(chunk);
    kb_http_reply_free(&r);

    /* Headers without end. */
    assert_int_equal(kb_http_reply_init(&r, &err), 0);
    const char *start = "HTTP/1.1 200 OK\r\n";
    assert_int_equal(kb_http_reply_feed(&r, "/cacerts", start, strlen(start), &err), 0);
    char line[1024];
    snprintf(line, sizeof line, "X-Pad: %0900d\r\n", 0);
    rc = 0;
    for (int i = 0; i < 200 && rc == 0; i++)
        rc = kb_http_reply_feed(&r, "/cacerts", line, strlen(line), &err);
    assert_int_equal(rc, -1);
    kb_http_reply_free(&r);
}

static void malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "SSH-2.0-OpenSSH_9.2\r\n",
        "HTTP/1.1 2OO OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct kb_http_reply r;
        kb_err err;
        assert_int_equal(feed(&r, bad[i], strlen(bad[i]), 0, true, &err), -1);
        assert_true(r.malformed);
        assert_non_null(strstr(err.msg, "/cacerts"));
        kb_http_reply_free(&r);
    }
}

/* A reply cut short is an error, never a shorter body. */
static void truncated(void **state)
{
    (void)state;
    const char *cut[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        "HTTP/1.1 200 OK\r\nContent-",
        "",
    };
    for (size_t i = 0; i < sizeof cut / sizeof cut[0]; i++) {
        struct kb_http_reply r;
        kb_err err;
        assert_int_equal(feed(&r, cut[i], strlen(cut[i]), 0, true, &err), -1);
        assert_false(r.complete);
        kb_http_reply_free(&r);
    }
}

static void request_head(void **state)
{
    (void)state;
    char head[1024];
    kb_err err;
    assert_int_equal(kb_http_request_head(head, sizeof head, "GET", "/.well-known/est/cacerts",
                                          "ca.example.com", 443, NULL, 0, &err),
                     0);
    assert_non_null(
        strstr(head, "GET /.well-known/est/cacerts HTTP/1.1\r\nHost: ca.example.com\r\n"));
    assert_non_null(strstr(head, "Connection: close\r\n"));
    assert_null(strstr(head, "Content-Length"));
    assert_null(strstr(head, "\r\n\r\n")); /* the caller ends the head */
    assert_int_equal(kb_http_request_head(head, sizeof head, "POST", "/e/simpleenroll", "::1", 8443,
                                          "application/pkcs10", 1234, &err),
                     0);
    assert_non_null(strstr(head, "Host: [::1]:8443\r\n"));
    assert_non_null(strstr(head, "Content-Type: application/pkcs10\r\n"));
    assert_non_null(strstr(head, "Content-Transfer-Encoding: base64\r\n"));
    assert_non_null(strstr(head, "Content-Length: 1234\r\n"));
    assert_int_equal(kb_http_request_head(head, sizeof head, "GET", "/.well-known/est/cacerts",
                                          "::1", 443, NULL, 0, &err),
                     0);
    assert_non_null(strstr(head, "Host: [::1]\r\n"));
    assert_int_equal(kb_http_request_head(head, 40, "GET", "/.well-known/est/cacerts",
                                          "ca.example.com", 443, NULL, 0, &err),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(framings),     cmocka_unit_test(headers),   cmocka_unit_test(long_values),
        cmocka_unit_test(limits),       cmocka_unit_test(malformed), cmocka_unit_test(truncated),
        cmocka_unit_test(request_head),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
