/* test_search.c: search as a library call (engine/index/search.c) and the one
 * image batch loop (engine/models/image_encoder_run.c), on the CPU backend over
 * a real index: models converted from the fixtures (the width/16 torchvision
 * Inception-v3, the tiny BERT), sample images indexed with conse_top 3 in
 * chunks of 2 rows (f16 tables); then with a row tombstoned. A query that
 * cannot be embedded fails alone.
 *
 * Every answer is compared with a brute force computed here in double over
 * the stored tables (ims_index_load_table), with query vectors made here from
 * the public pieces (the batch loop's features and logits, ConSE with the
 * manifest's conse_top, the text embedder). Scores agree to 1e-5: the search
 * sums in fp32 over rows of a few hundred columns; ids may differ only where
 * scores tie within that.
 *
 * Usage: test_search FIXTURES_DIR
 */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_root[256];
static const char *fixtures;

enum { K = 3 };

static void tmp_path(char *out, size_t size, const char *rel) { snprintf(out, size, "%s/%s", tmp_root, rel); }

static void fixture_path(char *out, size_t size, const char *rel) { snprintf(out, size, "%s/%s", fixtures, rel); }

/* ---- Set-up: models and an index ----------------------------------------------------------- */

typedef struct world {
    ims_backend *be;
    char image_model[512], text_model[512], index_dir[512];
    ims_weights *iw, *tw;
    ims_image_encoder *enc;
    ims_text_embedder *text;
    char images[6][512]; /* indexed: 5 good ones, then a bad one */
    const char *paths[6];
} world;

static const char *const image_names[6] = {"horse.png", "chelsea.png", "jpg_444.jpg", "jpg_420.jpg", "png_rgb8.png",
                                           "bad_gif_truncated.gif"};

static int setup(world *w)
{
    ims_error err = {0};
    char in[256];
    ims_convert_options o;
    ims_convert_report report;
    tmp_path(w->image_model, sizeof w->image_model, "tv.isw");
    tmp_path(w->text_model, sizeof w->text_model, "text.isw");
    tmp_path(w->index_dir, sizeof w->index_dir, "index");
    ims_convert_options_init(&o);
    fixture_path(in, sizeof in, "inception/tv_zip.pt");
    if (!test_check_ok(ims_convert(in, w->image_model, &o, &report, &err), &err, "convert the image model"))
        return 0;
    ims_convert_options_init(&o);
    fixture_path(in, sizeof in, "hf_tiny_bert");
    if (!test_check_ok(ims_convert(in, w->text_model, &o, &report, &err), &err, "convert the text model"))
        return 0;
    if (!test_check_ok(ims_backend_create(IMS_BACKEND_CPU, 0, &w->be, &err), &err, "CPU backend") ||
        !test_check_ok(ims_weights_open(w->image_model, 0, &w->iw, &err), &err, "image weights") ||
        !test_check_ok(ims_weights_open(w->text_model, 0, &w->tw, &err), &err, "text weights") ||
        !test_check_ok(ims_image_encoder_create(w->be, w->iw, IMS_PRECISION_FP32, &w->enc, &err), &err, "encoder") ||
        !test_check_ok(ims_text_embedder_create(w->be, w->tw, IMS_PRECISION_FP32, &w->text, &err), &err, "embedder"))
        return 0;
    for (int i = 0; i < 6; i++) {
        snprintf(in, sizeof in, "images/%s", image_names[i]);
        fixture_path(w->images[i], sizeof w->images[i], in);
        w->paths[i] = w->images[i];
    }
    ims_index_run_options ro;
    ims_index_run_options_init(&ro);
    ro.index_dir = w->index_dir;
    ro.roots = w->paths;
    ro.root_count = 6;
    ro.backend = w->be;
    ro.image_model = w->iw;
    ro.text_model = w->tw;
    ro.batch_size = 2;
    ro.threads = 2;
    ro.chunk_rows = 2;
    ro.conse_top = 3;
    ims_index_progress p;
    if (!test_check_ok(ims_index_run(&ro, &p, &err), &err, "index the sample images"))
        return 0;
    TEST_CHECK(p.indexed == 5 && p.failed == 1, "indexed %lld, failed %lld (want 5, 1)", (long long)p.indexed, (long long)p.failed);
    return 1;
}

