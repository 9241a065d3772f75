/* test_knn.c: the k-NN table (engine/index/knn.c) and the CPU op (kernels/cpu/knn.c)
 * against a float64 brute force, on the CPU backend.
 *
 * The reference scores every stored row (the row as the table stores it: the
 * fp32 normalization of the library, rounded to f16 for f16 storage, so the
 * reference is exact over the stored values) against the query normalized in
 * double, and sorts by (score desc, row asc). Results are compared as FAISS's
 * tests compare them: each returned score equals the reference score of that
 * rank and of that id within tol; every row whose reference score beats the
 * k-th by more than 2 tol is returned; no id repeats; equal returned scores
 * come in increasing id order; positions past N hold -1 / -inf.
 *
 * tol per query: the rounding bound of an fp32 dot product of length D,
 * (D + 2) * 2^-23 * sum_i |q_i r_i| (twice the classic gamma_D bound for
 * recursive summation; blocked sgemm does better), plus the f32 rounding of
 * the normalized query (2^-23 * sum |q_i r_i|).
 *
 * Integer-valued data (ip metric, small integers) makes every dot product exact
 * in fp32 whatever the summation order, with many exact ties: there the ids
 * must equal the reference exactly, which checks the tie order and the chunk
 * merge bit for bit.
 */
#include "backend/backend.h"
#include "index/knn.h"
#include "kernels/cpu/ops_cpu.h"
#include "kernels/cuda/knn_tile.h"
#include "test.h"

#include <math.h>

static ims_backend *be;
static uint64_t rng = 0x5eed1234abcdull;

typedef enum data_kind { DATA_UNIFORM, DATA_CLUSTERED, DATA_DUPLICATES, DATA_INTEGERS } data_kind;

static void fill(float *x, int64_t n, int d, data_kind kind)
{
    float center[4096];
    for (int c = 0; c < d; c++)
        center[c] = test_rand_uniform(&rng, -1.0f, 1.0f);
    for (int64_t r = 0; r < n; r++)
        for (int c = 0; c < d; c++) {
            float *v = &x[(size_t)r * d + c];
            switch (kind) {
            case DATA_UNIFORM:
                *v = test_rand_uniform(&rng, -1.0f, 1.0f);
                break;
            case DATA_CLUSTERED: /* scores within ~1e-3 of each other */
                *v = center[c] + test_rand_uniform(&rng, -1e-3f, 1e-3f);
                break;
            case DATA_DUPLICATES: /* 5 distinct rows, repeated: exact ties */
                *v = r < 5 ? test_rand_uniform(&rng, -1.0f, 1.0f) : x[(size_t)(r % 5) * d + c];
                break;
            case DATA_INTEGERS:
                *v = (float)((int)(test_rand_u64(&rng) % 5) - 2);
                if (r % 7 == 3 && c == 0)
                    *v = 3.0f; /* no all-zero row */
                break;
            }
        }
    if (kind == DATA_INTEGERS)
        for (int64_t r = 0; r < n; r++)
            x[(size_t)r * d] = x[(size_t)r * d] == 0.0f ? 1.0f : x[(size_t)r * d];
}

/* The rows as the table stores them, as f32: (n, d). */
static void stored_rows(const float *x, int64_t n, int d, ims_knn_metric metric, ims_dtype dtype, float *out)
{
    float *norms = malloc((size_t)n * sizeof *norms);
    if (metric == IMS_KNN_METRIC_COSINE)
        imsi_cpu_l2_normalize_rows(x, out, NULL, norms, (int)n, d);
    else
        memcpy(out, x, (size_t)n * d * sizeof *out);
    if (dtype == IMS_DTYPE_F16)
        for (size_t i = 0; i < (size_t)n * d; i++)
            out[i] = ims_f16_to_f32(ims_f32_to_f16(out[i]));
    free(norms);
}

typedef struct ref_entry {
    double s;
    int64_t id;
} ref_entry;

