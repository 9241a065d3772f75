/* test_knn_gpu.c: the CUDA k-NN paths against the CPU op (ctest label gpu).
 *
 * For each shape, storage dtype and forced path (streaming kernel, sgemm, fp16
 * GemmEx: its CPU reference gets the same f16-rounded queries), the
 * knn_select op runs on both backends over the same seeded random table and
 * queries; the GPU outputs are poisoned with 0xff bytes first. Shapes include
 * N, D and B that are not multiples of a warp, a block or a tile, tables of
 * several score tiles (the tile merge), k = 1, k = N, k > N, k = 16384 (the
 * large-k partitions of 8 k scores and the bitonic final order).
 *
 * Comparison (as FAISS's tests): scores at each rank within tol of the CPU's,
 * ids equal except where the CPU's neighbouring scores are within 2 tol (near
 * ties), no repeated ids, scores non-increasing, equal scores by increasing id.
 * tol = (D + 3) * 2^-23 * ||q|| * max ||row||: the rounding bound of an fp32
 * dot product of length D in any summation order, doubled, with Cauchy-Schwarz
 * bounding sum |q_i r_i|. Integer-valued data (every dot product exact in fp32)
 * must match bit for bit, which checks tie order and the tile merge exactly.
 * The table-level test runs the streamed (chunked) path through pinned host
 * chunks on the GPU. The register score kernel (knn_scores.cu) is reached by
 * the streaming path at D = 128, 256, 384, 512, 768.
 *
 * The f16 prefilter (knn_rescore): the op on both backends over the same
 * candidates (scores within one ulp: fp64 sums in another order, rounded
 * once; the same ids and bound verdicts), and tables searched with the
 * prefilter on both backends (GEMM_F16 forced; AUTO above 16 queries on the
 * GPU against the CPU's exact path on integer data, bit for bit).
 * Exits 77 (skipped) without CUDA or a device.
 */
#include "test.h"

#include "backend/backend.h"
#include "index/knn.h"

#include <math.h>

#ifdef IMS_WITH_CUDA

static ims_backend *cpu_be, *gpu_be;
static uint64_t rng = 0x77aa55cc33ee11ull;

static void fill(float *x, size_t n, int integers)
{
    for (size_t i = 0; i < n; i++)
        x[i] = integers ? (float)((int)(test_rand_u64(&rng) % 5) - 2) : test_rand_uniform(&rng, -1.0f, 1.0f);
}

static double row_norm(const float *x, int d)
{
    double s = 0.0;
    for (int i = 0; i < d; i++)
        s += (double)x[i] * x[i];
    return sqrt(s);
}

/* Compares one query's results (kk entries). */
static void compare(const int32_t *ci, const float *cs, const int32_t *gi, const float *gs, int kk, int64_t n, double tol,
                    int exact, const char *what, int q)
{
    unsigned char *seen = calloc((size_t)n, 1);
    int bad = 0;
    for (int j = 0; j < kk && bad < 3; j++) {
        int32_t id = gi[j];
        if (id < 0 || id >= n || seen[id]) {
            TEST_CHECK(0, "%s q%d pos %d: id %d invalid or repeated", what, q, j, id);
            bad++;
            continue;
        }
        seen[id] = 1;
        if (exact ? (gs[j] != cs[j] || id != ci[j]) : !(fabs((double)gs[j] - cs[j]) <= tol)) {
            TEST_CHECK(0, "%s q%d pos %d: gpu (%d, %.9g) cpu (%d, %.9g) tol %.3g", what, q, j, id, gs[j], ci[j], cs[j],
                       tol);
            bad++;
        }
        int near = (j > 0 && cs[j - 1] - cs[j] <= 2 * tol) || (j + 1 < kk && cs[j] - cs[j + 1] <= 2 * tol) ||
                   j == kk - 1;
        if (!exact && !near && id != ci[j]) {
            TEST_CHECK(0, "%s q%d pos %d: id %d, cpu %d (no near tie)", what, q, j, id, ci[j]);
            bad++;
        }
        if (j > 0 && (gs[j] > gs[j - 1] || (gs[j] == gs[j - 1] && id < gi[j - 1]))) {
            TEST_CHECK(0, "%s q%d pos %d: order", what, q, j);
            bad++;
        }
    }
    test_checks_run++;
    free(seen);
}

