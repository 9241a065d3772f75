/* index/search.c: queries -> the k nearest rows of an index (include/imgsearch.h,
 * "Search"), the library call behind `imgsearch search`.
 *
 * A searcher holds, each loaded on first use and kept: the image encoder, the
 * text embedder (with its weight file, which the tokenizer reads), the class
 * embeddings (ConSE for image queries on the semantic table) and one k-NN
 * table per index table, filled chunk by chunk in the stored dtype
 * (ims_index_load_knn). A search embeds its queries (all texts in one call,
 * all images in one run of the image loop), then answers each table's
 * queries as one batch of the k-NN search, and copies the hits' paths into
 * results it owns, so they outlive the searcher. The k-NN tables hold the
 * index's live rows only (ims_index_load_knn), so a tombstoned row is never
 * a hit; a hit's id maps back through ims_index_live_row. A query that
 * cannot be embedded (an unreadable image, an empty text) gets its error in
 * its result; the others are answered.
 */
#include "index/store.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

enum { SEARCH_TABLES = 2 }; /* IMS_INDEX_TABLE_VISUAL, IMS_INDEX_TABLE_SEMANTIC */

struct ims_searcher {
    const ims_index *idx;
    ims_search_options o;
    ims_precision precision; /* the image model's, resolved */
    int synthetic;           /* the manifest or the image model says its weights are synthetic */

    ims_image_encoder *image;
    ims_weights *text_weights;
    ims_text_embedder *text;
    float *class_emb; /* (classes, semantic_dim) or NULL */
    int classes;
    ims_knn_table *knn[SEARCH_TABLES];
};

/* The results and everything they point to, freed together. */
typedef struct results_block {
    ims_search_results pub; /* first: ims_search_results_free casts back */
    ims_search_result *results;
    ims_search_hit *hits;
    char *paths; /* the hits' paths and the failed queries' errors */
} results_block;

static const char *table_name(ims_index_table t) { return t == IMS_INDEX_TABLE_SEMANTIC ? "semantic" : "visual"; }

void ims_search_options_init(ims_search_options *o)
{
    memset(o, 0, sizeof *o);
    o->precision = -1;
    o->dtype = IMS_DTYPE_COUNT;
    o->batch_size = 16;
    o->threads = 4;
    o->verify = 1;
    ims_decode_options_init(&o->decode);
}

static int on_gpu(const ims_searcher *s) { return ims_backend_get_info(s->o.backend)->kind == IMS_BACKEND_CUDA; }

ims_status ims_searcher_open(const ims_index *idx, const ims_search_options *o, ims_searcher **out, ims_error *err)
{
    *out = NULL;
    if (!idx || !o || !o->backend)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "searcher: an index and options with a backend are required");
    if (o->precision < -1 || o->precision > IMS_PRECISION_FP16)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "searcher: unknown precision %d", o->precision);
    if (o->dtype != IMS_DTYPE_COUNT && o->dtype != IMS_DTYPE_F16 && o->dtype != IMS_DTYPE_F32)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "searcher: table dtype %s (f16 or f32)", ims_dtype_name(o->dtype));
    if (o->batch_size < 1 || o->threads < 1)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "searcher: batch size %d and threads %d must be >= 1",
                             o->batch_size, o->threads);
    ims_searcher *s = calloc(1, sizeof *s);
    if (!s)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    s->idx = idx;
    s->o = *o;
    const ims_index_config *cfg = ims_index_get_config(idx);
    if (o->precision >= 0)
        s->precision = (ims_precision)o->precision;
    else if (!on_gpu(s))
        s->precision = IMS_PRECISION_FP32;
    else
        s->precision = cfg->precision >= 0 ? (ims_precision)cfg->precision : IMS_PRECISION_FP16;
    if (s->o.dtype == IMS_DTYPE_COUNT)
        s->o.dtype = on_gpu(s) ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
    if (!on_gpu(s) && s->precision != IMS_PRECISION_FP32) {
        ims_searcher_close(s);
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "precision %s needs a GPU: the CPU backend computes in fp32",
                             ims_precision_name((ims_precision)o->precision));
    }
    s->synthetic = cfg->image_model.synthetic;
    *out = s;
    return IMS_OK;
}

