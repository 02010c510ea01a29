/*
 * web_assets.h - the web view's files as compiled into the binary.
 * serve/embed_assets.cmake generates the table from serve/web/ at build
 * time; serve/web.c looks paths up in it.
 */
#ifndef HT_WEB_ASSETS_H
#define HT_WEB_ASSETS_H

#include <stddef.h>

struct ht_web_asset {
    const char *name;          /* file name in serve/web/, e.g. "app.js" */
    const unsigned char *data; /* its bytes (followed by one NUL) */
    size_t len;                /* its size, the NUL not counted */
};

/* Ended by an entry whose name is NULL. */
extern const struct ht_web_asset ht_web_assets[];

#endif