static void teardown(world *w)
{
    ims_text_embedder_free(w->text);
    ims_image_encoder_free(w->enc);
    ims_weights_close(w->tw);
    ims_weights_close(w->iw);
    ims_backend_free(w->be);
}

/* ---- The batch loop -------------------------------------------------------------------------- */

/* Features and logits of paths[0..n) by the batch loop: (n, fd), (n, nc);
 * failed images keep NaN rows. */
static void encode_all(world *w, const char *const *paths, size_t n, int batch, int threads, float *feat, float *logits)
{
    int fd = ims_image_encoder_feature_dim(w->enc), nc = ims_image_encoder_num_classes(w->enc);
    for (size_t i = 0; i < n * (size_t)fd; i++)
        feat[i] = NAN;
    ims_image_encoder_run_options o;
    ims_image_encoder_run_options_init(&o);
    o.batch_size = batch;
    o.threads = threads;
    ims_image_encoder_run *run = NULL;
    ims_error err = {0};
    TEST_OK(ims_image_encoder_run_start(w->enc, w->be, paths, n, &o, &run, &err), err);
    const ims_image_encoder_batch *b;
    ims_status st;
    int64_t seen = 0;
    while (run && (st = ims_image_encoder_run_next(run, &b, &err)) == IMS_OK) {
        TEST_CHECK(b->first == seen, "batch starts at %lld, want %lld", (long long)b->first, (long long)seen);
        for (int i = 0; i < b->count; i++) {
            const ims_image_item *it = &b->items[i];
            size_t at = (size_t)(b->first + i);
            TEST_CHECK(it->path == paths[at], "item %zu: the path is not the one given", at);
            if (it->status) {
                TEST_CHECK(it->reason[0] && !strstr(it->reason, paths[at]) && !strchr(it->reason, '\n'),
                           "item %zu: reason '%s' (one line, without the path)", at, it->reason);
                continue;
            }
            TEST_CHECK(!it->reason[0], "ok item %zu has a reason '%s'", at, it->reason);
            memcpy(feat + at * (size_t)fd, b->features + (size_t)i * (size_t)fd, (size_t)fd * sizeof *feat);
            memcpy(logits + at * (size_t)nc, b->logits + (size_t)i * (size_t)nc, (size_t)nc * sizeof *logits);
        }
        seen += b->count;
    }
    TEST_CHECK(!run || st == IMS_ERR_NOT_FOUND, "the run ended with %s: %s", ims_status_name(st), err.msg);
    TEST_CHECK(seen == (int64_t)n, "%lld of %zu images came back", (long long)seen, n);
    ims_image_encoder_run_free(run);
}