void ims_searcher_close(ims_searcher *s)
{
    if (!s)
        return;
    for (int t = 0; t < SEARCH_TABLES; t++)
        ims_knn_free(s->knn[t]);
    ims_image_encoder_free(s->image);
    ims_text_embedder_free(s->text);
    ims_weights_close(s->text_weights);
    free(s->class_emb);
    free(s);
}

int ims_searcher_synthetic(const ims_searcher *s) { return s->synthetic; }

/* ---- Loading on first use -------------------------------------------------------------- */

static ims_status need_semantic(const ims_searcher *s, const char *why, ims_error *err)
{
    if (ims_index_get_config(s->idx)->semantic_dim > 0)
        return IMS_OK;
    return ims_error_set(err, IMS_ERR_ARGUMENT,
                         "the index has no semantic table (it was built without --text-model): %s need it", why);
}

static ims_status load_text(ims_searcher *s, ims_error *err)
{
    if (s->text)
        return IMS_OK;
    const ims_index_config *cfg = ims_index_get_config(s->idx);
    ims_status st = need_semantic(s, "text queries", err);
    if (!st)
        st = imsi_index_open_model(s->o.text_model, &cfg->text_model, "text", &s->text_weights, err);
    if (!st)
        st = ims_text_embedder_create(s->o.backend, s->text_weights, s->precision, &s->text, err);
    if (!st && ims_text_embedder_dim(s->text) != cfg->semantic_dim)
        st = ims_error_set(err, IMS_ERR_FORMAT, "the text model gives %d dimensions, the index's semantic table has %d",
                           ims_text_embedder_dim(s->text), cfg->semantic_dim);
    if (st) {
        ims_text_embedder_free(s->text);
        ims_weights_close(s->text_weights);
        s->text = NULL;
        s->text_weights = NULL;
    }
    return st;
}

static ims_status load_image(ims_searcher *s, ims_error *err)
{
    if (s->image)
        return IMS_OK;
    const ims_index_config *cfg = ims_index_get_config(s->idx);
    ims_weights *w = NULL;
    ims_weights_identity id;
    ims_status st = imsi_index_open_model(s->o.image_model, &cfg->image_model, "image", &w, err);
    if (!st && ims_weights_identify(w, &id, err) == IMS_OK && id.synthetic)
        s->synthetic = 1;
    if (!st)
        st = ims_image_encoder_create(s->o.backend, w, s->precision, &s->image, err);
    ims_weights_close(w); /* the encoder holds its own copies */
    if (!st && ims_image_encoder_feature_dim(s->image) != cfg->visual_dim)
        st = ims_error_set(err, IMS_ERR_FORMAT, "the image model gives %d features, the index holds %d",
                           ims_image_encoder_feature_dim(s->image), cfg->visual_dim);
    if (st) {
        ims_image_encoder_free(s->image);
        s->image = NULL;
    }
    return st;
}

static ims_status load_class_embeddings(ims_searcher *s, ims_error *err)
{
    if (s->class_emb)
        return IMS_OK;
    ims_status st = ims_index_load_class_embeddings(s->idx, &s->class_emb, &s->classes, err);
    if (!st && s->classes != ims_image_encoder_num_classes(s->image))
        st = ims_error_set(err, IMS_ERR_FORMAT, "the index holds %d class embeddings, the image model has %d classes",
                           s->classes, ims_image_encoder_num_classes(s->image));
    if (st) {
        free(s->class_emb);
        s->class_emb = NULL;
    }
    return st;
}

