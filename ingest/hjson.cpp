/*
 * hjson.cpp - hjson.h over simdjson's DOM tape.
 *
 * simdjson parses a document into a flat "tape" of 64-bit words; a value
 * is a (document, tape index) pair (simdjson's internal::tape_ref, whose
 * constructor and navigation are public). Walking the tape directly avoids
 * simdjson's error-carrying wrappers and any allocation per value.
 */
#include "hjson.h"

#include <simdjson.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

using simdjson::internal::tape_ref;
using simdjson::internal::tape_type;

namespace
{

/* After a document this large, the parser's buffers are shrunk back before
 * the next (smaller) one, so one big envelope does not pin memory. */
constexpr size_t kShrinkAbove = 8u << 20;
constexpr size_t kBaseCapacity = 256u << 10;

inline tape_ref ref(hj v)
{
    return tape_ref(static_cast<const simdjson::dom::document *>(v.doc), v.idx);
}

inline hj make(const simdjson::dom::document *doc, size_t idx)
{
    hj v;
    v.doc = doc;
    v.idx = idx;
    return v;
}

inline hj absent()
{
    hj v;
    v.doc = nullptr;
    v.idx = 0;
    return v;
}

bool has_nul(tape_ref t, int depth)
{
    switch (t.tape_ref_type()) {
    case tape_type::STRING:
        return std::strlen(t.get_c_str()) != t.get_string_length();
    case tape_type::START_ARRAY:
    case tape_type::START_OBJECT: {
        size_t end = t.matching_brace_index() - 1;

        if (depth > 128)
            return false;
        for (size_t i = t.json_index + 1; i < end;) {
            tape_ref c(t.doc, i);

            if (has_nul(c, depth + 1))
                return true;
            i = c.after_element();
        }
        return false;
    }
    default:
        return false;
    }
}

void dump_str(const char *s, size_t n, std::string &out)
{
    static const char hex[] = "0123456789abcdef";

    out.push_back('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        case '\b':
            out += "\\b";
            break;
        case '\f':
            out += "\\f";
            break;
        default:
            if (c < 0x20) {
                out += "\\u00";
                out.push_back(hex[c >> 4]);
                out.push_back(hex[c & 15]);
            } else {
                out.push_back((char)c);
            }
        }
    }
    out.push_back('"');
}

/* Compact text as jansson's JSON_COMPACT writes it (reals with 17
 * significant digits and a ".0" when they look integral). */
void dump(tape_ref t, std::string &out, size_t limit, int depth)
{
    char num[40];

    if (out.size() > limit || depth > 128)
        return;
    switch (t.tape_ref_type()) {
    case tape_type::STRING:
        dump_str(t.get_c_str(), t.get_string_length(), out);
        break;
    case tape_type::INT64:
        snprintf(num, sizeof(num), "%lld",
                 (long long)t.next_tape_value<int64_t>());
        out += num;
        break;
    case tape_type::UINT64:
        snprintf(num, sizeof(num), "%llu",
                 (unsigned long long)t.next_tape_value<uint64_t>());
        out += num;
        break;
    case tape_type::DOUBLE:
        snprintf(num, sizeof(num), "%.17g", t.next_tape_value<double>());
        if (!std::strpbrk(num, ".eEin"))
            std::strcat(num, ".0");
        out += num;
        break;
    case tape_type::TRUE_VALUE:
        out += "true";
        break;
    case tape_type::FALSE_VALUE:
        out += "false";
        break;
    case tape_type::NULL_VALUE:
        out += "null";
        break;
    case tape_type::START_ARRAY:
    case tape_type::START_OBJECT: {
        bool obj = t.tape_ref_type() == tape_type::START_OBJECT;
        size_t end = t.matching_brace_index() - 1;
        bool first = true;

        out.push_back(obj ? '{' : '[');
        for (size_t i = t.json_index + 1; i < end;) {
            tape_ref c(t.doc, i);

            if (!first)
                out.push_back(',');
            first = false;
            if (obj) {
                dump_str(c.get_c_str(), c.get_string_length(), out);
                out.push_back(':');
                c = tape_ref(t.doc, i + 1);
            }
            dump(c, out, limit, depth + 1);
            i = c.after_element();
        }
        out.push_back(obj ? '}' : ']');
        break;
    }
    default:
        break;
    }
}

} // namespace

