/* knn.c: the k-NN table: rows in, exact top-k out, on any backend.
 *
 * A table keeps every row in host memory (the backend's host buffers: pinned
 * on CUDA), normalized (cosine) and rounded to the storage dtype on append:
 * (rows, dim). How a search reaches the rows:
 * - resident (max_rows_per_chunk == 0): the backend holds a copy (on the CPU
 *   backend the host buffer itself), grown by 1.5x and topped up with the new
 *   rows before a search (an asynchronous upload the search queues behind);
 *   one search over the whole table.
 * - streamed (max_rows_per_chunk > 0, or when the resident copy does not fit
 *   in device memory): chunks of rows go from the pinned host rows into two
 *   device buffers taken in turn, the next chunk's upload overlapping the
 *   current chunk's search; each chunk's top-k comes back and is merged on
 *   the host into the running best (imsi_knn_merge). The CPU backend runs the same loop
 *   over its host rows, so CPU tests exercise the merge.
 * The op returns each chunk's best sorted (equal scores by lower row) and
 * chunks go in increasing row order, so the merge stays exact and
 * deterministic: the answer is the same whatever the chunk size.
 *
 * Queries are cut into batches of at most IMS_KNN_RESULT_ENTRIES / k queries.
 *
 * f16 tables may be searched through the prefilter (use_prefilter: by default
 * on a device above 16 queries; IMS_KNN_PATH_GEMM_F16 forces it, also on the
 * CPU): knn_select with the queries rounded to f16 (fp16 tensor-core GEMM on
 * CUDA) keeps C = 2k + 32 candidates, knn_rescore scores them exactly (fp64,
 * rounded once) and keeps the best k, and says per query whether the rounding
 * bound (prefilter_margins) proves that no row outside the candidates can
 * reach the k-th score; where it does not, that query is searched again with
 * the exact path (redo_exact). The answer is the exact one either way.
 */
#include "index/knn.h"

#include "kernels/cuda/knn_tile.h"
#include "kernels/cpu/ops_cpu.h"
#include "backend/backend.h"
#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KNN_APPEND_BATCH 4096
#define KNN_FALLBACK_CHUNK_BYTES ((size_t)256 << 20)

typedef struct knn_scratch knn_scratch;

struct ims_knn_table {
    ims_backend *be;
    ims_knn_options opt;
    int64_t dim, rows, capacity;
    size_t elem, row_bytes;
    void *host;             /* (capacity, dim) storage dtype; backend host memory */
    void *dev;              /* resident copy (device backends), (dev_capacity, dim) */
    int64_t dev_capacity, dev_rows;
    int64_t fallback_chunk; /* > 0 once a resident copy failed to fit */
    knn_scratch *scratch;   /* kept between searches (device allocations are slow) */
    int64_t max_batch;      /* tests: a lower query batch size; 0: imsi_knn_query_batch */
    double row_norm_max;    /* a bound on every stored row's norm (the prefilter's margin) */
    int64_t pre_queries, pre_fallbacks; /* prefilter counts (tests, imsi_knn_prefilter_counts) */
};

void imsi_knn_set_max_batch(ims_knn_table *t, int64_t queries) { t->max_batch = queries > 0 ? queries : 0; }

void imsi_knn_prefilter_counts(const ims_knn_table *t, int64_t *queries, int64_t *fallbacks)
{
    *queries = t->pre_queries;
    *fallbacks = t->pre_fallbacks;
}

void ims_knn_options_init(ims_knn_options *o)
{
    memset(o, 0, sizeof *o);
    o->metric = IMS_KNN_METRIC_COSINE;
    o->dtype = IMS_DTYPE_F16;
    o->path = IMS_KNN_PATH_AUTO;
}

int64_t ims_knn_rows(const ims_knn_table *t) { return t->rows; }

const void *imsi_knn_row(const ims_knn_table *t, int64_t i)
{
    return i >= 0 && i < t->rows ? (const char *)t->host + (size_t)i * t->row_bytes : NULL;
}

ims_dtype imsi_knn_storage(const ims_knn_table *t) { return t->opt.dtype; }
int64_t ims_knn_dim(const ims_knn_table *t) { return t->dim; }

int64_t imsi_knn_query_batch(int k)
{
    int64_t by_results = IMS_KNN_RESULT_ENTRIES / k, by_tile = IMS_KNN_TILE_FLOATS / (k + 1024);
    int64_t q = by_results < by_tile ? by_results : by_tile;
    return q < 1 ? 1 : q;
}

size_t ims_knn_estimate_bytes(int64_t n, int64_t dim, ims_dtype dtype, int64_t b, int k)
{
    if (k >= 1 && b > imsi_knn_query_batch(k))
        b = imsi_knn_query_batch(k); /* searches run in batches of at most this */
    size_t es = ims_dtype_size(dtype);
    size_t ws = imsi_knn_workspace_bytes(b, k, n, dim);
    if (dtype == IMS_DTYPE_F16 && k >= 1 && k <= IMS_KNN_PREFILTER_MAX_K) { /* the f16 prefilter's candidates */
        int c = imsi_knn_prefilter_candidates(k);
        size_t wc = imsi_knn_workspace_bytes(b, c, n, dim);
        ws = wc > ws && wc - ws < SIZE_MAX / 2 ? wc + (size_t)b * c * 8 : ws;
    }
    if (!es || !ws || n < 0 || dim < 1)
        return 0;
    __int128 bytes = (__int128)n * dim * es + ws;
    return bytes > (__int128)SIZE_MAX ? 0 : (size_t)bytes;
}

