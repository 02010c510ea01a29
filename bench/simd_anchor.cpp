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
#include <new>
#include <vector>

struct ht_simd_docs {
    char *buf = nullptr;
    std::vector<size_t> off, len;
};

extern "C" struct ht_simd_docs *ht_simd_docs_load(const struct doc *docs,
                                                  size_t count)
{
    ht_simd_docs *d = new (std::nothrow) ht_simd_docs;
    size_t total = 0;

    if (!d)
        return nullptr;
    for (size_t i = 0; i < count; i++)
        total += docs[i].n + simdjson::SIMDJSON_PADDING;
    d->buf = static_cast<char *>(std::calloc(total ? total : 1, 1));
    if (!d->buf) {
        delete d;
        return nullptr;
    }
    d->off.reserve(count);
    d->len.reserve(count);
    for (size_t i = 0, at = 0; i < count; i++) {
        std::memcpy(d->buf + at, docs[i].p, docs[i].n);
        d->off.push_back(at);
        d->len.push_back(docs[i].n);
        at += docs[i].n + simdjson::SIMDJSON_PADDING;
    }
    return d;
}

extern "C" uint64_t ht_simd_parse_once(const struct ht_simd_docs *d)
{
    simdjson::dom::parser parser;
    uint64_t bad = 0;

    for (size_t i = 0; i < d->off.size(); i++) {
        /* padded: nothing is copied (realloc_if_needed false) */
        auto doc = parser.parse(d->buf + d->off[i], d->len[i], false);

        if (doc.error())
            bad++;
    }
    return bad;
}

extern "C" void ht_simd_docs_free(struct ht_simd_docs *d)
{
    if (!d)
        return;
    std::free(d->buf);
    delete d;
}