static void test_encoder_run(world *w)
{
    int fd = ims_image_encoder_feature_dim(w->enc), nc = ims_image_encoder_num_classes(w->enc);
    float *f1 = test_xmalloc(6 * (size_t)fd * sizeof *f1), *l1 = test_xmalloc(6 * (size_t)nc * sizeof *l1);
    float *f3 = test_xmalloc(6 * (size_t)fd * sizeof *f3), *l3 = test_xmalloc(6 * (size_t)nc * sizeof *l3);
    encode_all(w, w->paths, 6, 1, 1, f1, l1);
    encode_all(w, w->paths, 6, 4, 3, f3, l3); /* a partial last batch, the bad image inside a batch */
    /* The CPU runs images one at a time: an output never depends on its batch. */
    TEST_CHECK(memcmp(f1, f3, 5 * (size_t)fd * sizeof *f1) == 0 && memcmp(l1, l3, 5 * (size_t)nc * sizeof *l1) == 0,
               "outputs depend on the batch size or thread count");
    TEST_CHECK(isnan(f1[5 * (size_t)fd]) && isnan(f3[5 * (size_t)fd]), "the bad image gave a row");

    /* The loop equals decode -> preprocess -> forward by hand. */
    ims_image img = {0};
    ims_error err = {0};
    ims_decode_options dopt;
    ims_decode_options_init(&dopt);
    uint8_t *crop = test_xmalloc(IMS_IMAGE_INPUT_SIZE * IMS_IMAGE_INPUT_SIZE * 3);
    float *feat = test_xmalloc((size_t)fd * sizeof *feat), *logits = test_xmalloc((size_t)nc * sizeof *logits);
    TEST_OK(ims_image_decode_file(w->paths[1], &dopt, &img, &err), err);
    TEST_OK(ims_preprocess_torchvision_u8(&img, IMS_IMAGE_RESIZE_SIZE, IMS_IMAGE_INPUT_SIZE, crop, &err), err);
    TEST_OK(ims_image_encoder_forward(w->enc, crop, 1, feat, logits, &err), err);
    TEST_CHECK(memcmp(feat, f1 + (size_t)fd, (size_t)fd * sizeof *feat) == 0 &&
                   memcmp(logits, l1 + (size_t)nc, (size_t)nc * sizeof *logits) == 0,
               "the batch loop differs from decode + preprocess + forward");
    ims_image_free(&img);

    /* No images: no batch, and no error. */
    ims_image_encoder_run *run = NULL;
    const ims_image_encoder_batch *b = NULL;
    TEST_OK(ims_image_encoder_run_start(w->enc, w->be, NULL, 0, NULL, &run, &err), err);
    TEST_CHECK(run && ims_image_encoder_run_next(run, &b, &err) == IMS_ERR_NOT_FOUND && !b, "an empty run");
    ims_image_encoder_run_free(run);
    /* Freed mid-run, batches still being decoded. */
    TEST_OK(ims_image_encoder_run_start(w->enc, w->be, w->paths, 6, NULL, &run, &err), err);
    if (run) {
        TEST_CHECK(ims_image_encoder_run_next(run, &b, &err) == IMS_OK, "first batch: %s", err.msg);
        ims_image_encoder_run_free(run);
    }
    free(f1), free(l1), free(f3), free(l3), free(crop), free(feat), free(logits);
}

/* ---- Brute force --------------------------------------------------------------------------------- */

/* Cosine of q (d) with every row of table (n, d), in double. */
static void cosines(const float *table, size_t n, int d, const float *q, double *out)
{
    double qn = 0;
    for (int j = 0; j < d; j++)
        qn += (double)q[j] * q[j];
    for (size_t r = 0; r < n; r++) {
        double dot = 0, rn = 0;
        for (int j = 0; j < d; j++) {
            dot += (double)table[r * (size_t)d + (size_t)j] * q[j];
            rn += (double)table[r * (size_t)d + (size_t)j] * table[r * (size_t)d + (size_t)j];
        }
        out[r] = dot / sqrt(qn * rn);
    }
}

/* The position of row id `row` among the index's live rows (what
 * ims_index_load_table returns), or -1 if it is not live. */
static int64_t live_position(const ims_index *idx, int64_t row)
{
    for (int64_t i = 0; i < ims_index_live_row_count(idx); i++)
        if (ims_index_live_row(idx, i) == row)
            return i;
    return -1;
}

/* A hit's vectors are where it says: row `offset` of chunk-<chunk>.visual.npy
 * holds the live table's row for it. */
