/* serve_thumbs.c: the thumbnails serve sends, by row, cached in memory up to
 * a byte bound (the oldest made is dropped first).
 *
 * Thumbnails are made on the connection threads, outside the engine: they
 * need no model. Their decodes share one decode budget, so many requests for
 * large images at once wait for memory instead of exhausting it. Two threads
 * may make the same thumbnail at once; the second to finish keeps the first's.
 */
#include "serve.h"

#include "html.h"

#include <stdlib.h>
#include <string.h>

#define THUMBS_DECODE_MEMORY ((uint64_t)1 << 30) /* 1 GiB for all thumbnail decodes at once */

typedef struct thumb {
    int64_t row;
    uint8_t *jpeg;
    size_t size;
} thumb;

struct serve_thumbs {
    pthread_mutex_t mu;
    thumb *items; /* oldest first */
    size_t count, cap, bytes, max_bytes;
    uint64_t hits, misses;
    int side;
    ims_decode_options decode;
};

ims_status serve_thumbs_create(size_t max_bytes, int side, serve_thumbs **out, ims_error *err)
{
    *out = NULL;
    serve_thumbs *t = calloc(1, sizeof *t);
    if (!t)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    ims_decode_options_init(&t->decode);
    ims_status st = ims_decode_budget_create(THUMBS_DECODE_MEMORY, &t->decode.budget, err);
    if (st) {
        free(t);
        return st;
    }
    pthread_mutex_init(&t->mu, NULL);
    t->max_bytes = max_bytes;
    t->side = side;
    *out = t;
    return IMS_OK;
}

/* A copy of row's cached thumbnail, if there is one (the caller holds mu). */
static int thumbs_find(serve_thumbs *t, int64_t row, uint8_t **jpeg, size_t *size)
{
    for (size_t i = 0; i < t->count; i++) {
        if (t->items[i].row != row)
            continue;
        if (!(*jpeg = malloc(t->items[i].size)))
            return 0;
        memcpy(*jpeg, t->items[i].jpeg, t->items[i].size);
        *size = t->items[i].size;
        return 1;
    }
    return 0;
}

/* Keeps jpeg (taken over) unless it alone is over the bound; the oldest go
 * until it fits (the caller holds mu). */
static void thumbs_keep(serve_thumbs *t, int64_t row, uint8_t *jpeg, size_t size)
{
    if (size > t->max_bytes) {
        free(jpeg);
        return;
    }
    size_t drop = 0;
    while (drop < t->count && t->bytes + size > t->max_bytes) {
        t->bytes -= t->items[drop].size;
        free(t->items[drop++].jpeg);
    }
    if (drop) {
        memmove(t->items, t->items + drop, (t->count - drop) * sizeof *t->items);
        t->count -= drop;
    }
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        thumb *p = realloc(t->items, cap * sizeof *p);
        if (!p) {
            free(jpeg);
            return;
        }
        t->items = p;
        t->cap = cap;
    }
    t->items[t->count++] = (thumb){.row = row, .jpeg = jpeg, .size = size};
    t->bytes += size;
}

ims_status serve_thumbs_get(serve_thumbs *t, int64_t row, const char *path, uint8_t **jpeg, size_t *size,
                            ims_error *err)
{
    pthread_mutex_lock(&t->mu);
    int found = thumbs_find(t, row, jpeg, size);
    t->hits += found;
    t->misses += !found;
    pthread_mutex_unlock(&t->mu);
    if (found)
        return IMS_OK;
    ims_status st = ims_image_thumbnail_file(path, &t->decode, t->side, HTML_THUMB_QUALITY, jpeg, size, err);
    if (st)
        return st;
    uint8_t *copy = malloc(*size);
    if (!copy)
        return IMS_OK; /* served, not cached */
    memcpy(copy, *jpeg, *size);
    pthread_mutex_lock(&t->mu);
    uint8_t *other = NULL;
    size_t other_size = 0;
    if (thumbs_find(t, row, &other, &other_size))
        free(copy); /* another thread kept it first */
    else
        thumbs_keep(t, row, copy, *size);
    pthread_mutex_unlock(&t->mu);
    free(other);
    return IMS_OK;
}

void serve_thumbs_stats(serve_thumbs *t, size_t *entries, size_t *bytes, uint64_t *hits, uint64_t *misses)
{
    pthread_mutex_lock(&t->mu);
    *entries = t->count;
    *bytes = t->bytes;
    *hits = t->hits;
    *misses = t->misses;
    pthread_mutex_unlock(&t->mu);
}

void serve_thumbs_free(serve_thumbs *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->count; i++)
        free(t->items[i].jpeg);
    free(t->items);
    ims_decode_budget_free(t->decode.budget);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