static int ref_cmp(const void *pa, const void *pb)
{
    const ref_entry *a = pa, *b = pb;
    if (a->s != b->s)
        return a->s > b->s ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

typedef struct case_desc {
    int64_t n;
    int d, b, k;
    data_kind kind;
    ims_knn_metric metric;
    ims_dtype dtype;
    int64_t chunk;
    int append_pieces;
    ims_knn_path path; /* 0: AUTO */
} case_desc;

/* Checks one query's results; exact: ids must equal the reference order. */
static void check_query(const case_desc *c, const float *stored, const float *query, const int64_t *ids,
                        const float *scores, int qi, int exact)
{
    int d = c->d;
    double qn = 0.0;
    for (int j = 0; j < d; j++)
        qn += (double)query[j] * query[j];
    double qscale = c->metric == IMS_KNN_METRIC_COSINE ? 1.0 / sqrt(qn) : 1.0;
    ref_entry *ref = malloc((size_t)c->n * sizeof *ref);
    double *by_id = malloc((size_t)c->n * sizeof *by_id);
    double mag = 0.0;
    for (int64_t r = 0; r < c->n; r++) {
        double s = 0.0, m = 0.0;
        for (int j = 0; j < d; j++) {
            double p = query[j] * qscale * stored[(size_t)r * d + j];
            s += p;
            m += fabs(p);
        }
        ref[r] = (ref_entry){s, r};
        by_id[r] = s;
        mag = m > mag ? m : mag;
    }
    qsort(ref, (size_t)c->n, sizeof *ref, ref_cmp);
    double tol = (d + 3) * ldexp(1.0, -23) * (mag > 1e-30 ? mag : 1e-30);
    int kk = c->k < c->n ? c->k : (int)c->n;
    int bad = 0;
    unsigned char *seen = calloc((size_t)c->n, 1);
    for (int j = 0; j < c->k && bad < 3; j++) {
        if (j >= kk) {
            if (ids[j] != -1 || scores[j] != -INFINITY) {
                TEST_CHECK(0, "q%d pos %d past N: id %lld score %g", qi, j, (long long)ids[j], scores[j]);
                bad++;
            }
            continue;
        }
        int64_t id = ids[j];
        if (id < 0 || id >= c->n || seen[id]) {
            TEST_CHECK(0, "q%d pos %d: id %lld invalid or repeated", qi, j, (long long)id);
            bad++;
            continue;
        }
        seen[id] = 1;
        if (fabs(scores[j] - ref[j].s) > tol || fabs(scores[j] - by_id[id]) > tol) {
            TEST_CHECK(0, "q%d pos %d id %lld: score %.9g, ref at rank %.9g, ref of id %.9g (tol %.3g)", qi, j,
                       (long long)id, scores[j], ref[j].s, by_id[id], tol);
            bad++;
        }
        if (j > 0 && (scores[j] > scores[j - 1] || (scores[j] == scores[j - 1] && ids[j] < ids[j - 1]))) {
            TEST_CHECK(0, "q%d pos %d: order (%.9g, %lld) after (%.9g, %lld)", qi, j, scores[j], (long long)ids[j],
                       scores[j - 1], (long long)ids[j - 1]);
            bad++;
        }
        if (exact && id != ref[j].id) {
            TEST_CHECK(0, "q%d pos %d: id %lld, exact reference %lld", qi, j, (long long)id, (long long)ref[j].id);
            bad++;
        }
    }
    /* Every clear winner is present. */
    double kth = ref[kk - 1].s;
    for (int64_t j = 0; j < kk && !bad; j++)
        if (ref[j].s > kth + 2 * tol && !seen[ref[j].id]) {
            TEST_CHECK(0, "q%d: row %lld (score %.9g > k-th %.9g) missing", qi, (long long)ref[j].id, ref[j].s, kth);
            bad++;
        }
    test_checks_run++;
    free(seen);
    free(by_id);
    free(ref);
}

static void run_case(const case_desc *c)
{
    float *x = malloc((size_t)c->n * c->d * sizeof *x);
    float *stored = malloc((size_t)c->n * c->d * sizeof *stored);
    float *q = malloc((size_t)c->b * c->d * sizeof *q);
    fill(x, c->n, c->d, c->kind);
    fill(q, c->b, c->d, c->kind == DATA_DUPLICATES ? DATA_UNIFORM : c->kind);
    stored_rows(x, c->n, c->d, c->metric, c->dtype, stored);

    ims_knn_options o;
    ims_knn_options_init(&o);
    o.metric = c->metric;
    o.dtype = c->dtype;
    o.max_rows_per_chunk = c->chunk;
    o.path = c->path;
    ims_knn_table *t;
    ims_error err = {0};
    TEST_OK(ims_knn_create(be, c->d, &o, &t, &err), err);
    /* Appended in pieces (the indexer adds chunks); half the pieces as f16 input
     * would change the values, so f16 input is tested separately. */
    int pieces = c->append_pieces > 0 ? c->append_pieces : 1;
    for (int p = 0; p < pieces; p++) {
        int64_t r0 = c->n * p / pieces, r1 = c->n * (p + 1) / pieces;
        TEST_OK(ims_knn_append(t, x + (size_t)r0 * c->d, IMS_DTYPE_F32, r1 - r0, &err), err);
    }
    TEST_CHECK(ims_knn_rows(t) == c->n, "rows %lld", (long long)ims_knn_rows(t));
    size_t out = (size_t)c->b * c->k;
    int64_t *ids = malloc(out * sizeof *ids), *ids2 = malloc(out * sizeof *ids2);
    float *scores = malloc(out * sizeof *scores), *scores2 = malloc(out * sizeof *scores2);
    TEST_OK(ims_knn_search(t, q, c->b, c->k, ids, scores, &err), err);
    for (int i = 0; i < c->b; i++)
        check_query(c, stored, q + (size_t)i * c->d, ids + (size_t)i * c->k, scores + (size_t)i * c->k, i,
                    c->kind == DATA_INTEGERS);
    /* Deterministic: a second run gives the same bits. */
    TEST_OK(ims_knn_search(t, q, c->b, c->k, ids2, scores2, &err), err);
    TEST_CHECK(!memcmp(ids, ids2, out * sizeof *ids) && !memcmp(scores, scores2, out * sizeof *scores),
               "n %lld d %d b %d k %d: two runs differ", (long long)c->n, c->d, c->b, c->k);
    int64_t pre, redone;
    imsi_knn_prefilter_counts(t, &pre, &redone);
    int64_t rows = c->chunk > 0 && c->chunk < c->n ? c->chunk : c->n; /* chunks of at least C rows take it */
    int want = c->path == IMS_KNN_PATH_GEMM_F16 && c->dtype == IMS_DTYPE_F16 && c->k <= IMS_KNN_PREFILTER_MAX_K &&
               rows > imsi_knn_prefilter_candidates(c->k);
    TEST_CHECK(want ? pre > 0 : pre == 0, "n %lld k %d: %lld prefiltered queries", (long long)c->n, c->k, (long long)pre);
    if (pre)
        fprintf(stderr, "prefilter n %lld d %d b %d k %d: %lld of %lld queries redone exactly\n", (long long)c->n, c->d,
                c->b, c->k, (long long)redone, (long long)pre);
    ims_knn_free(t);
    free(ids);
    free(ids2);
    free(scores);
    free(scores2);
    free(q);
    free(stored);
    free(x);
}

static void test_cases(void)
{
    const case_desc cases[] = {
        /* n, d, b, k, data, metric, dtype, chunk, pieces */
        {1, 5, 1, 1, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F32, 0, 1, IMS_KNN_PATH_AUTO},
        {1, 5, 2, 7, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 0, 1, IMS_KNN_PATH_AUTO},
        {100, 7, 3, 1, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F32, 0, 3, IMS_KNN_PATH_AUTO},
        {1000, 33, 5, 10, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 0, 1, IMS_KNN_PATH_AUTO},
        {1000, 33, 5, 1000, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F32, 0, 2, IMS_KNN_PATH_AUTO},  /* k = N */
        {777, 64, 4, 2000, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 0, 1, IMS_KNN_PATH_AUTO},   /* k > N */
        {5003, 384, 2, 100, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 0, 4, IMS_KNN_PATH_AUTO},
        {3001, 129, 40, 64, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F32, 0, 1, IMS_KNN_PATH_AUTO},
        {2500, 16, 1, IMS_KNN_MAX_K, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F32, 0, 1, IMS_KNN_PATH_AUTO},
        {20000, 12, 3, 300, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F32, 0, 1, IMS_KNN_PATH_AUTO}, /* several CPU blocks */
        {2000, 50, 6, 50, DATA_CLUSTERED, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F32, 0, 1, IMS_KNN_PATH_AUTO},
        {2000, 50, 6, 50, DATA_CLUSTERED, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 333, 1, IMS_KNN_PATH_AUTO},
        {1500, 31, 5, 40, DATA_DUPLICATES, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F32, 0, 1, IMS_KNN_PATH_AUTO},
        {1500, 31, 5, 40, DATA_DUPLICATES, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 97, 1, IMS_KNN_PATH_AUTO},
        {1200, 20, 4, 30, DATA_UNIFORM, IMS_KNN_METRIC_IP, IMS_DTYPE_F32, 0, 1, IMS_KNN_PATH_AUTO},
        {1200, 20, 4, 30, DATA_UNIFORM, IMS_KNN_METRIC_IP, IMS_DTYPE_F16, 250, 1, IMS_KNN_PATH_AUTO},
        /* Exact (integer) data: tie order and merge, chunk sizes 1, 7, N - 1, N, > N. */
        {3000, 13, 5, 200, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F32, 0, 1, IMS_KNN_PATH_AUTO},
        {3000, 13, 5, 200, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F16, 0, 1, IMS_KNN_PATH_AUTO},
        {300, 13, 3, 40, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F32, 1, 1, IMS_KNN_PATH_AUTO},
        {3000, 13, 5, 200, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F32, 7, 1, IMS_KNN_PATH_AUTO},
        {3000, 13, 5, 200, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F16, 2999, 2, IMS_KNN_PATH_AUTO},
        {3000, 13, 5, 3000, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F32, 3000, 1, IMS_KNN_PATH_AUTO},
        {3000, 13, 5, 5000, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F32, 4096, 1, IMS_KNN_PATH_AUTO},
        {5000, 9, 70, 17, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F32, 1234, 1, IMS_KNN_PATH_AUTO},
        /* Chunked cosine on random data, k above the chunk size. */
        {4000, 40, 3, 500, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 300, 1, IMS_KNN_PATH_AUTO},
        /* The f16 prefilter (exact rescoring; a query whose bound fails is redone). */
        {5003, 384, 20, 100, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 0, 2, IMS_KNN_PATH_GEMM_F16},
        {2000, 50, 6, 50, DATA_CLUSTERED, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 333, 1, IMS_KNN_PATH_GEMM_F16},
        {1500, 31, 5, 40, DATA_DUPLICATES, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 0, 1, IMS_KNN_PATH_GEMM_F16},
        {1200, 20, 4, 30, DATA_UNIFORM, IMS_KNN_METRIC_IP, IMS_DTYPE_F16, 250, 1, IMS_KNN_PATH_GEMM_F16},
        {3000, 13, 5, 200, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F16, 0, 1, IMS_KNN_PATH_GEMM_F16},
        {5000, 9, 70, 17, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F16, 1234, 1, IMS_KNN_PATH_GEMM_F16},
        {3000, 40, 3, 1024, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 0, 1, IMS_KNN_PATH_GEMM_F16},
        {3000, 40, 3, 1025, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 0, 1, IMS_KNN_PATH_GEMM_F16},
        {900, 40, 3, 30, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F32, 0, 1, IMS_KNN_PATH_GEMM_F16},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int before = test_checks_failed;
        run_case(&cases[i]);
        if (test_checks_failed != before)
            fprintf(stderr, "  ^ in case %zu (n %lld d %d b %d k %d chunk %lld)\n", i, (long long)cases[i].n,
                    cases[i].d, cases[i].b, cases[i].k, (long long)cases[i].chunk);
    }
}

/* The fp64 score of every stored row (n, d) against qn, rounded once (the
 * prefilter's rescoring), sorted (score desc, row asc) into ref. */
static void exact_ranking(const float *stored, int64_t n, int d, const float *qn, ref_entry *ref)
{
    for (int64_t r = 0; r < n; r++) {
        double sum = 0.0;
        for (int j = 0; j < d; j++)
            sum += (double)qn[j] * stored[(size_t)r * d + j];
        ref[r] = (ref_entry){(float)sum, r};
    }
    qsort(ref, (size_t)n, sizeof *ref, ref_cmp);
}

/* The f16 prefilter on a table built against its query: rows qn + g a u with u
 * the direction of the query's f16 rounding error (orthogonal to qn), so that
 * the f16 query's scores move rows with a < 0 up and reorder the true top-k;
 * exact duplicates put ties at the boundary; near-duplicates fill the rest.
 * The answer must equal the fp64 reference bit for bit and come from the
 * prefilter (no query redone), while the f16-query kernel alone is wrong. A
 * table of identical rows makes the bound fail: the query is redone exactly. */
static void test_prefilter_adversarial(void)
{
    enum { D = 64, M = 30, DUP = 6, BG = 2000, N = M + DUP + BG };
    float q[D], qn[D], norm, delta[D], u[D];
    for (int j = 0; j < D; j++)
        q[j] = test_rand_uniform(&rng, -1.0f, 1.0f);
    imsi_cpu_l2_normalize_rows(q, qn, NULL, &norm, 1, D);
    double dq = 0.0, du = 0.0;
    for (int j = 0; j < D; j++) {
        delta[j] = qn[j] - ims_f16_to_f32(ims_f32_to_f16(qn[j]));
        dq += (double)delta[j] * qn[j];
    }
    for (int j = 0; j < D; j++) {
        u[j] = (float)(delta[j] - dq * qn[j]);
        du += (double)u[j] * u[j];
    }
    float *x = malloc((size_t)N * D * sizeof *x), *stored = malloc((size_t)N * D * sizeof *stored);
    for (int r = 0; r < M; r++) {
        double a = (1.0 + 0.0002 * r) * (r % 2 ? -1.0 : 1.0);
        for (int j = 0; j < D; j++)
            x[(size_t)r * D + j] = (float)(qn[j] + 0.3 * a * u[j] / sqrt(du));
    }
    for (int r = 0; r < DUP; r++) /* copies of cluster rows: exact ties */
        memcpy(x + (size_t)(M + r) * D, x + (size_t)(5 * r + 2) * D, D * sizeof *x);
    fill(x + (size_t)(M + DUP) * D, BG, D, DATA_UNIFORM);
    stored_rows(x, N, D, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, stored);
    ref_entry *ref = malloc((size_t)N * sizeof *ref), *approx = malloc((size_t)N * sizeof *approx);
    exact_ranking(stored, N, D, qn, ref);
    float q16[D];
    for (int j = 0; j < D; j++)
        q16[j] = ims_f16_to_f32(ims_f32_to_f16(qn[j]));
    exact_ranking(stored, N, D, q16, approx);
    int tie = -1; /* the first exact tie: k ends between the two */
    for (int j = 0; j + 1 < M + DUP && tie < 0; j++)
        if (ref[j].s == ref[j + 1].s)
            tie = j;
    TEST_CHECK(tie >= 1, "no tie in the cluster");
    int ks[2] = {10, tie + 1};
    ims_knn_options o;
    ims_knn_options_init(&o);
    o.path = IMS_KNN_PATH_GEMM_F16;
    ims_knn_table *t;
    ims_error err = {0};
    TEST_OK(ims_knn_create(be, D, &o, &t, &err), err);
    TEST_OK(ims_knn_append(t, x, IMS_DTYPE_F32, N, &err), err);
    for (int i = 0; i < 2 && tie >= 1; i++) {
        int k = ks[i], moved = 0;
        for (int j = 0; j < k; j++)
            moved += approx[j].id != ref[j].id;
        TEST_CHECK(moved > 0, "k %d: the f16 query does not reorder the top k", k);
        int64_t ids[64];
        float scores[64];
        TEST_OK(ims_knn_search(t, q, 1, k, ids, scores, &err), err);
        for (int j = 0; j < k; j++)
            TEST_CHECK(ids[j] == ref[j].id && scores[j] == (float)ref[j].s, "k %d pos %d: (%lld, %.9g), exact (%lld, %.9g)",
                       k, j, (long long)ids[j], scores[j], (long long)ref[j].id, ref[j].s);
        /* The approximate pass alone (the kernel with f16 queries) is not the answer. */
        int32_t ai[64];
        float as[64];
        imsi_tensor tv = imsi_tensor_host((void *)imsi_knn_row(t, 0), IMS_DTYPE_F16, 2, (int64_t[]){N, D});
        imsi_tensor qv = imsi_tensor_host(qn, IMS_DTYPE_F32, 2, (int64_t[]){1, D});
        imsi_tensor iv = imsi_tensor_host(ai, IMS_DTYPE_I32, 2, (int64_t[]){1, k});
        imsi_tensor sv = imsi_tensor_host(as, IMS_DTYPE_F32, 2, (int64_t[]){1, k});
        TEST_OK(imsi_op_knn_select(be, &tv, &qv, k, IMS_KNN_PATH_GEMM_F16, &iv, &sv, &err), err);
        int wrong = 0;
        for (int j = 0; j < k; j++)
            wrong += ai[j] != ref[j].id;
        TEST_CHECK(wrong > 0, "k %d: the approximate pass alone was already exact", k);
    }
    int64_t pre, redone;
    imsi_knn_prefilter_counts(t, &pre, &redone);
    TEST_CHECK(pre == 2 && redone == 0, "prefilter: %lld queries, %lld redone (want 2, 0)", (long long)pre,
               (long long)redone);
    ims_knn_free(t);

    /* 300 identical rows: every candidate ties the k-th, the bound cannot hold. */
    for (int r = 1; r < 300; r++)
        memcpy(x + (size_t)r * D, x, D * sizeof *x);
    TEST_OK(ims_knn_create(be, D, &o, &t, &err), err);
    TEST_OK(ims_knn_append(t, x, IMS_DTYPE_F32, N, &err), err);
    int64_t ids[10];
    float scores[10];
    TEST_OK(ims_knn_search(t, q, 1, 10, ids, scores, &err), err);
    for (int j = 0; j < 10; j++)
        TEST_CHECK(ids[j] == j && scores[j] == scores[0], "identical rows, pos %d: id %lld score %.9g", j,
                   (long long)ids[j], scores[j]);
    imsi_knn_prefilter_counts(t, &pre, &redone);
    TEST_CHECK(pre == 1 && redone == 1, "identical rows: %lld queries, %lld redone (want 1, 1)", (long long)pre,
               (long long)redone);
    ims_knn_free(t);
    free(ref);
    free(approx);
    free(stored);
    free(x);
}

/* A table split over several CPU backends (stand-ins for GPUs): the merged
 * answer equals the single table's bit for bit on integer data (every score
 * exact), whatever the number of parts, the append pieces (several runs per
 * part) or parts left empty; on random cosine data it passes the reference
 * check. */
static void test_multi(void)
{
    ims_backend *bes[5];
    ims_error err = {0};
    for (int i = 0; i < 5; i++)
        TEST_OK(imsi_backend_cpu_create(&bes[i], &err), err);
    static const case_desc cases[] = {
        {3001, 13, 5, 200, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F16, 0, 4, IMS_KNN_PATH_AUTO},
        {3001, 13, 40, 50, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F32, 700, 3, IMS_KNN_PATH_AUTO},
        {3, 13, 2, 10, DATA_INTEGERS, IMS_KNN_METRIC_IP, IMS_DTYPE_F32, 0, 1, IMS_KNN_PATH_AUTO},
        {4000, 48, 20, 30, DATA_UNIFORM, IMS_KNN_METRIC_COSINE, IMS_DTYPE_F16, 0, 2, IMS_KNN_PATH_GEMM_F16},
    };
    static const int parts[] = {1, 2, 3, 5};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const case_desc *c = &cases[ci];
        float *x = malloc((size_t)c->n * c->d * sizeof *x), *q = malloc((size_t)c->b * c->d * sizeof *q);
        float *stored = malloc((size_t)c->n * c->d * sizeof *stored);
        fill(x, c->n, c->d, c->kind);
        fill(q, c->b, c->d, c->kind);
        stored_rows(x, c->n, c->d, c->metric, c->dtype, stored);
        ims_knn_options o;
        ims_knn_options_init(&o);
        o.metric = c->metric;
        o.dtype = c->dtype;
        o.max_rows_per_chunk = c->chunk;
        o.path = c->path;
        size_t out = (size_t)c->b * c->k;
        int64_t *ids1 = malloc(out * sizeof *ids1), *ids = malloc(out * sizeof *ids);
        float *sc1 = malloc(out * sizeof *sc1), *sc = malloc(out * sizeof *sc);
        ims_knn_table *t;
        TEST_OK(ims_knn_create(be, c->d, &o, &t, &err), err);
        TEST_OK(ims_knn_append(t, x, IMS_DTYPE_F32, c->n, &err), err);
        TEST_OK(ims_knn_search(t, q, c->b, c->k, ids1, sc1, &err), err);
        ims_knn_free(t);
        for (size_t pi = 0; pi < sizeof parts / sizeof parts[0]; pi++) {
            ims_knn_multi *m;
            TEST_OK(ims_knn_multi_create(bes, parts[pi], c->d, &o, &m, &err), err);
            for (int p = 0; p < c->append_pieces; p++) {
                int64_t r0 = c->n * p / c->append_pieces, r1 = c->n * (p + 1) / c->append_pieces;
                TEST_OK(ims_knn_multi_append(m, x + (size_t)r0 * c->d, IMS_DTYPE_F32, r1 - r0, &err), err);
            }
            TEST_CHECK(imsi_knn_multi_rows(m) == c->n, "multi rows %lld", (long long)imsi_knn_multi_rows(m));
            TEST_OK(ims_knn_multi_search(m, q, c->b, c->k, ids, sc, &err), err);
            if (c->kind == DATA_INTEGERS)
                TEST_CHECK(!memcmp(ids, ids1, out * sizeof *ids) && !memcmp(sc, sc1, out * sizeof *sc),
                           "case %zu, %d parts: the merged answer differs from one table's", ci, parts[pi]);
            else
                for (int i = 0; i < c->b; i++)
                    check_query(c, stored, q + (size_t)i * c->d, ids + (size_t)i * c->k, sc + (size_t)i * c->k, i, 0);
            ims_knn_multi_free(m);
        }
        free(x), free(q), free(stored), free(ids1), free(ids), free(sc1), free(sc);
    }
    ims_knn_multi *m;
    TEST_CHECK(ims_knn_multi_create(bes, 0, 8, NULL, &m, &err) == IMS_ERR_ARGUMENT && !m, "0 parts accepted");
    for (int i = 0; i < 5; i++)
        ims_backend_free(bes[i]);
}