/* ---- Create, append, free ---------------------------------------------------------- */

ims_status ims_knn_create(ims_backend *be, int64_t dim, const ims_knn_options *o, ims_knn_table **out,
                          ims_error *err)
{
    *out = NULL;
    ims_knn_options def;
    if (!o) {
        ims_knn_options_init(&def);
        o = &def;
    }
    if (!be)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn: no backend");
    if (dim < 1 || dim > (1 << 20))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn: dim %lld is out of range 1..%d", (long long)dim, 1 << 20);
    if (o->dtype != IMS_DTYPE_F16 && o->dtype != IMS_DTYPE_F32)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn: storage dtype %s (f16 or f32)", ims_dtype_name(o->dtype));
    if (o->metric != IMS_KNN_METRIC_COSINE && o->metric != IMS_KNN_METRIC_IP)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn: unknown metric %d", (int)o->metric);
    if (o->max_rows_per_chunk < 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn: max_rows_per_chunk %lld < 0", (long long)o->max_rows_per_chunk);
    if (o->path < IMS_KNN_PATH_AUTO || o->path > IMS_KNN_PATH_GEMM_F16)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn: unknown path %d", (int)o->path);
    ims_knn_table *t = calloc(1, sizeof *t);
    if (!t)
        return ims_error_set(err, IMS_ERR_NOMEM, "knn: out of memory");
    t->be = be;
    t->opt = *o;
    t->dim = dim;
    t->elem = ims_dtype_size(o->dtype);
    t->row_bytes = (size_t)dim * t->elem;
    if (o->metric == IMS_KNN_METRIC_COSINE) /* unit rows: the fp32 normalization's and the f16 rounding's error */
        t->row_norm_max = (1.0 + ldexp(1.0, -11)) * (1.0 + (dim + 2) * ldexp(1.0, -23)) + sqrt((double)dim) * ldexp(1.0, -25);
    *out = t;
    return IMS_OK;
}

static void free_device_copy(ims_knn_table *t)
{
    if (t->dev)
        imsi_backend_dealloc(t->be, t->dev, (size_t)t->dev_capacity * t->row_bytes);
    t->dev = NULL;
    t->dev_capacity = t->dev_rows = 0;
}

static void scratch_free(ims_knn_table *t, knn_scratch *s);

void ims_knn_free(ims_knn_table *t)
{
    if (!t)
        return;
    scratch_free(t, t->scratch);
    free_device_copy(t);
    imsi_backend_host_free(t->be, t->host);
    free(t);
}

/* Room for need rows: exactly need (exact), or with headroom for appends to come. */
static ims_status grow_host(ims_knn_table *t, int64_t need, int exact, ims_error *err)
{
    if (need <= t->capacity)
        return IMS_OK;
    int64_t cap = exact ? need : t->capacity + t->capacity / 2;
    if (cap < need)
        cap = need;
    if (!exact && cap < 1024)
        cap = 1024;
    if ((uint64_t)cap > SIZE_MAX / t->row_bytes)
        return ims_error_set(err, IMS_ERR_NOMEM, "knn: %lld rows of %zu bytes overflow", (long long)cap, t->row_bytes);
    void *p;
    ims_status st = imsi_backend_host_alloc(t->be, (size_t)cap * t->row_bytes, &p, err);
    if (st)
        return imsi_error_prefix(err, st, "knn: growing the table to %lld rows", (long long)cap);
    if (t->rows)
        memcpy(p, t->host, (size_t)t->rows * t->row_bytes);
    imsi_backend_host_free(t->be, t->host);
    t->host = p;
    t->capacity = cap;
    return IMS_OK;
}

ims_status ims_knn_reserve(ims_knn_table *t, int64_t rows, ims_error *err)
{
    if (rows < 0 || rows > INT32_MAX)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn reserve: %lld rows (0..%d)", (long long)rows, INT32_MAX);
    return grow_host(t, rows, 1, err);
}

/* x (n, dim) f32 in place: checks each row (what names it: "row", "query") and
 * normalizes it (cosine) into y_f32 or y_f16. first: index of x's row 0. */
static ims_status prepare_rows(const ims_knn_table *t, float *x, int n, float *y_f32, uint16_t *y_f16, float *norms,
                               int64_t first, const char *what, ims_error *err)
{
    int d = (int)t->dim;
    for (int r = 0; r < n; r++)
        for (int c = 0; c < d; c++)
            if (!isfinite(x[(size_t)r * d + c]))
                return ims_error_set(err, IMS_ERR_ARGUMENT, "knn: %s %lld has a %s at column %d", what,
                                     (long long)(first + r), isnan(x[(size_t)r * d + c]) ? "NaN" : "Inf", c);
    if (t->opt.metric == IMS_KNN_METRIC_COSINE) {
        imsi_cpu_l2_normalize_rows(x, y_f32, y_f16, norms, n, d);
        for (int r = 0; r < n; r++)
            if (!(norms[r] > 0.0f))
                return ims_error_set(err, IMS_ERR_ARGUMENT, "knn: %s %lld is all zeros (no direction for cosine)", what,
                                     (long long)(first + r));
        return IMS_OK;
    }
    size_t count = (size_t)n * d;
    if (y_f32) {
        if (y_f32 != x)
            memcpy(y_f32, x, count * sizeof *x);
        return IMS_OK;
    }
    imsi_cpu_convert_f32_to_f16(x, y_f16, count);
    for (size_t i = 0; i < count; i++)
        if ((y_f16[i] & 0x7c00u) == 0x7c00u)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "knn: %s %lld: value %g at column %zu overflows f16 storage", what,
                                 (long long)(first + (int64_t)(i / d)), x[i], i % d);
    return IMS_OK;
}

