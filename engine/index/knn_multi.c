/* knn_multi.c: one k-NN table split across several backends (all the GPUs of
 * a node; in the tests, several CPU backends standing in for them).
 *
 * Each append is cut into as many contiguous ranges as there are parts, part
 * p taking range p, so the parts stay within a row of each other. A part
 * remembers its runs (local start, global start): local ids map to global ids
 * by a binary search, and the map increases with the local id, because rows
 * arrive in global order. A search runs ims_knn_search on every part (one
 * thread each when the parts are devices; one after the other on host
 * backends, whose BLAS threads would only fight) and merges the parts' lists
 * per query by (score desc, global row asc). Each part's list is its exact
 * top k sorted the same way, so the merge is the exact top k of the whole
 * table: where every score is exact (integer data) it is the single table's
 * answer bit for bit (tests/unit/test_knn.c).
 */
#include "index/knn.h"

#include "backend/backend.h"
#include "core/error.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct knn_run {
    int64_t local, global; /* first row of the run in the part and in the whole table */
} knn_run;

typedef struct knn_part {
    ims_knn_table *table;
    knn_run *runs;
    int64_t nruns, cap;
    /* One search's results and status (filled by the part's thread). */
    const float *queries;
    int64_t b;
    int k;
    int64_t *ids;
    float *scores;
    ims_status st;
    ims_error err;
} knn_part;

struct ims_knn_multi {
    int parts;
    int64_t dim, rows;
    int devices; /* every part on a device backend: search them concurrently */
    knn_part *part;
};

void ims_knn_multi_free(ims_knn_multi *m)
{
    if (!m)
        return;
    for (int p = 0; p < m->parts; p++) {
        ims_knn_free(m->part[p].table);
        free(m->part[p].runs);
        free(m->part[p].ids);
        free(m->part[p].scores);
    }
    free(m->part);
    free(m);
}

ims_status ims_knn_multi_create(ims_backend *const *bes, int parts, int64_t dim, const ims_knn_options *o,
                                 ims_knn_multi **out, ims_error *err)
{
    *out = NULL;
    if (parts < 1 || parts > IMS_KNN_MAX_PARTS || !bes)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn: %d devices (1..%d)", parts, IMS_KNN_MAX_PARTS);
    ims_knn_multi *m = calloc(1, sizeof *m);
    if (!m || !(m->part = calloc((size_t)parts, sizeof *m->part))) {
        free(m);
        return ims_error_set(err, IMS_ERR_NOMEM, "knn: out of memory");
    }
    m->parts = parts;
    m->dim = dim;
    m->devices = 1;
    for (int p = 0; p < parts; p++) {
        ims_status st = ims_knn_create(bes[p], dim, o, &m->part[p].table, err);
        if (st) {
            ims_knn_multi_free(m);
            return imsi_error_prefix(err, st, "knn device %d of %d", p, parts);
        }
        m->devices &= bes[p]->memory != IMS_MEMORY_HOST;
    }
    *out = m;
    return IMS_OK;
}

int64_t imsi_knn_multi_rows(const ims_knn_multi *m) { return m->rows; }

static ims_status add_run(knn_part *p, int64_t local, int64_t global, ims_error *err)
{
    if (p->nruns == p->cap) {
        int64_t cap = p->cap ? 2 * p->cap : 16;
        knn_run *r = realloc(p->runs, (size_t)cap * sizeof *r);
        if (!r)
            return ims_error_set(err, IMS_ERR_NOMEM, "knn: out of memory");
        p->runs = r;
        p->cap = cap;
    }
    p->runs[p->nruns++] = (knn_run){local, global};
    return IMS_OK;
}

ims_status ims_knn_multi_append(ims_knn_multi *m, const void *rows, ims_dtype dtype, int64_t n, ims_error *err)
{
    if (n < 0 || (n > 0 && !rows))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn append: %lld rows at %p", (long long)n, rows);
    size_t row_bytes = (size_t)m->dim * ims_dtype_size(dtype);
    for (int p = 0; p < m->parts; p++) {
        int64_t r0 = n * p / m->parts, r1 = n * (p + 1) / m->parts;
        if (r1 == r0)
            continue;
        knn_part *part = &m->part[p];
        int64_t local = ims_knn_rows(part->table);
        ims_status st = ims_knn_append(part->table, (const char *)rows + (size_t)r0 * row_bytes, dtype, r1 - r0, err);
        if (!st)
            st = add_run(part, local, m->rows + r0, err);
        if (st) /* the parts before this one took their rows: the table is no longer usable */
            return imsi_error_prefix(err, st, "knn device %d of %d (the split table is now inconsistent)", p, m->parts);
    }
    m->rows += n;
    return IMS_OK;
}

