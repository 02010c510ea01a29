/*
 * ht_store.h - the LMDB store: one environment, named databases, compact
 * binary records (see design.md "Store").
 *
 *   meta        "schema_version" -> u32, "newest_event" -> i64, counters
 *   nodes       trace id (16) + span id (8) -> packed ht_span; read and
 *               written by span id (8): the store finds the trace in
 *               `spans` (get, del) or in the packed record (put). A
 *               trace's spans are one range: scan with the 16-byte prefix
 *   spans       day (2, big endian: the span's start, days since the
 *               epoch) + span id (8) -> trace id (16), maintained with
 *               nodes; a lookup by span id probes the days present, newest
 *               first, so inserts land in the newest day's part of the tree
 *   inv         Lambda request id -> packed ht_inv (what logs say)
 *   facts       request id NUL fact-hash (8) -> packed ht_fact
 *               (records an invocation received, correlation lines)
 *   keys        prefix byte + key bytes -> target (dupsort); a target is
 *               'S' + span id (8) or 'I' + Lambda request id. A trace's
 *               and a parent's spans are not in keys: they are ranges of
 *               nodes ('T' keys name invocations only)
 *   pending     hop key -> half awaiting its match (state + time)
 *   by_time     last event µs (8, big endian, sign bit flipped) + 'S' +
 *               span id (8) -> trace id (16), or
 *               + 'I' + packed Lambda request id -> empty:
 *               one entry per node and per invocation, in the order they
 *               expire (retention, ht_prune.h); a node's entry names its
 *               trace, so retention finds the node by its stored key
 *               (an empty value, as stores before it wrote: through spans)
 *   checkpoints source id -> position
 *   dlq         source NUL offset (8, big endian) -> packed reject
 *   stages      per-stage stall state (see assembler/stages)
 *   dirty       trace id (16) -> empty: written by every batch that
 *               touched the trace; consumed by the aggregate refresh
 *   agg         request summaries and route / function aggregates
 *
 * Memory rule: values returned by get/visit are borrowed from LMDB and
 * valid until the transaction ends (commit, abort) or the next write to the
 * same database in a write transaction. Unpacked records copy their
 * strings into the caller's arena.
 *
 * Owned by store/. It knows nothing of JSON or of how requests are
 * assembled.
 */
#ifndef HT_STORE_H
#define HT_STORE_H

#include "ht_common.h"
#include "ht_model.h"

#include <stdio.h>
#include <string.h>

#define HT_SCHEMA_VERSION 4

enum ht_db {
    HT_DB_META,
    HT_DB_NODES,
    HT_DB_INV,
    HT_DB_FACTS,
    HT_DB_KEYS,
    HT_DB_PENDING,
    HT_DB_BYTIME,
    HT_DB_CHECKPOINTS,
    HT_DB_DLQ,
    HT_DB_STAGES, /* stall detection: per-stage state (assembler/stages) */
    HT_DB_DIRTY,  /* trace id (16) -> "" : traces changed since the
                     request summaries were last refreshed */
    HT_DB_AGG,    /* request summaries and per-route / per-function
                     aggregates (query side, refreshed from dirty) */
    HT_DB_SPANS,  /* day (2) + span id (8) -> trace id (16): with nodes */
    HT_DB_HOPS,   /* stall detection: per-hop state, kept per epoch
                     (assembler/stages.h) */
    HT_DB__COUNT
};

/* Key prefixes in HT_DB_KEYS. Stored: never change a letter. */
enum {
    HT_K_TRACE = 'T',     /* trace id (16) -> invocations (its spans are
                             the trace's range of nodes) */
    HT_K_CHILD = 'C',     /* not stored since schema 2: a parent's children
                             are in its trace's range of nodes */
    HT_K_LAMBDA = 'L',    /* Lambda request id -> AWS::Lambda span */
    HT_K_APIGW = 'A',     /* API Gateway request id -> stage span / inv */
    HT_K_APIGW_EXT = 'E', /* extended request id -> stage span / inv */
    HT_K_CORR = 'K',      /* correlation id -> spans / invocations */
    HT_K_SQS = 'M',       /* SQS message id -> producer span / consumer inv */
    HT_K_KINESIS = 'Q',   /* stream '/' sequence number -> span / inv */
    HT_K_KSEQ = 'q',      /* Kinesis sequence number alone -> inv / span */
    HT_K_DDB = 'D',       /* DynamoDB stream sequence number -> inv */
    HT_K_LINK = 'R',      /* linked span id (8) -> span holding the link */
    HT_K_HEADER = 'H',    /* AWSTraceHeader Parent (8) -> consumer inv */
    HT_K_SEGMENT = 'G',   /* function segment id (8) from REPORT -> inv */
    HT_K_SNS = 'N',       /* SNS message id -> Publish span / subscriber inv */
    HT_K_EVENT = 'V'      /* EventBridge event id -> PutEvents span / target
                             inv */
};