static void test_op(int64_t n, int d, int b, int k, ims_dtype dtype, int path, int integers)
{
    char what[160];
    snprintf(what, sizeof what, "op n %lld d %d b %d k %d %s path %d%s", (long long)n, d, b, k, ims_dtype_name(dtype),
             path, integers ? " integers" : "");
    printf("%s\n", what);
    fflush(stdout);
    size_t tn = (size_t)n * d;
    float *t32 = test_xmalloc(tn * 4), *q = test_xmalloc((size_t)b * d * 4);
    fill(t32, tn, integers);
    fill(q, (size_t)b * d, integers);
    uint16_t *t16 = NULL;
    if (dtype == IMS_DTYPE_F16) {
        t16 = test_xmalloc(tn * 2);
        for (size_t i = 0; i < tn; i++)
            t16[i] = ims_f32_to_f16(t32[i]);
        for (size_t i = 0; i < tn; i++)
            t32[i] = ims_f16_to_f32(t16[i]);
    }
    double max_row = 0.0;
    for (int64_t r = 0; r < n; r++)
        max_row = fmax(max_row, row_norm(t32 + (size_t)r * d, d));
    int kk = k < n ? k : (int)n;
    size_t out = (size_t)b * kk;
    int32_t *ci = test_xmalloc(out * 4), *gi = test_xmalloc(out * 4);
    float *cs = test_xmalloc(out * 4), *gs = test_xmalloc(out * 4);
    ims_error err = {0};
    imsi_tensor tt = imsi_tensor_host(dtype == IMS_DTYPE_F16 ? (void *)t16 : (void *)t32, dtype, 2, (int64_t[]){n, d});
    /* GEMM_F16 rounds the queries to f16: the CPU reference gets the same
     * rounded queries, so the comparison stays exact fp32 over equal inputs. */
    float *qref = test_xmalloc((size_t)b * d * 4);
    for (size_t i = 0; i < (size_t)b * d; i++)
        qref[i] = (path == IMS_KNN_PATH_GEMM_F16 && dtype == IMS_DTYPE_F16) ? ims_f16_to_f32(ims_f32_to_f16(q[i])) : q[i];
    imsi_tensor tq = imsi_tensor_host(qref, IMS_DTYPE_F32, 2, (int64_t[]){b, d});
    imsi_tensor ti = imsi_tensor_host(ci, IMS_DTYPE_I32, 2, (int64_t[]){b, kk});
    imsi_tensor ts = imsi_tensor_host(cs, IMS_DTYPE_F32, 2, (int64_t[]){b, kk});
    TEST_OK(imsi_op_knn_select(cpu_be, &tt, &tq, k, path, &ti, &ts, &err), err);

    imsi_tensor dt, dq, di, ds;
    TEST_OK(imsi_tensor_alloc(gpu_be, dtype, 2, (int64_t[]){n, d}, &dt, &err), err);
    TEST_OK(imsi_tensor_alloc(gpu_be, IMS_DTYPE_F32, 2, (int64_t[]){b, d}, &dq, &err), err);
    TEST_OK(imsi_tensor_alloc(gpu_be, IMS_DTYPE_I32, 2, (int64_t[]){b, kk}, &di, &err), err);
    TEST_OK(imsi_tensor_alloc(gpu_be, IMS_DTYPE_F32, 2, (int64_t[]){b, kk}, &ds, &err), err);
    TEST_OK(imsi_backend_upload(gpu_be, &dt, tt.data, imsi_tensor_nbytes(&tt), &err), err);
    TEST_OK(imsi_backend_upload(gpu_be, &dq, q, (size_t)b * d * 4, &err), err);
    TEST_OK(imsi_backend_fill_bytes(gpu_be, &di, 0xff, &err), err);
    TEST_OK(imsi_backend_fill_bytes(gpu_be, &ds, 0xff, &err), err);
    TEST_OK(imsi_op_knn_select(gpu_be, &dt, &dq, k, path, &di, &ds, &err), err);
    TEST_OK(imsi_backend_synchronize(gpu_be, &err), err);
    TEST_OK(imsi_backend_download(gpu_be, gi, out * 4, &di, &err), err);
    TEST_OK(imsi_backend_download(gpu_be, gs, out * 4, &ds, &err), err);
    for (int i = 0; i < b; i++) {
        double tol = (d + 3) * ldexp(1.0, -23) * row_norm(qref + (size_t)i * d, d) * max_row;
        compare(ci + (size_t)i * kk, cs + (size_t)i * kk, gi + (size_t)i * kk, gs + (size_t)i * kk, kk, n, tol,
                integers, what, i);
    }
    imsi_tensor_free(&dt);
    imsi_tensor_free(&dq);
    imsi_tensor_free(&di);
    imsi_tensor_free(&ds);
    free(ci);
    free(gi);
    free(cs);
    free(gs);
    free(t16);
    free(qref);
    free(q);
    free(t32);
}

