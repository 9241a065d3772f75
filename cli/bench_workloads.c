/* bench_workloads.c: the workloads of `imgsearch bench`, each a sweep over
 * its parameters, and how one point is measured.
 *
 * Method: a point runs --warmup untimed calls (first-call setup, caches, CUDA
 * graphs), then --reps repetitions; a repetition makes calls until its share
 * of --seconds has passed (at least one call) and its rate is items per
 * second over them, timed with the backend's stopwatch (CUDA events on a
 * GPU; every call returns host results, so the host loop waits for each) or
 * with the wall clock for host pipelines (index, decode, tokenize). Inputs
 * rotate between calls so no cache flatters a result; inputs are never zeros.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *bench_workload_name(int id)
{
    static const char *const names[BENCH_WORKLOAD_COUNT] = {"inception", "text", "knn", "index", "decode", "tokenize",
                                                                   "knn-parts"};
    return id >= 0 && id < BENCH_WORKLOAD_COUNT ? names[id] : "?";
}

const char *bench_seq_name(bench_seq s) { return s == BENCH_SEQ_LONG ? "long" : "short"; }

const char *bench_workload_missing(const bench_options *o, bench_workload_id id)
{
    if ((id == BENCH_TEXT || id == BENCH_TOKENIZE) && !o->text_model)
        return "give --text-model M.isw";
    if ((id == BENCH_INDEX || id == BENCH_DECODE) && !o->images)
        return "give --images DIR";
    return NULL;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef ims_status (*bench_call)(void *state, int call, ims_error *err);

/* One repetition: calls until `seconds` have passed (at least one); *ms is
 * the time they took together. */
static ims_status bench_rep(bench_ctx *c, bench_call call, void *state, int wall, double seconds, int *next_call,
                            int *calls, double *ms, ims_error *err)
{
    double t0 = ims_clock_seconds(), t = t0;
    ims_status st = wall ? IMS_OK : ims_backend_timer_start(c->timer, err);
    *calls = 0;
    while (!st && (*calls == 0 || (t - t0 < seconds && *calls < 1000000))) {
        st = call(state, (*next_call)++, err);
        (*calls)++;
        t = ims_clock_seconds();
    }
    if (!st && !wall)
        st = ims_backend_timer_stop(c->timer, err);
    if (!st && !wall)
        st = ims_backend_timer_elapsed_ms(c->timer, ms, err);
    if (!st && wall)
        *ms = (t - t0) * 1e3;
    return st;
}

/* Measures a point and writes its row: row holds the workload's parameters,
 * unit and counts per item; items is per call. */
static ims_status bench_measure(bench_ctx *c, bench_call call, void *state, double items, int wall, bench_row *row,
                                ims_error *err)
{
    const bench_options *o = c->opt;
    double *rates = malloc((size_t)o->reps * sizeof *rates);
    if (!rates)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    int next = 0, total_calls = 0;
    ims_status st = IMS_OK;
    for (int i = 0; !st && i < o->warmup; i++)
        st = call(state, next++, err);
    for (int r = 0; !st && r < o->reps; r++) {
        int calls = 0;
        double ms = 0;
        st = bench_rep(c, call, state, wall, o->seconds / o->reps, &next, &calls, &ms, err);
        rates[r] = items * calls / (fmax(ms, 1e-6) * 1e-3);
        total_calls += calls;
    }
    if (!st) {
        int n = o->reps;
        qsort(rates, (size_t)n, sizeof *rates, compare_double);
        row->reps = n;
        row->calls = (total_calls + n / 2) / n;
        row->median = n % 2 ? rates[n / 2] : 0.5 * (rates[n / 2 - 1] + rates[n / 2]);
        row->min = rates[0];
        row->max = rates[n - 1];
        row->ms_per_call = 1e3 * items / row->median;
        const ims_backend_peaks *pk = &c->env.peaks;
        row->of_gemm = row->flop_per_item > 0 && pk->gemm_tflop_per_s > 0
                           ? row->flop_per_item * row->median / 1e12 / pk->gemm_tflop_per_s
                           : -1;
        row->of_copy = row->bytes_per_item > 0 && pk->copy_gb_per_s > 0
                           ? row->bytes_per_item * row->median / 1e9 / pk->copy_gb_per_s
                           : -1;
        bench_out_row(c->out, row);
    }
    free(rates);
    return st;
}

/* A point the device refused (fp16 on the CPU): a note on stderr, and the
 * sweep goes on. Other failures end the run. */