/* Raises row_norm_max over n raw rows x (n, dim) (inner-product metric): the
 * norm in fp64, plus the f16 rounding (2^-11 relative, 2^-25 per subnormal). */
static void norm_bound(ims_knn_table *t, const float *x, int n)
{
    for (int r = 0; r < n; r++) {
        double ss = 0.0;
        for (int64_t c = 0; c < t->dim; c++)
            ss += (double)x[(size_t)r * t->dim + c] * x[(size_t)r * t->dim + c];
        double norm = sqrt(ss) * (1.0 + ldexp(1.0, -11)) + sqrt((double)t->dim) * ldexp(1.0, -25);
        if (norm > t->row_norm_max)
            t->row_norm_max = norm;
    }
}

ims_status ims_knn_append(ims_knn_table *t, const void *rows, ims_dtype dtype, int64_t n, ims_error *err)
{
    if (n < 0 || (n > 0 && !rows))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn append: %lld rows at %p", (long long)n, rows);
    if (dtype != IMS_DTYPE_F32 && dtype != IMS_DTYPE_F16)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn append: rows of dtype %s (f32 or f16)", ims_dtype_name(dtype));
    if (n == 0)
        return IMS_OK;
    if (n > INT64_MAX - t->rows || t->rows + n > INT32_MAX)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "knn append: %lld + %lld rows exceed %d", (long long)t->rows,
                             (long long)n, INT32_MAX);
    ims_status st = grow_host(t, t->rows + n, 0, err);
    if (st)
        return st;
    size_t batch_floats = (size_t)KNN_APPEND_BATCH * t->dim;
    float *x = malloc(batch_floats * sizeof *x);
    float *norms = malloc(KNN_APPEND_BATCH * sizeof *norms);
    if (!x || !norms) {
        free(x);
        free(norms);
        return ims_error_set(err, IMS_ERR_NOMEM, "knn append: out of memory");
    }
    for (int64_t r0 = 0; r0 < n && !st; r0 += KNN_APPEND_BATCH) {
        int count = (int)(n - r0 < KNN_APPEND_BATCH ? n - r0 : KNN_APPEND_BATCH);
        size_t m = (size_t)count * t->dim;
        if (dtype == IMS_DTYPE_F32)
            memcpy(x, (const float *)rows + (size_t)r0 * t->dim, m * sizeof *x);
        else
            imsi_cpu_convert_f16_to_f32((const uint16_t *)rows + (size_t)r0 * t->dim, x, m);
        char *dst = (char *)t->host + (size_t)(t->rows + r0) * t->row_bytes;
        int f16 = t->opt.dtype == IMS_DTYPE_F16;
        st = prepare_rows(t, x, count, f16 ? NULL : (float *)dst, f16 ? (uint16_t *)dst : NULL, norms, t->rows + r0,
                          "row", err);
        if (!st && t->opt.metric == IMS_KNN_METRIC_IP) /* x is left as given (checked finite) */
            norm_bound(t, x, count);
    }
    free(x);
    free(norms);
    if (!st)
        t->rows += n; /* on failure the rows written past t->rows are ignored */
    return st;
}

/* ---- Merge --------------------------------------------------------------------------- */

int imsi_knn_merge(const float *a_scores, const int64_t *a_ids, int na, const float *b_scores, const int32_t *b_ids,
                   int64_t b_base, int nb, int k, float *out_scores, int64_t *out_ids)
{
    int i = 0, j = 0, n = 0;
    while (n < k && (i < na || j < nb)) {
        int take_a;
        if (i >= na)
            take_a = 0;
        else if (j >= nb)
            take_a = 1;
        else {
            int64_t bid = b_base + b_ids[j];
            take_a = a_scores[i] > b_scores[j] || (a_scores[i] == b_scores[j] && a_ids[i] < bid);
        }
        if (take_a) {
            out_scores[n] = a_scores[i];
            out_ids[n++] = a_ids[i++];
        } else {
            out_scores[n] = b_scores[j];
            out_ids[n++] = b_base + b_ids[j++];
        }
    }
    return n;
}

/* ---- Search ---------------------------------------------------------------------------- */

/* A tensor view of memory the backend owns (or host memory on the CPU backend). */
static imsi_tensor view(const ims_backend *be, void *data, ims_dtype dtype, int64_t rows, int64_t cols)
{
    imsi_tensor v;
    memset(&v, 0, sizeof v);
    v.data = data;
    v.dtype = dtype;
    v.ndim = 2;
    v.shape[0] = rows;
    v.shape[1] = cols;
    v.shape[2] = v.shape[3] = 1;
    v.memory = be->memory;
    return v;
}

