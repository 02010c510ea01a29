/*
 * simd_anchor.cpp - simdjson's parse floor for ht-bench (anchors.h): the
 * DOM parser ingest uses (ingest/hjson.cpp), over documents copied once
 * with the padding simdjson reads past a document's end, one parser
 * reused, nothing walked. Owned by bench/.
 */
#include "anchors.h"

#include <simdjson.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>
#include <vector>

struct ht_simd_docs {
    char *buf = nullptr;
    std::vector<size_t> off, len;
};

static double clock_s(clockid_t id)
{
    struct timespec t;

    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

extern "C" struct ht_simd_docs *ht_simd_docs_load(const char *const *p,
                                                  const size_t *n, size_t count)
{
    ht_simd_docs *d = new (std::nothrow) ht_simd_docs;
    size_t total = 0;

    if (!d)
        return nullptr;
    for (size_t i = 0; i < count; i++)
        total += n[i] + simdjson::SIMDJSON_PADDING;
    d->buf = static_cast<char *>(std::calloc(total ? total : 1, 1));
    if (!d->buf) {
        delete d;
        return nullptr;
    }
    d->off.reserve(count);
    d->len.reserve(count);
    for (size_t i = 0, at = 0; i < count; i++) {
        std::memcpy(d->buf + at, p[i], n[i]);
        d->off.push_back(at);
        d->len.push_back(n[i]);
        at += n[i] + simdjson::SIMDJSON_PADDING;
    }
    return d;
}

extern "C" double ht_simd_parse_once(const struct ht_simd_docs *d,
                                     uint64_t *fails, double *cpu)
{
    simdjson::dom::parser parser;
    double t0 = clock_s(CLOCK_MONOTONIC),
           c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t bad = 0;

    for (size_t i = 0; i < d->off.size(); i++) {
        /* padded: nothing is copied (realloc_if_needed false) */
        auto doc = parser.parse(d->buf + d->off[i], d->len[i], false);

        if (doc.error())
            bad++;
    }
    *cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    *fails = bad;
    return clock_s(CLOCK_MONOTONIC) - t0;
}

extern "C" void ht_simd_docs_free(struct ht_simd_docs *d)
{
    if (!d)
        return;
    std::free(d->buf);
    delete d;
}