static ims_status bench_skip_unsupported(ims_status st, const char *what, ims_error *err)
{
    if (st != IMS_ERR_UNSUPPORTED)
        return st;
    fprintf(stderr, "imgsearch: bench: skipped %s: %s\n", what, err->msg);
    memset(err, 0, sizeof *err);
    return IMS_OK;
}

static int is_cuda(const bench_ctx *c) { return c->env.info->kind == IMS_BACKEND_CUDA; }

/* The -b values, or defaults (quick, GPU, CPU). Returns the count. */
static int bench_batches(const bench_ctx *c, const int *gpu, int gpu_n, const int *cpu, int cpu_n, const int **out)
{
    static const int quick[] = {1};
    if (c->opt->batch_count) {
        *out = c->opt->batches;
        return c->opt->batch_count;
    }
    if (c->opt->quick) {
        *out = quick;
        return 1;
    }
    *out = is_cuda(c) ? gpu : cpu;
    return is_cuda(c) ? gpu_n : cpu_n;
}

/* The -p values, or fp32 on the CPU and `gpu` on a GPU. */
static int bench_precisions(const bench_ctx *c, const ims_precision *gpu, int gpu_n, const ims_precision **out)
{
    static const ims_precision cpu[] = {IMS_PRECISION_FP32};
    if (c->opt->precision_count) {
        *out = c->opt->precisions;
        return c->opt->precision_count;
    }
    *out = is_cuda(c) ? gpu : cpu;
    return is_cuda(c) ? gpu_n : 1;
}

static int max_of(const int *v, int n)
{
    int m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

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

/* Uniform floats in [-1, 1) from a seed: table rows and queries. */
static void random_floats(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    }
}

/* The image model: --image-model, or synthetic weights of the same shapes
 * written to a temporary file (timing does not depend on the values). */
static ims_status open_image_model(const bench_ctx *c, ims_weights **w, char *tmp, size_t tmp_size, double *open_s,
                                   ims_error *err)
{
    tmp[0] = '\0';
    ims_status st = IMS_OK;
    if (!c->opt->image_model) {
        snprintf(tmp, tmp_size, "/tmp/imgsearch-bench-iv3.%ld.isw", (long)getpid());
        ims_convert_options co;
        ims_convert_options_init(&co);
        ims_convert_report report;
        st = ims_convert_synthetic(IMS_CONVERT_ARCH_INCEPTION_V3, tmp, &co, &report, err);
    }
    double t0 = ims_clock_seconds(); /* opening and checking the file, as every command does */
    if (!st)
        st = ims_weights_open(c->opt->image_model ? c->opt->image_model : tmp, 0, w, err);
    *open_s = ims_clock_seconds() - t0;
    return st;
}

static void close_image_model(ims_weights *w, const char *tmp)
{
    ims_weights_close(w);
    if (tmp[0])
        remove(tmp);
}

/* ---- inception: Inception-v3 forward passes ------------------------------------- */

typedef struct inception_state {
    ims_image_encoder *enc;
    const unsigned char *images; /* (2, batch, 299, 299, 3): rotated */
    int batch;
    float *features, *logits;
} inception_state;

static ims_status inception_call(void *state, int call, ims_error *err)
{
    inception_state *s = state;
    size_t image_bytes = (size_t)IMS_IMAGE_INPUT_SIZE * IMS_IMAGE_INPUT_SIZE * 3;
    return ims_image_encoder_forward(s->enc, s->images + (size_t)(call % 2) * (size_t)s->batch * image_bytes,
                                     s->batch, s->features, s->logits, err);
}

