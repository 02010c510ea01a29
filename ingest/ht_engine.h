/*
 * ht_engine.h - the ingest engine: sources, batching and the writer.
 *
 * Every ingest source (files and stdin, UDP, Kafka, Kinesis) decodes
 * into the engine's current batch (ht_engine_batch). A writer thread
 * commits each batch in ONE LMDB write transaction together with the
 * source's checkpoints, while the source decodes the next one (two batches
 * in flight: back-pressure bounds memory). Between transactions the writer
 * calls an upkeep hook that its caller sets (retention slices, aggregate
 * updates).
 *
 * A source is a struct ht_source_ops: open, poll, checkpoint, close and a
 * declarative option table (struct ht_opt, after fluent-bit's config map)
 * that both the argument parser and --help read. ht_engine_run drives a
 * source: it polls it, and decides when a batch is committed (full, input
 * paused, timer, end); the source says what its checkpoint is.
 *
 * This is the ht_engine library under ingest/: it sits above ht_ingest
 * (the decoders, which know nothing of it), ht_assembler and ht_store, so
 * no two libraries include each other. It prints nothing to stdout; the
 * command line does the parsing of words into options and the output.
 */
#ifndef HT_ENGINE_H
#define HT_ENGINE_H

#include "ht_assembler.h"
#include "ht_common.h"
#include "ht_ingest.h"
#include "ht_store.h"

#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>

/* ---- declarative options ---------------------------------------------- */

enum ht_opt_type {
    HT_OPT__END = 0,
    HT_OPT_FLAG,     /* bool; takes no value */
    HT_OPT_COUNT,    /* size_t, within [min, max] */
    HT_OPT_SECONDS,  /* double seconds, within (min, max] */
    HT_OPT_DURATION, /* int64_t µs: "90m", "48h", "2d", "300s", "250ms";
                        a bare number is seconds */
    HT_OPT_STRING,   /* const char * (borrowed from argv) */
    HT_OPT_LIST      /* struct ht_opt_list: every occurrence, in order */
};

/* The values of a repeatable option (borrowed from argv). */
#define HT_OPT_LIST_MAX 64
struct ht_opt_list {
    const char *v[HT_OPT_LIST_MAX];
    int n;
};

/* One option of a source (or of every source). The field at `offset` in
 * the option struct has the type above. `def` is the default as the
 * command line would spell it (NULL: zero / NULL / false). */
struct ht_opt {
    enum ht_opt_type type;
    const char *name;  /* "--batch" */
    const char *alias; /* "-q", or NULL */
    const char *arg;   /* the value's name in --help ("N"), NULL for flags */
    const char *def;
    size_t offset;
    double min, max; /* COUNT, SECONDS: bounds (0, 0: none) */
    const char *help;
};
#define HT_OPT_END                                                             \
    {                                                                          \
        HT_OPT__END, NULL, NULL, NULL, NULL, 0, 0, 0, NULL                     \
    }

/* Sets every option of the table to its default. 0, or -1 when a default
 * does not parse (a bug in the table). */
int ht_opt_defaults(const struct ht_opt *t, void *base);
/* If argv[*i] is an option of the table, stores its value, moves *i past
 * it and returns 1; 0 when it is not one of the table's; -1 when its value
 * is missing or bad (err holds one line saying why). */
int ht_opt_take(const struct ht_opt *t, void *base, int argc, char **argv,
                int *i, char *err, size_t errn);
/* Writes the table's --help lines ("  --batch N   help (default 8192)"). */
void ht_opt_help(const struct ht_opt *t, FILE *f);
/* "90m", "48h", "2d", "300s", "250ms", "1.5h"; a bare number is seconds.
 * 0, or -1 on anything else (negative, empty, unknown unit). */
int ht_parse_duration(const char *s, int64_t *out_us);

/* ---- the options every source takes ----------------------------------- */