static int on_host(const ims_knn_table *t) { return t->be->memory == IMS_MEMORY_HOST; }

/* An upload that may overlap work already enqueued (backend.h upload_async);
 * a plain upload on backends without it. */
static ims_status upload_async(ims_backend *be, void *dst, const void *src, size_t nbytes, ims_error *err)
{
    if (be->ops->upload_async)
        return be->ops->upload_async(be, dst, src, nbytes, err);
    return be->ops->upload(be, dst, src, nbytes, err);
}

/* Scratch of one search call: queries, chunk results, staging on the device. */
struct knn_scratch {
    int64_t qcap;
    int kcap;
    float *q;              /* host (qcap, dim) normalized queries */
    float *norms;          /* host (qcap) */
    int32_t *chunk_ids;    /* host (qcap, kcap) */
    float *chunk_scores;   /* host (qcap, kcap) */
    int64_t *run_ids;      /* host (qcap, kcap) running best (streamed) */
    float *run_scores;
    int *run_n;            /* host (qcap) */
    int64_t *tmp_ids;      /* host (kcap) */
    float *tmp_scores;
    void *dq, *dids, *dscores; /* device (qcap, dim), (qcap, kcap) x 2; NULL on the CPU */
    void *dchunk[2];           /* device chunk buffers (streamed) */
    size_t dchunk_bytes;
    /* The f16 prefilter (pcap > 0): candidates per query, host arrays and
     * their device twins (NULL on the CPU, whose ops read the host ones). */
    int pcap;
    int32_t *cand_ids;     /* (qcap, pcap) */
    float *cand_scores;    /* (qcap, pcap) */
    float *margin;         /* (qcap) */
    int32_t *ok;           /* (qcap) */
    int64_t *redo;         /* (qcap) queries searched again exactly */
    float *redo_q;         /* (qcap, dim) */
    void *dcand_ids, *dcand_scores, *dmargin, *dok, *dredo_q;
};

static void scratch_free(ims_knn_table *t, knn_scratch *s)
{
    if (!s)
        return;
    free(s->q);
    free(s->norms);
    free(s->chunk_ids);
    free(s->chunk_scores);
    free(s->run_ids);
    free(s->run_scores);
    free(s->run_n);
    free(s->tmp_ids);
    free(s->tmp_scores);
    free(s->cand_ids);
    free(s->cand_scores);
    free(s->margin);
    free(s->ok);
    free(s->redo);
    free(s->redo_q);
    size_t qc = (size_t)s->qcap * s->pcap;
    void *pdev[] = {s->dcand_ids, s->dcand_scores, s->dmargin, s->dok, s->dredo_q};
    size_t pbytes[] = {qc * 4, qc * 4, (size_t)s->qcap * 4, (size_t)s->qcap * 4, (size_t)s->qcap * t->dim * 4};
    for (int i = 0; i < 5; i++)
        if (pdev[i])
            imsi_backend_dealloc(t->be, pdev[i], pbytes[i]);
    if (s->dq)
        imsi_backend_dealloc(t->be, s->dq, (size_t)s->qcap * t->dim * 4);
    if (s->dids)
        imsi_backend_dealloc(t->be, s->dids, (size_t)s->qcap * s->kcap * 4);
    if (s->dscores)
        imsi_backend_dealloc(t->be, s->dscores, (size_t)s->qcap * s->kcap * 4);
    for (int i = 0; i < 2; i++)
        if (s->dchunk[i])
            imsi_backend_dealloc(t->be, s->dchunk[i], s->dchunk_bytes);
    free(s);
}

/* Prefilter candidates per query for this k (0: no prefilter for this table and k). */
static int prefilter_cap(const ims_knn_table *t, int k)
{
    if (t->opt.dtype != IMS_DTYPE_F16 || !t->be->ops->knn_rescore || k > IMS_KNN_PREFILTER_MAX_K)
        return 0;
    if (t->opt.path != IMS_KNN_PATH_GEMM_F16 && (t->opt.path != IMS_KNN_PATH_AUTO || on_host(t)))
        return 0; /* the CPU backend takes it only when asked: it is not faster there */
    return imsi_knn_prefilter_candidates(k);
}

static ims_status prefilter_scratch(ims_knn_table *t, knn_scratch *s, ims_error *err)
{
    size_t qc = (size_t)s->qcap * s->pcap;
    s->cand_ids = malloc(qc * sizeof *s->cand_ids);
    s->cand_scores = malloc(qc * sizeof *s->cand_scores);
    s->margin = malloc((size_t)s->qcap * sizeof *s->margin);
    s->ok = malloc((size_t)s->qcap * sizeof *s->ok);
    s->redo = malloc((size_t)s->qcap * sizeof *s->redo);
    s->redo_q = malloc((size_t)s->qcap * t->dim * sizeof *s->redo_q);
    if (!s->cand_ids || !s->cand_scores || !s->margin || !s->ok || !s->redo || !s->redo_q)
        return ims_error_set(err, IMS_ERR_NOMEM, "knn search: cannot allocate prefilter scratch for %lld queries",
                             (long long)s->qcap);
    if (on_host(t))
        return IMS_OK;
    ims_status st = imsi_backend_alloc(t->be, qc * 4, &s->dcand_ids, err);
    if (!st)
        st = imsi_backend_alloc(t->be, qc * 4, &s->dcand_scores, err);
    if (!st)
        st = imsi_backend_alloc(t->be, (size_t)s->qcap * 4, &s->dmargin, err);
    if (!st)
        st = imsi_backend_alloc(t->be, (size_t)s->qcap * 4, &s->dok, err);
    if (!st)
        st = imsi_backend_alloc(t->be, (size_t)s->qcap * t->dim * 4, &s->dredo_q, err);
    return st;
}