/* 5.7 G multiply-adds per 299 x 299 image. */
static ims_status bench_inception(bench_ctx *c, ims_error *err)
{
    static const int gpu_b[] = {1, 8, 32, 128, 256}, cpu_b[] = {1, 8};
    static const ims_precision gpu_p[] = {IMS_PRECISION_FP32, IMS_PRECISION_TF32, IMS_PRECISION_FP16};
    const int *batches;
    const ims_precision *precisions;
    int bn = bench_batches(c, gpu_b, 5, cpu_b, 2, &batches);
    int pn = bench_precisions(c, gpu_p, 3, &precisions);
    int max_batch = max_of(batches, bn);
    char tmp[256];
    ims_weights *w = NULL;
    double open_s = 0, t0;
    ims_status st = open_image_model(c, &w, tmp, sizeof tmp, &open_s, err);
    size_t image_bytes = (size_t)IMS_IMAGE_INPUT_SIZE * IMS_IMAGE_INPUT_SIZE * 3;
    unsigned char *images = st ? NULL : random_buffers(2 * max_batch, image_bytes, 12345);
    float *features = malloc((size_t)max_batch * 2048 * sizeof(float));
    float *logits = malloc((size_t)max_batch * 1008 * sizeof(float));
    if (!st && (!images || !features || !logits))
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %d images", max_batch);
    for (int p = 0; !st && p < pn; p++) {
        inception_state s = {.images = images, .features = features, .logits = logits};
        char what[64];
        snprintf(what, sizeof what, "inception %s", ims_precision_name(precisions[p]));
        t0 = ims_clock_seconds();
        st = bench_skip_unsupported(ims_image_encoder_create(c->be, w, precisions[p], &s.enc, err), what, err);
        double create_s = ims_clock_seconds() - t0;
        for (int b = 0; !st && s.enc && b < bn; b++) {
            s.batch = batches[b];
            bench_row row = {.workload = "inception", .precision = ims_precision_name(precisions[p]),
                             .batch = batches[b], .unit = "images/s", .flop_per_item = 2 * 5.7e9};
            /* The first call of a batch size, timed apart: its set-up (oneDNN's
             * primitives, cuDNN's plans, CUDA graphs) is what a short run pays. */
            t0 = ims_clock_seconds();
            st = inception_call(&s, 0, err);
            double first_s = ims_clock_seconds() - t0;
            if (!st)
                st = bench_measure(c, inception_call, &s, batches[b], 0, &row, err);
            if (!st)
                fprintf(stderr,
                        "imgsearch: bench: %s batch %d set-up: weights opened and checked %.1f ms, encoder made "
                        "(weights uploaded) %.1f ms, first call %.1f ms against %.1f ms a call after it\n",
                        what, batches[b], 1e3 * open_s, 1e3 * create_s, 1e3 * first_s, row.ms_per_call);
        }
        ims_image_encoder_free(s.enc);
    }
    close_image_model(w, tmp);
    free(images);
    free(features);
    free(logits);
    return st;
}

/* ---- knn: exact top-k over an f16 table ------------------------------------------- */

typedef struct knn_state {
    ims_knn_table *table;
    int64_t n;
    int d;
    const float *queries; /* (2, b, d): rotated */
    int64_t b;
    int k;
    int64_t *ids;
    float *scores;
} knn_state;

static ims_status knn_call(void *state, int call, ims_error *err)
{
    knn_state *s = state;
    return ims_knn_search(s->table, s->queries + (size_t)(call % 2) * (size_t)s->b * (size_t)s->d, s->b, s->k, s->ids,
                          s->scores, err);
}

/* A table of n random rows of d floats, appended in pieces; chunk: streamed
 * in chunks of that many rows (0: resident). */
static ims_status knn_table_fill_chunked(bench_ctx *c, knn_state *s, int64_t n, int d, int64_t chunk, ims_error *err)
{
    ims_knn_free(s->table);
    s->table = NULL;
    ims_knn_options ko;
    ims_knn_options_init(&ko);
    ko.max_rows_per_chunk = chunk;
    ims_status st = ims_knn_create(c->be, d, &ko, &s->table, err);
    if (!st) /* one pinned allocation, not 1.5x growth re-pinning the table as it fills */
        st = ims_knn_reserve(s->table, n, err);
    const int64_t piece = 1 << 18;
    float *rows = st ? NULL : malloc((size_t)(n < piece ? n : piece) * (size_t)d * sizeof *rows);
    if (!st && !rows)
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for the k-NN table");
    for (int64_t first = 0; !st && first < n; first += piece) {
        int64_t m = n - first < piece ? n - first : piece;
        random_floats(rows, (size_t)m * (size_t)d, (uint64_t)first + 1);
        st = ims_knn_append(s->table, rows, IMS_DTYPE_F32, m, err);
    }
    free(rows);
    s->n = n;
    s->d = d;
    return st;
}

static ims_status knn_table_fill(bench_ctx *c, knn_state *s, int64_t n, int d, ims_error *err)
{
    return knn_table_fill_chunked(c, s, n, d, 0, err);
}

/* The --knn-shape list, or the defaults: 384-d (MiniLM) and 2048-d (Inception
 * features) tables (and 10M x 384 on a GPU), 1 to 4096 queries, k = 10 and 1000. */