/* 8192: each commit copies (and faults in) every B-tree page it touches,
 * and the random index tables are touched all over, so fewer, larger
 * commits cost less: 5,000 requests ingest in 0.52 s against 0.56 s at
 * 2048, and 16384 is no faster (docs/performance.md, 2026-12-03) */
#define HT_INGEST_BATCH_DEFAULT 8192

struct ht_ingest_opts {
    size_t batch_docs;     /* --batch N: records per write transaction */
    bool strict;           /* --strict: exit 3 when anything was rejected */
    bool quiet;            /* --quiet, -q: no summary line */
    bool durable;          /* --durable: flush every commit to disk */
    double until_idle;     /* --until-idle S: live sources stop after S idle
                              seconds (0: never) */
    int64_t retain_us;     /* --retain D: keep requests whose last event is
                              within D of the newest event seen (0: forever);
                              applied by the upkeep hook */
    bool no_aggregates;    /* --no-aggregates: leave the request
                              summaries to `hoptrace refresh` */
    const char *log_group; /* --log-group NAME: for log events whose
                              envelope names no log group (NULL: none) */
    const char *db; /* --db DIR (also a global option); NULL: not given */
};

/* The table behind ht_ingest_opts (ends with HT_OPT_END). */
extern const struct ht_opt ht_ingest_opt_table[];

/* ---- the engine -------------------------------------------------------- */

struct ht_engine;

struct ht_engine_totals {
    uint64_t documents, spans, log_events, dropped, bytes;
    uint64_t rejected[HT_REJ__COUNT];
    struct ht_asm_stats as;
    uint64_t batches;
};

/* One checkpoint entry written with a batch (key/value in
 * HT_DB_CHECKPOINTS). Both are copied by ht_engine_flush. */
struct ht_engine_ckpt {
    const char *key;
    size_t klen;
    const void *val;
    size_t vlen;
};

/*
 * Called on the writer thread between write transactions: after each
 * committed batch (idle false) and at least once a second while no batch
 * comes (idle true); never while a batch transaction is open, so it may
 * open write transactions of its own on `s`. A non-zero return is the
 * engine's error from then on (returned by the next flush or sync), as a
 * failed commit would be.
 */
typedef int (*ht_engine_upkeep_fn)(void *ctx, struct ht_store *s, bool idle);

/* Opens the store in `db` (created if missing) and starts the writer.
 * Errors are logged by the store (which file, LMDB's words); the caller
 * says what to do about them. Owned: ht_engine_close. */
int ht_engine_open(const char *db, struct ht_engine **out);
/* Batch size, durability and retention from the shared options. */
int ht_engine_configure(struct ht_engine *e, const struct ht_ingest_opts *o);
/* Set before the first flush; fn NULL: none. */
void ht_engine_set_upkeep(struct ht_engine *e, ht_engine_upkeep_fn fn,
                          void *ctx);
/* --retain in µs (0: none), for the upkeep hook's owner. */
int64_t ht_engine_retain_us(const struct ht_engine *e);
/* Syncs, stops the writer, closes the store. Returns the first pending
 * error. NULL is a no-op. */
int ht_engine_close(struct ht_engine *e);

/* A source that knows its input's size says how many bytes it has read
 * and how many are left (any thread; the engine maps the store ahead no
 * further than what is left will need). */
void ht_engine_input(struct ht_engine *e, uint64_t done, uint64_t left);
/* The batch being filled (borrowed until the next flush). */
struct ht_batch *ht_engine_batch(struct ht_engine *e);
/* True when the current batch should be flushed (its record count, its
 * arena, or the process's anonymous memory says so). */
bool ht_engine_full(const struct ht_engine *e);
/* True when the current batch holds anything. */
bool ht_engine_has_data(const struct ht_engine *e);
/* Hands the current batch and the checkpoints to the writer and starts a
 * new batch; returns once the previous batch is committed. An empty batch
 * with checkpoints still writes them. Errors of an earlier commit are
 * returned here. */
int ht_engine_flush(struct ht_engine *e, const struct ht_engine_ckpt *ck,
                    size_t n);
