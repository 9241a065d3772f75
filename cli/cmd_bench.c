/* cmd_bench.c: `imgsearch bench`: how fast this machine runs imgsearch's
 * workloads, measured against what the same device can do.
 *
 * Method (bench/RESULTS.md records runs): each workload is queued once to warm
 * up, then timed `reps` times with the backend's stopwatch (CUDA events on a
 * GPU), inputs rotated between repetitions so no cache flatters a result, never
 * zeros as input. The median and the spread (min..max) are printed, with the
 * rate as a fraction of the ceilings measured in the same run: the device's
 * copy bandwidth and its large-GEMM rate.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char bench_usage[] =
    "usage: imgsearch bench [--device auto|cpu|cuda] [--gpu N] [--quick] [--json]\n"
    "                       [--image-model M.isw] [--text-model M.isw] [--images DIR]\n"
    "                       [--only NAME]\n"
    "\n"
    "Measures imgsearch's workloads on one device and prints each as time per\n"
    "call (median, min..max), items per second, and a fraction of the device's\n"
    "ceilings measured in the same run (copy bandwidth, GEMM rate).\n"
    "\n"
    "  --device auto|cpu|cuda\n"
    "                      the backend: auto (default) is cuda when a GPU is usable,\n"
    "                      else cpu\n"
    "  --gpu N             which GPU (default 0)\n"
    "  --quick             fewer repetitions and smaller shapes (a smoke run)\n"
    "  --json              one JSON object per result line on stdout\n"
    "  --image-model M     Inception-v3 weights for the image workloads (default:\n"
    "                      synthetic weights of the same shapes)\n"
    "  --text-model M      BERT weights for the text workloads (skipped without)\n"
    "  --images DIR        index DIR end to end: decode, preprocess, forward, write\n"
    "                      (skipped without)\n"
    "  --only NAME         run only the workloads whose name starts with NAME\n"
    "                      (inception, text, knn, index, or a longer prefix)\n";

typedef struct bench_options {
    cli_device device;
    int quick, json;
    const char *image_model, *text_model, *only, *images;
} bench_options;

typedef struct bench_ctx {
    const bench_options *opt;
    ims_backend *be;
    ims_backend_timer *timer;
    ims_backend_peaks peaks;
} bench_ctx;

/* One timed workload: run() queues the work for repetition `rep`. */
typedef struct bench_case {
    const char *name;      /* "knn f16 N=1M D=384 B=16 k=10" */
    const char *unit;      /* what `items` counts: "images", "queries", ... */
    double items;          /* per call */
    double flops, bytes;   /* per call, for the fractions of the ceilings (0: not shown) */
    ims_status (*run)(void *state, int rep, ims_error *err);
    void *state;
} bench_case;

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bench_selected(const bench_ctx *c, const char *name)
{
    return !c->opt->only || strncmp(name, c->opt->only, strlen(c->opt->only)) == 0;
}