static ims_status scratch_init(ims_knn_table *t, knn_scratch *s, int64_t qcap, int kcap, int64_t chunk_rows,
                               ims_error *err)
{
    memset(s, 0, sizeof *s);
    s->qcap = qcap;
    s->kcap = kcap;
    s->pcap = prefilter_cap(t, kcap < IMS_KNN_PREFILTER_MAX_K ? kcap : IMS_KNN_PREFILTER_MAX_K);
    size_t qk = (size_t)qcap * kcap;
    s->q = malloc((size_t)qcap * t->dim * sizeof *s->q);
    s->norms = malloc((size_t)qcap * sizeof *s->norms);
    s->chunk_ids = malloc(qk * sizeof *s->chunk_ids);
    s->chunk_scores = malloc(qk * sizeof *s->chunk_scores);
    s->run_ids = malloc(qk * sizeof *s->run_ids);
    s->run_scores = malloc(qk * sizeof *s->run_scores);
    s->run_n = calloc((size_t)qcap, sizeof *s->run_n);
    s->tmp_ids = malloc((size_t)kcap * sizeof *s->tmp_ids);
    s->tmp_scores = malloc((size_t)kcap * sizeof *s->tmp_scores);
    if (!s->q || !s->norms || !s->chunk_ids || !s->chunk_scores || !s->run_ids || !s->run_scores || !s->run_n ||
        !s->tmp_ids || !s->tmp_scores)
        return ims_error_set(err, IMS_ERR_NOMEM, "knn search: cannot allocate host scratch for %lld queries, k = %d",
                             (long long)qcap, kcap);
    ims_status st = s->pcap ? prefilter_scratch(t, s, err) : IMS_OK;
    if (st || on_host(t))
        return st;
    st = imsi_backend_alloc(t->be, (size_t)qcap * t->dim * 4, &s->dq, err);
    if (!st)
        st = imsi_backend_alloc(t->be, qk * 4, &s->dids, err);
    if (!st)
        st = imsi_backend_alloc(t->be, qk * 4, &s->dscores, err);
    if (!st && chunk_rows > 0) {
        s->dchunk_bytes = (size_t)chunk_rows * t->row_bytes;
        for (int i = 0; i < 2 && !st; i++)
            st = imsi_backend_alloc(t->be, s->dchunk_bytes, &s->dchunk[i], err);
    }
    return st ? imsi_error_prefix(err, st, "knn search scratch") : IMS_OK;
}

/* The table's scratch, reallocated only when a search needs more. */
static ims_status scratch_get(ims_knn_table *t, int64_t qcap, int kcap, int64_t chunk_rows, knn_scratch **out,
                              ims_error *err)
{
    knn_scratch *s = t->scratch;
    size_t chunk_bytes = (size_t)chunk_rows * t->row_bytes;
    if (s && s->qcap >= qcap && s->kcap >= kcap && s->pcap >= prefilter_cap(t, kcap) && (chunk_rows == 0 || s->dchunk_bytes >= chunk_bytes || on_host(t))) {
        *out = s;
        return IMS_OK;
    }
    if (s) {
        qcap = qcap > s->qcap ? qcap : s->qcap;
        kcap = kcap > s->kcap ? kcap : s->kcap;
    }
    scratch_free(t, s);
    t->scratch = NULL;
    if (!(s = calloc(1, sizeof *s)))
        return ims_error_set(err, IMS_ERR_NOMEM, "knn search: out of memory");
    ims_status st = scratch_init(t, s, qcap, kcap, chunk_rows, err);
    if (st) {
        scratch_free(t, s);
        return st;
    }
    *out = t->scratch = s;
    return IMS_OK;
}

/* Makes the resident device copy hold every row. */
static ims_status sync_resident(ims_knn_table *t, ims_error *err)
{
    if (t->dev_capacity < t->rows) {
        int64_t cap = t->dev_capacity ? t->rows + t->rows / 2 : t->rows; /* headroom once it grows */
        free_device_copy(t);
        void *p = NULL;
        ims_status st = imsi_backend_alloc(t->be, (size_t)cap * t->row_bytes, &p, err);
        if (st == IMS_ERR_NOMEM) { /* try without the headroom */
            cap = t->rows;
            st = imsi_backend_alloc(t->be, (size_t)cap * t->row_bytes, &p, err);
        }
        if (st)
            return st;
        t->dev = p;
        t->dev_capacity = cap;
    }
    if (t->dev_rows < t->rows) {
        /* Asynchronous: the queries' upload and the search's ops queue behind
         * it; no pending work reads these new rows, and the pinned host rows
         * do not change until the search's download returns. */
        size_t off = (size_t)t->dev_rows * t->row_bytes;
        ims_status st = upload_async(t->be, (char *)t->dev + off, (const char *)t->host + off,
                                     (size_t)(t->rows - t->dev_rows) * t->row_bytes, err);
        if (st)
            return st;
        t->dev_rows = t->rows;
    }
    return IMS_OK;
}