/*
 * The message-id hops (design.md "The causal graph"): the key prefix a
 * record id of `via` is indexed under in HT_DB_KEYS and the prefix of its
 * hop key in HT_DB_PENDING ("sqs:<id>", "sns:<id>", "events:<id>"). 0 and
 * NULL for a via whose record ids are not message ids. The assembler,
 * retention and the query derive the keys from here, so they agree.
 */
static inline char ht_msgid_prefix(int via)
{
    return via == HT_VIA_SQS           ? (char)HT_K_SQS
           : via == HT_VIA_SNS         ? (char)HT_K_SNS
           : via == HT_VIA_EVENTBRIDGE ? (char)HT_K_EVENT
                                       : 0;
}

/* The via of the message id a producer span recorded (aws.message_id):
 * an SNS Publish's or a PutEvents' own, any other span's an SQS one. */
static inline int ht_span_msgid_via(const struct ht_span *s)
{
    return s->via == HT_VIA_SNS || s->via == HT_VIA_EVENTBRIDGE ? s->via
                                                                : HT_VIA_SQS;
}

/* SNS and EventBridge hop keys: one producer, a consumer per subscriber
 * or rule target (assembler.c, fanout_consumer). */
static inline bool ht_fanout_hop(const char *hk)
{
    return strncmp(hk, "sns:", 4) == 0 || strncmp(hk, "events:", 7) == 0;
}

/* The pending entry that notes one consumer of a fan-out hop key:
 * "<key>#<request id>" into out; its length, 0 when it does not fit. */
static inline size_t ht_fanout_mark(char *out, size_t cap, const char *hk,
                                    const char *request_id)
{
    int n = snprintf(out, cap, "%s#%s", hk, request_id);

    return n > 0 && (size_t)n < cap && n <= 400 ? (size_t)n : 0;
}

static inline const char *ht_msgid_hop(int via)
{
    return via == HT_VIA_SQS           ? "sqs"
           : via == HT_VIA_SNS         ? "sns"
           : via == HT_VIA_EVENTBRIDGE ? "events"
                                       : NULL;
}

enum { HT_TARGET_SPAN = 'S', HT_TARGET_INV = 'I' };

struct ht_store;
struct ht_txn;

/* Open (and for writers create) the store in directory `dir`.
 * Errors: HT_ERR_NOTFOUND (no store there, read-only), HT_ERR_SCHEMA,
 * HT_ERR_STORE (logged with LMDB's message). Owned: ht_store_close. */
int ht_store_open(const char *dir, bool readonly, struct ht_store **out);
void ht_store_close(struct ht_store *s);
/* The folder the store was opened in (borrowed until ht_store_close). */
const char *ht_store_dir(const struct ht_store *s);
/*
 * Bulk-ingest mode: with nosync on, commits are atomic and visible but not
 * flushed to disk one by one; ht_store_sync flushes everything committed.
 * A killed process loses nothing (the pages are in the OS's cache); an OS
 * crash or power loss before the next sync can lose the store, which is
 * why ingest syncs every second and before it exits, and offers
 * --durable for a flush per commit.
 */
int ht_store_set_nosync(struct ht_store *s, bool on);
int ht_store_sync(struct ht_store *s);
/*
 * The pages a writer will take next, mapped ahead: up to `step` bytes more
 * past the last page in use, as far ahead as the store has grown since
 * this process first called, and `most` (16 MiB at most; SIZE_MAX: no
 * other bound). Otherwise the first touch
 * of each new page of data.mdb is a page fault on the writer's thread.
 * For a thread with time to spare, any time, also while a write
 * transaction runs: it changes no byte of the file. Returns whether it
 * mapped anything (false: nothing to do, a read-only store, or a kernel
 * without MADV_POPULATE_WRITE). ht_store_close gives back what was mapped
 * ahead and not taken. It waits out a remap (as beginning a transaction
 * does): call it with no transaction of the calling thread open.
 */