/* The knn_rescore op on both backends over the CPU's f16-query candidates. */
static void test_rescore(int64_t n, int d, int b, int k)
{
    printf("rescore n %lld d %d b %d k %d\n", (long long)n, d, b, k);
    fflush(stdout);
    int c = 2 * k + 32;
    size_t tn = (size_t)n * d;
    float *t32 = test_xmalloc(tn * 4), *q = test_xmalloc((size_t)b * d * 4), *margin = test_xmalloc((size_t)b * 4);
    uint16_t *t16 = test_xmalloc(tn * 2);
    fill(t32, tn, 0);
    fill(q, (size_t)b * d, 0);
    for (size_t i = 0; i < tn; i++)
        t16[i] = ims_f32_to_f16(t32[i]);
    for (int i = 0; i < b; i++)
        margin[i] = i % 3 ? 1e-4f : 5.0f; /* some bounds hold, some do not */
    int32_t *cand = test_xmalloc((size_t)b * c * 4), *ci = test_xmalloc((size_t)b * k * 4),
            *gi = test_xmalloc((size_t)b * k * 4), *cok = test_xmalloc((size_t)b * 4), *gok = test_xmalloc((size_t)b * 4);
    float *cands = test_xmalloc((size_t)b * c * 4), *cs = test_xmalloc((size_t)b * k * 4),
          *gs = test_xmalloc((size_t)b * k * 4);
    ims_error err = {0};
    imsi_tensor tt = imsi_tensor_host(t16, IMS_DTYPE_F16, 2, (int64_t[]){n, d});
    imsi_tensor tq = imsi_tensor_host(q, IMS_DTYPE_F32, 2, (int64_t[]){b, d});
    imsi_tensor tc = imsi_tensor_host(cand, IMS_DTYPE_I32, 2, (int64_t[]){b, c});
    imsi_tensor tcs = imsi_tensor_host(cands, IMS_DTYPE_F32, 2, (int64_t[]){b, c});
    imsi_tensor tm = imsi_tensor_host(margin, IMS_DTYPE_F32, 1, (int64_t[]){b});
    imsi_tensor ti = imsi_tensor_host(ci, IMS_DTYPE_I32, 2, (int64_t[]){b, k});
    imsi_tensor ts = imsi_tensor_host(cs, IMS_DTYPE_F32, 2, (int64_t[]){b, k});
    imsi_tensor tok = imsi_tensor_host(cok, IMS_DTYPE_I32, 1, (int64_t[]){b});
    TEST_OK(imsi_op_knn_select(cpu_be, &tt, &tq, c, IMS_KNN_PATH_GEMM_F16, &tc, &tcs, &err), err);
    TEST_OK(imsi_op_knn_rescore(cpu_be, &tt, &tq, &tc, &tcs, &tm, k, &ti, &ts, &tok, &err), err);
    imsi_tensor dt, dq, dc, dcs, dm, di, ds, dok;
    TEST_OK(imsi_tensor_alloc(gpu_be, IMS_DTYPE_F16, 2, (int64_t[]){n, d}, &dt, &err), err);
    TEST_OK(imsi_tensor_alloc(gpu_be, IMS_DTYPE_F32, 2, (int64_t[]){b, d}, &dq, &err), err);
    TEST_OK(imsi_tensor_alloc(gpu_be, IMS_DTYPE_I32, 2, (int64_t[]){b, c}, &dc, &err), err);
    TEST_OK(imsi_tensor_alloc(gpu_be, IMS_DTYPE_F32, 2, (int64_t[]){b, c}, &dcs, &err), err);
    TEST_OK(imsi_tensor_alloc(gpu_be, IMS_DTYPE_F32, 1, (int64_t[]){b}, &dm, &err), err);
    TEST_OK(imsi_tensor_alloc(gpu_be, IMS_DTYPE_I32, 2, (int64_t[]){b, k}, &di, &err), err);
    TEST_OK(imsi_tensor_alloc(gpu_be, IMS_DTYPE_F32, 2, (int64_t[]){b, k}, &ds, &err), err);
    TEST_OK(imsi_tensor_alloc(gpu_be, IMS_DTYPE_I32, 1, (int64_t[]){b}, &dok, &err), err);
    TEST_OK(imsi_backend_upload(gpu_be, &dt, t16, tn * 2, &err), err);
    TEST_OK(imsi_backend_upload(gpu_be, &dq, q, (size_t)b * d * 4, &err), err);
    TEST_OK(imsi_backend_upload(gpu_be, &dc, cand, (size_t)b * c * 4, &err), err);
    TEST_OK(imsi_backend_upload(gpu_be, &dcs, cands, (size_t)b * c * 4, &err), err);
    TEST_OK(imsi_backend_upload(gpu_be, &dm, margin, (size_t)b * 4, &err), err);
    TEST_OK(imsi_backend_fill_bytes(gpu_be, &di, 0xff, &err), err);
    TEST_OK(imsi_backend_fill_bytes(gpu_be, &ds, 0xff, &err), err);
    TEST_OK(imsi_backend_fill_bytes(gpu_be, &dok, 0xff, &err), err);
    TEST_OK(imsi_op_knn_rescore(gpu_be, &dt, &dq, &dc, &dcs, &dm, k, &di, &ds, &dok, &err), err);
    TEST_OK(imsi_backend_synchronize(gpu_be, &err), err);
    TEST_OK(imsi_backend_download(gpu_be, gi, (size_t)b * k * 4, &di, &err), err);
    TEST_OK(imsi_backend_download(gpu_be, gs, (size_t)b * k * 4, &ds, &err), err);
    TEST_OK(imsi_backend_download(gpu_be, gok, (size_t)b * 4, &dok, &err), err);
    int bad = 0, held = 0;
    for (int i = 0; i < b && bad < 5; i++) {
        held += cok[i];
        if (gok[i] != cok[i]) {
            TEST_CHECK(0, "rescore q%d: ok %d on the gpu, %d on the cpu", i, gok[i], cok[i]);
            bad++;
        }
        for (int j = 0; j < k && bad < 5; j++) {
            size_t o = (size_t)i * k + j;
            float ulp = nextafterf(fabsf(cs[o]), INFINITY) - fabsf(cs[o]);
            int near_tie = (j > 0 && cs[o - 1] - cs[o] <= 2 * ulp) || (j + 1 < k && cs[o] - cs[o + 1] <= 2 * ulp);
            if (!(fabsf(gs[o] - cs[o]) <= ulp) || (gi[o] != ci[o] && !near_tie)) {
                TEST_CHECK(0, "rescore q%d pos %d: gpu (%d, %.9g) cpu (%d, %.9g)", i, j, gi[o], gs[o], ci[o], cs[o]);
                bad++;
            }
        }
    }
    TEST_CHECK(held > 0 && held < b, "rescore: the bound held for %d of %d queries (want some of each)", held, b);
    imsi_tensor *all[] = {&dt, &dq, &dc, &dcs, &dm, &di, &ds, &dok};
    for (int i = 0; i < 8; i++)
        imsi_tensor_free(all[i]);
    free(t32), free(q), free(margin), free(t16), free(cand), free(ci), free(gi), free(cok), free(gok), free(cands);
    free(cs), free(gs);
}

