/* bench_knn.c: k-NN search throughput (not a test): queries/s and effective GB/s.
 *
 * usage: bench_knn TABLE.npy QUERIES.npy -k K [--dtype f16|f32] [--device cpu|cuda]
 *                  [--path auto|stream|gemm|gemm16] [--seconds S] [--out IDS.npy]
 * The table (N, D) and queries (B, D) are float32 .npy files (bench/compare_faiss.py
 * writes them and runs FAISS on the same data). The table is loaded once (not
 * timed); one warm-up search runs, then searches repeat for at least S seconds
 * (default 2). Prints one line:
 *   n=N d=D b=B k=K dtype=.. device=.. searches=.. ms_per_search=.. qps=.. gbps=..
 * gbps: table bytes (N * D * storage size) read per search / time, the number
 * a bandwidth-bound small batch is judged by. --out writes the ids (B, K) int64
 * of the last search so a script can check them.
 */
#include "imgsearch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const ims_error *err)
{
    fprintf(stderr, "bench_knn: %s\n", err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_knn TABLE.npy QUERIES.npy -k K [--dtype f16|f32] [--device cpu|cuda] "
                        "[--path auto|stream|gemm|gemm16] [--seconds S] [--out IDS.npy]\n");
        return 2;
    }
    int k = 10;
    double seconds = 2.0;
    const char *out = NULL;
    ims_backend_kind kind = IMS_BACKEND_CPU;
    ims_knn_options o;
    ims_knn_options_init(&o);
    o.dtype = IMS_DTYPE_F32;
    for (int i = 3; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "-k"))
            k = atoi(v);
        else if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--out"))
            out = v;
        else if (!strcmp(a, "--dtype"))
            o.dtype = !strcmp(v, "f16") ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
        else if (!strcmp(a, "--device"))
            kind = !strcmp(v, "cuda") ? IMS_BACKEND_CUDA : IMS_BACKEND_CPU;
        else if (!strcmp(a, "--path"))
            o.path = !strcmp(v, "stream")   ? IMS_KNN_PATH_STREAM
                     : !strcmp(v, "gemm")   ? IMS_KNN_PATH_GEMM
                     : !strcmp(v, "gemm16") ? IMS_KNN_PATH_GEMM_F16
                                            : IMS_KNN_PATH_AUTO;
        else {
            fprintf(stderr, "bench_knn: unknown option %s\n", a);
            return 2;
        }
    }
    ims_error err = {0};
    ims_npy *table, *queries;
    if (ims_npy_open(argv[1], &table, &err) || ims_npy_open(argv[2], &queries, &err))
        return fail(&err);
    const int64_t *ts = ims_npy_shape(table), *qs = ims_npy_shape(queries);
    if (ims_npy_dtype(table) != IMS_DTYPE_F32 || ims_npy_dtype(queries) != IMS_DTYPE_F32 || ims_npy_ndim(table) != 2 ||
        ims_npy_ndim(queries) != 2 || ts[1] != qs[1]) {
        fprintf(stderr, "bench_knn: need float32 (N, D) and (B, D) arrays\n");
        return 1;
    }
    int64_t n = ts[0], d = ts[1], b = qs[0];
    const float *qdata = ims_npy_data(queries);
    ims_backend *be;
    ims_knn_table *t;
    if (ims_backend_create(kind, 0, &be, &err) || ims_knn_create(be, d, &o, &t, &err) ||
        ims_knn_append(t, ims_npy_data(table), IMS_DTYPE_F32, n, &err))
        return fail(&err);
    int64_t *ids = malloc((size_t)b * k * sizeof *ids);
    float *scores = malloc((size_t)b * k * sizeof *scores);
    if (!ids || !scores)
        return 1;
    if (ims_knn_search(t, qdata, b, k, ids, scores, &err)) /* warm-up (and device upload) */
        return fail(&err);
    int searches = 0;
    double t0 = ims_clock_seconds(), elapsed;
    do {
        if (ims_knn_search(t, qdata, b, k, ids, scores, &err))
            return fail(&err);
        searches++;
        elapsed = ims_clock_seconds() - t0;
    } while (elapsed < seconds);
    double per = elapsed / searches;
    double bytes = (double)n * d * ims_dtype_size(o.dtype);
    printf("n=%lld d=%lld b=%lld k=%d dtype=%s device=%s searches=%d ms_per_search=%.3f qps=%.1f gbps=%.2f\n",
           (long long)n, (long long)d, (long long)b, k, ims_dtype_name(o.dtype), ims_backend_get_info(be)->name,
           searches, per * 1e3, b / per, bytes / per / 1e9);
    if (out) {
        int64_t shape[2] = {b, k};
        if (ims_npy_write(out, IMS_DTYPE_I64, 2, shape, ids, &err))
            return fail(&err);
    }
    ims_knn_free(t);
    ims_backend_free(be);
    ims_npy_close(queries);
    ims_npy_close(table);
    free(ids);
    free(scores);
    return 0;
}