bool ht_store_map_ahead(struct ht_store *s, size_t step, size_t most);
/* Bytes the store has grown by since this process first mapped ahead. */
size_t ht_store_grown(struct ht_store *s);

/* Double the map size (at least to the file's size); only with no
 * transaction open. The map never shrinks below data.mdb: another process
 * may have it mapped. */
int ht_store_grow(struct ht_store *s);

/*
 * Runs fn, which does its work in write transactions of its own (begun and
 * committed or aborted inside), and while it reports a full map
 * (HT_ERR_MAPFULL) grows the map and runs it again, up to
 * HT_STORE_GROW_RETRIES times: the shape of every bounded slice of work
 * done between batches (retention, aggregate updates). Only with no
 * transaction of this process open, like ht_store_grow.
 */
#define HT_STORE_GROW_RETRIES 24
typedef int (*ht_store_write_fn)(struct ht_store *s, void *ctx);
int ht_store_write_growing(struct ht_store *s, ht_store_write_fn fn, void *ctx);

/* Transactions of one store may be used by many threads at once (each
 * transaction by one thread at a time): a remap (grow, or adopting another
 * process's growth) waits until none is open. A thread must not begin a
 * transaction while it holds another. */
int ht_store_begin(struct ht_store *s, bool write, struct ht_txn **out);
/* HT_ERR_MAPFULL when the map is full: the txn is gone, grow and redo. */
int ht_store_commit(struct ht_txn *t);
void ht_store_abort(struct ht_txn *t);

/*
 * Bulk puts, prepared outside any transaction (on another thread, say) and
 * written into one later: index entries (keys, facts, nodes, by_time,
 * dirty; ht_bulk_deferrable) are collected, sorted once by ht_bulk_sort,
 * and written in key order by ht_store_bulk_apply. Applying does not
 * change the set, so it can be applied again after a MAPFULL retry.
 */
struct ht_bulk;
struct ht_bulk *ht_bulk_new(void);
void ht_bulk_free(struct ht_bulk *b);
bool ht_bulk_deferrable(int db);
/* HT_ERR_USAGE for a database that cannot be bulk-written. */
int ht_bulk_put(struct ht_bulk *b, int db, const void *k, size_t kn,
                const void *v, size_t vn);
int ht_bulk_sort(struct ht_bulk *b);
int ht_store_bulk_apply(struct ht_txn *t, const struct ht_bulk *b);

/*
 * Gets and puts of one table's keys in ascending order, through one
 * cursor: LMDB looks for a key on the leaf page the last one was found on
 * before it descends from the root, so neighbouring keys cost a page
 * each, not a path. Only for tables not kept per epoch (HT_ERR_USAGE
 * otherwise); puts only in a write transaction, to a table written
 * directly (not `keys`, not the deferred ones). Other writes of the
 * transaction may come between (LMDB keeps the cursor right); deferred
 * ones (ht_store_*_later) are applied first, as ht_store_get does. *v as
 * ht_store_get's. Closed by ht_store_seq_close before its transaction
 * ends.
 */
struct ht_seq;
int ht_store_seq_open(struct ht_txn *t, int db, struct ht_seq **out);
int ht_store_seq_get(struct ht_seq *q, const void *k, size_t kn, const void **v,
                     size_t *vn);
int ht_store_seq_put(struct ht_seq *q, const void *k, size_t kn, const void *v,
                     size_t vn);
void ht_store_seq_close(struct ht_seq *q);

/* Put; in dupsort databases (keys) an identical pair is a no-op.
 * Returns HT_ERR_MAPFULL when the map is full (abort, grow, redo); once a
 * write transaction has hit a full map every later call on it returns
 * HT_ERR_MAPFULL too. `nodes` takes the span id (8) as key and a packed
 * span as value; `spans` is not written directly. */
int ht_store_put(struct ht_txn *t, int db, const void *k, size_t kn,
                 const void *v, size_t vn);