/* Cosine f16 tables searched through the prefilter on both backends: the
 * same ids (but at near ties) and scores within one ulp. */
static void test_prefilter_table(int64_t n, int d, int b, int k, int64_t chunk)
{
    printf("prefilter table n %lld d %d b %d k %d chunk %lld\n", (long long)n, d, b, k, (long long)chunk);
    fflush(stdout);
    float *x = test_xmalloc((size_t)n * d * 4), *q = test_xmalloc((size_t)b * d * 4);
    fill(x, (size_t)n * d, 0);
    fill(q, (size_t)b * d, 0);
    ims_knn_options o;
    ims_knn_options_init(&o);
    o.path = IMS_KNN_PATH_GEMM_F16;
    o.max_rows_per_chunk = chunk;
    ims_knn_table *tc, *tg;
    ims_error err = {0};
    TEST_OK(ims_knn_create(cpu_be, d, &o, &tc, &err), err);
    TEST_OK(ims_knn_create(gpu_be, d, &o, &tg, &err), err);
    TEST_OK(ims_knn_append(tc, x, IMS_DTYPE_F32, n, &err), err);
    TEST_OK(ims_knn_append(tg, x, IMS_DTYPE_F32, n, &err), err);
    size_t out = (size_t)b * k;
    int64_t *ic = test_xmalloc(out * 8), *ig = test_xmalloc(out * 8);
    float *sc = test_xmalloc(out * 4), *sg = test_xmalloc(out * 4);
    for (size_t i = 0; i < out; i++)
        ig[i] = 0x7777, sg[i] = NAN;
    TEST_OK(ims_knn_search(tc, q, b, k, ic, sc, &err), err);
    TEST_OK(ims_knn_search(tg, q, b, k, ig, sg, &err), err);
    int bad = 0;
    for (size_t i = 0; i < out && bad < 5; i++) {
        float ulp = nextafterf(fabsf(sc[i]), INFINITY) - fabsf(sc[i]);
        int j = (int)(i % (size_t)k);
        int near_tie = (j > 0 && sc[i - 1] - sc[i] <= 2 * ulp) || (j + 1 < k && sc[i] - sc[i + 1] <= 2 * ulp);
        if (!(fabsf(sg[i] - sc[i]) <= ulp) || (ig[i] != ic[i] && !near_tie)) {
            TEST_CHECK(0, "prefilter table q%zu pos %d: gpu (%lld, %.9g) cpu (%lld, %.9g)", i / k, j, (long long)ig[i],
                       sg[i], (long long)ic[i], sc[i]);
            bad++;
        }
    }
    int64_t pre_c, redo_c, pre_g, redo_g;
    imsi_knn_prefilter_counts(tc, &pre_c, &redo_c);
    imsi_knn_prefilter_counts(tg, &pre_g, &redo_g);
    printf("  prefiltered cpu %lld (redone %lld), gpu %lld (redone %lld)\n", (long long)pre_c, (long long)redo_c,
           (long long)pre_g, (long long)redo_g);
    TEST_CHECK(pre_g > 0 && pre_g == pre_c, "prefiltered queries: gpu %lld, cpu %lld", (long long)pre_g,
               (long long)pre_c);
    ims_knn_free(tc);
    ims_knn_free(tg);
    free(ic), free(ig), free(sc), free(sg), free(q), free(x);
}