static int knn_shapes(const bench_ctx *c, bench_knn_shape *out)
{
    if (c->opt->knn_count) {
        memcpy(out, c->opt->knn, (size_t)c->opt->knn_count * sizeof *out);
        return c->opt->knn_count;
    }
    int cuda = is_cuda(c), n = 0;
    if (c->opt->quick) {
        int64_t rows = cuda ? 1000000 : 100000;
        out[n++] = (bench_knn_shape){rows, 384, 1, 10};
        out[n++] = (bench_knn_shape){rows, 384, 16, 10};
        return n;
    }
    static const int gpu_b[] = {1, 16, 256, 1024, 4096}, cpu_b[] = {1, 16, 256};
    const int *b = cuda ? gpu_b : cpu_b;
    int bn = cuda ? 5 : 3;
    const struct {
        int64_t n;
        int d;
    } tables[3] = {{1000000, 384}, {cuda ? 1000000 : 200000, 2048}, {10000000, 384}};
    for (int t = 0; t < (cuda ? 3 : 2); t++)
        for (int i = 0; i < bn; i++)
            for (int k = 0; k < 2; k++)
                out[n++] = (bench_knn_shape){tables[t].n, tables[t].d, b[i], k ? 1000 : 10};
    return n;
}

/* One pass over N x D f16 bytes per call, 2 B N D flops. */
static ims_status bench_knn(bench_ctx *c, ims_error *err)
{
    bench_knn_shape shapes[32];
    int count = knn_shapes(c, shapes);
    knn_state s = {0};
    ims_status st = IMS_OK;
    for (int i = 0; !st && i < count; i++) {
        const bench_knn_shape *sh = &shapes[i];
        if (!s.table || s.n != sh->n || s.d != sh->d)
            st = knn_table_fill(c, &s, sh->n, sh->d, err); /* consecutive shapes share a table */
        float *queries = st ? NULL : malloc(2 * (size_t)sh->b * (size_t)sh->d * sizeof *queries);
        s.ids = st ? NULL : malloc((size_t)sh->b * (size_t)sh->k * sizeof *s.ids);
        s.scores = st ? NULL : malloc((size_t)sh->b * (size_t)sh->k * sizeof *s.scores);
        if (!st && (!queries || !s.ids || !s.scores))
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %d queries", sh->b);
        if (!st) {
            random_floats(queries, 2 * (size_t)sh->b * (size_t)sh->d, 777);
            s.queries = queries;
            s.b = sh->b;
            s.k = sh->k;
            bench_row row = {.workload = "knn", .precision = "f16", .batch = sh->b, .rows = sh->n, .dim = sh->d,
                             .k = sh->k, .unit = "queries/s", .flop_per_item = 2.0 * (double)sh->n * sh->d,
                             .bytes_per_item = 2.0 * (double)sh->n * sh->d / sh->b};
            st = bench_measure(c, knn_call, &s, sh->b, 0, &row, err);
        }
        free(queries);
        free(s.ids);
        free(s.scores);
    }
    ims_knn_free(s.table);
    return st;
}

/* ---- knn-parts: where a k-NN search's time goes ----------------------------------- */

/* One point of knn-parts: the search of s (B, k set) as row `part`. */
static ims_status knn_part_row(bench_ctx *c, knn_state *s, const bench_knn_shape *sh, const char *part,
                               bench_row *row, ims_error *err)
{
    *row = (bench_row){.workload = "knn-parts", .precision = part, .batch = sh->b, .rows = sh->n, .dim = sh->d,
                       .k = s->k, .unit = "queries/s", .flop_per_item = 2.0 * (double)sh->n * sh->d,
                       .bytes_per_item = 2.0 * (double)sh->n * sh->d / sh->b};
    return bench_measure(c, knn_call, s, sh->b, 0, row, err);
}

/* Per --knn-shape (f16 table): the scores alone (k = 1: the selection keeps
 * one entry), the search with its k (the difference is the selection), and
 * the same table streamed in 8 chunks whose lists are merged on the host (the
 * difference is the copies and the merge). Rows as the knn workload's (GB/s:
 * the table's bytes); a summary line on stderr says the differences. The
 * parts are separated through the public API, so on the CPU backend the rows
 * are CPU numbers (the summary says so). */