static imsi_tensor view1(const ims_backend *be, void *data, ims_dtype dtype, int64_t n)
{
    imsi_tensor v = view(be, data, dtype, n, 1);
    v.ndim = 1;
    return v;
}

/* Whether b queries over count rows take the f16 prefilter: C candidates
 * (tensor cores on CUDA), rescored exactly (knn_rescore). On the device by
 * default above the streaming path's 16 queries; on the CPU when asked. */
static int use_prefilter(const ims_knn_table *t, const knn_scratch *s, int64_t b, int k, int64_t count)
{
    int c = prefilter_cap(t, k);
    if (!c || s->pcap < c || count <= c)
        return 0;
    return t->opt.path == IMS_KNN_PATH_GEMM_F16 || b > 16;
}

/* The prefilter's margins: per query a bound on |approximate - exact| score
 * of any row t: |q.t - q16.t| <= ||q - q16|| ||t||, plus the fp32 sums' error
 * ((d + 4) 2^-22 ||q|| ||t||: four times the classic bound, for tensor cores
 * that truncate and for the exact score's own rounding), rounded up. */
static void prefilter_margins(const ims_knn_table *t, knn_scratch *s, int64_t b)
{
    for (int64_t q = 0; q < b; q++) {
        const float *x = s->q + (size_t)q * t->dim;
        double diff = 0.0, nq = 0.0, nq16 = 0.0;
        for (int64_t c = 0; c < t->dim; c++) {
            double v = x[c], v16 = ims_f16_to_f32(ims_f32_to_f16(x[c]));
            diff += (v - v16) * (v - v16);
            nq += v * v;
            nq16 += v16 * v16;
        }
        double big = sqrt(nq > nq16 ? nq : nq16);
        double m = t->row_norm_max * (sqrt(diff) + (double)(t->dim + 4) * ldexp(1.0, -22) * big);
        float f = (float)m;
        s->margin[q] = isfinite(m) && (double)f < m ? nextafterf(f, INFINITY) : f; /* inf: every query redone */
    }
}

/* The prefilter's queries whose bound did not hold (s->ok[q] == 0): searched
 * again exactly over the same rows (tv), results into s->chunk_ids/scores. */
static ims_status redo_exact(ims_knn_table *t, knn_scratch *s, const imsi_tensor *tv, int64_t b, int k, int kc,
                             ims_error *err)
{
    int64_t nr = 0;
    for (int64_t q = 0; q < b; q++)
        if (!s->ok[q]) {
            memcpy(s->redo_q + (size_t)nr * t->dim, s->q + (size_t)q * t->dim, (size_t)t->dim * sizeof *s->q);
            s->redo[nr++] = q;
        }
    t->pre_queries += b;
    t->pre_fallbacks += nr;
    if (nr == 0)
        return IMS_OK;
    /* (nr, kc) results fit the candidate buffers: nr <= b, kc <= k < C. */
    int dev = !on_host(t);
    imsi_tensor qv = view(t->be, dev ? s->dredo_q : s->redo_q, IMS_DTYPE_F32, nr, t->dim);
    imsi_tensor iv = view(t->be, dev ? s->dcand_ids : s->cand_ids, IMS_DTYPE_I32, nr, kc);
    imsi_tensor sv = view(t->be, dev ? s->dcand_scores : s->cand_scores, IMS_DTYPE_F32, nr, kc);
    ims_status st = dev ? t->be->ops->upload(t->be, s->dredo_q, s->redo_q, (size_t)nr * t->dim * 4, err) : IMS_OK;
    if (!st)
        st = imsi_op_knn_select(t->be, tv, &qv, k, IMS_KNN_PATH_AUTO, &iv, &sv, err);
    size_t bytes = (size_t)nr * kc * 4;
    if (!st && dev)
        st = t->be->ops->download(t->be, s->cand_ids, s->dcand_ids, bytes, err);
    if (!st && dev)
        st = t->be->ops->download(t->be, s->cand_scores, s->dcand_scores, bytes, err);
    for (int64_t i = 0; !st && i < nr; i++) {
        memcpy(s->chunk_ids + (size_t)s->redo[i] * kc, s->cand_ids + (size_t)i * kc, (size_t)kc * 4);
        memcpy(s->chunk_scores + (size_t)s->redo[i] * kc, s->cand_scores + (size_t)i * kc, (size_t)kc * 4);
    }
    return st;
}

/* The knn ops of one chunk: the prefilter (approximate candidates, then
 * knn_rescore) or one exact knn_select; results in iv/sv (b, kc). */
