/*
 * src_udp.c - the UDP source of the ingest engine: the X-Ray daemon's
 * protocol, so SDKs can send segments straight to hoptrace
 * (AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000).
 *
 * One datagram is a header line `{"format":"json","version":1}` (whitespace
 * varies by SDK), a newline and one document, at most 64 KiB. Datagrams are
 * decoded into the engine's batch; the engine commits every 50 ms (or every
 * batch of documents). UDP has no replay, so there is nothing to
 * checkpoint: what was committed before a crash stays, what was in flight
 * is gone, as with the daemon itself. `--forward` relays every datagram
 * unchanged to a real daemon, so hoptrace can sit in front of one.
 *
 * Owned by ingest/ (library ht_engine). It prints nothing: errors go to
 * the log, counters to ht_udp_stats.
 */
#define _GNU_SOURCE
#include "ht_engine.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_DATAGRAM (64 * 1024)

const struct ht_opt ht_udp_opt_table[] = {
    {HT_OPT_STRING, "--forward", NULL, "HOST:PORT", NULL,
     offsetof(struct ht_udp_cfg, forward), 0, 0,
     "relay every datagram unchanged to a real X-Ray daemon"},
    HT_OPT_END};

struct udp {
    int fd, ffd;
    struct ht_udp_cfg cfg;
    struct ht_udp_stats st;
    uint64_t seq;
    char *buf;
};

static uint64_t batch_rejected(const struct ht_batch *b)
{
    uint64_t n = 0;

    for (int r = 0; r < HT_REJ__COUNT; r++)
        n += b->rejected[r];
    return n;
}

static void handle_datagram(struct udp *u, struct ht_batch *b, const char *src,
                            const char *d, size_t n, size_t real_len)
{
    struct ht_srcpos pos = {.source = src, .offset = u->seq++};
    const char *nl;
    const char *body;
    size_t bn;
    uint64_t before;
    char why[160];

    u->st.received++;
    if (real_len > MAX_DATAGRAM) {
        ht_batch_reject(b, HT_REJ_TOO_LARGE, &pos,
                        "datagram larger than 64 KiB", d, n);
        u->st.rejected++;
        return;
    }
    nl = memchr(d, '\n', n);
    if (!nl) {
        ht_batch_reject(b, HT_REJ_MISSING_FIELD, &pos,
                        "no X-Ray daemon header line "
                        "{\"format\":\"json\",\"version\":1}",
                        d, n);
        u->st.rejected++;
        return;
    }
    /* judged as the daemon judges it, as files and payloads are */
    if (!ht_ingest_daemon_header(b, d, (size_t)(nl - d), why, sizeof(why))) {
        ht_batch_reject(b, HT_REJ_BAD_FIELD, &pos, why, d, n);
        u->st.rejected++;
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
        u->st.rejected++;
        return;
    }
    before = batch_rejected(b);
    ht_ingest_payload(b, &pos, body, bn);
    if (batch_rejected(b) > before)
        u->st.rejected++;
    else
        u->st.accepted++;
}

static void udp_close(void *state)
{
    struct udp *u = state;

    if (!u)
        return;
    if (u->ffd >= 0)
        close(u->ffd);
    if (u->fd >= 0)
        close(u->fd);
    free(u->buf);
    free(u);
}