/* HT_ERR_NOTFOUND when absent. *v borrowed (see memory rule). */
int ht_store_get(struct ht_txn *t, int db, const void *k, size_t kn,
                 const void **v, size_t *vn);
int ht_store_del(struct ht_txn *t, int db, const void *k, size_t kn);
/* Deletes one key/value pair of a dupsort database (keys);
 * HT_ERR_NOTFOUND when it was not there. */
int ht_store_del_pair(struct ht_txn *t, int db, const void *k, size_t kn,
                      const void *v, size_t vn);

/* Visitor: return non-zero to stop early. */
typedef int (*ht_store_visit_fn)(void *ctx, const void *k, size_t kn,
                                 const void *v, size_t vn);
/* Every value of key k in a dupsort database. */
/* A delete recorded and applied with the deferred puts of its database
 * in key order (at commit, ht_store_flush, or before anything reads or
 * writes that database): sorted deletes share their leaf pages, as sorted
 * puts do. In keys it deletes the pair (k, v); elsewhere the key k, only
 * while it holds the value v (any value when vn == 0). What is not there
 * is no error. Not for nodes and spans (ht_store_node_del_later):
 * HT_ERR_USAGE. */
int ht_store_del_later(struct ht_txn *t, int db, const void *k, size_t kn,
                       const void *v, size_t vn);
/* The deferred delete of node (trace, id), found by its stored key with no
 * lookup, and of its `spans` entry (the day of start_us) while that names
 * this trace. */
int ht_store_node_del_later(struct ht_txn *t, const struct ht_tid *trace,
                            const struct ht_id8 *id, int64_t start_us);
/* Applies every deferred put and delete now; *deleted (NULL: not wanted)
 * is how many entries this transaction's deferred deletes removed so far
 * (every database; ht_store_deleted tells them apart). */
int ht_store_flush(struct ht_txn *t, uint64_t *deleted);
/* Entries of database db removed by this transaction's deferred deletes
 * applied so far (nodes: with their spans entries counted under spans). */
uint64_t ht_store_deleted(struct ht_txn *t, int db);
/* LMDB's id of the transaction: a read transaction's is that of the
 * commit it sees; a write transaction's is one more than the last commit.
 * So a write transaction begun after a read one saw everything the
 * reader saw, and nothing newer, when its id is the reader's + 1. */
uint64_t ht_store_txn_id(const struct ht_txn *t);
int ht_store_dups(struct ht_txn *t, int db, const void *k, size_t kn,
                  ht_store_visit_fn fn, void *ctx);
/* Every pair whose key starts with prefix (all pairs when pn == 0). */
int ht_store_scan(struct ht_txn *t, int db, const void *prefix, size_t pn,
                  ht_store_visit_fn fn, void *ctx);
/* Every pair from the first key at or after `from` (fn bytes; the first
 * key when fn == 0) on, in key order, until the visitor stops: a seek, for
 * walks that skip ahead (assembler/stages retention). */
int ht_store_scan_from(struct ht_txn *t, int db, const void *from, size_t fn,
                       ht_store_visit_fn visit, void *ctx);
/* Every pair from the last key at or before `from` (fn bytes) back, in
 * reverse key order, while the key starts with prefix (pn bytes; no bound
 * when 0), until the visitor stops: newest first over a time-ordered
 * index (Jaeger's search over the 'W' summaries). */
int ht_store_scan_back(struct ht_txn *t, int db, const void *from, size_t fn,
                       const void *prefix, size_t pn, ht_store_visit_fn visit,
                       void *ctx);
/* Number of entries in a database. */
int ht_store_count(struct ht_txn *t, int db, uint64_t *n);

/* The newest event time (µs) the store has seen, INT64_MIN when empty: the
 * writer notes every batch's latest event (ht_store_note_event, in the
 * batch's transaction); `ingest --retain` measures its cut-off from it. */
int64_t ht_store_newest_event(struct ht_txn *t);
int ht_store_note_event(struct ht_txn *t, int64_t ts_us);

/*
 * Epochs (design.md "Store", "Epochs"): nodes, spans, inv, facts, keys,
 * pending and by_time are kept per epoch, a window of event time. Writes
 * go to the current epoch, reads merge all live ones (the newest copy of a
 * key wins), deletes delete in all of them, and retention drops whole
 * epochs. Every call above works across epochs; what follows starts and
 * drops them.
 */
