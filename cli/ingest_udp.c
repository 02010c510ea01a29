/*
 * ingest_udp.c - `hoptrace ingest --udp [HOST:PORT]`: the X-Ray daemon's
 * UDP protocol, so SDKs can send segments straight to hoptrace
 * (AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000).
 *
 * One datagram is a header line `{"format":"json","version":1}` (whitespace
 * varies by SDK), a newline and one document, at most 64 KiB. Datagrams are
 * decoded into the shared sink and committed every 50 ms (or every batch
 * of documents). UDP has no replay, so there is nothing to checkpoint: what
 * was committed before a crash stays, what was in flight is gone, as with
 * the daemon itself. `--forward` relays every datagram unchanged to a real
 * daemon, so hoptrace can sit in front of one.
 */
#define _GNU_SOURCE
#include "cli.h"
#include "sink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char usage[] =
    "usage: hoptrace [--db DIR] ingest --udp [HOST:PORT] [--forward "
    "HOST:PORT]\n"
    "         [--until-idle SECONDS] [--batch N] [--strict] [--quiet]\n"
    "\n"
    "Listens for X-Ray daemon datagrams (default 127.0.0.1:2000, so\n"
    "AWS_XRAY_DAEMON_ADDRESS can point SDKs straight at hoptrace): a header\n"
    "line {\"format\":\"json\",\"version\":1}, a newline, one segment\n"
    "document; at most 64 KiB. Port 0 picks a free port; the address is\n"
    "printed on stderr.\n"
    "\n"
    "  --forward HOST:PORT   relay every datagram unchanged to a real X-Ray\n"
    "                        daemon\n"
    "  --until-idle SECONDS  exit after that long without a datagram\n"
    "  --batch N             documents per write transaction (default\n"
    "                        2048); commits happen at least every 50 ms\n"
    "  --strict              exit 3 when any datagram was rejected\n"
    "  --quiet               no summary line\n"
    "  --durable             flush every commit to disk (default: atomic\n"
    "                        commits, safe from kill -9, flushed by the OS)\n"
    "\n"
    "SIGINT/SIGTERM: commit and exit 0. The summary counts datagrams\n"
    "received, accepted and rejected (bad header, empty body, oversized,\n"
    "bad document: see hoptrace stats / dlq).\n";