/* Times a case and prints its line. */
static ims_status bench_run_case(bench_ctx *c, const bench_case *bc, ims_error *err)
{
    int reps = c->opt->quick ? 3 : 20;
    double ms[64];
    ims_status st = IMS_OK;
    for (int rep = -1; !st && rep < reps; rep++) { /* rep -1 warms up: first-call setup, caches, graphs */
        st = ims_backend_timer_start(c->timer, err);
        if (!st)
            st = bc->run(bc->state, rep + 1, err);
        if (!st)
            st = ims_backend_timer_stop(c->timer, err);
        if (!st)
            st = ims_backend_timer_elapsed_ms(c->timer, &ms[rep < 0 ? 0 : rep], err);
    }
    if (st)
        return st;
    qsort(ms, (size_t)reps, sizeof ms[0], compare_double);
    double median = reps % 2 ? ms[reps / 2] : 0.5 * (ms[reps / 2 - 1] + ms[reps / 2]);
    double per_s = bc->items / (median * 1e-3);
    double tflops = bc->flops / (median * 1e-3) / 1e12, gbs = bc->bytes / (median * 1e-3) / 1e9;
    double of_gemm = c->peaks.gemm_tflop_per_s > 0 ? tflops / c->peaks.gemm_tflop_per_s : 0;
    double of_copy = c->peaks.copy_gb_per_s > 0 ? gbs / c->peaks.copy_gb_per_s : 0;
    if (c->opt->json) {
        printf("{\"workload\": ");
        json_string(stdout, bc->name, strlen(bc->name));
        printf(", \"device\": ");
        const ims_backend_info *info = ims_backend_get_info(c->be);
        json_string(stdout, info->device, strlen(info->device));
        printf(", \"reps\": %d, \"median_ms\": ", reps);
        json_double(stdout, median);
        printf(", \"min_ms\": ");
        json_double(stdout, ms[0]);
        printf(", \"max_ms\": ");
        json_double(stdout, ms[reps - 1]);
        printf(", \"unit\": \"%s\", \"per_s\": ", bc->unit);
        json_double(stdout, per_s);
        printf(", \"tflop_per_s\": ");
        json_double(stdout, tflops);
        printf(", \"gb_per_s\": ");
        json_double(stdout, gbs);
        printf(", \"fraction_of_gemm_peak\": ");
        json_double(stdout, of_gemm);
        printf(", \"fraction_of_copy_peak\": ");
        json_double(stdout, of_copy);
        printf("}\n");
    } else {
        char frac[64] = "";
        if (bc->flops > 0 && bc->bytes > 0)
            snprintf(frac, sizeof frac, "%5.1f%% GEMM %5.1f%% copy", 100 * of_gemm, 100 * of_copy);
        else if (bc->flops > 0)
            snprintf(frac, sizeof frac, "%5.1f%% of GEMM peak", 100 * of_gemm);
        else if (bc->bytes > 0)
            snprintf(frac, sizeof frac, "%5.1f%% of copy peak", 100 * of_copy);
        printf("%-44s %9.3f ms (%8.3f..%8.3f) %11.1f %-8s %s\n", bc->name, median, ms[0], ms[reps - 1], per_s,
               bc->unit, frac);
    }
    fflush(stdout);
    return IMS_OK;
}

/* ---- Workloads ----------------------------------------------------------------------- */

/* Rotating, never-zero inputs: `count` buffers of `bytes` random bytes. */
static unsigned char *random_buffers(int count, size_t bytes, uint64_t seed)
{
    unsigned char *p = malloc((size_t)count * bytes);
    uint64_t x = seed;
    for (size_t i = 0; p && i < (size_t)count * bytes; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (unsigned char)(1 + (x >> 56) % 255);
    }
    return p;
}

/* The image model: --image-model, or synthetic weights of the same shapes
 * written to a temporary file (timing does not depend on the values). */
static ims_status open_image_model(const bench_ctx *c, ims_weights **w, char *tmp, size_t tmp_size, ims_error *err)
{
    tmp[0] = '\0';
    if (c->opt->image_model)
        return ims_weights_open(c->opt->image_model, 0, w, err);
    snprintf(tmp, tmp_size, "/tmp/imgsearch-bench-iv3.%ld.isw", (long)getpid());
    ims_convert_options co;
    ims_convert_options_init(&co);
    ims_convert_report report;
    ims_status st = ims_convert_synthetic(IMS_CONVERT_ARCH_INCEPTION_V3, tmp, &co, &report, err);
    if (!st)
        st = ims_weights_open(tmp, 0, w, err);
    return st;
}

typedef struct inception_state {
    ims_image_encoder *enc;
    const unsigned char *images; /* (2, batch, 299, 299, 3) */
    int batch;
    float *features, *logits;
} inception_state;

static ims_status inception_run(void *state, int rep, ims_error *err)
{
    inception_state *s = state;
    size_t image_bytes = (size_t)IMS_IMAGE_INPUT_SIZE * IMS_IMAGE_INPUT_SIZE * 3;
    return ims_image_encoder_forward(s->enc, s->images + (size_t)(rep % 2) * (size_t)s->batch * image_bytes,
                                     s->batch, s->features, s->logits, err);
}

