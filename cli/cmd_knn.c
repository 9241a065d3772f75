/* cmd_knn.c: `imgsearch knn TABLE.npy QUERIES.npy -k K`: exact top-k search of
 * one embedding table for a batch of queries, for research users' own
 * embeddings (float32 or float16 .npy files, C order, 2-D).
 *
 * Before loading, one line on stderr says what will happen (rows, storage,
 * device, the memory estimate, resident or streamed). Results go to a .npz
 * (ids int64 (B, k), scores float32 (B, k); positions past N hold -1 / -inf,
 * as FAISS does) or as JSON lines on stdout, one per query with its min(k, N)
 * results.
 */
#include "imgsearch.h"
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char knn_usage[] =
    "usage: imgsearch knn TABLE.npy QUERIES.npy -k K [--metric cosine|ip] [--dtype f16|f32]\n"
    "                     [--device auto|cpu|cuda] [--gpu N|LIST|all] [--chunk-rows N] [-o OUT.npz] [--json]\n"
    "\n"
    "For each query (a row of QUERIES, shape (B, D), or one vector (D)) finds the K rows of TABLE\n"
    "(shape (N, D)) with the highest cosine similarity, exactly; equal scores are\n"
    "ordered by lower row index. Both files: float32 or float16 .npy, C order.\n"
    "\n"
    "  -k K                 results per query, 1..16384; K >= N returns all N rows\n"
    "  --metric cosine      rows and queries L2-normalized first (default); a zero,\n"
    "                       NaN or Inf row is an error naming the row\n"
    "  --metric ip          raw inner product\n"
    "  --dtype f16|f32      table storage (default: f16 on cuda, f32 on cpu);\n"
    "                       scores always accumulate in fp32\n"
    "  --device auto|cpu|cuda\n"
    "                       where to search: auto (default) is cuda when a GPU is\n"
    "                       usable, else cpu\n"
    "  --gpu N              which GPU (default 0); a list (0,1) or 'all' splits the\n"
    "                       table across those GPUs, searches them at once and\n"
    "                       merges the results exactly\n"
    "  --chunk-rows N       keep the table in host memory and stream it through the\n"
    "                       device N rows at a time (for tables larger than the GPU)\n"
    "  -o, --output OUT.npz ids (int64, (B, K)) and scores (float32, (B, K)); past N:\n"
    "                       id -1, score -inf (written atomically)\n"
    "  --json               JSON lines on stdout: {\"query\": i, \"ids\": [...],\n"
    "                       \"scores\": [...]} (the default without -o)\n";

typedef struct knn_args {
    const char *table, *queries, *output;
    int k, json;
    ims_knn_options opt; /* opt.dtype IMS_DTYPE_COUNT: not given (the device's default) */
    cli_device device;
} knn_args;

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, knn_args *k)
{
    static const char *const metric_names[] = {"cosine", "ip", NULL};
    static const ims_knn_metric metrics[] = {IMS_KNN_METRIC_COSINE, IMS_KNN_METRIC_IP};
    cli_args a;
    cli_args_init(&a, "knn", knn_usage, argc, argv);
    int metric = 0;
    while (cli_args_next(&a)) {
        if (a.operand && !k->table)
            k->table = a.operand;
        else if (a.operand && !k->queries)
            k->queries = a.operand;
        else if (cli_is(&a, "--json"))
            k->json = 1;
        else if (cli_is(&a, "-k"))
            cli_arg_int(&a, 1, IMS_KNN_MAX_K, &k->k);
        else if (cli_is(&a, "--chunk-rows"))
            cli_arg_int64(&a, 1, INT32_MAX, &k->opt.max_rows_per_chunk);
        else if (cli_is(&a, "-o|--output"))
            cli_arg_path(&a, &k->output);
        else if (cli_is(&a, "--metric"))
            cli_arg_choice(&a, metric_names, &metric);
        else if (cli_is(&a, "--dtype"))
            cli_arg_dtype(&a, &k->opt.dtype);
        else if (cli_is(&a, CLI_DEVICE_OPTIONS))
            cli_arg_device(&a, &k->device);
        else
            cli_args_unknown(&a);
    }
    if (a.status >= 0)
        return a.status;
    k->opt.metric = metrics[metric];
    if (!k->table || !k->queries)
        return cli_args_error(&a, "needs TABLE.npy and QUERIES.npy");
    if (!k->k)
        return cli_args_error(&a, "missing -k K");
    return -1;
}