/* The length of an epoch (µs) the writer starts new ones at; 0: never (a
 * store without --retain). Kept in meta by ht_store_set_epoch_len. */
int64_t ht_store_epoch_len(const struct ht_store *s);
int ht_store_set_epoch_len(struct ht_store *s, int64_t len_us);
/* Before the write transaction of a batch whose newest event is
 * newest_us: starts a new epoch (its own transaction) when `timed` (the
 * writer drops expired epochs: it runs with retention) and that event is
 * an epoch length past the current one's start (epochs start at multiples
 * of the length), or every HOPTRACE_EPOCH_EVERY calls (tests). A writer
 * without retention keeps writing into the current epoch, so a store
 * once given --retain does not pile up epochs nobody drops. No
 * transaction of this process may be open on this thread. */
int ht_store_rotate(struct ht_store *s, int64_t newest_us, bool timed,
                    bool *rotated);

struct ht_epoch {
    uint32_t id;
    int64_t start_us;  /* event time the epoch begins at */
    int64_t newest_us; /* the newest event noted while it was current */
};
/* The live epochs, newest (current) first, up to cap into out; returns how
 * many there are. */
unsigned ht_store_epochs(struct ht_txn *t, struct ht_epoch *out, unsigned cap);
/* Every pair of database db in the ep-th epoch alone (ht_store_epochs'
 * order) whose key starts with prefix (pn bytes; 0: all), in key order. */
int ht_store_scan_epoch(struct ht_txn *t, int db, unsigned ep,
                        const void *prefix, size_t pn, ht_store_visit_fn fn,
                        void *ctx);
/* How many entries database db has in the ep-th epoch alone whose key
 * starts with prefix (pn bytes; 0: all of them, without reading them). */
int ht_store_count_epoch(struct ht_txn *t, int db, unsigned ep,
                         const void *prefix, size_t pn, uint64_t *n);
/* Whether an epoch newer than the ep-th holds key k (a newer copy). */
bool ht_store_in_newer(struct ht_txn *t, int db, unsigned ep, const void *k,
                       size_t kn);
/* Drops, whole, the oldest epochs whose newest event is before before_us
 * (never the current one): one write transaction takes them out of the
 * store's view, and pre (may be NULL) runs in it first for each epoch
 * about to go (its index in ht_store_epochs' order), to account for what
 * goes; their tables are then dropped one per transaction (so that no
 * transaction frees more than a table's pages), and what an interrupted
 * call left is dropped first. *dropped: how many. Holds back every other
 * transaction of this process meanwhile; the caller holds none.
 *
 * A transaction that fails on a full map is redone once the map has
 * grown, and pre runs again for every epoch: `first` is true for the
 * first epoch of each transaction, where a pre that counts what goes
 * starts its count over. The count is what went only once this returns
 * OK. */
typedef int (*ht_store_drop_fn)(void *ctx, struct ht_txn *t, unsigned ep,
                                bool first);
int ht_store_drop_epochs(struct ht_store *s, int64_t before_us,
                         ht_store_drop_fn pre, void *ctx, unsigned *dropped);
/* For tests: the next N transactions of ht_store_drop_epochs fail as if
 * the map were full once every pre has run (and are redone). */
extern unsigned ht_store_test_drop_mapfull;
/* For tests: the next N calls of ht_store_drop_epochs return once the
 * epochs are out of the view, their tables left, as a crash there would
 * leave them. */
extern unsigned ht_store_test_drop_unfinished;

/* Counters kept in meta ("c:" + name), for pending hops and the like. */
int64_t ht_store_counter(struct ht_txn *t, const char *name);
int ht_store_counter_add(struct ht_txn *t, const char *name, int64_t delta);

/* ---- records ----------------------------------------------------------- */

/* What the logs say about one invocation, merged from all its lines. */
enum {
    HT_INV_HAS_START = 1u << 0,
    HT_INV_HAS_REPORT = 1u << 1,
    HT_INV_HAS_TRACE = 1u << 2,
    HT_INV_HAS_SEGMENT = 1u << 3,
    HT_INV_COLD = 1u << 4,
    HT_INV_WARM = 1u << 5,
    HT_INV_FAILED = 1u << 6,
    HT_INV_HAS_END = 1u << 7
};

