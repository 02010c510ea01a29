/*
 * auth.c - AWS credentials (environment, shared credentials file) and
 * Signature Version 4. SHA-256 and HMAC come from OpenSSL's libcrypto
 * (already there for libcurl), never hand-written.
 *
 * Owned by aws/. Secrets stay in struct ht_aws_creds: nothing here logs
 * them or copies them into a message.
 */
#define _POSIX_C_SOURCE 200809L
#include "ht_aws.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- credentials ------------------------------------------------------ */

static void wipe_free(char *s)
{
    if (!s)
        return;
    /* volatile: the compiler may not drop the wipe of a freed buffer */
    for (volatile char *p = s; *p; p++)
        *p = 0;
    free(s);
}

void ht_aws_creds_free(struct ht_aws_creds *c)
{
    if (!c)
        return;
    free(c->access_key_id);
    wipe_free(c->secret_access_key);
    wipe_free(c->session_token);
    memset(c, 0, sizeof(*c));
}

static char *dup_or_die(const char *s)
{
    char *d = strdup(s);

    HT_ASSERT(d);
    return d;
}

static char *trim(char *s)
{
    char *e;

    while (*s && isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

/* Reads [profile] from an INI-style credentials file. Returns 1 when both
 * keys were found, 0 when the file or the profile is missing them, -1 when
 * the file cannot be opened. */
static int read_cred_file(const char *path, const char *profile,
                          struct ht_aws_creds *c)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    bool in = false;

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        char *s = trim(line), *eq;

        if (*s == '#' || *s == ';' || !*s)
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');

            if (end)
                *end = 0;
            s = trim(s + 1);
            /* ~/.aws/config spells it "profile NAME"; accept both */
            if (strncmp(s, "profile ", 8) == 0)
                s = trim(s + 8);
            in = strcmp(s, profile) == 0;
            continue;
        }
        if (!in)
            continue;
        eq = strchr(s, '=');
        if (!eq)
            continue;
        *eq = 0;
        {
            char *k = trim(s), *v = trim(eq + 1);

            if (strcmp(k, "aws_access_key_id") == 0 && !c->access_key_id)
                c->access_key_id = dup_or_die(v);
            else if (strcmp(k, "aws_secret_access_key") == 0 &&
                     !c->secret_access_key)
                c->secret_access_key = dup_or_die(v);
            else if (strcmp(k, "aws_session_token") == 0 && !c->session_token)
                c->session_token = dup_or_die(v);
        }
    }
    /* the line buffer held a secret */
    for (volatile char *p = line; p < line + sizeof(line); p++)
        *p = 0;
    fclose(f);
    return c->access_key_id && c->secret_access_key;
}

int ht_aws_creds_load(struct ht_aws_creds *c, char *err, size_t errlen)
{
    const char *ak = getenv("AWS_ACCESS_KEY_ID");
    const char *sk = getenv("AWS_SECRET_ACCESS_KEY");
    const char *tok = getenv("AWS_SESSION_TOKEN");
    const char *profile = getenv("AWS_PROFILE");
    const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE");
    char path[1024];
    int r;

    memset(c, 0, sizeof(*c));
    if (ak && *ak && sk && *sk) {
        c->access_key_id = dup_or_die(ak);
        c->secret_access_key = dup_or_die(sk);
        if (tok && *tok)
            c->session_token = dup_or_die(tok);
        snprintf(c->source, sizeof(c->source), "environment");
        return HT_ERR_OK;
    }
    if (!profile || !*profile)
        profile = "default";
    if (file && *file) {
        snprintf(path, sizeof(path), "%s", file);
    } else {
        const char *home = getenv("HOME");

        snprintf(path, sizeof(path), "%s/.aws/credentials",
                 home && *home ? home : ".");
    }
    r = read_cred_file(path, profile, c);
    if (r == 1) {
        snprintf(c->source, sizeof(c->source), "%.200s [%.64s]", path, profile);
        return HT_ERR_OK;
    }
    ht_aws_creds_free(c);
    snprintf(err, errlen,
             "no AWS credentials: set AWS_ACCESS_KEY_ID and "
             "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
             "ones), or put aws_access_key_id / aws_secret_access_key "
             "under [%.64s] in %.200s (AWS_SHARED_CREDENTIALS_FILE, "
             "AWS_PROFILE choose the file and profile)%s",
             profile, path, r < 0 ? "; that file does not exist" : "");
    return HT_ERR_NOTFOUND;
}

int ht_aws_region(const char *opt, char *out, size_t n)
{
    const char *cand[3] = {opt, getenv("AWS_REGION"),
                           getenv("AWS_DEFAULT_REGION")};

    for (int i = 0; i < 3; i++) {
        if (cand[i] && *cand[i]) {
            snprintf(out, n, "%s", cand[i]);
            return HT_ERR_OK;
        }
    }
    return HT_ERR_NOTFOUND;
}