/* f16 input rows: stored equal to the same rows given as f32. */
static void test_f16_input(void)
{
    enum { N = 300, D = 24, K = 20 };
    float x[N * D], xr[N * D], q[2 * D];
    uint16_t h[N * D];
    fill(x, N, D, DATA_UNIFORM);
    fill(q, 2, D, DATA_UNIFORM);
    for (int i = 0; i < N * D; i++) {
        h[i] = ims_f32_to_f16(x[i]);
        xr[i] = ims_f16_to_f32(h[i]);
    }
    ims_knn_table *a, *b;
    ims_error err = {0};
    TEST_OK(ims_knn_create(be, D, NULL, &a, &err), err);
    TEST_OK(ims_knn_create(be, D, NULL, &b, &err), err);
    TEST_OK(ims_knn_append(a, h, IMS_DTYPE_F16, N, &err), err);
    TEST_OK(ims_knn_append(b, xr, IMS_DTYPE_F32, N, &err), err);
    int64_t ia[2 * K], ib[2 * K];
    float sa[2 * K], sb[2 * K];
    TEST_OK(ims_knn_search(a, q, 2, K, ia, sa, &err), err);
    TEST_OK(ims_knn_search(b, q, 2, K, ib, sb, &err), err);
    TEST_CHECK(!memcmp(ia, ib, sizeof ia) && !memcmp(sa, sb, sizeof sa), "f16 input differs from its f32 values");
    ims_knn_free(a);
    ims_knn_free(b);
}