/* Waits until everything flushed is committed (visible to readers and
 * safe from a killed process). */
int ht_engine_sync(struct ht_engine *e);
/* Waits until everything flushed is committed, then runs fn on the
 * calling thread while the writer is held idle (no batch, no upkeep of its
 * own), so fn may write to the store: e.g. catching the upkeep up before a
 * finite ingest exits. fn's error becomes the engine's. */
int ht_engine_settle(struct ht_engine *e,
                     int (*fn)(void *ctx, struct ht_store *s), void *ctx);
/* Reads a committed checkpoint value. HT_ERR_OK, HT_ERR_NOTFOUND or a
 * store error; copies at most cap bytes, *n is the full size. */
int ht_engine_get_ckpt(struct ht_engine *e, const char *key, void *buf,
                       size_t cap, size_t *n);
/* Totals of what was committed; read after ht_engine_sync. Borrowed. */
const struct ht_engine_totals *ht_engine_totals(const struct ht_engine *e);
uint64_t ht_engine_rejected(const struct ht_engine *e);
/* Pending halves in the store (committed state); -1 on error. */
int64_t ht_engine_pending(struct ht_engine *e);
/* The store, borrowed until ht_engine_close: for read transactions only
 * (the writer thread owns writing; write from the upkeep hook). */
struct ht_store *ht_engine_store(struct ht_engine *e);
/* Asks ht_engine_run to commit and return. Async-signal-safe. */
void ht_engine_request_stop(struct ht_engine *e);

/* Above this anonymous resident size (RssAnon) the engine halves its
 * batches (twice at most) so the process stays within
 * HT_ENGINE_ANON_BOUND. The store's mapped pages are the page cache's,
 * not the process's, and are never given up (re-faulting them costs more
 * than it saves). */
#define HT_ENGINE_ANON_SOFT ((uint64_t)128 << 20)
#define HT_ENGINE_ANON_BOUND ((uint64_t)256 << 20)
/* This process's RssAnon from /proc/self/status, in bytes (0: unknown). */
uint64_t ht_engine_rss_anon(void);

/* ---- sources ------------------------------------------------------------ */

enum ht_poll {
    HT_POLL_END = 0,  /* the source has nothing more, ever */
    HT_POLL_DATA = 1, /* decoded something; poll again */
    HT_POLL_IDLE = 2, /* nothing came within the timeout */
    HT_POLL_FLUSH = 3 /* decoded something; commit now (e.g. a file ended) */
};

struct ht_source_ops {
    const char *name;          /* "file", "udp" */
    const struct ht_opt *opts; /* options of its own, or NULL */
    size_t cfg_size;           /* size of its option struct */
    /* on a stop request, poll (with timeout 0) until nothing is left, so
     * what the kernel buffered is committed too (UDP) */
    bool drain_on_stop;
    /* Creates the source's state from its options, before the store is
     * opened (so a source with nothing to read need not create one).
     * Errors are reported (logged) by the source. */
    int (*open)(const void *cfg, void **state);
    /* Decodes what is there into ht_engine_batch(e), waiting at most
     * timeout_ms for input. Returns an enum ht_poll or a negative
     * enum ht_err... as -(code). */
    int (*poll)(void *state, struct ht_engine *e, int timeout_ms);
    /* Commits the current batch: calls ht_engine_flush with the entries
     * that say "everything up to here is in this batch". */
    int (*checkpoint)(void *state, struct ht_engine *e);
    void (*close)(void *state);
};

/* ---- the file source: files, folders (walked) and streams (stdin, a
 * FIFO named on the command line) ---------------------------------------- */

/* Where a run over files stands (ht_files_cfg.progress). */
struct ht_files_progress {
    const char *name;   /* the oldest file being read */
    size_t file, files; /* its place in the list (from 1), and the list's
                           length */
    size_t reading;     /* files being read at once (interleaved), >= 1 */
    size_t last;        /* the place of the newest of them (from 1) */
    /* bytes as the files are on disk (gzip'd ones as such): done, read
     * (the files before it whole: read, skipped or unreadable), and
     * total, of every file; 0 for a stream, which has no size */
    uint64_t done, total;
    uint64_t documents; /* documents ingested */
};