static ims_status bench_knn_parts(bench_ctx *c, ims_error *err)
{
    bench_knn_shape shapes[32];
    int count = knn_shapes(c, shapes);
    knn_state res = {0}, chk = {0}; /* the resident table and the streamed one, kept across shapes */
    ims_status st = IMS_OK;
    for (int i = 0; !st && i < count; i++) {
        const bench_knn_shape *sh = &shapes[i];
        float *queries = malloc(2 * (size_t)sh->b * (size_t)sh->d * sizeof *queries);
        int64_t *ids = malloc((size_t)sh->b * (size_t)sh->k * sizeof *ids);
        float *scores = malloc((size_t)sh->b * (size_t)sh->k * sizeof *scores);
        if (!queries || !ids || !scores)
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %d queries", sh->b);
        else
            random_floats(queries, 2 * (size_t)sh->b * (size_t)sh->d, 777);
        knn_state *states[2] = {&res, &chk};
        for (int j = 0; j < 2; j++) {
            *states[j] = (knn_state){states[j]->table, states[j]->n, states[j]->d, queries, sh->b, sh->k, ids, scores};
            if (!st && (!states[j]->table || states[j]->n != sh->n || states[j]->d != sh->d))
                st = knn_table_fill_chunked(c, states[j], sh->n, sh->d, j ? (sh->n + 7) / 8 : 0, err);
        }
        bench_row scores_row = {0}, full_row = {0}, streamed_row = {0};
        if (!st) {
            res.k = 1;
            st = knn_part_row(c, &res, sh, "f16 scores", &scores_row, err);
        }
        if (!st) {
            res.k = sh->k;
            st = knn_part_row(c, &res, sh, "f16 scores+select", &full_row, err);
        }
        if (!st)
            st = knn_part_row(c, &chk, sh, "f16 streamed 8 chunks+merge", &streamed_row, err);
        if (!st)
            fprintf(stderr,
                    "knn-parts N=%lld D=%d B=%d k=%d%s: scores %.3f ms (%.1f%% of copy bandwidth); the selection of k "
                    "adds %.3f ms; streaming in 8 chunks with the host merge adds %.3f ms\n",
                    (long long)sh->n, sh->d, sh->b, sh->k, is_cuda(c) ? "" : " (CPU backend: CPU numbers)",
                    scores_row.ms_per_call, 100.0 * scores_row.of_copy, full_row.ms_per_call - scores_row.ms_per_call,
                    streamed_row.ms_per_call - full_row.ms_per_call);
        free(queries);
        free(ids);
        free(scores);
    }
    ims_knn_free(res.table);
    ims_knn_free(chk.table);
    return st;
}

/* ---- text: the BERT sentence encoder on token ids ------------------------------------ */

typedef struct text_state {
    ims_text_encoder *enc;
    int32_t *ids, *lengths; /* (2, b, t), (b) */
    int b, t;
    float *out;
} text_state;

static ims_status text_call(void *state, int call, ims_error *err)
{
    text_state *s = state;
    return ims_text_encoder_encode(s->enc, s->ids + (size_t)(call % 2) * (size_t)s->b * (size_t)s->t, s->lengths, s->b,
                                   s->t, s->out, err);
}

/* Token counts of the two sequence lengths: a short query, a long caption. */
static int seq_tokens(bench_seq s) { return s == BENCH_SEQ_LONG ? 128 : 16; }

static const bench_seq default_seqs[2] = {BENCH_SEQ_SHORT, BENCH_SEQ_LONG};

static int bench_seqs(const bench_ctx *c, const bench_seq **out)
{
    *out = c->opt->seq_count ? c->opt->seqs : default_seqs;
    return c->opt->seq_count ? c->opt->seq_count : c->opt->quick ? 1 : 2;
}

/* [CLS], random word pieces past BERT's [unused] and special tokens, [SEP]. */
static void text_ids(const ims_tokenizer *tok, int32_t *ids, int b, int t)
{
    int vocab = (int)ims_tokenizer_vocab_size(tok);
    int first_word = vocab > 2000 ? 1000 : vocab / 2; /* vocab >= 1: first_word < vocab */
    uint64_t x = 99;
    for (size_t i = 0; i < 2 * (size_t)b * (size_t)t; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t j = i % (size_t)t;
        ids[i] = j == 0                ? ims_tokenizer_special_id(tok, IMS_TOKEN_CLS)
                 : j == (size_t)t - 1 ? ims_tokenizer_special_id(tok, IMS_TOKEN_SEP)
                                      : (int32_t)(first_word + (x >> 33) % (uint64_t)(vocab - first_word));
    }
}

