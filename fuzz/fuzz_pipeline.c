/*
 * fuzz_pipeline.c - a payload decoded, written by the assembler into a
 * store, and every id it names queried back and rendered in every format
 * `trace` has (text, JSON, DOT, Jaeger, OTLP); then the batch is applied
 * again, and every answer must stay the same (re-ingest is a no-op), or
 * the target aborts. The write transaction is aborted after each input, so
 * every input meets the same empty store and the target keeps no state between
 * inputs. Inputs are NDJSON (or any payload ht_ingest_payload takes): several
 * documents stitch together.
 */
#define _GNU_SOURCE
#include "fuzz.h"
#include "ht_assembler.h"
#include "ht_ingest.h"
#include "ht_query.h"
#include "ht_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_IDS 24

/* Every rendering of id's answer, folded into h (FNV-1a): what a user
 * would see, in the five formats. */
static void query(struct ht_txn *t, const char *id, struct ht_buf *out,
                  uint64_t *h)
{
    struct ht_result *r = NULL;

    if (ht_query_trace_txn(t, id, &r) != HT_ERR_OK || !r)
        return;
    ht_buf_reset(out);
    ht_query_text(r, out);
    ht_query_json(r, out);
    ht_query_dot(r, out);
    ht_query_jaeger(r, out);
    ht_query_otlp(r, out);
    ht_result_free(r);
    for (size_t i = 0; i < out->len; i++)
        *h = (*h ^ (uint8_t)out->data[i]) * 1099511628211ull;
}

/* The answers for the ids the batch names (MAX_IDS pieces at most). */
static uint64_t answers(struct ht_txn *t, const struct ht_batch *b,
                        struct ht_buf *out)
{
    uint64_t h = 14695981039346656037ull;
    size_t asked = 0;

    for (size_t i = 0; i < b->nspans && asked < MAX_IDS; i++) {
        const struct ht_span *s = &b->spans[i];
        char id[36], sid[17];

        ht_tid_format(&s->trace, id);
        query(t, id, out, &h);
        ht_id8_format(&s->id, sid);
        query(t, sid, out, &h);
        if (s->request_id)
            query(t, s->request_id, out, &h);
        asked++;
    }
    for (size_t i = 0; i < b->nfacts && asked < MAX_IDS; i++) {
        if (b->facts[i].request_id)
            query(t, b->facts[i].request_id, out, &h);
        asked++;
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ht_batch b;
    struct ht_srcpos pos = {"fuzz", 0};
    struct ht_asm_stats st = {0};
    struct ht_store *store;
    struct ht_txn *t;
    struct ht_buf out;
    bool created;

    ht_log_level = -1;
    store = fuzz_scratch_store(&created);
    if (!store || ht_batch_init(&b) != HT_ERR_OK)
        return 0;
    ht_ingest_payload(&b, &pos, data, size);
    if (ht_store_begin(store, true, &t) != HT_ERR_OK) {
        ht_batch_free(&b);
        return 0;
    }
    ht_buf_init(&out);
    if (ht_assembler_apply(t, &b, &st) == HT_ERR_OK) {
        uint64_t first = answers(t, &b, &out);

        /* ingesting the same input again changes no answer */
        if (ht_assembler_apply(t, &b, &st) == HT_ERR_OK &&
            answers(t, &b, &out) != first) {
            fprintf(stderr,
                    "fuzz_pipeline: the same %zu bytes applied "
                    "twice answer differently\n",
                    size);
            abort();
        }
    }
    ht_store_abort(t);
    ht_buf_free(&out);
    ht_batch_free(&b);
    return 0;
}