struct ht_inv {
    const char *request_id;
    const char *function;
    uint32_t flags;
    int64_t start_ts;  /* START line time */
    int64_t end_ts;    /* END line time */
    int64_t report_ts; /* REPORT line time */
    int64_t first_ts;  /* earliest line of the invocation */
    int64_t duration_us;
    int64_t init_us;
    int64_t billed_ms;
    int64_t memory_mb;
    int64_t max_memory_mb;
    struct ht_tid trace;
    struct ht_id8 segment;
};

/* Packing appends to `out`. Unpacking copies strings into `a`; returns
 * HT_ERR_CORRUPT on a malformed value. */
void ht_span_pack(const struct ht_span *s, struct ht_buf *out);
int ht_span_unpack(const void *v, size_t n, struct ht_arena *a,
                   struct ht_span *out);
/* Just the flags of a packed span (no strings copied): HT_ERR_CORRUPT on a
 * malformed value. */
int ht_span_peek_flags(const void *v, size_t n, uint32_t *flags);
/* Just the trace id / the parent id (zero when none) of a packed span. */
int ht_span_peek_trace(const void *v, size_t n, struct ht_tid *trace);
int ht_span_peek_parent(const void *v, size_t n, struct ht_id8 *parent);
int ht_span_peek_start(const void *v, size_t n, int64_t *start_us);

/* When a node / an invocation last showed activity (µs): its end, or its
 * start while it has none. Retention orders and removes by this time. */
int64_t ht_span_last_us(const struct ht_span *s);
int64_t ht_inv_last_us(const struct ht_inv *inv);

/* by_time keys (see the layout above); out holds HT_BYTIME_KEY_MAX bytes. */
#define HT_BYTIME_SPAN 'S'
#define HT_BYTIME_INV 'I'
#define HT_BYTIME_KEY_MAX (9 + HT_ID_PACKED_MAX)
/* The time is stored with its sign bit flipped, so that byte order is time
 * order for negative times too (a bad clock must not hide from retention). */
#define HT_BYTIME_SIGN (1ull << 63)
int64_t ht_bytime_time(const uint8_t *key);
size_t ht_bytime_span_key(uint8_t *out, int64_t last_us,
                          const struct ht_id8 *id);
size_t ht_bytime_inv_key(uint8_t *out, int64_t last_us, const uint8_t *prid,
                         size_t prn);
void ht_inv_pack(const struct ht_inv *inv, struct ht_buf *out);
int ht_inv_unpack(const void *v, size_t n, struct ht_arena *a,
                  struct ht_inv *out);
/* Fold one fact into an invocation; returns true when it changed. */
bool ht_inv_merge(struct ht_inv *inv, const struct ht_fact *f);
void ht_fact_pack(const struct ht_fact *f, struct ht_buf *out);
int ht_fact_unpack(const void *v, size_t n, struct ht_arena *a,
                   struct ht_fact *out);

/* Build a keys-db key: prefix byte + bytes (long keys are shortened with a
 * hash so they fit LMDB's key limit). Returns the length written to out,
 * which must hold HT_KEY_MAX bytes. */
#define HT_KEY_MAX 480
size_t ht_key_make(uint8_t *out, char prefix, const void *p, size_t n);

/*
 * Text ids (Lambda and API Gateway request ids, SQS message ids,
 * correlation ids) are stored packed: a canonical lowercase UUID as 0x01 +
 * its 16 bytes, anything else as 0x00 + its text. Unpacking restores the
 * exact text. `out` must hold n + 1 bytes (HT_ID_PACKED_MAX for ids up to
 * 255 bytes).
 */
#define HT_ID_PACKED_MAX 257
size_t ht_id_pack(const char *s, size_t n, uint8_t *out);
/* Writes the text + NUL into out (cap bytes); returns its length, or 0 when
 * the packed form is malformed. */
size_t ht_id_unpack(const uint8_t *p, size_t n, char *out, size_t cap);
/* A keys-db key for a text id: prefix + packed id. */
size_t ht_key_make_id(uint8_t *out, char prefix, const char *s);

/* Big-endian helpers for ordered keys (inline: sorts and hash probes
 * call them in their inner loops). */
static inline void ht_be64_put(uint8_t *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

static inline uint64_t ht_be64_get(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}

#endif