/* The scratch a table keeps between searches: other k and batch sizes in turn
 * give what a fresh table gives. */
static void test_reuse(void)
{
    enum { N = 2000, D = 20, B = 9 };
    float *x = malloc(sizeof(float) * N * D), q[B * D];
    fill(x, N, D, DATA_UNIFORM);
    fill(q, B, D, DATA_UNIFORM);
    ims_knn_options o;
    ims_knn_options_init(&o);
    o.max_rows_per_chunk = 300;
    ims_knn_table *t;
    ims_error err = {0};
    TEST_OK(ims_knn_create(be, D, &o, &t, &err), err);
    TEST_OK(ims_knn_append(t, x, IMS_DTYPE_F32, N, &err), err);
    static int64_t ids[B * 500], ids2[B * 500];
    static float sc[B * 500], sc2[B * 500];
    const int ks[] = {5, 500, 7, 1, 400};
    const int bs[] = {9, 2, 9, 1, 5};
    /* Query batches: 9 queries in batches of 4 (and streamed) as in one batch. */
    {
        static int64_t whole[B * 60], parts[B * 60];
        static float swhole[B * 60], sparts[B * 60];
        TEST_OK(ims_knn_search(t, q, B, 60, whole, swhole, &err), err);
        imsi_knn_set_max_batch(t, 4);
        TEST_OK(ims_knn_search(t, q, B, 60, parts, sparts, &err), err);
        imsi_knn_set_max_batch(t, 0);
        /* Scores may differ in the last bits (another sgemm shape, sgemv for a
         * batch of 1): within 4 fp32 ulps of 1 (D = 20 unit vectors); ids the same
         * wherever neighbours are further apart than that. */
        int same = 1;
        for (int i = 0; i < B * 60; i++) {
            int near = (i % 60 > 0 && swhole[i - 1] - swhole[i] < 1e-6f) ||
                       (i % 60 < 59 && swhole[i] - swhole[i + 1] < 1e-6f);
            same &= fabsf(swhole[i] - sparts[i]) <= 5e-7f && (near || whole[i] == parts[i]);
        }
        TEST_CHECK(same, "batched queries differ from one batch");
    }
    /* Rows appended after a search are found by the next one. */
    TEST_OK(ims_knn_search(t, q, B, 5, ids, sc, &err), err);
    float extra[D];
    memcpy(extra, q, sizeof extra); /* query 0 itself: the best match of query 0 */
    TEST_OK(ims_knn_append(t, extra, IMS_DTYPE_F32, 1, &err), err);
    TEST_OK(ims_knn_search(t, q, 1, 5, ids, sc, &err), err);
    /* f16 storage (the default) rounds the row: cosine with itself within 2^-10 of 1. */
    TEST_CHECK(ids[0] == N && fabsf(sc[0] - 1.0f) < 1e-3f, "appended row: id %lld score %.9g", (long long)ids[0], sc[0]);
    ims_knn_free(t);
    TEST_OK(ims_knn_create(be, D, &o, &t, &err), err);
    TEST_OK(ims_knn_append(t, x, IMS_DTYPE_F32, N, &err), err);
    for (int i = 0; i < 5; i++) {
        TEST_OK(ims_knn_search(t, q, bs[i], ks[i], ids, sc, &err), err);
        ims_knn_table *fresh;
        TEST_OK(ims_knn_create(be, D, &o, &fresh, &err), err);
        TEST_OK(ims_knn_append(fresh, x, IMS_DTYPE_F32, N, &err), err);
        TEST_OK(ims_knn_search(fresh, q, bs[i], ks[i], ids2, sc2, &err), err);
        size_t n = (size_t)bs[i] * ks[i];
        TEST_CHECK(!memcmp(ids, ids2, n * sizeof *ids) && !memcmp(sc, sc2, n * sizeof *sc),
                   "search %d (b %d k %d) on a used table differs", i, bs[i], ks[i]);
        ims_knn_free(fresh);
    }
    ims_knn_free(t);
    free(x);
}