static int udp_open(const void *cfgv, void **state)
{
    const struct ht_udp_cfg *cfg = cfgv;
    struct sockaddr_storage ss, fss;
    socklen_t sl = 0, fsl = 0;
    struct udp *u = calloc(1, sizeof(*u));
    const char *listen_spec;

    *state = NULL;
    if (!u)
        return HT_ERR_NOMEM;
    u->fd = u->ffd = -1;
    u->cfg = *cfg;
    listen_spec = cfg->listen ? cfg->listen : "127.0.0.1:2000";
    u->buf = malloc(MAX_DATAGRAM + 1);
    if (!u->buf)
        goto nomem;
    if (ht_addr_resolve(listen_spec, SOCK_DGRAM, false, &ss, &sl) != 0) {
        HT_LOG_ERROR("ingest:udp",
                     "--udp takes HOST:PORT (e.g. 127.0.0.1:2000), not %s",
                     listen_spec);
        goto usage;
    }
    if (cfg->forward &&
        ht_addr_resolve(cfg->forward, SOCK_DGRAM, false, &fss, &fsl) != 0) {
        HT_LOG_ERROR("ingest:udp",
                     "--forward takes HOST:PORT of an X-Ray daemon, not %s",
                     cfg->forward);
        goto usage;
    }
    u->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (u->fd < 0) {
        HT_LOG_ERROR("ingest:udp", "cannot create a UDP socket: %s",
                     strerror(errno));
        goto io;
    }
    {
        /* bursts from many SDKs: a large buffer so that the kernel does
         * not drop datagrams while a batch is decoded (FORCE works for
         * root beyond rmem_max; else the plain request, capped) */
        int sz = 16 << 20;

        if (setsockopt(u->fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) != 0)
            setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    if (bind(u->fd, (struct sockaddr *)&ss, sl) != 0) {
        HT_LOG_ERROR("ingest:udp",
                     "cannot listen on udp %s: %s (is an X-Ray daemon "
                     "already there? pick another with --udp HOST:PORT)",
                     listen_spec, strerror(errno));
        goto io;
    }
    sl = sizeof(ss);
    getsockname(u->fd, (struct sockaddr *)&ss, &sl);
    ht_addr_format((struct sockaddr *)&ss, u->st.where, sizeof(u->st.where));
    if (cfg->forward) {
        u->ffd = socket(fss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (u->ffd < 0 || connect(u->ffd, (struct sockaddr *)&fss, fsl) != 0) {
            HT_LOG_ERROR("ingest:udp", "cannot forward to %s: %s", cfg->forward,
                         strerror(errno));
            goto io;
        }
    }
    *state = u;
    return HT_ERR_OK;
nomem:
    udp_close(u);
    return HT_ERR_NOMEM;
usage:
    udp_close(u);
    return HT_ERR_USAGE;
io:
    udp_close(u);
    return HT_ERR_IO;
}

static int udp_poll(void *state, struct ht_engine *e, int timeout_ms)
{
    struct udp *u = state;
    struct pollfd pfd = {.fd = u->fd, .events = POLLIN};
    int pr = poll(&pfd, 1, timeout_ms);
    int got = 0;

    if (pr < 0 && errno != EINTR) {
        HT_LOG_ERROR("ingest:udp", "poll: %s", strerror(errno));
        return -HT_ERR_IO;
    }
    /* drain what is there (the engine commits between polls) */
    for (int burst = 0; pr > 0 && burst < 4096 && !ht_engine_full(e); burst++) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n =
            recvfrom(u->fd, u->buf, MAX_DATAGRAM + 1, MSG_DONTWAIT | MSG_TRUNC,
                     (struct sockaddr *)&from, &fl);
        char src[96];

        if (n < 0)
            break;
        if (u->ffd >= 0) {
            size_t len =
                (size_t)n > MAX_DATAGRAM + 1 ? MAX_DATAGRAM + 1 : (size_t)n;

            if (send(u->ffd, u->buf, len, MSG_DONTWAIT) < 0 &&
                u->st.fwd_errors++ == 0)
                HT_LOG_ERROR("ingest:udp",
                             "forwarding to %s: %s (counted; ingest goes on)",
                             u->cfg.forward, strerror(errno));
        }
        memcpy(src, "udp:", 4);
        ht_addr_format((struct sockaddr *)&from, src + 4, sizeof(src) - 4);
        handle_datagram(u, ht_engine_batch(e), src, u->buf,
                        (size_t)n > MAX_DATAGRAM ? MAX_DATAGRAM : (size_t)n,
                        (size_t)n);
        got++;
    }
    return got ? HT_POLL_DATA : HT_POLL_IDLE;
}

static int udp_checkpoint(void *state, struct ht_engine *e)
{
    (void)state; /* UDP cannot be replayed: nothing to checkpoint */
    return ht_engine_flush(e, NULL, 0);
}

void ht_udp_stats(const void *state, struct ht_udp_stats *out)
{
    *out = ((const struct udp *)state)->st;
}

const struct ht_source_ops ht_source_udp = {
    .name = "udp",
    .opts = ht_udp_opt_table,
    .cfg_size = sizeof(struct ht_udp_cfg),
    .drain_on_stop = true,
    .open = udp_open,
    .poll = udp_poll,
    .checkpoint = udp_checkpoint,
    .close = udp_close,
};