/* The table API on both backends; integer rows (ip metric) compare exactly. */
static void test_table(int64_t n, int d, int b, int k, ims_dtype dtype, int64_t chunk, ims_knn_path path)
{
    printf("table n %lld d %d b %d k %d %s chunk %lld path %d\n", (long long)n, d, b, k, ims_dtype_name(dtype),
           (long long)chunk, (int)path);
    fflush(stdout);
    float *x = test_xmalloc((size_t)n * d * 4), *q = test_xmalloc((size_t)b * d * 4);
    fill(x, (size_t)n * d, 1);
    fill(q, (size_t)b * d, 1);
    for (int64_t r = 0; r < n; r++)
        x[(size_t)r * d] = 1.0f; /* no zero row */
    ims_knn_options o;
    ims_knn_options_init(&o);
    o.metric = IMS_KNN_METRIC_IP;
    o.dtype = dtype;
    o.max_rows_per_chunk = chunk;
    o.path = path;
    ims_knn_table *tc, *tg;
    ims_error err = {0};
    TEST_OK(ims_knn_create(cpu_be, d, &o, &tc, &err), err);
    TEST_OK(ims_knn_create(gpu_be, d, &o, &tg, &err), err);
    TEST_OK(ims_knn_append(tc, x, IMS_DTYPE_F32, n, &err), err);
    size_t out = (size_t)b * k;
    int64_t *ic = test_xmalloc(out * 8), *ig = test_xmalloc(out * 8);
    float *sc = test_xmalloc(out * 4), *sg = test_xmalloc(out * 4);
    /* Half the rows, a search (the device copy is made), then the rest (it is
     * grown and topped up before the next search). */
    TEST_OK(ims_knn_append(tg, x, IMS_DTYPE_F32, n / 2, &err), err);
    TEST_OK(ims_knn_search(tg, q, b, k, ig, sg, &err), err);
    TEST_OK(ims_knn_append(tg, x + (size_t)(n / 2) * d, IMS_DTYPE_F32, n - n / 2, &err), err);
    TEST_OK(ims_knn_search(tc, q, b, k, ic, sc, &err), err);
    TEST_OK(ims_knn_search(tg, q, b, k, ig, sg, &err), err);
    TEST_CHECK(!memcmp(ic, ig, out * 8) && !memcmp(sc, sg, out * 4), "table results differ between cpu and cuda");
    ims_knn_free(tc);
    ims_knn_free(tg);
    free(ic);
    free(ig);
    free(sc);
    free(sg);
    free(q);
    free(x);
}