static ims_status chunk_ops(ims_knn_table *t, knn_scratch *s, const imsi_tensor *tv, const imsi_tensor *qv, int64_t b,
                            int k, int pre, imsi_tensor *iv, imsi_tensor *sv, ims_error *err)
{
    if (!pre) { /* a forced GEMM_F16 that cannot be prefiltered runs exactly */
        int path = t->opt.path == IMS_KNN_PATH_GEMM_F16 ? IMS_KNN_PATH_AUTO : (int)t->opt.path;
        return imsi_op_knn_select(t->be, tv, qv, k, path, iv, sv, err);
    }
    int c = prefilter_cap(t, k), dev = !on_host(t);
    imsi_tensor civ = view(t->be, dev ? s->dcand_ids : s->cand_ids, IMS_DTYPE_I32, b, c);
    imsi_tensor csv = view(t->be, dev ? s->dcand_scores : s->cand_scores, IMS_DTYPE_F32, b, c);
    imsi_tensor mv = view1(t->be, dev ? s->dmargin : s->margin, IMS_DTYPE_F32, b);
    imsi_tensor okv = view1(t->be, dev ? s->dok : s->ok, IMS_DTYPE_I32, b);
    ims_status st = imsi_op_knn_select(t->be, tv, qv, c, IMS_KNN_PATH_GEMM_F16, &civ, &csv, err);
    if (!st)
        st = imsi_op_knn_rescore(t->be, tv, qv, &civ, &csv, &mv, k, iv, sv, &okv, err);
    return st;
}

/* One chunk's search over rows [r0, r0 + count) (table view tv) for the b
 * queries in s (already on the backend: qv). Leaves the kc = min(k, count)
 * results in s->chunk_ids/chunk_scores (b, kc). next/next_bytes/next_dst: a
 * chunk to start uploading (asynchronously) once the ops are enqueued, so the
 * copy overlaps them; NULL for none. */
static ims_status select_chunk(ims_knn_table *t, knn_scratch *s, const imsi_tensor *tv, const imsi_tensor *qv,
                               int64_t b, int k, int kc, const void *next, size_t next_bytes, void *next_dst,
                               ims_error *err)
{
    imsi_tensor iv, sv;
    if (on_host(t)) {
        iv = view(t->be, s->chunk_ids, IMS_DTYPE_I32, b, kc);
        sv = view(t->be, s->chunk_scores, IMS_DTYPE_F32, b, kc);
    } else {
        iv = view(t->be, s->dids, IMS_DTYPE_I32, b, kc);
        sv = view(t->be, s->dscores, IMS_DTYPE_F32, b, kc);
    }
    int pre = use_prefilter(t, s, b, k, tv->shape[0]);
    ims_status st = chunk_ops(t, s, tv, qv, b, k, pre, &iv, &sv, err);
    if (!st && !on_host(t)) {
        if (next && (st = upload_async(t->be, next_dst, next, next_bytes, err)))
            return st;
        size_t bytes = (size_t)b * kc * 4;
        st = t->be->ops->download(t->be, s->chunk_ids, s->dids, bytes, err);
        if (!st)
            st = t->be->ops->download(t->be, s->chunk_scores, s->dscores, bytes, err);
        if (!st && pre)
            st = t->be->ops->download(t->be, s->ok, s->dok, (size_t)b * 4, err);
    }
    return st || !pre ? st : redo_exact(t, s, tv, b, k, kc, err);
}

/* The streamed search of b queries: chunks of chunk_rows rows, merged. */
static ims_status search_streamed(ims_knn_table *t, knn_scratch *s, const imsi_tensor *qv, int64_t b, int k,
                                  int64_t chunk_rows, ims_error *err)
{
    memset(s->run_n, 0, (size_t)b * sizeof *s->run_n);
    /* Device backends: chunk c sits in buffer c % 2. Chunk c + 1 is uploaded
     * while chunk c is searched (select_chunk starts it after enqueueing the
     * op); its buffer was last read by chunk c - 1, whose results were already
     * downloaded, so that search is complete. */
    if (!on_host(t)) {
        int64_t count = t->rows < chunk_rows ? t->rows : chunk_rows;
        ims_status st = upload_async(t->be, s->dchunk[0], t->host, (size_t)count * t->row_bytes, err);
        if (st)
            return st;
    }
    for (int64_t r0 = 0, c = 0; r0 < t->rows; r0 += chunk_rows, c++) {
        int64_t count = t->rows - r0 < chunk_rows ? t->rows - r0 : chunk_rows;
        int kc = (int)(k < count ? k : count);
        void *rows = on_host(t) ? (char *)t->host + (size_t)r0 * t->row_bytes : s->dchunk[c % 2];
        int64_t r1 = r0 + count, next_count = t->rows - r1 < chunk_rows ? t->rows - r1 : chunk_rows;
        const void *next = r1 < t->rows ? (const char *)t->host + (size_t)r1 * t->row_bytes : NULL;
        imsi_tensor tv = view(t->be, rows, t->opt.dtype, count, t->dim);
        ims_status st = select_chunk(t, s, &tv, qv, b, k, kc, next, (size_t)next_count * t->row_bytes,
                                     s->dchunk[(c + 1) % 2], err);
        if (st) {
            (void)imsi_backend_synchronize(t->be, NULL); /* no copy may still write a buffer */
            return st;
        }
        for (int64_t q = 0; q < b; q++) {
            size_t o = (size_t)q * k;
            int n = imsi_knn_merge(s->run_scores + o, s->run_ids + o, s->run_n[q], s->chunk_scores + (size_t)q * kc,
                                   s->chunk_ids + (size_t)q * kc, r0, kc, k, s->tmp_scores, s->tmp_ids);
            memcpy(s->run_scores + o, s->tmp_scores, (size_t)n * sizeof *s->tmp_scores);
            memcpy(s->run_ids + o, s->tmp_ids, (size_t)n * sizeof *s->tmp_ids);
            s->run_n[q] = n;
        }
    }
    return IMS_OK;
}