/* Inception-v3 forward passes: 5.7 G multiply-adds per 299 x 299 image. */
static ims_status bench_inception(bench_ctx *c, ims_error *err)
{
    static const int gpu_batches[] = {1, 8, 32, 128, 256}, cpu_batches[] = {1, 8}, quick_batches[] = {1};
    int cuda = ims_backend_get_info(c->be)->kind == IMS_BACKEND_CUDA;
    const int *batches = c->opt->quick ? quick_batches : cuda ? gpu_batches : cpu_batches;
    int batch_count = c->opt->quick ? 1 : cuda ? 5 : 2;
    static const ims_precision precisions[] = {IMS_PRECISION_FP32, IMS_PRECISION_TF32, IMS_PRECISION_FP16};
    char tmp[256];
    ims_weights *w = NULL;
    ims_status st = open_image_model(c, &w, tmp, sizeof tmp, err);
    int max_batch = batches[batch_count - 1];
    size_t image_bytes = (size_t)IMS_IMAGE_INPUT_SIZE * IMS_IMAGE_INPUT_SIZE * 3;
    unsigned char *images = st ? NULL : random_buffers(2 * max_batch, image_bytes, 12345);
    float *features = malloc((size_t)max_batch * 2048 * sizeof(float));
    float *logits = malloc((size_t)max_batch * 1008 * sizeof(float));
    if (!st && (!images || !features || !logits))
        st = IMS_ERR_NOMEM;
    for (int p = 0; !st && p < (cuda ? 3 : 1); p++) {
        inception_state s = {.images = images, .features = features, .logits = logits};
        st = ims_image_encoder_create(c->be, w, precisions[p], &s.enc, err);
        for (int b = 0; !st && b < batch_count; b++) {
            char name[96];
            snprintf(name, sizeof name, "inception_v3 %s batch %d", ims_precision_name(precisions[p]), batches[b]);
            s.batch = batches[b];
            bench_case bc = {name, "images", batches[b], 2 * 5.7e9 * batches[b], 0, inception_run, &s};
            if (bench_selected(c, name))
                st = bench_run_case(c, &bc, err);
        }
        ims_image_encoder_free(s.enc);
    }
    ims_weights_close(w);
    if (tmp[0])
        remove(tmp);
    free(images);
    free(features);
    free(logits);
    if (st == IMS_ERR_NOMEM && !err->msg[0])
        snprintf(err->msg, sizeof err->msg, "out of memory");
    return st;
}

/* Each adds its cases: builds its inputs once, runs bench_run_case on each. A
 * workload that cannot run here (no model, no GPU path) says so and is skipped. */
typedef ims_status (*bench_workload)(bench_ctx *c, ims_error *err);

/* Uniform floats in [-1, 1) from a seed: table rows and queries. */
static void random_floats(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    }
}

typedef struct knn_state {
    ims_knn_table *table;
    const float *queries; /* (2, b, d): rotated */
    int64_t b;
    int d, k;
    int64_t *ids;
    float *scores;
} knn_state;

static ims_status knn_run(void *state, int rep, ims_error *err)
{
    knn_state *s = state;
    return ims_knn_search(s->table, s->queries + (size_t)(rep % 2) * (size_t)s->b * (size_t)s->d, s->b, s->k, s->ids,
                          s->scores, err);
}

/* Exact top-k over an f16 table: one pass over N x D (bytes), 2 B N D flops. */
static ims_status bench_knn_shape(bench_ctx *c, int64_t n, int d, const int *batches, int batch_count, const int *ks,
                                  int k_count, ims_error *err)
{
    ims_knn_options ko;
    ims_knn_options_init(&ko);
    knn_state s = {.d = d};
    ims_status st = ims_knn_create(c->be, d, &ko, &s.table, err);
    const int64_t piece = 1 << 18;
    float *rows = malloc((size_t)piece * (size_t)d * sizeof *rows);
    if (!st && !rows)
        st = IMS_ERR_NOMEM;
    for (int64_t first = 0; !st && first < n; first += piece) {
        int64_t m = n - first < piece ? n - first : piece;
        random_floats(rows, (size_t)m * (size_t)d, (uint64_t)first + 1);
        st = ims_knn_append(s.table, rows, IMS_DTYPE_F32, m, err);
    }
    free(rows);
    int max_b = batches[batch_count - 1], max_k = ks[k_count - 1];
    float *queries = malloc(2 * (size_t)max_b * (size_t)d * sizeof *queries);
    s.ids = malloc((size_t)max_b * (size_t)max_k * sizeof *s.ids);
    s.scores = malloc((size_t)max_b * (size_t)max_k * sizeof *s.scores);
    if (!st && (!queries || !s.ids || !s.scores))
        st = IMS_ERR_NOMEM;
    if (!st)
        random_floats(queries, 2 * (size_t)max_b * (size_t)d, 777);
    s.queries = queries;
    for (int bi = 0; !st && bi < batch_count; bi++)
        for (int ki = 0; !st && ki < k_count; ki++) {
            char name[96];
            snprintf(name, sizeof name, "knn f16 N=%lld D=%d B=%d k=%d", (long long)n, d, batches[bi], ks[ki]);
            s.b = batches[bi];
            s.k = ks[ki];
            bench_case bc = {name, "queries", batches[bi], 2.0 * batches[bi] * (double)n * d, 2.0 * (double)n * d,
                             knn_run, &s};
            if (bench_selected(c, name))
                st = bench_run_case(c, &bc, err);
        }
    ims_knn_free(s.table);
    free(queries);
    free(s.ids);
    free(s.scores);
    return st;
}