/* argv[1] == "quick": small shapes only (every path and stage still runs), for
 * compute-sanitizer, which slows kernels down 10-100x. */
static void run_quick(void)
{
    static const struct {
        int64_t n;
        int d, b, k;
    } shapes[] = {{1, 1, 1, 1}, {1000, 33, 1, 10}, {9001, 64, 4, 100}, {5000, 8, 33, 1}, {777, 24, 5, 777},
                  {3000, 40, 3, 1500}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int path = IMS_KNN_PATH_STREAM; path <= IMS_KNN_PATH_GEMM_F16; path++)
            test_op(shapes[i].n, shapes[i].d, shapes[i].b, shapes[i].k, IMS_DTYPE_F16, path, 0);
    test_op(9001, 13, 5, 300, IMS_DTYPE_F32, IMS_KNN_PATH_STREAM, 1);
    test_op(9001, 128, 3, 20, IMS_DTYPE_F16, IMS_KNN_PATH_STREAM, 0); /* the register score kernel */
    test_op(9001, 384, 16, 20, IMS_DTYPE_F32, IMS_KNN_PATH_STREAM, 0);
    test_table(5000, 24, 7, 100, IMS_DTYPE_F16, 1999, IMS_KNN_PATH_STREAM);
    test_rescore(5000, 64, 9, 10);
    test_prefilter_table(5000, 64, 20, 10, 0);
}

