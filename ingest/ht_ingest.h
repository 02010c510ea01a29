/*
 * ht_ingest.h - turning bytes into hoptrace's own structs.
 *
 * A payload (a file's JSON value, a Kafka message, a Kinesis record, a UDP
 * datagram) is sniffed, not configured: gzip is inflated, base64 blobs in
 * known envelopes are decoded and sniffed again, and every JSON document
 * kind of design.md ("Input documents") is recognised by its fields. What
 * comes out is a batch of spans (ht_span), invocation facts (ht_fact) and
 * rejects, all living in the batch's arena. No JSON tree leaves this
 * module.
 *
 * Owned by ingest/. It must not touch LMDB: persisting is assembler/ and
 * store/'s job.
 */
#ifndef HT_INGEST_H
#define HT_INGEST_H

#include "ht_common.h"
#include "ht_model.h"

/* Limits (design.md): explicit and following the transports'. */
#define HT_MAX_SEGMENT_BYTES (64 * 1024)
#define HT_MAX_LOG_EVENT_BYTES (256 * 1024)
#define HT_MAX_CONTAINER_BYTES (16 * 1024 * 1024)
#define HT_MAX_DEPTH 64
#define HT_MAX_DLQ_SAMPLE 4096
#define HT_JSON_SLOTS 10

struct hj_parser;

/* Where a payload came from, for dead-letter entries and checkpoints. */
struct ht_srcpos {
    const char *source; /* file path, "stdin", "kafka:topic/3", … */
    uint64_t offset;    /* byte offset of the value in the source */
};

/* One rejected payload, kept for the dead-letter table. */
struct ht_rejected {
    uint8_t reason; /* enum ht_reject */
    const char *source;
    uint64_t offset;
    const char *detail; /* one line: what was wrong */
    const char *sample; /* the payload's first bytes */
    size_t sample_len;
};

/* A batch of decoded input. Everything it points to lives in `arena`. */
struct ht_batch {
    struct ht_arena *arena; /* owned */
    struct ht_span *spans;  /* owned (heap array) */
    size_t nspans, capspans;
    struct ht_fact *facts; /* owned (heap array) */
    size_t nfacts, capfacts;
    struct ht_rejected *rejects; /* owned (heap array) */
    size_t nrejects, caprejects;
    /* counters for the summary line */
    uint64_t documents;  /* X-Ray documents and log events accepted */
    uint64_t log_events; /* log events seen */
    uint64_t dropped;    /* control messages and other deliberate drops */
    uint64_t rejected[HT_REJ__COUNT];
    size_t payload_bytes;
    /* JSON parsers, one per nesting slot (ingest-internal, created on first
     * use, kept across resets so their buffers are reused) */
    struct hj_parser *parsers[HT_JSON_SLOTS];
    /* Called between the records of a large envelope (a GetRecords
     * response, a CloudWatch Logs message, an array of documents), where
     * everything added so far is complete: the owner may hand the records
     * gathered so far to the writer (ht_batch_move_records) so one large
     * value does not become one huge batch. NULL: never. */
    void (*yield)(void *ctx, struct ht_batch *b);
    void *yield_ctx;
    /* Decoder option (NULL: none), `ingest --log-group NAME`: the log group
     * of log events whose envelope names none (`aws logs filter-log-events`
     * output); /aws/lambda/NAME names the function NAME. Borrowed; kept
     * across ht_batch_reset and not moved by ht_batch_move_records, so a
     * caller that decodes into several batches sets it on each. */
    const char *default_log_group;
    /* When set, every reject also counts here (a source's per-input tally,
     * e.g. the rejects of one file for its checkpoint). Not moved by
     * ht_batch_move_records, not cleared by ht_batch_reset. */
    uint64_t *reject_tally;
};

/* Returns 0 or HT_ERR_NOMEM. */
int ht_batch_init(struct ht_batch *b);
void ht_batch_free(struct ht_batch *b);
/* Empties the batch (arena reset, counters zeroed). */
void ht_batch_reset(struct ht_batch *b);
/* Moves src's records and counters into the empty batch dst, leaving src
 * with none. The strings stay in src's arena: src must not be reset before
 * dst has been written. */
void ht_batch_move_records(struct ht_batch *dst, struct ht_batch *src);