/*
 * hj_get is called many times on the same few objects (a log line's JSON is
 * asked for a dozen members one by one). The members of the last objects
 * looked up are kept as (key, length, tape index) in a small per-thread
 * cache, so later lookups scan a compact array instead of the tape. An
 * entry is valid only for the parse it was built in: every parse in the
 * thread bumps `t_gen`.
 */
namespace
{

constexpr int kCacheObjects = 4;
constexpr int kCacheMembers = 48;

struct member {
    const char *key;
    uint32_t len;
    uint32_t idx;
};

struct cached_object {
    const void *doc = nullptr;
    size_t idx = 0;
    uint64_t gen = 0;
    int n = 0;
    member m[kCacheMembers];
};

thread_local uint64_t t_gen = 1;
thread_local cached_object t_cache[kCacheObjects];
thread_local int t_next;

const cached_object *cache_object(hj obj)
{
    for (int i = 0; i < kCacheObjects; i++) {
        const cached_object &c = t_cache[i];

        if (c.doc == obj.doc && c.idx == obj.idx && c.gen == t_gen)
            return &c;
    }
    tape_ref t = ref(obj);
    size_t end = t.matching_brace_index() - 1;
    cached_object &c = t_cache[t_next];
    int n = 0;

    for (size_t i = obj.idx + 1; i < end;) {
        tape_ref key(t.doc, i), val(t.doc, i + 1);

        if (n == kCacheMembers)
            return nullptr; /* a big object: scan the tape instead */
        c.m[n].key = key.get_c_str();
        c.m[n].len = key.get_string_length();
        c.m[n].idx = (uint32_t)(i + 1);
        n++;
        i = val.after_element();
    }
    c.doc = obj.doc;
    c.idx = obj.idx;
    c.gen = t_gen;
    c.n = n;
    t_next = (t_next + 1) % kCacheObjects;
    return &c;
}

} // namespace

extern "C" {
static void fields(hj obj, const char *const *keys, const uint32_t *lens,
                   uint64_t lenbits, size_t n, hj *out);
}

struct hj_parser {
    simdjson::dom::parser parser;
    char *buf = nullptr;
    size_t cap = 0;
    size_t max_depth = 0;
};