int main(int argc, char **argv)
{
    test_gpu_backends(&cpu_be, &gpu_be);
    if (argc > 1 && !strcmp(argv[1], "quick")) {
        run_quick();
        ims_backend_free(gpu_be);
        ims_backend_free(cpu_be);
        return test_finish();
    }
    static const struct {
        int64_t n;
        int d, b, k;
    } shapes[] = {
        {1, 1, 1, 1},       {1000, 33, 1, 10},     {100003, 384, 4, 100}, {50001, 129, 16, 1000},
        {20011, 256, 70, 64}, {3000, 64, 2, 16384}, {70000, 40, 3, 5000},  {40000, 4096, 2, 2000},
        {70001, 4097, 3, 50}, {5000, 8, 33, 1},     {777, 24, 5, 777},
        /* the register score kernel's dimensions and query groups */
        {30001, 128, 1, 50}, {30001, 256, 9, 20}, {12345, 512, 13, 7}, {20000, 768, 16, 10}, {10007, 384, 16, 100},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int path = IMS_KNN_PATH_STREAM; path <= IMS_KNN_PATH_GEMM_F16; path++)
            for (int f16 = 0; f16 < 2; f16++)
                test_op(shapes[i].n, shapes[i].d, shapes[i].b, shapes[i].k, f16 ? IMS_DTYPE_F16 : IMS_DTYPE_F32,
                        path, 0);
    /* Exact ties everywhere. */
    test_op(30011, 13, 5, 300, IMS_DTYPE_F16, IMS_KNN_PATH_STREAM, 1);
    test_op(30011, 13, 5, 300, IMS_DTYPE_F32, IMS_KNN_PATH_GEMM, 1);
    test_op(200000, 16, 3, 4000, IMS_DTYPE_F16, IMS_KNN_PATH_STREAM, 1); /* large-k partitions, bitonic order */
    test_op(300000, 32, 2, 16384, IMS_DTYPE_F16, IMS_KNN_PATH_STREAM, 1);
    /* Exact and several score tiles: the tile merge bit for bit. The exact GEMM
     * over f16 rows tiles by its f32 row copy (16K rows at D = 4100); the
     * other paths by the tile (B, k + T) alone (33K rows at B = 2000). */
    test_op(40000, 4100, 3, 700, IMS_DTYPE_F16, IMS_KNN_PATH_STREAM, 1);
    test_op(40000, 4100, 3, 700, IMS_DTYPE_F16, IMS_KNN_PATH_GEMM, 1);
    test_op(100000, 8, 2000, 50, IMS_DTYPE_F16, IMS_KNN_PATH_STREAM, 1);
    test_op(100000, 8, 2000, 1500, IMS_DTYPE_F32, IMS_KNN_PATH_GEMM, 1);
    test_op(40000, 4100, 70, 700, IMS_DTYPE_F16, IMS_KNN_PATH_GEMM_F16, 1);
    /* The table API: resident and chunked (pinned host chunks, double buffers). */
    test_table(50000, 24, 7, 100, IMS_DTYPE_F16, 0, IMS_KNN_PATH_AUTO);
    test_table(50000, 24, 7, 100, IMS_DTYPE_F16, 4099, IMS_KNN_PATH_STREAM);
    test_table(50000, 24, 40, 3000, IMS_DTYPE_F32, 20000, IMS_KNN_PATH_GEMM);
    /* The f16 prefilter: the rescoring op, then whole searches (resident,
     * chunked, k at the prefilter's limit); AUTO on integer data (GPU:
     * prefilter above 16 queries; CPU: exact) bit for bit. */
    test_rescore(100003, 384, 64, 100);
    test_rescore(20000, 200, 5, 1024);
    test_prefilter_table(100003, 384, 64, 100, 0);
    test_prefilter_table(60000, 128, 33, 1024, 25000);
    test_table(50000, 24, 40, 100, IMS_DTYPE_F16, 0, IMS_KNN_PATH_AUTO);
    ims_backend_free(gpu_be);
    ims_backend_free(cpu_be);
    return test_finish();
}

#else

int main(void)
{
    test_skip("built without CUDA");
    return 0;
}

#endif