static void test_errors(void)
{
    enum { D = 6 };
    float rows[4 * D];
    fill(rows, 4, D, DATA_UNIFORM);
    ims_knn_table *t;
    ims_error err = {0};
    TEST_OK(ims_knn_create(be, D, NULL, &t, &err), err);
    TEST_OK(ims_knn_append(t, rows, IMS_DTYPE_F32, 4, &err), err);

    float bad[3 * D];
    fill(bad, 3, D, DATA_UNIFORM);
    memset(bad + D, 0, D * sizeof *bad);
    TEST_CHECK(ims_knn_append(t, bad, IMS_DTYPE_F32, 3, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "row 5") &&
                   strstr(err.msg, "zeros"),
               "zero row: %s", err.msg);
    TEST_CHECK(ims_knn_rows(t) == 4, "a failed append added rows");
    fill(bad, 3, D, DATA_UNIFORM);
    bad[2 * D + 3] = NAN;
    TEST_CHECK(ims_knn_append(t, bad, IMS_DTYPE_F32, 3, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "row 6") &&
                   strstr(err.msg, "NaN"),
               "NaN row: %s", err.msg);
    bad[2 * D + 3] = -INFINITY;
    TEST_CHECK(ims_knn_append(t, bad, IMS_DTYPE_F32, 3, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "Inf"),
               "Inf row: %s", err.msg);
    TEST_CHECK(ims_knn_append(t, bad, IMS_DTYPE_I32, 3, &err) == IMS_ERR_ARGUMENT, "i32 rows accepted");

    int64_t ids[4 * 3];
    float scores[4 * 3], q[2 * D];
    fill(q, 2, D, DATA_UNIFORM);
    TEST_CHECK(ims_knn_search(t, q, 2, 0, ids, scores, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "k = 0"),
               "k = 0: %s", err.msg);
    TEST_CHECK(ims_knn_search(t, q, 2, IMS_KNN_MAX_K + 1, ids, scores, &err) == IMS_ERR_ARGUMENT &&
                   strstr(err.msg, "16385"),
               "k too large: %s", err.msg);
    memset(q + D, 0, D * sizeof *q);
    TEST_CHECK(ims_knn_search(t, q, 2, 3, ids, scores, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "query 1"),
               "zero query: %s", err.msg);
    ims_knn_free(t);

    /* ip metric, f16 storage: a value beyond f16's range. */
    ims_knn_options o;
    ims_knn_options_init(&o);
    o.metric = IMS_KNN_METRIC_IP;
    TEST_OK(ims_knn_create(be, D, &o, &t, &err), err);
    rows[D + 2] = 1e6f;
    TEST_CHECK(ims_knn_append(t, rows, IMS_DTYPE_F32, 4, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "row 1"),
               "f16 overflow: %s", err.msg);
    /* Empty table: every position -1 / -inf. */
    TEST_OK(ims_knn_search(t, q, 1, 3, ids, scores, &err), err);
    TEST_CHECK(ids[0] == -1 && ids[2] == -1 && scores[1] == -INFINITY, "empty table results");
    ims_knn_free(t);

    o.dtype = IMS_DTYPE_U8;
    TEST_CHECK(ims_knn_create(be, D, &o, &t, &err) == IMS_ERR_ARGUMENT, "u8 storage accepted");
    TEST_CHECK(ims_knn_create(be, 0, NULL, &t, &err) == IMS_ERR_ARGUMENT, "dim 0 accepted");

    /* The op checks D between table and queries. */
    float tab[3 * 4], qq[2 * 5];
    int32_t oi[2 * 2];
    float os[2 * 2];
    fill(tab, 3, 4, DATA_UNIFORM);
    fill(qq, 2, 5, DATA_UNIFORM);
    imsi_tensor tt = imsi_tensor_host(tab, IMS_DTYPE_F32, 2, (int64_t[]){3, 4});
    imsi_tensor tq = imsi_tensor_host(qq, IMS_DTYPE_F32, 2, (int64_t[]){2, 5});
    imsi_tensor ti = imsi_tensor_host(oi, IMS_DTYPE_I32, 2, (int64_t[]){2, 2});
    imsi_tensor ts = imsi_tensor_host(os, IMS_DTYPE_F32, 2, (int64_t[]){2, 2});
    TEST_CHECK(imsi_op_knn_select(be, &tt, &tq, 2, 0, &ti, &ts, &err) == IMS_ERR_ARGUMENT &&
                   strstr(err.msg, "knn queries"),
               "D mismatch: %s", err.msg);
}