/* A float32/float16 .npy file seen as a matrix (rows, dim). */
typedef struct knn_matrix {
    ims_npy *npy;
    int64_t rows, dim;
} knn_matrix;

/* A 2-D float32/float16 array, or a one-line error naming the file and role.
 * vector_ok: a 1-D array (D) is taken as one row (1, D). */
static int open_matrix(const char *path, const char *role, int vector_ok, knn_matrix *out)
{
    ims_error err = {0};
    out->npy = NULL;
    if (ims_npy_open(path, &out->npy, &err))
        return cli_error(&err);
    ims_dtype dtype = ims_npy_dtype(out->npy);
    int ndim = ims_npy_ndim(out->npy);
    const int64_t *shape = ims_npy_shape(out->npy);
    if (vector_ok && ndim == 1)
        out->rows = 1, out->dim = shape[0], ndim = 2;
    else
        out->rows = shape[0], out->dim = shape[1];
    if (dtype != IMS_DTYPE_F32 && dtype != IMS_DTYPE_F16) {
        fprintf(stderr, "imgsearch: %s: %s has dtype '%s'; knn needs float32 ('<f4') or float16 ('<f2')\n", path,
                role, ims_npy_dtype_descr(dtype));
    } else if (ndim != 2) {
        fprintf(stderr, "imgsearch: %s: %s must be 2-D (rows, dim), has %d dimensions\n", path, role, ndim);
    } else if (out->dim < 1) {
        fprintf(stderr, "imgsearch: %s: %s has rows of dimension %lld; knn needs at least 1\n", path, role,
                (long long)out->dim);
    } else {
        return CLI_EXIT_OK;
    }
    ims_npy_close(out->npy);
    out->npy = NULL;
    return CLI_EXIT_FAILURE;
}

static int create_backends(const knn_args *a, ims_backend **bes, int *count)
{
    ims_error err = {0};
    return cli_devices_open(&a->device, bes, count, &err) ? cli_error(&err) : CLI_EXIT_OK;
}

/* The table on one backend or split across several (--gpu all or a list). */
typedef struct knn_any {
    ims_knn_table *one;
    ims_knn_multi *multi;
} knn_any;

static ims_status knn_any_load(knn_any *t, ims_backend **bes, int count, int64_t d, const ims_knn_options *o,
                               const void *rows, ims_dtype dtype, int64_t n, ims_error *err)
{
    if (count > 1)
        return ims_knn_multi_create(bes, count, d, o, &t->multi, err) ||
               ims_knn_multi_append(t->multi, rows, dtype, n, err);
    return ims_knn_create(bes[0], d, o, &t->one, err) || ims_knn_append(t->one, rows, dtype, n, err);
}

static void print_json(const int64_t *ids, const float *scores, int64_t b, int k, int64_t n)
{
    int kk = k < n ? k : (int)n;
    for (int64_t q = 0; q < b; q++) {
        printf("{\"query\": %lld, \"ids\": [", (long long)q);
        for (int j = 0; j < kk; j++)
            printf("%s%lld", j ? ", " : "", (long long)ids[(size_t)q * k + j]);
        printf("], \"scores\": [");
        for (int j = 0; j < kk; j++) {
            if (j)
                fputs(", ", stdout);
            json_double(stdout, scores[(size_t)q * k + j]);
        }
        printf("]}\n");
    }
}

/* Queries as f32 (a converted copy for f16 files). */
static float *queries_f32(const ims_npy *q)
{
    int64_t count = ims_npy_count(q);
    const void *data = ims_npy_data(q);
    float *out = malloc(count ? (size_t)count * sizeof *out : 1);
    if (!out)
        return NULL;
    if (count == 0)
        return out; /* no data pointer to copy from (memcpy from NULL is undefined even for 0 bytes) */
    if (ims_npy_dtype(q) == IMS_DTYPE_F32)
        memcpy(out, data, (size_t)count * sizeof *out);
    else
        for (int64_t i = 0; i < count; i++)
            out[i] = ims_f16_to_f32(((const uint16_t *)data)[i]);
    return out;
}

/* Which input file a failed search belongs to, from the status alone: the
 * command already checked k, the buffers and the dimensions, so an invalid
 * argument is a query's content (a zero, NaN or Inf row) and an unsupported
 * one its count; anything else (device memory, a CUDA error) is no file's. */