#define MAX_DATAGRAM (64 * 1024)

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* HOST:PORT, [V6HOST]:PORT or PORT alone (host 127.0.0.1). */
static int resolve(const char *spec, struct sockaddr_storage *ss,
                   socklen_t *len)
{
    char host[256], port[16];
    const char *colon = strrchr(spec, ':');
    struct addrinfo hints, *res = NULL;
    int rc;

    if (!colon) {
        snprintf(host, sizeof(host), "127.0.0.1");
        snprintf(port, sizeof(port), "%s", spec);
    } else {
        size_t hl = (size_t)(colon - spec);

        if (hl && spec[0] == '[' && spec[hl - 1] == ']') {
            spec++;
            hl -= 2;
        }
        if (hl >= sizeof(host) || strlen(colon + 1) >= sizeof(port))
            return -1;
        memcpy(host, spec, hl);
        host[hl] = 0;
        snprintf(port, sizeof(port), "%s", colon + 1);
    }
    if (!*port || strspn(port, "0123456789") != strlen(port))
        return -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(*host ? host : "127.0.0.1", port, &hints, &res);
    if (rc || !res)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void addr_str(const struct sockaddr_storage *ss, char *out, size_t n)
{
    char h[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;

        inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
        port = ntohs(a->sin_port);
        snprintf(out, n, "%s:%d", h, port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;

        inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
        port = ntohs(a->sin6_port);
        snprintf(out, n, "[%s]:%d", h, port);
    } else {
        snprintf(out, n, "?");
    }
}

/* The daemon header: a JSON object with "format":"json" and "version":1,
 * in any order and with any whitespace. Returns false when it is not. */
static bool header_ok(const char *p, size_t n)
{
    char c[128];
    size_t k = 0;
    bool in_str = false;

    for (size_t i = 0; i < n; i++) {
        char ch = p[i];

        if (!in_str && (ch == ' ' || ch == '\t' || ch == '\r'))
            continue;
        if (ch == '"' && !(i && p[i - 1] == '\\'))
            in_str = !in_str;
        if (k + 1 >= sizeof(c))
            return false;
        c[k++] = ch;
    }
    c[k] = 0;
    return strcmp(c, "{\"format\":\"json\",\"version\":1}") == 0 ||
           strcmp(c, "{\"version\":1,\"format\":\"json\"}") == 0;
}

struct udp {
    struct ht_engine *eng;
    uint64_t received, accepted, rejected, seq;
};

static uint64_t batch_rejected(const struct ht_batch *b)
{
    uint64_t n = 0;

    for (int r = 0; r < HT_REJ__COUNT; r++)
        n += b->rejected[r];
    return n;
}

static void handle_datagram(struct udp *u, const char *src, const char *d,
                            size_t n, size_t real_len)
{
    struct ht_batch *b = ht_engine_batch(u->eng);
    struct ht_srcpos pos = {.source = src, .offset = u->seq++};
    const char *nl;
    const char *body;
    size_t bn;
    uint64_t before;

    u->received++;
    if (real_len > MAX_DATAGRAM) {
        ht_batch_reject(b, HT_REJ_TOO_LARGE, &pos,
                        "datagram larger than 64 KiB", d, n);
        u->rejected++;
        return;
    }
    nl = memchr(d, '\n', n);
    if (!nl || !header_ok(d, (size_t)(nl - d))) {
        ht_batch_reject(b, HT_REJ_MISSING_FIELD, &pos,
                        "no X-Ray daemon header line "
                        "{\"format\":\"json\",\"version\":1}",
                        d, n);
        u->rejected++;
        return;
    }
    body = nl + 1;
    bn = n - (size_t)(body - d);
    while (bn && (body[bn - 1] == '\n' || body[bn - 1] == '\r' ||
                  body[bn - 1] == ' ' || body[bn - 1] == '\t'))
        bn--;
    if (!bn) {
        ht_batch_reject(b, HT_REJ_MISSING_FIELD, &pos,
                        "daemon datagram with an empty body", d, n);
        u->rejected++;
        return;
    }
    before = batch_rejected(b);
    ht_ingest_payload(b, &pos, body, bn);
    if (batch_rejected(b) > before)
        u->rejected++;
    else
        u->accepted++;
}

int ht_cmd_ingest_udp(struct ht_cli *cli, int argc, char **argv)
{
    struct udp u;
    const char *listen_spec = "127.0.0.1:2000", *fwd_spec = NULL;
    struct ht_ingest_opts o = HT_INGEST_OPTS_INIT;
    struct sockaddr_storage ss, fss;
    socklen_t sl = 0, fsl = 0;
    int fd = -1, ffd = -1, rc, exit_code = HT_EXIT_OK;
    char where[80], *buf;
    struct sigaction sa;
    uint64_t fwd_errors = 0;

    memset(&u, 0, sizeof(u));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        int taken = ht_ingest_opt(cli, argc, argv, &i, &o);

        if (taken < 0)
            return HT_EXIT_USAGE;
        if (taken > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return HT_EXIT_OK;
        } else if (strcmp(a, "--udp") == 0) {
            if (has && argv[i + 1][0] != '-')
                listen_spec = argv[++i];
        } else if (strcmp(a, "--forward") == 0 && has) {
            fwd_spec = argv[++i];
        } else {
            ht_cli_err("ingest --udp: unknown or incomplete option %s (see "
                       "hoptrace ingest --udp --help)",
                       a);
            return HT_EXIT_USAGE;
        }
    }
    if (resolve(listen_spec, &ss, &sl) != 0) {
        ht_cli_err("--udp takes HOST:PORT (e.g. 127.0.0.1:2000), not %s",
                   listen_spec);
        return HT_EXIT_USAGE;
    }
    if (fwd_spec && resolve(fwd_spec, &fss, &fsl) != 0) {
        ht_cli_err("--forward takes HOST:PORT of an X-Ray daemon, not %s",
                   fwd_spec);
        return HT_EXIT_USAGE;
    }
    fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        ht_cli_err("cannot create a UDP socket: %s", strerror(errno));
        return HT_EXIT_ERROR;
    }
    {
        /* bursts from many SDKs: a large buffer so that the kernel does
         * not drop datagrams while a batch is decoded (FORCE works for
         * root beyond rmem_max; else the plain request, capped) */
        int sz = 16 << 20;

        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        ht_cli_err("cannot listen on udp %s: %s (is an X-Ray daemon "
                   "already there? pick another with --udp HOST:PORT)",
                   listen_spec, strerror(errno));
        close(fd);
        return HT_EXIT_ERROR;
    }
    sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    addr_str(&ss, where, sizeof(where));
    if (fwd_spec) {
        ffd = socket(fss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (ffd < 0 || connect(ffd, (struct sockaddr *)&fss, fsl) != 0) {
            ht_cli_err("cannot forward to %s: %s", fwd_spec, strerror(errno));
            if (ffd >= 0)
                close(ffd);
            close(fd);
            return HT_EXIT_ERROR;
        }
    }
    rc = ht_cli_engine_open(cli, &o, &u.eng);
    if (rc) {
        if (ffd >= 0)
            close(ffd);
        close(fd);
        return HT_EXIT_ERROR;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll returns EINTR */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fprintf(stderr, "hoptrace: listening on udp %s\n", where);
    fflush(stderr);

    buf = malloc(MAX_DATAGRAM + 1);
    HT_ASSERT(buf);
    {
        int64_t now = ht_now_mono_us(), last_dgram = now, last_flush = now;
        bool pending = false;

        for (bool last = false; !rc && !last;) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            int pr;

            /* stopping: drain what the kernel buffered, commit, exit */
            last = stop_flag;
            pr = last ? 1 : poll(&pfd, 1, 50);
            if (pr < 0 && errno != EINTR) {
                ht_cli_err("poll: %s", strerror(errno));
                rc = HT_ERR_IO;
                break;
            }
            /* drain what is there, then commit */
            for (int burst = 0; pr > 0 && burst < (last ? (1 << 20) : 4096);
                 burst++) {
                struct sockaddr_storage from;
                socklen_t fl = sizeof(from);
                ssize_t n = recvfrom(fd, buf, MAX_DATAGRAM + 1,
                                     MSG_DONTWAIT | MSG_TRUNC,
                                     (struct sockaddr *)&from, &fl);
                char src[96];

                if (n < 0)
                    break;
                if (ffd >= 0) {
                    size_t got = (size_t)n > MAX_DATAGRAM + 1 ? MAX_DATAGRAM + 1
                                                              : (size_t)n;

                    if (send(ffd, buf, got, MSG_DONTWAIT) < 0 &&
                        fwd_errors++ == 0)
                        ht_cli_err("forwarding to %s: %s (counted; "
                                   "ingest goes on)",
                                   fwd_spec, strerror(errno));
                }
                memcpy(src, "udp:", 4);
                addr_str(&from, src + 4, sizeof(src) - 4);
                handle_datagram(&u, src, buf,
                                (size_t)n > MAX_DATAGRAM ? MAX_DATAGRAM
                                                         : (size_t)n,
                                (size_t)n);
                pending = true;
                last_dgram = ht_now_mono_us();
                if (ht_engine_full(u.eng)) {
                    rc = ht_engine_flush(u.eng, NULL, 0);
                    last_flush = ht_now_mono_us();
                    pending = false;
                    if (rc)
                        break;
                }
            }
            now = ht_now_mono_us();
            if (!rc && pending && now - last_flush >= 50000) {
                rc = ht_engine_flush(u.eng, NULL, 0);
                last_flush = now;
                pending = false;
            }
            if (o.until_idle > 0 &&
                now - last_dgram > (int64_t)(o.until_idle * 1e6))
                break;
        }
        if (!rc && pending)
            rc = ht_engine_flush(u.eng, NULL, 0);
    }
    free(buf);
    {
        int src = ht_engine_sync(u.eng);

        if (!rc)
            rc = src;
    }
    if (!o.quiet) {
        char from[128];

        snprintf(from, sizeof(from), "udp %s", where);
        ht_sink_summary(u.eng, stderr, from);
        fprintf(stderr,
                "; datagrams received %llu, accepted %llu, rejected %llu",
                (unsigned long long)u.received, (unsigned long long)u.accepted,
                (unsigned long long)u.rejected);
        if (ffd >= 0)
            fprintf(stderr, "; forwarding errors %llu",
                    (unsigned long long)fwd_errors);
        fputc('\n', stderr);
    }
    {
        int crc = ht_engine_close(u.eng);

        if (!rc)
            rc = crc;
    }
    if (ffd >= 0)
        close(ffd);
    close(fd);
    if (rc) {
        ht_cli_err("ingest stopped: %s (what was committed stays)",
                   ht_strerror(rc));
        exit_code = HT_EXIT_ERROR;
    } else if (o.strict && u.rejected) {
        exit_code = HT_EXIT_REJECTED;
    }
    return exit_code;
}