static ims_status bench_knn(bench_ctx *c, ims_error *err)
{
    int cuda = ims_backend_get_info(c->be)->kind == IMS_BACKEND_CUDA;
    static const int gpu_b[] = {1, 16, 256, 1024, 4096}, cpu_b[] = {1, 16, 256}, quick_b[] = {1, 16};
    static const int gpu_k[] = {10, 1000}, quick_k[] = {10};
    if (c->opt->quick)
        return bench_knn_shape(c, cuda ? 1000000 : 100000, 384, quick_b, 2, quick_k, 1, err);
    const int *b = cuda ? gpu_b : cpu_b;
    int bn = cuda ? 5 : 3;
    ims_status st = bench_knn_shape(c, 1000000, 384, b, bn, gpu_k, 2, err);
    if (!st)
        st = bench_knn_shape(c, cuda ? 1000000 : 200000, 2048, b, bn, gpu_k, 2, err);
    if (!st && cuda)
        st = bench_knn_shape(c, 10000000, 384, b, bn, gpu_k, 2, err);
    return st;
}

typedef struct text_state {
    ims_text_encoder *enc;
    int32_t *ids, *lengths; /* (2, b, t), (b) */
    int b, t;
    float *out;
} text_state;

static ims_status text_run(void *state, int rep, ims_error *err)
{
    text_state *s = state;
    return ims_text_encoder_encode(s->enc, s->ids + (size_t)(rep % 2) * (size_t)s->b * (size_t)s->t, s->lengths, s->b,
                                   s->t, s->out, err);
}

/* The text encoder on token ids ([CLS], random word pieces, [SEP]): short
 * (16 tokens) and long (128) sentences. Per token and layer about 24 H^2 +
 * 4 T H flops (the projections, the FFN and attention). */
static ims_status bench_text(bench_ctx *c, ims_error *err)
{
    if (!c->opt->text_model) {
        if (!c->opt->json)
            printf("%-44s skipped: give --text-model M.isw\n", "text encoder");
        return IMS_OK;
    }
    int cuda = ims_backend_get_info(c->be)->kind == IMS_BACKEND_CUDA;
    static const int gpu_b[] = {1, 32, 256}, cpu_b[] = {1, 32}, lens[] = {16, 128};
    const int *batches = cuda ? gpu_b : cpu_b;
    int bn = c->opt->quick ? 1 : cuda ? 3 : 2;
    ims_weights *w = NULL;
    ims_tokenizer *tok = NULL;
    ims_status st = ims_weights_open(c->opt->text_model, 0, &w, err);
    if (!st)
        st = ims_tokenizer_create_from_weights(w, &tok, err);
    int64_t hidden = 0, layers = 0;
    if (!st)
        st = ims_weights_get_i64(w, "bert.hidden_size", &hidden, err);
    if (!st)
        st = ims_weights_get_i64(w, "bert.num_layers", &layers, err);
    int max_b = batches[bn - 1], max_t = lens[1];
    text_state s = {0};
    s.ids = malloc(2 * (size_t)max_b * (size_t)max_t * sizeof *s.ids);
    s.lengths = malloc((size_t)max_b * sizeof *s.lengths);
    s.out = malloc((size_t)max_b * (size_t)(hidden ? hidden : 1) * sizeof *s.out);
    if (!st && (!s.ids || !s.lengths || !s.out))
        st = IMS_ERR_NOMEM;
    static const ims_precision precisions[] = {IMS_PRECISION_FP32, IMS_PRECISION_FP16};
    for (int p = 0; !st && p < (cuda ? 2 : 1); p++) {
        st = ims_text_encoder_create(c->be, w, precisions[p], &s.enc, err);
        for (int li = 0; !st && li < 2; li++)
            for (int bi = 0; !st && bi < bn; bi++) {
                s.b = batches[bi];
                int model_t = ims_text_encoder_max_seq_length(s.enc);
                s.t = lens[li] < model_t ? lens[li] : model_t;
                if (li == 1 && s.t <= lens[0])
                    continue; /* the model's sequences are no longer than the short ones */
                int vocab = (int)ims_tokenizer_vocab_size(tok);
                int first_word = vocab > 2000 ? 1000 : vocab / 2; /* past BERT's [unused] and special tokens */
                uint64_t x = 99;
                for (size_t i = 0; i < 2 * (size_t)s.b * (size_t)s.t; i++) {
                    x = x * 6364136223846793005ull + 1442695040888963407ull;
                    size_t j = i % (size_t)s.t;
                    s.ids[i] = j == 0 ? ims_tokenizer_special_id(tok, IMS_TOKEN_CLS)
                               : j == (size_t)s.t - 1 ? ims_tokenizer_special_id(tok, IMS_TOKEN_SEP)
                                                       : (int32_t)(first_word + (x >> 33) % (uint64_t)(vocab - first_word));
                }
                for (int i = 0; i < s.b; i++)
                    s.lengths[i] = s.t;
                char name[96];
                snprintf(name, sizeof name, "text %s batch %d x %d tokens", ims_precision_name(precisions[p]), s.b,
                         s.t);
                double flops = (double)s.b * s.t * (double)layers * (24.0 * hidden * hidden + 4.0 * s.t * hidden);
                bench_case bc = {name, "texts", s.b, flops, 0, text_run, &s};
                if (bench_selected(c, name))
                    st = bench_run_case(c, &bc, err);
            }
        ims_text_encoder_free(s.enc);
        s.enc = NULL;
    }
    ims_tokenizer_free(tok);
    ims_weights_close(w);
    free(s.ids);
    free(s.lengths);
    free(s.out);
    return st;
}