struct ht_files_cfg {
    char *const *paths; /* files, folders, "-" for stdin (borrowed) */
    size_t npaths;
    int stream_wait_ms; /* a stream commits after this long without input
                           (0: 200) */
    /* progress, called often (the callee rate-limits); NULL: none */
    void (*progress)(void *ctx, const struct ht_files_progress *p);
    void *progress_ctx;
};

struct ht_files_stats {
    uint64_t inputs;  /* files and streams found to read */
    uint64_t files;   /* files and streams read */
    uint64_t skipped; /* files already ingested (checkpoint: complete) */
    uint64_t skipped_rejected; /* of those, files that had rejects then */
    uint64_t skipped_rejects;  /* and how many */
    uint64_t unreadable; /* named paths that could not be read (reported) */
    uint64_t special;    /* walk: FIFOs, sockets, devices, loops skipped */
    uint64_t truncated;  /* files that ended early (truncated gzip) */
};

extern const struct ht_source_ops ht_source_files;
/* Counters of an open file source (state from ht_source_files.open). */
void ht_files_stats(const void *state, struct ht_files_stats *out);

/* ---- the UDP source: X-Ray daemon datagrams ----------------------------- */

struct ht_udp_cfg {
    const char *listen;  /* HOST:PORT, [V6]:PORT or PORT; NULL:
                            127.0.0.1:2000; port 0 picks a free one */
    const char *forward; /* --forward HOST:PORT, or NULL */
};

struct ht_udp_stats {
    uint64_t received, accepted, rejected, fwd_errors;
    char where[80]; /* the address listened on */
};

extern const struct ht_opt ht_udp_opt_table[]; /* of struct ht_udp_cfg */
extern const struct ht_source_ops ht_source_udp;
void ht_udp_stats(const void *state, struct ht_udp_stats *out);

/* ---- addresses of the network sources ---------------------------------- */

struct sockaddr;
struct sockaddr_storage;
/* HOST:PORT, [V6HOST]:PORT or PORT alone (host 127.0.0.1) for a socket of
 * `socktype` (SOCK_DGRAM, SOCK_STREAM); passive: an address to listen on.
 * 0, or -1 when it does not resolve. */
int ht_addr_resolve(const char *spec, int socktype, bool passive,
                    struct sockaddr_storage *ss, socklen_t *len);
/* "1.2.3.4:5" or "[::1]:5" ("?" for anything else, or NULL). */
void ht_addr_format(const struct sockaddr *sa, char *out, size_t n);

/* ---- the OTLP/HTTP source: OpenTelemetry exports ----------------------- */

struct ht_otlp_cfg {
    const char *listen; /* HOST:PORT, [V6]:PORT or PORT; NULL:
                           127.0.0.1:4318; port 0 picks a free one */
    size_t max_body;    /* --max-body BYTES (before and after gunzip) */
};

struct ht_otlp_stats {
    uint64_t requests;       /* HTTP requests */
    uint64_t accepted;       /* exports answered 200 */
    uint64_t partial;        /* of those, with spans rejected */
    uint64_t spans;          /* spans in accepted exports */
    uint64_t rejected_spans; /* of those, rejected */
    uint64_t bad;            /* 400: the body could not be decoded */
    uint64_t too_large;      /* 413 */
    uint64_t unsupported;    /* 415 */
    uint64_t other;          /* 404, 405 */
    uint64_t unavailable;    /* 503: not committed */
    char where[80];          /* the address listened on */
};

extern const struct ht_opt ht_otlp_opt_table[]; /* of struct ht_otlp_cfg */
/* open: HT_ERR_USAGE (bad address), HT_ERR_IO (cannot listen). Every
 * export is answered after the batch holding it is committed. */