static int64_t global_row(const knn_part *p, int64_t local)
{
    int64_t lo = 0, hi = p->nruns - 1; /* the last run starting at or before local */
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (p->runs[mid].local <= local)
            lo = mid;
        else
            hi = mid - 1;
    }
    return p->runs[lo].global + (local - p->runs[lo].local);
}

static void *search_part(void *arg)
{
    knn_part *p = arg;
    memset(&p->err, 0, sizeof p->err);
    p->st = ims_knn_search(p->table, p->queries, p->b, p->k, p->ids, p->scores, &p->err);
    return NULL;
}

/* Per query, the best k of the parts' lists (each best first, global ids). */
static void merge_parts(ims_knn_multi *m, int64_t b, int k, int64_t *ids, float *scores)
{
    int head[IMS_KNN_MAX_PARTS];
    for (int64_t q = 0; q < b; q++) {
        memset(head, 0, sizeof head);
        for (int j = 0; j < k; j++) {
            int best = -1;
            float bs = 0.0f;
            int64_t bid = 0;
            for (int p = 0; p < m->parts; p++) {
                if (head[p] >= k)
                    continue;
                size_t o = (size_t)q * k + (size_t)head[p];
                int64_t id = m->part[p].ids[o];
                if (id < 0)
                    continue;
                float s = m->part[p].scores[o];
                if (best < 0 || s > bs || (s == bs && id < bid)) {
                    best = p;
                    bs = s;
                    bid = id;
                }
            }
            size_t out = (size_t)q * k + (size_t)j;
            if (best < 0) {
                ids[out] = -1;
                scores[out] = -INFINITY;
                continue;
            }
            ids[out] = bid;
            scores[out] = bs;
            head[best]++;
        }
    }
}

ims_status ims_knn_multi_search(ims_knn_multi *m, const float *queries, int64_t b, int k, int64_t *ids,
                                 float *scores, ims_error *err)
{
    if (k < 1 || k > IMS_KNN_MAX_K)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn search: k = %d is out of range 1..%d", k, IMS_KNN_MAX_K);
    if (b < 0 || (b > 0 && (!queries || !ids || !scores)) || b > INT32_MAX)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn search: %lld queries", (long long)b);
    size_t out = (size_t)b * (size_t)k;
    for (int p = 0; p < m->parts; p++) {
        knn_part *part = &m->part[p];
        free(part->ids);
        free(part->scores);
        part->ids = malloc(out ? out * sizeof *part->ids : 1);
        part->scores = malloc(out ? out * sizeof *part->scores : 1);
        if (!part->ids || !part->scores)
            return ims_error_set(err, IMS_ERR_NOMEM, "knn search: out of memory for %lld x %d results", (long long)b,
                                 k);
        part->queries = queries;
        part->b = b;
        part->k = k;
    }
    pthread_t threads[IMS_KNN_MAX_PARTS];
    int started[IMS_KNN_MAX_PARTS] = {0};
    for (int p = 0; p < m->parts; p++) {
        if (m->devices && m->parts > 1 && pthread_create(&threads[p], NULL, search_part, &m->part[p]) == 0)
            started[p] = 1;
        else
            search_part(&m->part[p]); /* host parts, or no thread to be had: here */
    }
    for (int p = 0; p < m->parts; p++)
        if (started[p])
            pthread_join(threads[p], NULL);
    for (int p = 0; p < m->parts; p++)
        if (m->part[p].st) {
            *err = m->part[p].err;
            return imsi_error_prefix(err, m->part[p].st, "knn device %d of %d", p, m->parts);
        }
    for (int p = 0; p < m->parts; p++)
        for (size_t i = 0; i < out; i++)
            if (m->part[p].ids[i] >= 0)
                m->part[p].ids[i] = global_row(&m->part[p], m->part[p].ids[i]);
    merge_parts(m, b, k, ids, scores);
    return IMS_OK;
}