/* End-to-end indexing of a folder (--images): decode + preprocess + forward +
 * write, timed by the wall clock (the pipeline overlaps host and device work),
 * with each stage's share. Into a temporary index, removed afterwards. */
static ims_status bench_index(bench_ctx *c, ims_error *err)
{
    if (!c->opt->images) {
        if (!c->opt->json)
            printf("%-44s skipped: give --images DIR\n", "index end to end");
        return IMS_OK;
    }
    char tmp_model[256], dir[256];
    ims_weights *w = NULL;
    ims_status st = open_image_model(c, &w, tmp_model, sizeof tmp_model, err);
    snprintf(dir, sizeof dir, "/tmp/imgsearch-bench-index.%ld", (long)getpid());
    int cuda = ims_backend_get_info(c->be)->kind == IMS_BACKEND_CUDA;
    ims_index_run_options o;
    ims_index_run_options_init(&o);
    const char *roots[1] = {c->opt->images};
    o.index_dir = dir;
    o.roots = roots;
    o.root_count = 1;
    o.backend = c->be;
    o.image_model = w;
    o.precision = cuda ? IMS_PRECISION_FP16 : IMS_PRECISION_FP32;
    o.batch_size = cuda ? 64 : 16;
    o.threads = 8;
    o.chunk_rows = 1 << 16;
    ims_index_progress p = {0};
    if (!st)
        st = ims_index_run(&o, &p, err);
    if (!st) {
        double s = p.elapsed_s > 0 ? p.elapsed_s : 1e-9;
        char name[96];
        snprintf(name, sizeof name, "index %s batch %d", ims_precision_name(o.precision), o.batch_size);
        if (c->opt->json) {
            printf("{\"workload\": \"%s\", \"images\": %lld, \"failed\": %lld, \"seconds\": ", name,
                   (long long)p.indexed, (long long)p.failed);
            json_double(stdout, p.elapsed_s);
            printf(", \"per_s\": ");
            json_double(stdout, (double)p.indexed / s);
            printf(", \"decode_wait_s\": ");
            json_double(stdout, p.decode_wait_s);
            printf(", \"model_s\": ");
            json_double(stdout, p.model_s);
            printf(", \"write_s\": ");
            json_double(stdout, p.write_s);
            printf("}\n");
        } else {
            printf("%-44s %9.3f s for %lld images: %.1f images/s; waiting for decode %.0f%%, model %.0f%%, "
                   "writing %.0f%%\n",
                   name, p.elapsed_s, (long long)p.indexed, (double)p.indexed / s, 100 * p.decode_wait_s / s, 100 * p.model_s / s,
                   100 * p.write_s / s);
        }
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "imgsearch: could not remove %s\n", dir);
    ims_weights_close(w);
    if (tmp_model[0])
        remove(tmp_model);
    return st;
}