/* Chunk rows of the streamed path: the option, or the fallback, or 0 (resident). */
static int64_t chunk_rows_of(const ims_knn_table *t)
{
    if (t->opt.max_rows_per_chunk > 0)
        return t->opt.max_rows_per_chunk;
    return t->fallback_chunk;
}

/* One batch of b queries (b <= s->qcap); results into ids/scores (b, k). */
static ims_status search_batch(ims_knn_table *t, knn_scratch *s, const float *queries, int64_t q0, int64_t b, int k,
                               int64_t *ids, float *scores, ims_error *err)
{
    size_t qfloats = (size_t)b * t->dim;
    memcpy(s->q, queries, qfloats * sizeof *s->q);
    ims_status st = prepare_rows(t, s->q, (int)b, s->q, NULL, s->norms, q0, "query", err);
    if (st)
        return st;
    imsi_tensor qv = view(t->be, s->q, IMS_DTYPE_F32, b, t->dim);
    if (s->pcap)
        prefilter_margins(t, s, b);
    if (!on_host(t)) {
        if ((st = t->be->ops->upload(t->be, s->dq, s->q, qfloats * 4, err)))
            return st;
        if (s->pcap && (st = t->be->ops->upload(t->be, s->dmargin, s->margin, (size_t)b * 4, err)))
            return st;
        qv.data = s->dq;
    }
    int64_t chunk = chunk_rows_of(t);
    if (chunk > 0) {
        if ((st = search_streamed(t, s, &qv, b, k, chunk, err)))
            return st;
    } else {
        void *rows = t->host;
        if (!on_host(t)) {
            if ((st = sync_resident(t, err)))
                return st;
            rows = t->dev;
        }
        imsi_tensor tv = view(t->be, rows, t->opt.dtype, t->rows, t->dim);
        int kc = (int)(k < t->rows ? k : t->rows);
        if ((st = select_chunk(t, s, &tv, &qv, b, k, kc, NULL, 0, NULL, err))) {
            (void)imsi_backend_synchronize(t->be, NULL); /* the rows' upload may still be running */
            return st;
        }
        for (int64_t q = 0; q < b; q++) {
            s->run_n[q] = kc;
            for (int j = 0; j < kc; j++) {
                s->run_ids[(size_t)q * k + j] = s->chunk_ids[(size_t)q * kc + j];
                s->run_scores[(size_t)q * k + j] = s->chunk_scores[(size_t)q * kc + j];
            }
        }
    }
    for (int64_t q = 0; q < b; q++) {
        memcpy(ids + (size_t)q * k, s->run_ids + (size_t)q * k, (size_t)s->run_n[q] * sizeof *ids);
        memcpy(scores + (size_t)q * k, s->run_scores + (size_t)q * k, (size_t)s->run_n[q] * sizeof *scores);
    }
    return IMS_OK;
}

ims_status ims_knn_search(ims_knn_table *t, const float *queries, int64_t b, int k, int64_t *ids, float *scores,
                          ims_error *err)
{
    if (k < 1 || k > IMS_KNN_MAX_K)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn search: k = %d is out of range 1..%d", k, IMS_KNN_MAX_K);
    if (b < 0 || (b > 0 && (!queries || !ids || !scores)))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "knn search: %lld queries with a NULL buffer", (long long)b);
    if (b > INT32_MAX)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "knn search: %lld queries exceed %d", (long long)b, INT32_MAX);
    for (size_t i = 0; i < (size_t)b * k; i++) {
        ids[i] = -1;
        scores[i] = -INFINITY;
    }
    if (b == 0 || t->rows == 0)
        return IMS_OK;
    int pc = prefilter_cap(t, k); /* the prefilter's candidate lists size the batches */
    int64_t qcap = imsi_knn_query_batch(pc > k ? pc : k);
    if (t->max_batch > 0 && t->max_batch < qcap)
        qcap = t->max_batch;
    qcap = qcap < b ? qcap : b;
    for (int attempt = 0; attempt < 2; attempt++) {
        knn_scratch *s = NULL;
        ims_status st = scratch_get(t, qcap, k, chunk_rows_of(t), &s, err);
        for (int64_t q0 = 0; !st && q0 < b; q0 += qcap) {
            int64_t n = b - q0 < qcap ? b - q0 : qcap;
            st = search_batch(t, s, queries + (size_t)q0 * t->dim, q0, n, k, ids + (size_t)q0 * k,
                              scores + (size_t)q0 * k, err);
        }
        /* A resident copy that does not fit: stream the table instead, once. */
        if (st == IMS_ERR_NOMEM && attempt == 0 && !on_host(t) && chunk_rows_of(t) == 0 && t->dev == NULL) {
            scratch_free(t, t->scratch); /* its sizes were for the resident path */
            t->scratch = NULL;
            int64_t chunk = (int64_t)(KNN_FALLBACK_CHUNK_BYTES / t->row_bytes);
            t->fallback_chunk = chunk < 1 ? 1 : chunk;
            continue;
        }
        return st;
    }
    return IMS_OK;
}