extern "C" {

struct hj_parser *hj_parser_new(size_t max_depth)
{
    hj_parser *p = new (std::nothrow) hj_parser();

    if (!p)
        return nullptr;
    p->max_depth = max_depth;
    if (p->parser.allocate(kBaseCapacity, max_depth) != simdjson::SUCCESS) {
        delete p;
        return nullptr;
    }
    return p;
}

void hj_parser_free(struct hj_parser *p)
{
    if (!p)
        return;
    std::free(p->buf);
    delete p;
}

static_assert(HJ_PADDING >= simdjson::SIMDJSON_PADDING,
              "HJ_PADDING is simdjson's padding at least");

/* hj_parse, and hj_parse_padded when padded (s parsed where it is). */
static int parse_doc(struct hj_parser *p, const char *s, size_t n,
                     bool allow_nul, bool padded, hj *root, char *err,
                     size_t errcap)
{
    size_t need = n + simdjson::SIMDJSON_PADDING;
    size_t held = std::max(p->cap, p->parser.capacity());
    simdjson::dom::element el;
    simdjson::error_code code;

    *root = absent();
    if (held > kShrinkAbove && need < held / 4) {
        std::free(p->buf);
        p->buf = nullptr;
        p->cap = 0;
        if (p->parser.allocate(kBaseCapacity, p->max_depth) !=
            simdjson::SUCCESS) {
            snprintf(err, errcap, "out of memory");
            return -1;
        }
    }
    if (!padded && need > p->cap) {
        size_t cap = need < kBaseCapacity ? kBaseCapacity : need;
        char *b = static_cast<char *>(std::realloc(p->buf, cap));

        if (!b) {
            snprintf(err, errcap, "out of memory");
            return -1;
        }
        p->buf = b;
        p->cap = cap;
    }
    t_gen++; /* values of this parser's previous document are gone */
    if (!padded) {
        std::memcpy(p->buf, s, n);
        std::memset(p->buf + n, 0, simdjson::SIMDJSON_PADDING);
    }
    /* simdjson reads into the padding; what it holds does not matter */
    code = p->parser.parse(padded ? s : p->buf, n, false).get(el);
    if (code != simdjson::SUCCESS) {
        snprintf(err, errcap, "%s", simdjson::error_message(code));
        return code == simdjson::DEPTH_ERROR ? -2 : -1;
    }
    /* the root value sits at tape index 1 (index 0 is the root marker) */
    *root = make(&p->parser.doc, 1);
    if (!allow_nul && std::memchr(s, '\\', n) && has_nul(ref(*root), 0)) {
        *root = absent();
        snprintf(err, errcap, "\\u0000 is not allowed in strings");
        return -1;
    }
    return 0;
}

int hj_parse(struct hj_parser *p, const char *s, size_t n, bool allow_nul,
             hj *root, char *err, size_t errcap)
{
    return parse_doc(p, s, n, allow_nul, false, root, err, errcap);
}

int hj_parse_padded(struct hj_parser *p, const char *s, size_t n,
                    bool allow_nul, hj *root, char *err, size_t errcap)
{
    return parse_doc(p, s, n, allow_nul, true, root, err, errcap);
}

enum hj_type hj_type(hj v)
{
    if (!v.doc)
        return HJ_ABSENT;
    switch (ref(v).tape_ref_type()) {
    case tape_type::START_OBJECT:
        return HJ_OBJECT;
    case tape_type::START_ARRAY:
        return HJ_ARRAY;
    case tape_type::STRING:
        return HJ_STRING;
    case tape_type::INT64:
        return HJ_INT;
    case tape_type::UINT64:
        return HJ_UINT;
    case tape_type::DOUBLE:
        return HJ_REAL;
    case tape_type::TRUE_VALUE:
        return HJ_TRUE;
    case tape_type::FALSE_VALUE:
        return HJ_FALSE;
    case tape_type::NULL_VALUE:
        return HJ_NULL;
    default:
        return HJ_ABSENT;
    }
}

hj hj_get(hj obj, const char *key)
{
    hj out = absent();
    const cached_object *c;

    if (hj_type(obj) != HJ_OBJECT)
        return out;
    if (obj.idx <= UINT32_MAX && (c = cache_object(obj)) != nullptr) {
        size_t kl = std::strlen(key);

        for (int i = 0; i < c->n; i++)
            if (c->m[i].len == kl && c->m[i].key[0] == key[0] &&
                std::memcmp(c->m[i].key, key, kl) == 0)
                out = make(static_cast<const simdjson::dom::document *>(c->doc),
                           c->m[i].idx); /* the last duplicate wins */
        return out;
    }
    {
        /* a key table of one, on the stack: not for measure()'s cache */
        uint32_t len = (uint32_t)std::strlen(key);

        fields(obj, &key, &len, (uint64_t)1 << (len & 63), 1, &out);
    }
    return out;
}

namespace
{

/* The key tables passed to hj_fields are static arrays: their lengths are
 * measured once per thread (a few tables, looked up by address). */
struct keyset {
    const char *const *keys = nullptr;
    size_t n = 0;
    uint64_t lenbits = 0; /* bit L%64 set: some wanted key has length L */
    uint32_t lens[64];
};

thread_local keyset t_keysets[8];
thread_local int t_keyset_next;

const keyset &measure(const char *const *keys, size_t n)
{
    for (const keyset &k : t_keysets)
        if (k.keys == keys && k.n == n)
            return k;
    keyset &k = t_keysets[t_keyset_next];
    t_keyset_next = (t_keyset_next + 1) % 8;
    k.keys = keys;
    k.n = n;
    k.lenbits = 0;
    for (size_t i = 0; i < n; i++) {
        k.lens[i] = (uint32_t)std::strlen(keys[i]);
        k.lenbits |= (uint64_t)1 << (k.lens[i] & 63);
    }
    return k;
}

} // namespace

/* One pass over obj's members for the n keys of known lengths. */
static void fields(hj obj, const char *const *keys, const uint32_t *lens,
                   uint64_t lenbits, size_t n, hj *out)
{
    tape_ref t;
    size_t end;

    t = ref(obj);
    end = t.matching_brace_index() - 1;
    for (size_t i = obj.idx + 1; i < end;) {
        tape_ref key(t.doc, i), val(t.doc, i + 1);
        uint32_t kl = key.get_string_length();

        if (lenbits >> (kl & 63) & 1) {
            const char *ks = key.get_c_str();

            for (size_t k = 0; k < n; k++)
                if (lens[k] == kl && keys[k][0] == ks[0] &&
                    std::memcmp(keys[k], ks, kl) == 0) {
                    out[k] = make(t.doc, i + 1); /* the last duplicate wins */
                    break;
                }
        }
        i = val.after_element();
    }
}

void hj_fields(hj obj, const char *const *keys, size_t n, hj *out)
{
    for (size_t k = 0; k < n; k++)
        out[k] = absent();
    if (hj_type(obj) != HJ_OBJECT || n > 64)
        return;
    const keyset &ks = measure(keys, n);

    fields(obj, keys, ks.lens, ks.lenbits, n, out);
}

const char *hj_str(hj v)
{
    return hj_type(v) == HJ_STRING ? ref(v).get_c_str() : nullptr;
}

size_t hj_strlen(hj v)
{
    return hj_type(v) == HJ_STRING ? ref(v).get_string_length() : 0;
}

int64_t hj_int(hj v)
{
    switch (hj_type(v)) {
    case HJ_INT:
        return ref(v).next_tape_value<int64_t>();
    case HJ_UINT:
        return INT64_MAX;
    case HJ_REAL: {
        double d = ref(v).next_tape_value<double>();

        if (d != d)
            return 0;
        if (d >= 9.2e18)
            return INT64_MAX;
        if (d <= -9.2e18)
            return INT64_MIN;
        return (int64_t)d;
    }
    default:
        return 0;
    }
}

double hj_num(hj v)
{
    switch (hj_type(v)) {
    case HJ_INT:
        return (double)ref(v).next_tape_value<int64_t>();
    case HJ_UINT:
        return (double)ref(v).next_tape_value<uint64_t>();
    case HJ_REAL:
        return ref(v).next_tape_value<double>();
    default:
        return 0;
    }
}

size_t hj_size(hj v)
{
    enum hj_type ty = hj_type(v);
    size_t n = 0;

    if (ty != HJ_ARRAY && ty != HJ_OBJECT)
        return 0;
    {
        tape_ref t = ref(v);
        uint32_t c = t.scope_count();

        if (c < simdjson::internal::JSON_COUNT_MASK)
            return c;
    }
    /* the count saturates on the tape: count by walking */
    struct hj_iter it;
    hj e;

    hj_iter_init(&it, v);
    while (hj_iter_next(&it, &e, nullptr, nullptr))
        n++;
    return n;
}

hj hj_at(hj arr, size_t i)
{
    struct hj_iter it;
    hj e;

    if (hj_type(arr) != HJ_ARRAY)
        return absent();
    hj_iter_init(&it, arr);
    while (hj_iter_next(&it, &e, nullptr, nullptr))
        if (i-- == 0)
            return e;
    return absent();
}

void hj_iter_init(struct hj_iter *it, hj v)
{
    enum hj_type ty = hj_type(v);

    it->doc = v.doc;
    it->idx = it->end = 0;
    it->object = ty == HJ_OBJECT;
    if (ty == HJ_ARRAY || ty == HJ_OBJECT) {
        it->idx = v.idx + 1;
        it->end = ref(v).matching_brace_index() - 1;
    }
}

bool hj_iter_next(struct hj_iter *it, hj *val, const char **key, size_t *keylen)
{
    const auto *doc = static_cast<const simdjson::dom::document *>(it->doc);

    if (it->idx >= it->end)
        return false;
    if (it->object) {
        tape_ref k(doc, it->idx);

        if (key)
            *key = k.get_c_str();
        if (keylen)
            *keylen = k.get_string_length();
        it->idx++;
    } else if (key) {
        *key = nullptr;
    }
    *val = make(doc, it->idx);
    it->idx = tape_ref(doc, it->idx).after_element();
    return true;
}

size_t hj_dump(hj v, char *buf, size_t cap)
{
    std::string out;

    if (!v.doc)
        return 0;
    try {
        dump(ref(v), out, 1u << 20, 0);
    } catch (...) {
        return 0;
    }
    std::memcpy(buf, out.data(), out.size() < cap ? out.size() : cap);
    return out.size();
}

} /* extern "C" */
