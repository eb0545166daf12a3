/* SPDX-License-Identifier: Apache-2.0 */
/* Load generator for the tunnel benchmarks: plain HTTP/1.x to a local listener (a tunnel in
 * front of nginx), in C so that the client is not the bottleneck. One line of results on
 * stdout, "name value" pairs.
 *
 *   loadgen conn    PORT SECONDS THREADS   new connection per request: connections/s, and the
 *                                          CPU the load generator used (cpu_ms, user + system)
 *   loadgen count   PORT COUNT THREADS     the same for COUNT connections in all: connections/s
 *   loadgen bulk    PORT PATH              one download: MB/s
 *   loadgen latency PORT COUNT             requests on one kept-alive connection: p50, p99 (us)
 *   loadgen idle    PORT COUNT             opens COUNT connections, one request each, keeps them
 *                                          open; prints "ready" and waits for stdin to close
 *   loadgen burst   PORT COUNT             COUNT connections at once: total ms, failures
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int port;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One HTTP/1.0 request; the whole answer read. Returns the bytes read, -1 on failure. */
static long long fetch(const char *path)
{
    int fd = dial();
    if (fd < 0)
        return -1;
    char req[256], buf[65536];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    long long total = 0;
    ssize_t r;
    bool ok = false;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        if (total == 0 && r > 12 && memcmp(buf + 9, "200", 3) == 0)
            ok = true;
        total += r;
    }
    close(fd);
    return ok ? total : -1;
}

static double deadline;
static long done_count, fail_count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static long left = -1; /* connections still to make in count mode; -1: until the deadline */

static bool more(void)
{
    if (left < 0)
        return now() < deadline;
    pthread_mutex_lock(&lock);
    bool go = left > 0;
    if (go)
        left--;
    pthread_mutex_unlock(&lock);
    return go;
}

static void *conn_worker(void *arg)
{
    (void)arg;
    while (more()) {
        long long r = fetch("/");
        pthread_mutex_lock(&lock);
        if (r > 0)
            done_count++;
        else
            fail_count++;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static void *burst_worker(void *arg)
{
    (void)arg;
    long long r = fetch("/");
    pthread_mutex_lock(&lock);
    if (r > 0)
        done_count++;
    else
        fail_count++;
    pthread_mutex_unlock(&lock);
    return NULL;
}

/* Its own CPU, all threads, so that a bench can tell what else ran on the machine meanwhile. */
static double cpu_ms(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Reads one HTTP/1.1 response with Content-Length on a kept-alive connection. */
static int read_response(int fd)
{
    char buf[8192];
    size_t len = 0;
    long body = -1;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof buf - len - 1);
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (end == NULL)
            continue;
        char *cl = strstr(buf, "Content-Length: ");
        body = cl ? atol(cl + 16) : 0;
        size_t have = len - (size_t)(end + 4 - buf);
        while ((long)have < body) {
            r = read(fd, buf, sizeof buf);
            if (r <= 0)
                return -1;
            have += (size_t)r;
        }
        return 0;
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: see the comment at the top of loadgen.c\n");
        return 2;
    }
    const char *mode = argv[1];
    port = atoi(argv[2]);
    if ((strcmp(mode, "conn") == 0 || strcmp(mode, "count") == 0) && argc == 5) {
        int threads = atoi(argv[4]);
        double start = now();
        if (strcmp(mode, "count") == 0)
            left = atol(argv[3]);
        else
            deadline = start + atof(argv[3]);
        pthread_t t[64];
        for (int i = 0; i < threads && i < 64; i++)
            pthread_create(&t[i], NULL, conn_worker, NULL);
        for (int i = 0; i < threads && i < 64; i++)
            pthread_join(t[i], NULL);
        printf("conn_per_s %.0f failed %ld ok %ld cpu_ms %.0f\n",
               (double)done_count / (now() - start), fail_count, done_count, cpu_ms());
    } else if (strcmp(mode, "bulk") == 0) {
        double start = now();
        long long n = fetch(argv[3]);
        double s = now() - start;
        printf("mb_per_s %.1f bytes %lld\n", n > 0 ? (double)n / 1e6 / s : 0.0, n);
    } else if (strcmp(mode, "latency") == 0) {
        int count = atoi(argv[3]), fd = dial();
        double *v = calloc((size_t)count, sizeof *v);
        const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
        int got = 0;
        for (int i = 0; fd >= 0 && i < count; i++) {
            double t0 = now();
            if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1) || read_response(fd))
                break;
            v[got++] = (now() - t0) * 1e6;
        }
        qsort(v, (size_t)got, sizeof *v, cmp);
        printf("p50_us %.0f p99_us %.0f n %d\n", got ? v[got / 2] : 0, got ? v[got * 99 / 100] : 0,
               got);
    } else if (strcmp(mode, "idle") == 0) {
        int count = atoi(argv[3]), ok = 0;
        const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
        for (int i = 0; i < count; i++) {
            int fd = dial();
            if (fd >= 0 && write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1) &&
                read_response(fd) == 0)
                ok++;
        }
        printf("ready %d\n", ok);
        fflush(stdout);
        char c;
        while (read(0, &c, 1) > 0)
            ;
    } else if (strcmp(mode, "burst") == 0) {
        int count = atoi(argv[3]);
        pthread_t *t = calloc((size_t)count, sizeof *t);
        double start = now();
        for (int i = 0; i < count; i++)
            pthread_create(&t[i], NULL, burst_worker, NULL);
        for (int i = 0; i < count; i++)
            pthread_join(t[i], NULL);
        printf("burst_ms %.0f ok %ld failed %ld\n", (now() - start) * 1000, done_count, fail_count);
    } else {
        fprintf(stderr, "loadgen: unknown mode %s\n", mode);
        return 2;
    }
    return 0;
}