static ims_status load_table(ims_searcher *s, ims_index_table t, ims_error *err)
{
    if (s->knn[t])
        return IMS_OK;
    const ims_index_config *cfg = ims_index_get_config(s->idx);
    ims_knn_options ko;
    ims_knn_options_init(&ko);
    ko.dtype = s->o.dtype;
    int dim = t == IMS_INDEX_TABLE_SEMANTIC ? cfg->semantic_dim : cfg->visual_dim;
    ims_status st = ims_knn_create(s->o.backend, dim, &ko, &s->knn[t], err);
    if (!st)
        st = ims_index_load_knn(s->idx, t, s->o.verify, s->knn[t], err);
    if (st) {
        ims_knn_free(s->knn[t]);
        s->knn[t] = NULL;
    }
    return st;
}

/* ---- Embedding the queries -------------------------------------------------------------- */

/* One search's queries as vectors: query i's is vec[i] (dim of its table),
 * or NULL with status[i] and error[i] saying why it could not be embedded. */
typedef struct query_set {
    const ims_search_query *q;
    size_t count;
    ims_index_table *table; /* (count) */
    float **vec;            /* (count), each malloc'd */
    ims_status *status;     /* (count) */
    char **error;           /* (count), malloc'd when status is not IMS_OK */
} query_set;

/* Query i cannot be answered: why, kept for its result. */
static ims_status query_failed(query_set *qs, size_t i, ims_status why, const char *fmt, const char *a,
                               const char *b, ims_error *err)
{
    size_t len = strlen(fmt) + strlen(a) + strlen(b) + 1;
    char *msg = malloc(len);
    if (!msg)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    snprintf(msg, len, fmt, a, b);
    free(qs->error[i]);
    qs->error[i] = msg;
    qs->status[i] = why;
    return IMS_OK;
}

/* A text with nothing but white space says nothing to search for. */
static int blank_text(const char *t)
{
    for (; *t; t++)
        if (!strchr(" \t\n\r\v\f", *t))
            return 0;
    return 1;
}

