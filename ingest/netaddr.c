/*
 * netaddr.c - the listening and forwarding addresses of the network
 * sources (ht_engine.h: ht_addr_resolve, ht_addr_format), one spelling for
 * all of them: HOST:PORT, [V6HOST]:PORT, or PORT alone (host 127.0.0.1).
 */
#define _GNU_SOURCE
#include "ht_engine.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

int ht_addr_resolve(const char *spec, int socktype, bool passive,
                    struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256], port[16];
    const char *colon = strrchr(spec, ':');
    struct addrinfo hints, *res = NULL;
    int rc;

    if (!colon) {
        snprintf(host, sizeof(host), "127.0.0.1");
        snprintf(port, sizeof(port), "%s", spec);
    } else {
        size_t hl = (size_t)(colon - spec);

        if (hl && spec[0] == '[' && spec[hl - 1] == ']') {
            spec++;
            hl -= 2;
        }
        if (hl >= sizeof(host) || strlen(colon + 1) >= sizeof(port))
            return -1;
        memcpy(host, spec, hl);
        host[hl] = 0;
        snprintf(port, sizeof(port), "%s", colon + 1);
    }
    if (!*port || strspn(port, "0123456789") != strlen(port))
        return -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    rc = getaddrinfo(*host ? host : "127.0.0.1", port, &hints, &res);
    if (rc || !res)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

void ht_addr_format(const struct sockaddr *sa, char *out, size_t n)
{
    char h[INET6_ADDRSTRLEN] = "?";

    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
        snprintf(out, n, "%s:%d", h, ntohs(a->sin_port));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
        snprintf(out, n, "[%s]:%d", h, ntohs(a->sin6_port));
    } else {
        snprintf(out, n, "?");
    }
}