/* ---- SigV4 -------------------------------------------------------------- */

void ht_aws_amz_date(int64_t epoch_s, char *out)
{
    time_t t = (time_t)epoch_s;
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = 0;
}

static bool sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (!EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return false;
    hex(md, 32, out);
    return true;
}

static bool hmac(const void *key, size_t klen, const char *msg,
                 unsigned char out[32])
{
    unsigned int len = 0;

    return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg,
                strlen(msg), out, &len) &&
           len == 32;
}

struct hdr {
    char name[64];
    const char *value;
};

static int cmp_hdr(const void *a, const void *b)
{
    return strcmp(((const struct hdr *)a)->name, ((const struct hdr *)b)->name);
}

/* A header value as signed: trimmed, inner runs of spaces made one. */
static void add_value(struct ht_buf *b, const char *v)
{
    bool space = false;

    while (*v == ' ' || *v == '\t')
        v++;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = true;
            continue;
        }
        if (space)
            ht_buf_addc(b, ' ');
        space = false;
        ht_buf_addc(b, *v);
    }
}

int ht_sigv4_sign(const struct ht_sigv4_req *r, const struct ht_aws_creds *c,
                  struct ht_buf *auth, struct ht_buf *canon_out,
                  struct ht_buf *sts_out)
{
    struct hdr h[32];
    struct ht_buf canon, sts, signed_list, key;
    char body_hash[65], canon_hash[65], date[9], sig[65];
    unsigned char k1[32], k2[32], k3[32], k4[32], mac[32];
    int rc = HT_ERR_USAGE;

    if (r->nheaders > 32 || strlen(r->amz_date) < 8)
        return HT_ERR_USAGE;
    for (size_t i = 0; i < r->nheaders; i++) {
        size_t j;

        for (j = 0; r->headers[i].name[j] && j < sizeof(h[i].name) - 1; j++)
            h[i].name[j] = (char)tolower((unsigned char)r->headers[i].name[j]);
        h[i].name[j] = 0;
        h[i].value = r->headers[i].value;
    }
    qsort(h, r->nheaders, sizeof(h[0]), cmp_hdr);
    memcpy(date, r->amz_date, 8);
    date[8] = 0;

    ht_buf_init(&canon);
    ht_buf_init(&sts);
    ht_buf_init(&signed_list);
    ht_buf_init(&key);
    if (!sha256_hex(r->body ? r->body : "", r->body_len, body_hash))
        goto out;
    ht_buf_printf(&canon, "%s\n%s\n%s\n", r->method, r->path,
                  r->query ? r->query : "");
    for (size_t i = 0; i < r->nheaders; i++) {
        ht_buf_printf(&canon, "%s:", h[i].name);
        add_value(&canon, h[i].value);
        ht_buf_addc(&canon, '\n');
        if (i)
            ht_buf_addc(&signed_list, ';');
        ht_buf_adds(&signed_list, h[i].name);
    }
    ht_buf_printf(&canon, "\n%s\n%s", signed_list.len ? signed_list.data : "",
                  body_hash);
    if (!sha256_hex(canon.data, canon.len, canon_hash))
        goto out;
    ht_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s",
                  r->amz_date, date, r->region, r->service, canon_hash);

    ht_buf_printf(&key, "AWS4%s", c->secret_access_key);
    if (!hmac(key.data, key.len, date, k1) || !hmac(k1, 32, r->region, k2) ||
        !hmac(k2, 32, r->service, k3) || !hmac(k3, 32, "aws4_request", k4) ||
        !hmac(k4, 32, sts.data, mac))
        goto out;
    hex(mac, 32, sig);
    ht_buf_printf(auth,
                  "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
                  "SignedHeaders=%s, Signature=%s",
                  c->access_key_id, date, r->region, r->service,
                  signed_list.len ? signed_list.data : "", sig);
    if (canon_out)
        ht_buf_add(canon_out, canon.data, canon.len);
    if (sts_out)
        ht_buf_add(sts_out, sts.data, sts.len);
    rc = HT_ERR_OK;
out:
    /* the derived keys and "AWS4"+secret are as good as the secret */
    memset(k1, 0, sizeof(k1));
    memset(k2, 0, sizeof(k2));
    memset(k3, 0, sizeof(k3));
    memset(k4, 0, sizeof(k4));
    if (key.data)
        for (volatile char *p = key.data; p < key.data + key.len; p++)
            *p = 0;
    ht_buf_free(&key);
    ht_buf_free(&canon);
    ht_buf_free(&sts);
    ht_buf_free(&signed_list);
    return rc;
}