static ims_status embed_texts(ims_searcher *s, query_set *qs, size_t n, ims_error *err)
{
    if (n == 0)
        return IMS_OK;
    int dim = ims_text_embedder_dim(s->text);
    const char **texts = malloc(n * sizeof *texts);
    float *out = malloc(n * (size_t)dim * sizeof *out);
    ims_status st = texts && out ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %zu text queries", n);
    for (size_t i = 0, j = 0; !st && i < qs->count; i++)
        if (qs->q[i].text && !qs->status[i])
            texts[j++] = qs->q[i].text;
    if (!st)
        st = ims_text_embed(s->text, texts, n, out, err);
    for (size_t i = 0, j = 0; !st && i < qs->count; i++) {
        if (!qs->q[i].text || qs->status[i])
            continue;
        if (!(qs->vec[i] = malloc((size_t)dim * sizeof(float)))) {
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(qs->vec[i], out + j++ * (size_t)dim, (size_t)dim * sizeof(float));
    }
    free(texts);
    free(out);
    return st;
}

/* Image i of the run is query which[i]: its features (visual; the k-NN table
 * normalizes queries) or its ConSE mix (semantic). */
static ims_status store_image(ims_searcher *s, query_set *qs, size_t query, const float *features,
                              const float *logits, ims_error *err)
{
    const ims_index_config *cfg = ims_index_get_config(s->idx);
    int semantic = qs->table[query] == IMS_INDEX_TABLE_SEMANTIC;
    int dim = semantic ? cfg->semantic_dim : cfg->visual_dim;
    if (!(qs->vec[query] = malloc((size_t)dim * sizeof(float))))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    if (!semantic) {
        memcpy(qs->vec[query], features, (size_t)dim * sizeof(float));
        return IMS_OK;
    }
    return ims_conse_embed(logits, 1, s->classes, s->class_emb, dim, cfg->conse_top, qs->vec[query], err);
}

static ims_status embed_images(ims_searcher *s, query_set *qs, size_t n, ims_error *err)
{
    if (n == 0)
        return IMS_OK;
    const ims_index_config *cfg = ims_index_get_config(s->idx);
    const char **paths = malloc(n * sizeof *paths);
    size_t *which = malloc(n * sizeof *which);
    ims_status st = paths && which ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %zu image queries", n);
    for (size_t i = 0, j = 0; !st && i < qs->count; i++)
        if (qs->q[i].image) {
            paths[j] = qs->q[i].image;
            which[j++] = i;
        }
    ims_image_encoder_run_options ro;
    ims_image_encoder_run_options_init(&ro);
    ro.mode = (int)cfg->mode; /* as the rows were made, whatever the model's own */
    ro.batch_size = s->o.batch_size;
    ro.threads = s->o.threads;
    ro.decode = s->o.decode;
    ims_image_encoder_run *run = NULL;
    if (!st)
        st = ims_image_encoder_run_start(s->image, s->o.backend, paths, n, &ro, &run, err);
    int fd = ims_image_encoder_feature_dim(s->image), nc = ims_image_encoder_num_classes(s->image);
    const ims_image_encoder_batch *b;
    while (!st && (st = ims_image_encoder_run_next(run, &b, err)) == IMS_OK) {
        for (int i = 0; !st && i < b->count; i++) {
            const ims_image_item *it = &b->items[i];
            size_t query = which[b->first + (size_t)i];
            if (it->status) { /* this query cannot be answered; the others are */
                st = query_failed(qs, query, it->status, "query image '%.200s': %.280s", it->path, it->reason, err);
                continue;
            }
            if (it->warnings && s->o.on_warning)
                s->o.on_warning(s->o.warning_ctx, it->path, it->reason);
            ims_error why = {0};
            ims_status bad = store_image(s, qs, query, b->features + (size_t)i * (size_t)fd,
                                         b->logits + (size_t)i * (size_t)nc, &why);
            if (bad == IMS_ERR_NOMEM)
                st = ims_error_set(err, bad, "%s", why.msg);
            else if (bad) {
                free(qs->vec[query]);
                qs->vec[query] = NULL;
                st = query_failed(qs, query, bad, "query image '%.200s': %.280s", it->path, why.msg, err);
            }
        }
    }
    if (st == IMS_ERR_NOT_FOUND)
        st = IMS_OK;
    ims_image_encoder_run_free(run);
    free(paths);
    free(which);
    return st;
}

/* ---- Searching ----------------------------------------------------------------------------- */

/* The queries of table t as one batch; their ids and scores (n, k) into ids/scores. */
static ims_status search_table(ims_searcher *s, const query_set *qs, ims_index_table t, int k, size_t n,
                               int64_t *ids, float *scores, ims_error *err)
{
    if (n == 0)
        return IMS_OK;
    int64_t dim = ims_knn_dim(s->knn[t]);
    float *q = malloc(n * (size_t)dim * sizeof *q);
    if (!q)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %zu queries", n);
    for (size_t i = 0, j = 0; i < qs->count; i++)
        if (qs->table[i] == t && qs->vec[i])
            memcpy(q + j++ * (size_t)dim, qs->vec[i], (size_t)dim * sizeof *q);
    ims_status st = ims_knn_search(s->knn[t], q, (int64_t)n, k, ids, scores, err);
    free(q);
    /* the k-NN table holds the live rows: its ids map back to row ids */
    for (size_t i = 0; !st && i < n * (size_t)k; i++)
        if (ids[i] >= 0)
            ids[i] = ims_index_live_row(s->idx, ids[i]);
    return st;
}

/* Copies the hits (and their paths) and the failed queries' errors into one
 * results block. ids/scores[t] hold table t's answered queries in order, (n[t], k). */
static ims_status make_results(const ims_searcher *s, const query_set *qs, int k, int64_t *const ids[SEARCH_TABLES],
                               float *const scores[SEARCH_TABLES], ims_search_results **out, ims_error *err)
{
    results_block *r = calloc(1, sizeof *r);
    size_t hits = 0, bytes = 0;
    size_t next[SEARCH_TABLES] = {0, 0};
    for (size_t i = 0; i < qs->count; i++) {
        if (qs->status[i]) {
            bytes += strlen(qs->error[i]) + 1;
            continue;
        }
        ims_index_table t = qs->table[i];
        size_t at = next[t]++ * (size_t)k;
        for (int j = 0; j < k && ids[t][at + (size_t)j] >= 0; j++, hits++)
            bytes += strlen(ims_index_row(s->idx, ids[t][at + (size_t)j])->path) + 1;
    }
    if (r) {
        r->results = calloc(qs->count ? qs->count : 1, sizeof *r->results);
        r->hits = malloc((hits ? hits : 1) * sizeof *r->hits);
        r->paths = malloc(bytes ? bytes : 1);
    }
    if (!r || !r->results || !r->hits || !r->paths) {
        ims_search_results_free(r ? &r->pub : NULL);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for the results of %zu queries", qs->count);
    }
    next[0] = next[1] = 0;
    ims_search_hit *h = r->hits;
    char *p = r->paths;
    for (size_t i = 0; i < qs->count; i++) {
        ims_index_table t = qs->table[i];
        r->results[i].table = t;
        r->results[i].hits = h;
        if (qs->status[i]) {
            size_t len = strlen(qs->error[i]) + 1;
            memcpy(p, qs->error[i], len);
            r->results[i].status = qs->status[i];
            r->results[i].error = p;
            p += len;
            r->pub.failed++;
            continue;
        }
        size_t at = next[t]++ * (size_t)k;
        for (int j = 0; j < k && ids[t][at + (size_t)j] >= 0; j++) {
            int64_t row = ids[t][at + (size_t)j], chunk = -1, offset = -1;
            const char *path = ims_index_row(s->idx, row)->path;
            size_t len = strlen(path) + 1;
            memcpy(p, path, len);
            ims_error ignored;
            if (ims_index_row_location(s->idx, row, &chunk, &offset, &ignored) != IMS_OK)
                chunk = offset = -1;
            *h++ = (ims_search_hit){.row = row, .score = scores[t][at + (size_t)j], .path = p, .chunk = chunk,
                                    .offset = offset};
            p += len;
            r->results[i].count++;
        }
    }
    r->pub.count = (int64_t)qs->count;
    r->pub.results = r->results;
    *out = &r->pub;
    return IMS_OK;
}

void ims_search_results_free(ims_search_results *pub)
{
    if (!pub)
        return;
    results_block *r = (results_block *)pub;
    free(r->results);
    free(r->hits);
    free(r->paths);
    free(r);
}

/* Checks the queries and loads what they need. */
static ims_status prepare(ims_searcher *s, size_t n_text, const size_t n_image[SEARCH_TABLES], ims_error *err)
{
    ims_status st = IMS_OK;
    if (n_text)
        st = load_text(s, err);
    if (!st && n_image[IMS_INDEX_TABLE_SEMANTIC])
        st = need_semantic(s, "image queries on the semantic table", err);
    if (!st && (n_image[0] || n_image[1]))
        st = load_image(s, err);
    if (!st && n_image[IMS_INDEX_TABLE_SEMANTIC])
        st = load_class_embeddings(s, err);
    for (int t = 0; !st && t < SEARCH_TABLES; t++) {
        size_t uses = n_image[t] + (t == IMS_INDEX_TABLE_SEMANTIC ? n_text : 0);
        if (uses)
            st = load_table(s, (ims_index_table)t, err);
    }
    return st;
}

ims_status ims_searcher_search(ims_searcher *s, const ims_search_query *queries, int64_t count64, int k,
                               ims_search_results **out, ims_error *err)
{
    *out = NULL;
    if (k < 1 || k > IMS_KNN_MAX_K)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "search: k = %d is out of range 1..%d", k, IMS_KNN_MAX_K);
    if (count64 < 0 || (count64 > 0 && !queries))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "search: %lld queries at %p", (long long)count64,
                             (const void *)queries);
    size_t count = (size_t)count64;
    for (size_t i = 0; i < count; i++) {
        const ims_search_query *q = &queries[i];
        if (!q->text == !q->image)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "search: query %zu needs a text or an image, not %s", i,
                                 q->text ? "both" : "neither");
        if (q->image && q->table != IMS_INDEX_TABLE_VISUAL && q->table != IMS_INDEX_TABLE_SEMANTIC)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "search: query %zu: unknown table %d", i, (int)q->table);
    }
    size_t slots = count ? count : 1, n_text = 0, n_image[SEARCH_TABLES] = {0, 0}, n_table[SEARCH_TABLES] = {0, 0};
    query_set qs = {queries, count, calloc(slots, sizeof *qs.table), calloc(slots, sizeof *qs.vec),
                    calloc(slots, sizeof *qs.status), calloc(slots, sizeof *qs.error)};
    int64_t *ids[SEARCH_TABLES] = {NULL, NULL};
    float *scores[SEARCH_TABLES] = {NULL, NULL};
    ims_status st = qs.table && qs.vec && qs.status && qs.error ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < count; i++) {
        qs.table[i] = queries[i].text ? IMS_INDEX_TABLE_SEMANTIC : queries[i].table;
        if (queries[i].text && blank_text(queries[i].text))
            st = query_failed(&qs, i, IMS_ERR_ARGUMENT, "%s%s", "an empty text query", "", err);
        else if (queries[i].text)
            n_text++;
        else
            n_image[qs.table[i]]++;
    }
    double t0 = ims_clock_seconds();
    if (!st)
        st = prepare(s, n_text, n_image, err);
    double t1 = ims_clock_seconds();
    if (!st)
        st = embed_texts(s, &qs, n_text, err);
    if (!st)
        st = embed_images(s, &qs, n_image[0] + n_image[1], err);
    double t2 = ims_clock_seconds();
    for (size_t i = 0; !st && i < count; i++)
        n_table[qs.table[i]] += qs.vec[i] != NULL;
    for (int t = 0; !st && t < SEARCH_TABLES; t++) {
        size_t n = n_table[t] ? n_table[t] : 1;
        ids[t] = malloc(n * (size_t)k * sizeof *ids[t]);
        scores[t] = malloc(n * (size_t)k * sizeof *scores[t]);
        if (!ids[t] || !scores[t])
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %zu x %d results", n, k);
        if (!st && n_table[t])
            st = search_table(s, &qs, (ims_index_table)t, k, n_table[t], ids[t], scores[t], err);
        if (st)
            imsi_error_prefix(err, st, "the %s table", table_name((ims_index_table)t));
    }
    double t3 = ims_clock_seconds();
    if (!st)
        st = make_results(s, &qs, k, ids, scores, out, err);
    if (!st) {
        (*out)->load_s = t1 - t0;
        (*out)->embed_s = t2 - t1;
        (*out)->search_s = t3 - t2;
    }
    for (size_t i = 0; qs.vec && qs.error && i < count; i++) {
        free(qs.vec[i]);
        free(qs.error[i]);
    }
    free(qs.vec);
    free(qs.error);
    free(qs.status);
    free(qs.table);
    for (int t = 0; t < SEARCH_TABLES; t++) {
        free(ids[t]);
        free(scores[t]);
    }
    return st;
}

ims_status ims_index_search(const ims_index *idx, const ims_search_options *o, const ims_search_query *queries,
                            int64_t count, int k, ims_search_results **out, ims_error *err)
{
    *out = NULL;
    ims_searcher *s = NULL;
    ims_status st = ims_searcher_open(idx, o, &s, err);
    if (!st)
        st = ims_searcher_search(s, queries, count, k, out, err);
    ims_searcher_close(s);
    return st;
}