static const struct {
    const char *name;
    bench_workload fn;
} bench_workloads[] = {
    {"inception", bench_inception},
    {"text", bench_text},
    {"knn", bench_knn},
    {"index", bench_index},
};

/* ---- The command ------------------------------------------------------------------- */

/* Returns -1 to go on, or the exit status. */
static int parse_bench_options(int argc, char **argv, bench_options *o)
{
    memset(o, 0, sizeof *o);
    cli_args a;
    cli_args_init(&a, "bench", bench_usage, argc, argv);
    while (cli_args_next(&a)) {
        if (cli_is(&a, "--quick"))
            o->quick = 1;
        else if (cli_is(&a, "--json"))
            o->json = 1;
        else if (cli_is(&a, CLI_DEVICE_OPTIONS))
            cli_arg_device(&a, &o->device);
        else if (cli_is(&a, "--image-model"))
            cli_arg_path(&a, &o->image_model);
        else if (cli_is(&a, "--text-model"))
            cli_arg_path(&a, &o->text_model);
        else if (cli_is(&a, "--images"))
            cli_arg_path(&a, &o->images);
        else if (cli_is(&a, "--only"))
            cli_arg_string(&a, &o->only);
        else
            cli_args_unknown(&a);
    }
    return a.status;
}

static void print_header(const bench_ctx *c)
{
    const ims_backend_info *info = ims_backend_get_info(c->be);
    char versions[2048];
    ims_library_versions(versions, sizeof versions);
    if (c->opt->json) {
        printf("{\"device\": ");
        json_string(stdout, info->device, strlen(info->device));
        printf(", \"backend\": \"%s\", \"versions\": ", info->name);
        json_string(stdout, versions, strlen(versions));
        printf(", \"copy_gb_per_s\": ");
        json_double(stdout, c->peaks.copy_gb_per_s);
        printf(", \"gemm_tflop_per_s\": ");
        json_double(stdout, c->peaks.gemm_tflop_per_s);
        printf(", \"copy_what\": ");
        json_string(stdout, c->peaks.copy_what, strlen(c->peaks.copy_what));
        printf(", \"gemm_what\": ");
        json_string(stdout, c->peaks.gemm_what, strlen(c->peaks.gemm_what));
        printf("}\n");
        return;
    }
    printf("imgsearch bench%s on %s (%s)\n", c->opt->quick ? " --quick" : "", info->device, info->name);
    if (info->kind == IMS_BACKEND_CUDA)
        printf("compute capability %d.%d, %d SMs, %.1f GiB\n", info->compute_major, info->compute_minor,
               info->multiprocessors, (double)info->memory_total / (1u << 30));
    else
        printf("%d threads\n", info->threads);
    fputs(versions, stdout);
    printf("ceilings: copy %.1f GB/s [%s]; GEMM %.2f TFLOP/s [%s]\n\n", c->peaks.copy_gb_per_s, c->peaks.copy_what,
           c->peaks.gemm_tflop_per_s, c->peaks.gemm_what);
    printf("%-44s %9s %22s %11s %-8s %s\n", "workload", "median", "(min..max)", "rate", "", "of ceiling");
}

int cmd_bench(int argc, char **argv)
{
    bench_options opt;
    int rc = parse_bench_options(argc, argv, &opt);
    if (rc >= 0)
        return rc;
    ims_error err = {0};
    bench_ctx c = {.opt = &opt};
    ims_status st = cli_device_open(&opt.device, &c.be, &err);
    if (!st)
        st = ims_backend_timer_create(c.be, &c.timer, &err);
    if (!st)
        st = ims_backend_measure_peaks(c.be, opt.quick, &c.peaks, &err);
    if (!st)
        print_header(&c);
    for (size_t i = 0; !st && i < sizeof bench_workloads / sizeof bench_workloads[0]; i++) {
        if (c.opt->only && strncmp(bench_workloads[i].name, c.opt->only, strlen(bench_workloads[i].name)) &&
            strncmp(c.opt->only, bench_workloads[i].name, strlen(c.opt->only)))
            continue;
        st = bench_workloads[i].fn(&c, &err);
    }
    ims_backend_timer_free(c.timer);
    ims_backend_free(c.be);
    return st ? cli_error(&err) : CLI_EXIT_OK;
}