/* Per token and layer about 24 H^2 + 4 T H flops (projections, FFN, attention). */
static ims_status bench_text(bench_ctx *c, ims_error *err)
{
    static const int gpu_b[] = {1, 32, 256}, cpu_b[] = {1, 32};
    static const ims_precision gpu_p[] = {IMS_PRECISION_FP32, IMS_PRECISION_FP16};
    const int *batches;
    const ims_precision *precisions;
    const bench_seq *seqs;
    int bn = bench_batches(c, gpu_b, 3, cpu_b, 2, &batches);
    int pn = bench_precisions(c, gpu_p, 2, &precisions);
    int sn = bench_seqs(c, &seqs);
    ims_weights *w = NULL;
    ims_tokenizer *tok = NULL;
    int64_t hidden = 0, layers = 0;
    ims_status st = ims_weights_open(c->opt->text_model, 0, &w, err);
    if (!st)
        st = ims_tokenizer_create_from_weights(w, &tok, err);
    if (!st)
        st = ims_weights_get_i64(w, "bert.hidden_size", &hidden, err);
    if (!st)
        st = ims_weights_get_i64(w, "bert.num_layers", &layers, err);
    if (!st && ims_tokenizer_vocab_size(tok) < 1)
        st = ims_error_set(err, IMS_ERR_FORMAT, "bench text: the model's vocabulary is empty");
    int max_b = max_of(batches, bn), max_t = seq_tokens(BENCH_SEQ_LONG);
    text_state s = {0};
    s.ids = malloc(2 * (size_t)max_b * (size_t)max_t * sizeof *s.ids);
    s.lengths = malloc((size_t)max_b * sizeof *s.lengths);
    s.out = malloc((size_t)max_b * (size_t)(hidden > 0 ? hidden : 1) * sizeof *s.out);
    if (!st && (!s.ids || !s.lengths || !s.out))
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %d texts", max_b);
    for (int p = 0; !st && p < pn; p++) {
        char what[64];
        snprintf(what, sizeof what, "text %s", ims_precision_name(precisions[p]));
        if (precisions[p] == IMS_PRECISION_TF32) {
            fprintf(stderr, "imgsearch: bench: skipped %s: the text encoder runs fp32 and fp16 only\n", what);
            continue;
        }
        st = bench_skip_unsupported(ims_text_encoder_create(c->be, w, precisions[p], &s.enc, err), what, err);
        for (int q = 0; !st && s.enc && q < sn; q++) {
            int model_t = ims_text_encoder_max_seq_length(s.enc);
            int t = seq_tokens(seqs[q]) < model_t ? seq_tokens(seqs[q]) : model_t;
            if (seqs[q] == BENCH_SEQ_LONG && t <= seq_tokens(BENCH_SEQ_SHORT)) {
                fprintf(stderr, "imgsearch: bench: skipped text long: the model takes at most %d tokens\n", model_t);
                continue;
            }
            for (int b = 0; !st && b < bn; b++) {
                s.b = batches[b];
                s.t = t;
                text_ids(tok, s.ids, s.b, s.t);
                for (int i = 0; i < s.b; i++)
                    s.lengths[i] = s.t;
                double flops = (double)t * (double)layers * (24.0 * hidden * hidden + 4.0 * t * hidden);
                bench_row row = {.workload = "text", .precision = ims_precision_name(precisions[p]), .batch = s.b,
                                 .seq = bench_seq_name(seqs[q]), .tokens = t, .unit = "texts/s",
                                 .flop_per_item = flops};
                st = bench_measure(c, text_call, &s, s.b, 0, &row, err);
            }
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

/* ---- tokenize: WordPiece on generated sentences ------------------------------------- */

typedef struct tokenize_state {
    const ims_tokenizer *tok;
    const char **texts; /* (2 * count): rotated halves */
    size_t *lens;
    int count, max_len;
    int32_t *ids, *lengths;
} tokenize_state;

static ims_status tokenize_call(void *state, int call, ims_error *err)
{
    tokenize_state *s = state;
    size_t half = (size_t)(call % 2) * (size_t)s->count;
    int seq_len = 0;
    return ims_tokenizer_encode_batch(s->tok, s->texts + half, s->lens + half, s->count, s->max_len, s->ids,
                                      s->lengths, &seq_len, err);
}

/* Sentences of whole vocabulary words (no "##" pieces, no [special] tokens):
 * 12 words (short) or 100 (long), 256 texts per call. Counted in texts and in
 * bytes of text. */
static ims_status bench_tokenize(bench_ctx *c, ims_error *err)
{
    enum { TEXTS = 256 };
    const bench_seq *seqs;
    int sn = bench_seqs(c, &seqs);
    ims_weights *w = NULL;
    ims_tokenizer *tok = NULL;
    ims_status st = ims_weights_open(c->opt->text_model, 0, &w, err);
    if (!st)
        st = ims_tokenizer_create_from_weights(w, &tok, err);
    tokenize_state s = {.tok = tok, .count = TEXTS, .max_len = 512};
    s.texts = calloc(2 * TEXTS, sizeof *s.texts);
    s.lens = calloc(2 * TEXTS, sizeof *s.lens);
    s.ids = malloc((size_t)TEXTS * 512 * sizeof *s.ids);
    s.lengths = malloc(TEXTS * sizeof *s.lengths);
    if (!st && (!s.texts || !s.lens || !s.ids || !s.lengths))
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %d texts", TEXTS);
    int vocab = st ? 0 : (int)ims_tokenizer_vocab_size(tok);
    if (!st && vocab < 1)
        st = ims_error_set(err, IMS_ERR_FORMAT, "bench tokenize: the model's vocabulary is empty");
    for (int q = 0; !st && q < sn; q++) {
        int words = seqs[q] == BENCH_SEQ_LONG ? 100 : 12;
        uint64_t x = 4242;
        double bytes = 0;
        for (int i = 0; !st && i < 2 * TEXTS; i++) {
            char *text = malloc((size_t)words * 24 + 1);
            if (!text) {
                st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for texts");
                break;
            }
            size_t len = 0;
            long tries = 0;
            for (int word = 0; word < words;) {
                if (++tries > 1000L * words) { /* a vocabulary of pieces and special tokens only */
                    free(text);
                    text = NULL;
                    st = ims_error_set(err, IMS_ERR_FORMAT, "bench tokenize: the model's vocabulary has no whole words");
                    break;
                }
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                const char *tk = ims_tokenizer_decode_token(tok, (int32_t)((x >> 33) % (uint64_t)vocab));
                size_t n = tk ? strlen(tk) : 0;
                if (!n || n > 20 || tk[0] == '[' || strncmp(tk, "##", 2) == 0)
                    continue;
                if (len)
                    text[len++] = ' ';
                memcpy(text + len, tk, n);
                len += n;
                word++;
            }
            if (!text)
                break;
            text[len] = '\0';
            s.texts[i] = text;
            s.lens[i] = len;
            bytes += (double)len;
        }
        if (!st) {
            bench_row row = {.workload = "tokenize", .batch = TEXTS, .seq = bench_seq_name(seqs[q]), .tokens = words,
                             .unit = "texts/s", .bytes_per_item = bytes / (2 * TEXTS)};
            st = bench_measure(c, tokenize_call, &s, TEXTS, 1, &row, err);
        }
        for (int i = 0; i < 2 * TEXTS; i++) {
            free((char *)s.texts[i]);
            s.texts[i] = NULL;
        }
    }
    free(s.texts);
    free(s.lens);
    free(s.ids);
    free(s.lengths);
    ims_tokenizer_free(tok);
    ims_weights_close(w);
    return st;
}

/* ---- decode: decode + torchvision preprocessing of --images, one thread ------------- */

#define BENCH_DECODE_FILES 64 /* the first files of the folder: a pass stays short */

typedef struct decode_state {
    unsigned char **data; /* each file's bytes, read once: the disk is not timed */
    size_t *sizes;
    int count;
    uint8_t *out; /* (299, 299, 3) */
} decode_state;

static ims_status decode_call(void *state, int call, ims_error *err)
{
    (void)call;
    decode_state *s = state;
    ims_decode_options o;
    ims_decode_options_init(&o);
    for (int i = 0; i < s->count; i++) {
        ims_image img = {0};
        ims_status st = ims_image_decode(s->data[i], s->sizes[i], &o, &img, err);
        if (!st)
            st = ims_preprocess_torchvision_u8(&img, 342, IMS_IMAGE_INPUT_SIZE, s->out, err);
        ims_image_free(&img);
        if (st)
            return st;
    }
    return IMS_OK;
}


/* Counted in images and in compressed bytes. A file that does not decode
 * ends the run naming it (a benchmark folder should hold images only). */
static ims_status bench_decode(bench_ctx *c, ims_error *err)
{
    const char *roots[1] = {c->opt->images};
    ims_file_list list = {0};
    ims_status st = ims_file_list_walk(roots, 1, &list, err);
    int count = st ? 0 : list.file_count < BENCH_DECODE_FILES ? (int)list.file_count : BENCH_DECODE_FILES;
    if (!st && count == 0)
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "bench decode: no images in %s", c->opt->images);
    decode_state s = {.count = count};
    s.data = calloc((size_t)(count ? count : 1), sizeof *s.data);
    s.sizes = calloc((size_t)(count ? count : 1), sizeof *s.sizes);
    s.out = malloc((size_t)IMS_IMAGE_INPUT_SIZE * IMS_IMAGE_INPUT_SIZE * 3);
    if (!st && (!s.data || !s.sizes || !s.out))
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    double bytes = 0;
    for (int i = 0; !st && i < count; i++) {
        char *file = NULL;
        st = bench_read_file(list.files[i].path, (size_t)1 << 30, "the image", &file, &s.sizes[i], err);
        s.data[i] = (unsigned char *)file;
        bytes += (double)s.sizes[i];
    }
    if (!st) {
        bench_row row = {.workload = "decode", .files = count, .unit = "images/s", .bytes_per_item = bytes / count};
        st = bench_measure(c, decode_call, &s, count, 1, &row, err);
    }
    for (int i = 0; s.data && i < count; i++)
        free(s.data[i]);
    free(s.data);
    free(s.sizes);
    free(s.out);
    ims_file_list_free(&list);
    return st;
}

/* ---- index: end to end into a temporary index ---------------------------------------- */

typedef struct index_state {
    ims_index_run_options o;
    const char *dir;
    int64_t images;
} index_state;

/* Removes the temporary index folder (the files ims_index_run wrote). */
static void remove_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "imgsearch: could not remove %s\n", dir);
}