extern const struct ht_source_ops ht_source_otlp;
void ht_otlp_stats(const void *state, struct ht_otlp_stats *out);

/* ---- the Kafka source: a consumer in a consumer group -------------------- */

struct ht_kafka_cfg {
    const char *brokers;         /* --kafka BROKERS */
    struct ht_opt_list topics;   /* --topic T[,T...], repeatable */
    const char *group;           /* --group G (default hoptrace) */
    struct ht_opt_list x;        /* -X key=value: librdkafka settings */
    const char *dlq_topic;       /* --dlq-topic T, or NULL */
    double until_idle;           /* the shared --until-idle: the source ends
                                    itself, counting from the assignment */
    volatile sig_atomic_t *stop; /* set by a signal: stop connecting */
};

struct ht_kafka_stats {
    uint64_t messages, bytes;
    uint64_t dlq_produced; /* acknowledged by the brokers */
    uint64_t dlq_failed;   /* given up on: the dead-letter table has them */
    int64_t busy_us;       /* first message to the commit of the last */
    bool fatal; /* a Kafka error that retrying will not fix (logged) */
    const char *dlq_topic;
};

extern const struct ht_opt ht_kafka_opt_table[]; /* of struct ht_kafka_cfg */
/* open: HT_ERR_USAGE (bad settings), HT_ERR_NOTFOUND (a topic does not
 * exist), HT_ERR_IO (brokers unreachable within until_idle). Rebalances
 * commit through the engine inside poll and close: close the source
 * before the engine. */
extern const struct ht_source_ops ht_source_kafka;
/* The run's counts; first waits (up to 10 s) for the dead-letter
 * producer's outstanding messages, so that they are final. */
void ht_kafka_stats(void *state, struct ht_kafka_stats *out);

/* ---- the Kinesis source: every shard of a stream ------------------------ */

struct ht_kinesis_src_cfg {
    const char *stream;          /* --kinesis STREAM */
    const char *endpoint;        /* --endpoint URL, or NULL */
    const char *region;          /* --region R, or NULL: the environment's */
    const char *from;            /* --from trim-horizon|latest|timestamp:S */
    size_t limit;                /* --limit N records per GetRecords */
    double until_idle;           /* the shared --until-idle: the source ends
                                    itself; also bounds retries (10 attempts) */
    volatile sig_atomic_t *stop; /* set by a signal: stop retrying */
};

struct ht_kinesis_src_stats {
    const char *stream;
    size_t nshards;
    bool failed;       /* the run ended on a Kinesis error */
    bool usage;        /* ... that says the command is wrong (auth, name) */
    const char *error; /* its message (borrowed until close) */
    const char *hint;  /* what to do */
};

extern const struct ht_opt ht_kinesis_src_opt_table[];
/* open: HT_ERR_USAGE (no stream, region, credentials, bad --from or
 * --endpoint; logged). */
extern const struct ht_source_ops ht_source_kinesis;
void ht_kinesis_src_stats(const void *state, struct ht_kinesis_src_stats *out);
/* Appends the summary's tail: each shard's lag, retries. */
void ht_kinesis_src_describe(const void *state, struct ht_buf *out);
/* One record's Data (base64, as GetRecords gives it) into b: decoded,
 * de-aggregated when it is a KPL record, each payload sniffed by
 * ht_ingest_payload; Data that is not base64 and a KPL record whose
 * protobuf does not decode are rejects. *scratch (owned by the caller,
 * *scap bytes) is grown as needed. */
void ht_kinesis_decode_record(struct ht_batch *b, const struct ht_srcpos *pos,
                              const char *data, size_t len, uint8_t **scratch,
                              size_t *scap);

/* Runs a source until it ends, until_idle passes, or a stop is requested;
 * commits every batch_docs records and when input pauses
 * (commit_ms at the latest). Returns the first error. */
int ht_engine_run(struct ht_engine *e, const struct ht_source_ops *ops,
                  void *state, const struct ht_ingest_opts *o, int commit_ms);

#endif