static void test_merge_and_estimate(void)
{
    float as[3] = {0.9f, 0.5f, 0.5f}, bs[3] = {0.7f, 0.5f, 0.1f}, os[6];
    int64_t ai[3] = {4, 1, 9}, oi[6];
    int32_t bi[3] = {2, 0, 1};
    int n = imsi_knn_merge(as, ai, 3, bs, bi, 5, 3, 5, os, oi);
    /* b ids are 7, 5, 6: the 0.5 tie orders 1, 5, 9. */
    int64_t want[5] = {4, 7, 1, 5, 9};
    TEST_CHECK(n == 5 && !memcmp(oi, want, sizeof want), "merge order: %lld %lld %lld %lld %lld", (long long)oi[0],
               (long long)oi[1], (long long)oi[2], (long long)oi[3], (long long)oi[4]);
    size_t small = ims_knn_estimate_bytes(1000, 384, IMS_DTYPE_F16, 16, 10);
    size_t big = ims_knn_estimate_bytes(10000000, 384, IMS_DTYPE_F16, 16, 10);
    TEST_CHECK(small > 1000 * 384 * 2 && big > (size_t)7680000000 && big < (size_t)9000000000,
               "estimates %zu %zu", small, big);
    TEST_CHECK(ims_knn_estimate_bytes(INT64_MAX / 2, 1 << 20, IMS_DTYPE_F32, 16, 10) == 0, "overflow not caught");
}

int main(void)
{
    ims_error err = {0};
    if (imsi_backend_cpu_create(&be, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_cases();
    test_f16_input();
    test_prefilter_adversarial();
    test_multi();
    test_reuse();
    test_errors();
    test_merge_and_estimate();
    ims_backend_free(be);
    return test_finish();
}