static const char *search_culprit(const knn_args *a, ims_status st)
{
    return st == IMS_ERR_ARGUMENT || st == IMS_ERR_UNSUPPORTED ? a->queries : NULL;
}

static int run_knn(knn_args *a)
{
    knn_matrix table, queries;
    int status = open_matrix(a->table, "the table", 0, &table);
    if (status)
        return status;
    if ((status = open_matrix(a->queries, "the queries", 1, &queries))) {
        ims_npy_close(table.npy);
        return status;
    }
    int64_t n = table.rows, d = table.dim, b = queries.rows;
    ims_backend *bes[CLI_GPU_MAX + 1];
    int nbe = 0;
    knn_any t = {0};
    int64_t *ids = NULL;
    float *scores = NULL, *q = NULL;
    ims_error err = {0};
    ims_status st;
    if (queries.dim != d) {
        fprintf(stderr, "imgsearch: %s: queries have dim %lld, the table %s has dim %lld\n", a->queries,
                (long long)queries.dim, a->table, (long long)d);
        status = CLI_EXIT_FAILURE;
        goto done;
    }
    if ((status = create_backends(a, bes, &nbe)))
        goto done;
    const ims_backend_info *info = ims_backend_get_info(bes[0]);
    if (a->opt.dtype == IMS_DTYPE_COUNT)
        a->opt.dtype = info->kind == IMS_BACKEND_CPU ? IMS_DTYPE_F32 : IMS_DTYPE_F16;
    size_t need = ims_knn_estimate_bytes(n, d, a->opt.dtype, b, a->k);
    if (nbe > 1) /* each GPU holds about 1 / nbe of the table */
        need = ims_knn_estimate_bytes((n + nbe - 1) / nbe, d, a->opt.dtype, b, a->k);
    fprintf(stderr, "imgsearch knn: %lld rows x %lld dims, %s storage, %lld queries, k = %d on %s%s: about %.1f MiB%s\n",
            (long long)n, (long long)d, ims_dtype_name(a->opt.dtype), (long long)b, a->k, info->name,
            nbe > 1 ? " and the other GPUs (the table split across them)" : "", need / 1048576.0,
            a->opt.max_rows_per_chunk ? " (table streamed in chunks)"
            : info->kind == IMS_BACKEND_CPU ? "" : " (table resident; streamed if it does not fit)");
    size_t out_n = (size_t)b * a->k;
    ids = malloc(out_n ? out_n * sizeof *ids : 1);
    scores = malloc(out_n ? out_n * sizeof *scores : 1);
    q = queries_f32(queries.npy);
    if (!ids || !scores || !q) {
        fprintf(stderr, "imgsearch: out of memory for %lld x %d results\n", (long long)b, a->k);
        status = CLI_EXIT_FAILURE;
        goto done;
    }
    if (knn_any_load(&t, bes, nbe, d, &a->opt, ims_npy_data(table.npy), ims_npy_dtype(table.npy), n, &err)) {
        status = cli_file_error(a->table, &err); /* loading the table: its rows are at fault */
        goto done;
    }
    st = t.multi ? ims_knn_multi_search(t.multi, q, b, a->k, ids, scores, &err)
                 : ims_knn_search(t.one, q, b, a->k, ids, scores, &err);
    if (st) {
        const char *culprit = search_culprit(a, st);
        status = culprit ? cli_file_error(culprit, &err) : cli_error(&err);
        goto done;
    }
    if (a->output) {
        int64_t shape[2] = {b, a->k};
        ims_npz_member m[2] = {{"ids", IMS_DTYPE_I64, 2, shape, ids}, {"scores", IMS_DTYPE_F32, 2, shape, scores}};
        if (ims_npz_write(a->output, m, 2, &err)) {
            status = cli_error(&err);
            goto done;
        }
    }
    if (a->json || !a->output)
        print_json(ids, scores, b, a->k, n);
done:
    ims_knn_free(t.one);
    ims_knn_multi_free(t.multi);
    for (int i = 0; i < nbe; i++)
        ims_backend_free(bes[i]);
    free(q);
    free(ids);
    free(scores);
    ims_npy_close(queries.npy);
    ims_npy_close(table.npy);
    return status;
}

int cmd_knn(int argc, char **argv)
{
    knn_args a = {0};
    ims_knn_options_init(&a.opt);
    a.opt.dtype = IMS_DTYPE_COUNT;
    int status = parse_args(argc, argv, &a);
    return status >= 0 ? status : run_knn(&a);
}