static void check_location(const char *dir, const ims_search_hit *h, const float *visual, int vd, int64_t pos,
                           const char *what)
{
    char path[600];
    snprintf(path, sizeof path, "%s/chunk-%06lld.visual.npy", dir, (long long)h->chunk);
    ims_npy *npy = NULL;
    ims_error err = {0};
    TEST_OK(ims_npy_open(path, &npy, &err), err);
    if (!npy)
        return;
    const int64_t *shape = ims_npy_shape(npy);
    TEST_CHECK(h->offset >= 0 && h->offset < shape[0] && shape[1] == vd, "%s: offset %lld in a (%lld, %lld) chunk",
               what, (long long)h->offset, (long long)shape[0], (long long)shape[1]);
    if (h->offset >= 0 && h->offset < shape[0] && shape[1] == vd && ims_npy_dtype(npy) == IMS_DTYPE_F16) {
        const uint16_t *row = (const uint16_t *)ims_npy_data(npy) + (size_t)h->offset * (size_t)vd;
        int same = 1;
        for (int j = 0; j < vd; j++)
            same &= ims_f16_to_f32(row[j]) == visual[(size_t)pos * (size_t)vd + (size_t)j];
        TEST_CHECK(same, "%s: chunk %lld row %lld is not the hit's row", what, (long long)h->chunk,
                   (long long)h->offset);
    }
    ims_npy_close(npy);
}

/* One result against the brute force over the live rows (truth: n scores in
 * their order): its count, every hit's score equal to its row's true score,
 * the scores in order, each as good as the true k-th best, rows live and
 * distinct and their paths the index's. */