/* Copy the struct in; its strings must already live in b->arena. */
void ht_batch_add_span(struct ht_batch *b, const struct ht_span *s);
void ht_batch_add_fact(struct ht_batch *b, const struct ht_fact *f);
/* Count a reject and keep a sample of the payload. `detail` is copied. */
void ht_batch_reject(struct ht_batch *b, int reason,
                     const struct ht_srcpos *pos, const char *detail,
                     const void *payload, size_t n);

/*
 * Decode one payload: gzip or plain; one or more JSON values (NDJSON,
 * concatenated, an array of documents); daemon datagrams. Bad parts are
 * rejected individually and the rest is decoded. Never fails on input.
 */
void ht_ingest_payload(struct ht_batch *b, const struct ht_srcpos *pos,
                       const void *data, size_t n);

/*
 * Decode one value that ht_reader_next already delimited, with the nesting
 * depth the reader measured (ht_reader_depth): it is not scanned again.
 * A depth of -1 means "not a bracketed value" and takes ht_ingest_payload's
 * full sniffing instead. HT_DEPTH_LINE is an NDJSON line the reader did not
 * scan: when it does not parse as one value, nothing is decoded and false
 * is returned — call ht_reader_rescan and take the value it gives next.
 */
#define HT_DEPTH_LINE (-2)
bool ht_ingest_value(struct ht_batch *b, const struct ht_srcpos *pos,
                     const char *val, size_t n, int depth);

/* The end of a source's values (a file read to its end, a stream that
 * closed), on the thread that decoded them: a daemon header rejected as
 * its last value has no document to come, so nothing decoded later under
 * the same source name is dropped with it. (A payload needs no call: its
 * end is this for what it held.) */
void ht_ingest_source_end(const struct ht_srcpos *pos);

/* ---- OpenTelemetry (OTLP) ---------------------------------------------- */

/* What one OTLP export body gave. */
struct ht_otlp_result {
    uint64_t spans;    /* spans seen */
    uint64_t rejected; /* of those, refused (each one a reject) */
    bool bad;          /* the body could not be decoded at all */
    char why[160];     /* when bad: why, one line */
};

enum { HT_OTLP_JSON = 0, HT_OTLP_PROTOBUF = 1 };

/*
 * Decode one OTLP/HTTP export body (an ExportTraceServiceRequest, already
 * inflated) in the given encoding into the batch. A body that cannot be
 * decoded at all is one reject (res->bad, why in res->why); a span that
 * cannot be read is one reject (res->rejected) and the rest is decoded.
 * OTLP/JSON documents in files and streams need no call of their own:
 * ht_ingest_payload recognises them by `resourceSpans`.
 */
void ht_ingest_otlp(struct ht_batch *b, const struct ht_srcpos *pos,
                    const void *body, size_t n, int encoding,
                    struct ht_otlp_result *res);

/* Context of one log event, from its envelope (CloudWatch Logs message,
 * filter-log-events output). All fields may be NULL/0. */
struct ht_logctx {
    const char *log_group;
    const char *log_stream;
    const char *function; /* from /aws/lambda/NAME */
    int64_t ts_us;
    const struct ht_srcpos *pos;
};

/*
 * Decode one log event's message: Lambda platform lines, the JSON log
 * format, runtime lines, Powertools JSON, API Gateway access logs and
 * logged Lambda events. Appends facts to the batch. Unrecognised lines are
 * ignored (they are legitimate logs), not rejected.
 */
void ht_ingest_log_message(struct ht_batch *b, const struct ht_logctx *ctx,
                           const char *msg, size_t n);

/* ---- reading files and streams ---------------------------------------- */

struct ht_reader;

/* Opens a regular file (plain or gzip, sniffed), or stdin for "-" (read
 * like a file: blocking). Anything but a regular file (a FIFO, a device,
 * a socket) is refused without blocking. Owned: ht_reader_close. Returns
 * HT_ERR_IO with an errno-based message logged on failure. */
int ht_reader_open(const char *path, struct ht_reader **out);
/* A stream (stdin, a pipe): ht_reader_next waits at most wait_ms for
 * input and returns HT_READ_AGAIN when none came, so the caller can commit
 * what it has while the input pauses. fd stays the caller's. */