static ims_status index_call(void *state, int call, ims_error *err)
{
    (void)call;
    index_state *s = state;
    remove_tree(s->dir); /* a fresh index each time: every image is indexed */
    ims_index_progress p = {0};
    ims_status st = ims_index_run(&s->o, &p, err);
    s->images = p.indexed;
    if (!st && p.failed)
        st = ims_error_set(err, IMS_ERR_FORMAT, "bench index: %lld images of %s could not be read",
                           (long long)p.failed, s->dir);
    return st;
}

/* Decode + preprocess + forward + write, the pipeline overlapping host and
 * device work: timed by the wall clock. One warm-up pass counts the images. */
static ims_status bench_index(bench_ctx *c, ims_error *err)
{
    static const int gpu_b[] = {64}, cpu_b[] = {16};
    static const ims_precision gpu_p[] = {IMS_PRECISION_FP16};
    const int *batches;
    const ims_precision *precisions;
    int bn = bench_batches(c, gpu_b, 1, cpu_b, 1, &batches); /* --quick's batch 1 is too small here */
    if (!c->opt->batch_count)
        batches = is_cuda(c) ? gpu_b : cpu_b;
    int pn = bench_precisions(c, gpu_p, 1, &precisions);
    char tmp_model[256], dir[256];
    ims_weights *w = NULL;
    double open_s = 0;
    ims_status st = open_image_model(c, &w, tmp_model, sizeof tmp_model, &open_s, err);
    snprintf(dir, sizeof dir, "/tmp/imgsearch-bench-index.%ld", (long)getpid());
    const char *roots[1] = {c->opt->images};
    for (int p = 0; !st && p < pn; p++)
        for (int b = 0; !st && b < bn; b++) {
            index_state s = {.dir = dir};
            ims_index_run_options_init(&s.o);
            s.o.index_dir = dir;
            s.o.roots = roots;
            s.o.root_count = 1;
            s.o.backend = c->be;
            s.o.image_model = w;
            s.o.precision = precisions[p];
            s.o.batch_size = batches[b];
            s.o.threads = 8;
            s.o.chunk_rows = 1 << 16;
            char what[64];
            snprintf(what, sizeof what, "index %s", ims_precision_name(precisions[p]));
            st = bench_skip_unsupported(index_call(&s, 0, err), what, err); /* counts the images */
            if (st || s.images == 0)
                continue;
            bench_row row = {.workload = "index", .precision = ims_precision_name(precisions[p]),
                             .batch = batches[b], .files = s.images, .unit = "images/s",
                             .flop_per_item = 2 * 5.7e9};
            st = bench_measure(c, index_call, &s, (double)s.images, 1, &row, err);
        }
    remove_tree(dir);
    close_image_model(w, tmp_model);
    return st;
}

ims_status bench_workload_run(bench_ctx *c, bench_workload_id id, ims_error *err)
{
    switch (id) {
    case BENCH_INCEPTION: return bench_inception(c, err);
    case BENCH_TEXT: return bench_text(c, err);
    case BENCH_KNN: return bench_knn(c, err);
    case BENCH_INDEX: return bench_index(c, err);
    case BENCH_DECODE: return bench_decode(c, err);
    case BENCH_TOKENIZE: return bench_tokenize(c, err);
    case BENCH_KNN_PARTS: return bench_knn_parts(c, err);
    default: return ims_error_set(err, IMS_ERR_ARGUMENT, "bench: unknown workload %d", (int)id);
    }
}