static void check_result(const ims_index *idx, const ims_search_result *r, ims_index_table table, const double *truth,
                         size_t n, int k, const char *what)
{
    const double tol = 1e-5;
    size_t want = (size_t)k < n ? (size_t)k : n;
    TEST_CHECK(r->table == table, "%s: table %d, want %d", what, (int)r->table, (int)table);
    TEST_CHECK((size_t)r->count == want, "%s: %d hits, want %zu", what, r->count, want);
    double *sorted = test_xmalloc(n * sizeof *sorted);
    memcpy(sorted, truth, n * sizeof *sorted);
    for (size_t i = 0; i < n; i++) /* descending, by insertion: n is small */
        for (size_t j = i; j > 0 && sorted[j] > sorted[j - 1]; j--) {
            double t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    for (int j = 0; j < r->count && (size_t)j < want; j++) {
        const ims_search_hit *h = &r->hits[j];
        int64_t pos = live_position(idx, h->row);
        TEST_CHECK(pos >= 0 && (size_t)pos < n, "%s: hit %d row %lld is not a live row", what, j, (long long)h->row);
        if (pos < 0 || (size_t)pos >= n)
            continue;
        int64_t chunk = -1, offset = -1;
        ims_error err = {0};
        TEST_OK(ims_index_row_location(idx, h->row, &chunk, &offset, &err), err);
        TEST_CHECK(chunk == h->chunk && offset == h->offset, "%s: hit %d at chunk %lld offset %lld, the index says "
                   "%lld %lld", what, j, (long long)h->chunk, (long long)h->offset, (long long)chunk, (long long)offset);
        TEST_CHECK(fabs(h->score - truth[pos]) < tol, "%s: hit %d (row %lld) score %.7f, true %.7f", what, j,
                   (long long)h->row, h->score, truth[pos]);
        TEST_CHECK(fabs(h->score - sorted[j]) < tol, "%s: hit %d score %.7f, the %d-th best is %.7f", what, j,
                   h->score, j + 1, sorted[j]);
        TEST_CHECK(strcmp(h->path, ims_index_row(idx, (size_t)h->row)->path) == 0, "%s: hit %d path '%s'", what, j,
                   h->path);
        if (j > 0) {
            TEST_CHECK(h->score <= r->hits[j - 1].score, "%s: hits out of order at %d", what, j);
            TEST_CHECK(h->row != r->hits[j - 1].row, "%s: row %lld twice", what, (long long)h->row);
            if (h->score == r->hits[j - 1].score)
                TEST_CHECK(h->row > r->hits[j - 1].row, "%s: a tie not ordered by row", what);
        }
    }
    free(sorted);
}

/* ---- Search ------------------------------------------------------------------------------------ */

static void test_search(world *w)
{
    ims_error err = {0};
    ims_index *idx = NULL;
    TEST_OK(ims_index_open(w->index_dir, &idx, &err), err);
    if (!idx)
        return;
    const ims_index_config *cfg = ims_index_get_config(idx);
    TEST_CHECK(cfg->conse_top == 3 && cfg->precision == IMS_PRECISION_FP32, "manifest: conse_top %d, precision %d",
               cfg->conse_top, cfg->precision);
    size_t n = ims_index_row_count(idx);
    TEST_CHECK(n == 5 && ims_index_chunk_count(idx) == 3, "%lld rows in %lld chunks (want 5 in 3)", (long long)n,
               (long long)ims_index_chunk_count(idx));
    float *visual = NULL, *semantic = NULL, *classes = NULL;
    int vd = 0, sd = 0, nclasses = 0;
    TEST_OK(ims_index_load_table(idx, IMS_INDEX_TABLE_VISUAL, &visual, &vd, &err), err);
    TEST_OK(ims_index_load_table(idx, IMS_INDEX_TABLE_SEMANTIC, &semantic, &sd, &err), err);
    TEST_OK(ims_index_load_class_embeddings(idx, &classes, &nclasses, &err), err);
    if (!visual || !semantic || !classes)
        goto done;

    /* Queries: two images on each table, two texts; the query vectors by hand. */
    const char *qimages[2] = {w->paths[0], w->paths[3]};
    const char *texts[2] = {"a horse in a field", "a cat"};
    int fd = ims_image_encoder_feature_dim(w->enc), nc = ims_image_encoder_num_classes(w->enc);
    float feat[2 * 4096], logits[2 * 1000], mix[64], mix10[64], temb[2 * 64];
    TEST_CHECK(fd <= 4096 && nc <= 1000 && sd <= 64, "fixture sizes");
    encode_all(w, qimages, 2, 2, 2, feat, logits);
    TEST_OK(ims_text_embed(w->text, texts, 2, temb, &err), err);
    ims_search_query q[6] = {
        {.image = qimages[0]},
        {.text = texts[0]},
        {.image = qimages[1], .table = IMS_INDEX_TABLE_SEMANTIC},
        {.image = qimages[0], .table = IMS_INDEX_TABLE_SEMANTIC},
        {.image = qimages[1]},
        {.text = texts[1]},
    };
    double truth[6][8];
    cosines(visual, n, vd, feat, truth[0]);
    cosines(semantic, n, sd, temb, truth[1]);
    for (int i = 0; i < 2; i++) {
        /* image query i on the semantic table: mixed with the manifest's conse_top */
        TEST_OK(ims_conse_embed(logits + (size_t)(1 - i) * (size_t)nc, 1, nc, classes, sd, cfg->conse_top, mix, &err),
                err);
        cosines(semantic, n, sd, mix, truth[2 + i]);
        /* the test tells conse_top 3 from the 10 a search once hard-coded */
        TEST_OK(ims_conse_embed(logits + (size_t)(1 - i) * (size_t)nc, 1, nc, classes, sd, 10, mix10, &err), err);
        double d = 0;
        for (int j = 0; j < sd; j++)
            d += fabs((double)mix[j] - mix10[j]);
        TEST_CHECK(d > 1e-3, "image %d: ConSE over 3 and 10 classes agree to %g: the check below proves nothing", i, d);
    }
    cosines(visual, n, vd, feat + fd, truth[4]);
    cosines(semantic, n, sd, temb + sd, truth[5]);
    static const ims_index_table tables[6] = {IMS_INDEX_TABLE_VISUAL,   IMS_INDEX_TABLE_SEMANTIC,
                                              IMS_INDEX_TABLE_SEMANTIC, IMS_INDEX_TABLE_SEMANTIC,
                                              IMS_INDEX_TABLE_VISUAL,   IMS_INDEX_TABLE_SEMANTIC};

    ims_search_options o;
    ims_search_options_init(&o);
    o.backend = w->be;
    ims_searcher *s = NULL;
    ims_search_results *r1 = NULL, *r2 = NULL, *r3 = NULL;
    TEST_OK(ims_searcher_open(idx, &o, &s, &err), err);
    if (!s)
        goto done;
    TEST_OK(ims_searcher_search(s, q, 6, K, &r1, &err), err);
    for (int i = 0; r1 && i < 6; i++) {
        char what[64];
        snprintf(what, sizeof what, "query %d", i);
        check_result(idx, &r1->results[i], tables[i], truth[i], n, K, what);
        for (int j = 0; j < r1->results[i].count; j++)
            check_location(w->index_dir, &r1->results[i].hits[j], visual, vd,
                           live_position(idx, r1->results[i].hits[j].row), what);
    }
    /* An image finds itself first on the visual table. */
    TEST_CHECK(r1 && r1->results[0].count > 0 && strcmp(r1->results[0].hits[0].path, qimages[0]) == 0 &&
                   r1->results[0].hits[0].score > 0.9999f,
               "the horse does not find itself first");
    /* Every row: k larger than the index. */
    TEST_OK(ims_searcher_search(s, q + 4, 1, 10, &r2, &err), err);
    if (r2)
        check_result(idx, &r2->results[0], IMS_INDEX_TABLE_VISUAL, truth[4], n, 10, "k = 10 > rows");

    /* Bad queries are refused and lose nothing: the searcher answers again after. */
    ims_search_query bad_image = {.image = w->paths[5]};
    ims_search_query both = {.text = "x", .image = w->paths[0]};
    ims_search_query neither = {0};
    ims_search_results *none = NULL;
    TEST_CHECK(ims_searcher_search(s, q, 1, 0, &none, &err) == IMS_ERR_ARGUMENT && !none, "k = 0: %s", err.msg);
    TEST_CHECK(ims_searcher_search(s, q, 1, IMS_KNN_MAX_K + 1, &none, &err) == IMS_ERR_ARGUMENT, "k too large");
    TEST_CHECK(ims_searcher_search(s, &both, 1, K, &none, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "both"),
               "a query with a text and an image: %s", err.msg);
    TEST_CHECK(ims_searcher_search(s, &neither, 1, K, &none, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "neither"),
               "an empty query: %s", err.msg);
    /* A query that cannot be embedded fails alone: the others are answered,
     * as the same query alone is (one visual query each: the same shapes). */
    ims_search_query mixed[3] = {bad_image, q[0], {.text = " \t "}};
    ims_search_results *alone = NULL;
    TEST_OK(ims_searcher_search(s, q, 1, K, &alone, &err), err);
    TEST_OK(ims_searcher_search(s, mixed, 3, K, &none, &err), err);
    if (none && alone) {
        const ims_search_result *b0 = &none->results[0], *b1 = &none->results[1], *b2 = &none->results[2];
        TEST_CHECK(none->failed == 2, "%lld failed queries, want 2", (long long)none->failed);
        TEST_CHECK(b0->status != IMS_OK && b0->count == 0 && b0->error && strstr(b0->error, w->paths[5]) &&
                       strstr(b0->error, "query image"),
                   "a query image that cannot be read: %s", b0->error ? b0->error : "(no error)");
        TEST_CHECK(b2->status == IMS_ERR_ARGUMENT && b2->error && strstr(b2->error, "empty text"),
                   "a blank text: %s", b2->error ? b2->error : "(no error)");
        TEST_CHECK(b1->status == IMS_OK && !b1->error && b1->count == alone->results[0].count, "the good query");
        for (int j = 0; j < b1->count && j < alone->results[0].count; j++)
            TEST_CHECK(b1->hits[j].row == alone->results[0].hits[j].row &&
                           b1->hits[j].score == alone->results[0].hits[j].score,
                       "the good query beside bad ones: hit %d differs", j);
    }
    ims_search_results_free(alone);
    ims_search_results_free(none);
    none = NULL;
    TEST_OK(ims_searcher_search(s, q, 6, K, &r3, &err), err);
    for (int i = 0; r1 && r3 && i < 6; i++) {
        TEST_CHECK(r3->results[i].count == r1->results[i].count, "repeat: query %d count", i);
        for (int j = 0; j < r1->results[i].count && j < r3->results[i].count; j++)
            TEST_CHECK(r3->results[i].hits[j].row == r1->results[i].hits[j].row &&
                           r3->results[i].hits[j].score == r1->results[i].hits[j].score,
                       "repeat: query %d hit %d differs", i, j);
    }
    TEST_CHECK(!ims_searcher_synthetic(s), "the fixture model is not synthetic");
    ims_searcher_close(s);
    /* Results outlive their searcher (ASan checks the reads). */
    size_t len = 0;
    for (int i = 0; r1 && i < 6; i++)
        for (int j = 0; j < r1->results[i].count; j++)
            len += strlen(r1->results[i].hits[j].path);
    TEST_CHECK(len > 0, "no paths");
    ims_search_results_free(r2);
    ims_search_results_free(r3);

    /* The one-shot call, f16 storage: the same rows; scores within f16
     * rounding of a re-normalized row (2^-11 relative per element). */
    o.dtype = IMS_DTYPE_F16;
    TEST_OK(ims_index_search(idx, &o, q, 6, K, &r2, &err), err);
    for (int i = 0; r1 && r2 && i < 6; i++)
        for (int j = 0; j < r1->results[i].count && j < r2->results[i].count; j++)
            TEST_CHECK(fabsf(r2->results[i].hits[j].score - r1->results[i].hits[j].score) < 2e-3,
                       "f16 storage: query %d hit %d score %g vs %g", i, j, r2->results[i].hits[j].score,
                       r1->results[i].hits[j].score);
    ims_search_results_free(r2);
    ims_search_results_free(r1);

    /* A model other than the index's is refused, naming both. */
    o.image_model = w->text_model;
    TEST_CHECK(ims_index_search(idx, &o, q, 1, K, &r2, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "text.isw") &&
                   strstr(err.msg, "tv.isw"),
               "another image model: %s", err.msg);
    o.image_model = NULL;
    o.precision = IMS_PRECISION_FP16;
    TEST_CHECK(ims_index_search(idx, &o, q, 1, K, &r2, &err) == IMS_ERR_UNSUPPORTED, "fp16 on the CPU: %s", err.msg);
done:
    ims_free(visual);
    ims_free(semantic);
    ims_free(classes);
    ims_index_close(idx);
}

/* A tombstoned row is never a hit, and the rest answer as a brute force over
 * the live rows says; the row ids of the others do not move. */
static void test_tombstones(world *w)
{
    ims_error err = {0};
    ims_index *idx = NULL, *writer = NULL;
    TEST_OK(ims_index_open(w->index_dir, &idx, &err), err);
    if (!idx)
        return;
    ims_index_config cfg = *ims_index_get_config(idx);
    int64_t horse = -1;
    for (int64_t r = 0; r < ims_index_row_count(idx); r++)
        if (strcmp(ims_index_row(idx, r)->path, w->paths[0]) == 0)
            horse = r;
    ims_index_close(idx);
    TEST_CHECK(horse >= 0, "the horse has a row");
    TEST_OK(ims_index_open_for_writing(w->index_dir, &cfg, &writer, &err), err);
    if (!writer || horse < 0) {
        ims_index_close(writer);
        return;
    }
    TEST_OK(ims_index_remove(writer, horse, &err), err);
    TEST_CHECK(ims_index_remove(writer, horse, &err) == IMS_ERR_ARGUMENT, "a row removed twice");
    TEST_OK(ims_index_commit(writer, &err), err);
    ims_index_close(writer);

    TEST_OK(ims_index_open(w->index_dir, &idx, &err), err);
    if (!idx)
        return;
    TEST_CHECK(!ims_index_contains(idx, w->paths[0]) && !ims_index_row_live(idx, horse) &&
                   ims_index_live_row_count(idx) == ims_index_row_count(idx) - 1,
               "the horse's row is tombstoned");
    float *visual = NULL;
    int vd = 0;
    TEST_OK(ims_index_load_table(idx, IMS_INDEX_TABLE_VISUAL, &visual, &vd, &err), err);
    size_t n = (size_t)ims_index_live_row_count(idx);
    int fd = ims_image_encoder_feature_dim(w->enc), nc = ims_image_encoder_num_classes(w->enc);
    float *feat = test_xmalloc((size_t)fd * sizeof *feat), *logits = test_xmalloc((size_t)nc * sizeof *logits);
    encode_all(w, w->paths, 1, 1, 1, feat, logits);
    double truth[8];
    if (visual && n <= 8)
        cosines(visual, n, vd, feat, truth);
    ims_search_options o;
    ims_search_options_init(&o);
    o.backend = w->be;
    ims_search_query q = {.image = w->paths[0]};
    ims_search_results *r = NULL;
    TEST_OK(ims_index_search(idx, &o, &q, 1, 10, &r, &err), err);
    if (r && visual && n <= 8) {
        check_result(idx, &r->results[0], IMS_INDEX_TABLE_VISUAL, truth, n, 10, "after a tombstone");
        for (int j = 0; j < r->results[0].count; j++)
            TEST_CHECK(r->results[0].hits[j].row != horse && strcmp(r->results[0].hits[j].path, w->paths[0]) != 0,
                       "the tombstoned row is hit %d", j);
    }
    ims_search_results_free(r);
    ims_free(visual);
    free(feat);
    free(logits);
    ims_index_close(idx);
}

/* An index without a text model has no semantic table; an empty index answers nothing. */
static void test_special_indexes(world *w)
{
    ims_error err = {0};
    char dir[512], empty[512];
    tmp_path(dir, sizeof dir, "visual_only");
    tmp_path(empty, sizeof empty, "no_images");
    mkdir(empty, 0755);
    const char *roots[1] = {empty};
    ims_index_run_options ro;
    ims_index_run_options_init(&ro);
    ro.index_dir = dir;
    ro.roots = roots;
    ro.root_count = 1;
    ro.backend = w->be;
    ro.image_model = w->iw;
    TEST_OK(ims_index_run(&ro, NULL, &err), err);
    ims_index *idx = NULL;
    TEST_OK(ims_index_open(dir, &idx, &err), err);
    if (!idx)
        return;
    ims_search_options o;
    ims_search_options_init(&o);
    o.backend = w->be;
    ims_search_query text = {.text = "a horse"}, sem = {.image = w->paths[0], .table = IMS_INDEX_TABLE_SEMANTIC},
                     vis = {.image = w->paths[0]};
    ims_search_results *r = NULL;
    TEST_CHECK(ims_index_search(idx, &o, &text, 1, K, &r, &err) == IMS_ERR_ARGUMENT &&
                   strstr(err.msg, "no semantic table"),
               "a text query without a semantic table: %s", err.msg);
    TEST_CHECK(ims_index_search(idx, &o, &sem, 1, K, &r, &err) == IMS_ERR_ARGUMENT &&
                   strstr(err.msg, "no semantic table"),
               "a semantic image query without a semantic table: %s", err.msg);
    TEST_OK(ims_index_search(idx, &o, &vis, 1, K, &r, &err), err);
    TEST_CHECK(r && r->count == 1 && r->results[0].count == 0, "an empty index gives no hits");
    ims_search_results_free(r);
    ims_index_close(idx);
}

int main(int argc, char **argv)
{
    fixtures = test_fixture_dir(argc, argv);
    snprintf(tmp_root, sizeof tmp_root, "/tmp/test_search.XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 2;
    }
    world w = {0};
    if (setup(&w)) {
        test_encoder_run(&w);
        test_search(&w);
        test_tombstones(&w);
        test_special_indexes(&w);
    }
    teardown(&w);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
    return test_finish();
}