int ht_reader_open_stream(int fd, const char *name, int wait_ms,
                          struct ht_reader **out);
void ht_reader_close(struct ht_reader *r);
#define HT_READ_AGAIN 2
/*
 * Next top-level JSON value (or a line that is not JSON, to be rejected).
 * On success *val and *n are borrowed until the next call, *offset is the
 * value's offset in the (decompressed) stream; 64 readable bytes (hjson.h's
 * HJ_PADDING) follow the value, so ht_ingest_read_value parses it where it
 * is. Returns 1 for a value, 0 at
 * end, -1 on an I/O or decompression error (logged; what was read stays),
 * HT_READ_AGAIN (streams only) when no complete value came in time.
 * A value larger than HT_MAX_CONTAINER_BYTES is returned truncated with
 * *too_large set. A value that cannot be closed is returned whole with
 * ht_reader_bad() saying how to reject it.
 */
int ht_reader_next(struct ht_reader *r, const char **val, size_t *n,
                   uint64_t *offset, bool *too_large);
/* The reject reason of the last value ht_reader_next returned, or -1 when
 * it is to be decoded: HT_REJ_NOT_JSON for a bracketed value that cannot
 * be closed (one reject for all its lines), HT_REJ_TRUNCATED for the tail
 * of a gzip stream that ends inside a member (possibly empty). */
int ht_reader_bad(const struct ht_reader *r);
/* True once the input turned out to be a truncated gzip stream: it was
 * not read to its end, and must not be checkpointed as complete. */
bool ht_reader_truncated(const struct ht_reader *r);
/* Nesting depth of the last value ht_reader_next returned, or -1 when it
 * was not a complete object or array (a bad line, a scalar, too large). */
int ht_reader_depth(const struct ht_reader *r);
/* Steps back to the start of the last value and scans it bracket by
 * bracket (after ht_ingest_value refused an HT_DEPTH_LINE value). */
void ht_reader_rescan(struct ht_reader *r);
/* Bytes of the (decompressed) stream consumed so far. */
uint64_t ht_reader_pos(const struct ht_reader *r);
/* Bytes read from the file (or stream) so far: gzip'd bytes as they are
 * on disk, so a file's share read is this over its size. It runs up to a
 * read buffer ahead of ht_reader_pos. */
uint64_t ht_reader_input_pos(const struct ht_reader *r);
/* Skip to a decompressed offset (resume from a checkpoint). */
int ht_reader_skip_to(struct ht_reader *r, uint64_t offset);
/* Decodes one value ht_reader_next gave, as every reader of files and
 * streams does: a value too large, unbalanced or cut short by a truncated
 * gzip stream is a reject; an NDJSON line that is not one value is
 * scanned again (the reader gives its values next). */
void ht_ingest_read_value(struct ht_batch *b, struct ht_reader *r,
                          const struct ht_srcpos *pos, const char *val,
                          size_t n, bool too_large);

/* ---- small decoding helpers shared by the decoders (ingest-internal
 * users call these; exposed for tests) ---------------------------------- */

/* Base64 (standard alphabet, padding optional). Returns bytes written or
 * -1 on bad input. out must hold (n/4+1)*3 bytes. */
long ht_base64_decode(const char *in, size_t n, uint8_t *out);
/* gunzip into an owned buffer (malloc). Returns 0, -1 on bad data or
 * when the output would exceed max_out, -2 when the data ends inside a
 * gzip member (truncated). */
int ht_gunzip(const void *in, size_t n, size_t max_out, uint8_t **out,
              size_t *out_len);

/* A daemon datagram's header line (the bytes before its first newline):
 * true when the X-Ray daemon would accept it, i.e. a JSON object whose
 * "format" is "json" in any case and whose "version" is the integer 1,
 * whatever the whitespace and member order. Otherwise false, with why (one
 * line) in `why` when it is not NULL. Uses b's parsers (no value of b may
 * be in use); decodes nothing into b. */
bool ht_ingest_daemon_header(struct ht_batch *b, const char *p, size_t n,
                             char *why, size_t whyn);

/* Parse an AWS trace header (`Root=…;Parent=…;Sampled=…`). */
bool ht_parse_trace_header(const char *s, struct ht_tid *root,
                           struct ht_id8 *parent, bool *has_parent);

#endif
