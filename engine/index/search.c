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
 *
 * A searcher reads a set of shards (a single index is a set of one): one
 * k-NN table per shard and table, the models once. Each shard gives, per
 * query, its k best and every row tied with its k-th (asking for more while
 * the last one returned still ties), so the merge can break ties by path, an
 * order that does not depend on how files were spread over shards: the set
 * answers exactly as one index of the same files. The search runs in two
 * steps (embed, then search vectors) that a caller may split over processes.
 */
#include "index/store.h"

#include "core/error.h"
#include "index/knn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { SEARCH_TABLES = 2 }; /* IMS_INDEX_TABLE_VISUAL, IMS_INDEX_TABLE_SEMANTIC */

struct ims_searcher {
    const ims_index_set *set;
    ims_index_set *own_set;     /* ims_searcher_open: a set of the one index */
    const ims_index *idx;       /* the first shard the set opened (models, class embeddings); NULL if none */
    const ims_index_config *cfg; /* the shards' configuration; NULL if none */
    size_t shards;
    ims_search_options o;
    ims_precision precision; /* the image model's, resolved */
    int synthetic;           /* the manifest or the image model says its weights are synthetic */

    ims_image_encoder *image;
    ims_weights *text_weights;
    ims_text_embedder *text;
    float *class_emb; /* (classes, semantic_dim) or NULL */
    int classes;
    ims_knn_table **knn; /* (shards, SEARCH_TABLES) */
    double table_load_s; /* the current search's time loading k-NN tables */
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

ims_status ims_searcher_open_set(const ims_index_set *set, const ims_search_options *o, ims_searcher **out,
                                 ims_error *err)
{
    *out = NULL;
    if (!set || !o || !o->backend)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "searcher: an index and options with a backend are required");
    if (o->precision < -1 || o->precision > IMS_PRECISION_FP16)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "searcher: unknown precision %d", o->precision);
    if (o->dtype != IMS_DTYPE_COUNT && o->dtype != IMS_DTYPE_F16 && o->dtype != IMS_DTYPE_F32)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "searcher: table dtype %s (f16 or f32)", ims_dtype_name(o->dtype));
    if (o->batch_size < 1 || o->threads < 1)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "searcher: batch size %d and threads %d must be >= 1",
                             o->batch_size, o->threads);
    ims_searcher *s = calloc(1, sizeof *s);
    size_t shards = (size_t)ims_index_set_shard_count(set);
    if (s)
        s->knn = calloc(shards * SEARCH_TABLES + 1, sizeof *s->knn);
    if (!s || !s->knn) {
        free(s);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    s->set = set;
    s->shards = shards;
    s->cfg = ims_index_set_config(set);
    for (size_t i = 0; !s->idx && i < shards; i++)
        s->idx = ims_index_set_shard(set, (int64_t)i);
    s->o = *o;
    const ims_index_config *cfg = s->cfg;
    if (o->precision >= 0)
        s->precision = (ims_precision)o->precision;
    else if (!on_gpu(s))
        s->precision = IMS_PRECISION_FP32;
    else
        s->precision = cfg && cfg->precision >= 0 ? (ims_precision)cfg->precision : IMS_PRECISION_FP16;
    if (s->o.dtype == IMS_DTYPE_COUNT)
        s->o.dtype = on_gpu(s) ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
    if (!on_gpu(s) && s->precision != IMS_PRECISION_FP32) {
        ims_searcher_close(s);
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "precision %s needs a GPU: the CPU backend computes in fp32",
                             ims_precision_name((ims_precision)o->precision));
    }
    s->synthetic = cfg && cfg->image_model.synthetic;
    *out = s;
    return IMS_OK;
}

ims_status ims_searcher_open(const ims_index *idx, const ims_search_options *o, ims_searcher **out, ims_error *err)
{
    *out = NULL;
    if (!idx)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "searcher: an index and options with a backend are required");
    ims_index_set *set = NULL;
    ims_status st = imsi_index_set_wrap(idx, &set, err);
    if (!st)
        st = ims_searcher_open_set(set, o, out, err);
    if (st)
        ims_index_set_close(set);
    else
        (*out)->own_set = set;
    return st;
}

void ims_searcher_close(ims_searcher *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->knn && i < s->shards * SEARCH_TABLES; i++)
        ims_knn_free(s->knn[i]);
    free(s->knn);
    ims_index_set_close(s->own_set);
    ims_image_encoder_free(s->image);
    ims_text_embedder_free(s->text);
    ims_weights_close(s->text_weights);
    free(s->class_emb);
    free(s);
}

int ims_searcher_synthetic(const ims_searcher *s) { return s->synthetic; }

/* ---- Loading on first use -------------------------------------------------------------- */

/* Embedding needs the shards' configuration and models: a part of a set that
 * opened no shard searches vectors only. */
static ims_status need_config(const ims_searcher *s, ims_error *err)
{
    if (s->cfg)
        return IMS_OK;
    return ims_error_set(err, IMS_ERR_ARGUMENT, "this part of the index set holds no shard: it cannot embed queries");
}

static ims_status need_semantic(const ims_searcher *s, const char *why, ims_error *err)
{
    if (s->cfg->semantic_dim > 0)
        return IMS_OK;
    return ims_error_set(err, IMS_ERR_ARGUMENT,
                         "the index has no semantic table (it was built without --text-model): %s need it", why);
}

static ims_status load_text(ims_searcher *s, ims_error *err)
{
    if (s->text)
        return IMS_OK;
    const ims_index_config *cfg = s->cfg;
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
    const ims_index_config *cfg = s->cfg;
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

static ims_status load_table(ims_searcher *s, size_t shard, ims_index_table t, ims_error *err)
{
    ims_knn_table **knn = &s->knn[shard * SEARCH_TABLES + (size_t)t];
    const ims_index *idx = ims_index_set_shard(s->set, (int64_t)shard);
    if (*knn || !idx)
        return IMS_OK;
    const ims_index_config *cfg = s->cfg;
    double start = ims_clock_seconds();
    ims_knn_options ko;
    ims_knn_options_init(&ko);
    ko.dtype = s->o.dtype;
    int dim = t == IMS_INDEX_TABLE_SEMANTIC ? cfg->semantic_dim : cfg->visual_dim;
    ims_status st = ims_knn_create(s->o.backend, dim, &ko, knn, err);
    if (!st)
        st = ims_index_load_knn(idx, t, s->o.verify, *knn, err);
    if (st) {
        ims_knn_free(*knn);
        *knn = NULL;
        if (ims_index_set_is_set(s->set))
            imsi_error_prefix(err, st, "shard %zu ('%s')", shard, ims_index_set_shard_path(s->set, (int64_t)shard));
    }
    s->table_load_s += ims_clock_seconds() - start;
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
    const ims_index_config *cfg = s->cfg;
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
    const ims_index_config *cfg = s->cfg;
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

/* A hit before it is copied into results: its path points into the shard's records. */
typedef struct candidate {
    float score;
    int64_t row; /* set row: shard << IMS_INDEX_SET_ROW_BITS | the shard's row */
    const char *path;
    int64_t chunk, offset;
} candidate;

/* Best first; equal scores by path, then set row: an order that does not
 * depend on how the files were spread over shards. */
static int candidate_order(const void *pa, const void *pb)
{
    const candidate *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    int c = strcmp(a->path, b->path);
    if (c)
        return c;
    return a->row < b->row ? -1 : a->row > b->row;
}

/* Per query, the candidates gathered from the shards. */
typedef struct candidate_list {
    candidate *items;
    size_t count, cap;
} candidate_list;

static ims_status candidate_push(candidate_list *l, const candidate *c, ims_error *err)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        candidate *p = realloc(l->items, cap * sizeof *p);
        if (!p)
            return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for search candidates");
        l->items = p;
        l->cap = cap;
    }
    l->items[l->count++] = *c;
    return IMS_OK;
}

/* Sorts each list and keeps its k best. */
static void candidates_settle(candidate_list *lists, size_t n, int k)
{
    for (size_t i = 0; i < n; i++) {
        if (lists[i].count > 1) /* items is NULL when empty: qsort must not see it */
            qsort(lists[i].items, lists[i].count, sizeof *lists[i].items, candidate_order);
        if (lists[i].count > (size_t)k)
            lists[i].count = (size_t)k;
    }
}

/* The score every shard gives a row: the fp64 dot product of the query
 * (normalized as the k-NN table normalizes it) and the row as stored, rounded
 * once. The k-NN kernels' fp32 sums depend on where a row sits in its table
 * (blocking, the tail of a tile), so a row's kernel score can differ in the
 * last bits between a shard and one whole index; this one cannot. */
static float exact_score(const float *qn, const void *row, ims_dtype dtype, int dim)
{
    double sum = 0.0;
    if (dtype == IMS_DTYPE_F16)
        for (int i = 0; i < dim; i++)
            sum += (double)qn[i] * (double)ims_f16_to_f32(((const uint16_t *)row)[i]);
    else
        for (int i = 0; i < dim; i++)
            sum += (double)qn[i] * (double)((const float *)row)[i];
    return (float)sum;
}

static void normalize_query(const float *q, float *qn, int dim)
{
    double ss = 0.0;
    for (int i = 0; i < dim; i++)
        ss += (double)q[i] * q[i];
    double scale = ss > 0.0 && isfinite(ss) ? 1.0 / sqrt(ss) : 0.0;
    for (int i = 0; i < dim; i++)
        qn[i] = (float)(q[i] * scale);
}

/* The n queries q (n, dim) of table t against one shard: per query every row
 * whose kernel score is within `slack` of its k-th, rescored exactly
 * (exact_score), pushed to lists (n). slack is twice the bound on an fp32 sum
 * of dim products of unit vectors ((dim + 64) 2^-24 each way), so no row left
 * out could rescore above one kept. While the last row returned is still
 * within the slack there may be more: the search is run again for twice as many. */
static ims_status search_shard(ims_searcher *s, size_t shard, ims_index_table t, const float *q, size_t n, int k,
                               candidate_list *lists, ims_error *err)
{
    const ims_index *idx = ims_index_set_shard(s->set, (int64_t)shard);
    ims_knn_table *knn = s->knn[shard * SEARCH_TABLES + (size_t)t];
    int64_t rows = knn ? ims_knn_rows(knn) : 0;
    if (rows == 0)
        return IMS_OK;
    int dim = (int)ims_knn_dim(knn);
    float slack = (float)((dim + 64) * ldexp(1.0, -23));
    int64_t want = (int64_t)k + 1 < rows ? (int64_t)k + 1 : rows;
    int64_t *ids = NULL;
    float *scores = NULL, *qn = malloc((size_t)dim * sizeof *qn);
    ims_status st = qn ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    while (!st) {
        int kk = (int)(want < IMS_KNN_MAX_K ? want : IMS_KNN_MAX_K);
        free(ids);
        free(scores);
        ids = malloc(n * (size_t)kk * sizeof *ids);
        scores = malloc(n * (size_t)kk * sizeof *scores);
        if (!ids || !scores) {
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %zu x %d results", n, kk);
            break;
        }
        st = ims_knn_search(knn, q, (int64_t)n, kk, ids, scores, err);
        if (st)
            break;
        int more = 0; /* past IMS_KNN_MAX_K rows within the slack, the kernel's order stands */
        int last = k < kk ? k - 1 : kk - 1;
        for (size_t i = 0; !more && kk < rows && kk < IMS_KNN_MAX_K && i < n; i++)
            more = scores[i * (size_t)kk + (size_t)kk - 1] >= scores[i * (size_t)kk + (size_t)last] - slack;
        if (more) {
            want = 2 * (int64_t)kk < rows ? 2 * (int64_t)kk : rows;
            continue;
        }
        for (size_t i = 0; !st && i < n; i++) {
            normalize_query(q + i * (size_t)dim, qn, dim);
            float floor = scores[i * (size_t)kk + (size_t)last] - slack;
            for (int j = 0; !st && j < kk; j++) {
                int64_t id = ids[i * (size_t)kk + (size_t)j];
                if (id < 0 || (j > last && scores[i * (size_t)kk + (size_t)j] < floor))
                    break;
                int64_t row = ims_index_live_row(idx, id), chunk = -1, offset = -1;
                ims_error ignored;
                if (ims_index_row_location(idx, row, &chunk, &offset, &ignored) != IMS_OK)
                    chunk = offset = -1;
                candidate c = {exact_score(qn, imsi_knn_row(knn, id), imsi_knn_storage(knn), dim),
                               (int64_t)shard << IMS_INDEX_SET_ROW_BITS | row, ims_index_row(idx, row)->path, chunk,
                               offset};
                st = candidate_push(&lists[i], &c, err);
            }
        }
        break;
    }
    free(qn);
    free(ids);
    free(scores);
    return st;
}

/* Table t's answered vectors as one batch over every shard the set opened. */
static ims_status search_table(ims_searcher *s, const ims_search_vector *v, size_t count, ims_index_table t, int k,
                               candidate_list *lists, ims_error *err)
{
    size_t n = 0;
    int dim = 0;
    for (size_t i = 0; i < count; i++)
        if (v[i].table == t && v[i].vec && !v[i].status) {
            n++;
            dim = v[i].dim;
        }
    if (n == 0 || !s->cfg)
        return IMS_OK;
    float *q = malloc(n * (size_t)dim * sizeof *q);
    candidate_list *mine = calloc(n, sizeof *mine);
    ims_status st = q && mine ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %zu queries", n);
    for (size_t i = 0, j = 0; !st && i < count; i++)
        if (v[i].table == t && v[i].vec && !v[i].status)
            memcpy(q + j++ * (size_t)dim, v[i].vec, (size_t)dim * sizeof *q);
    for (size_t sh = 0; !st && sh < s->shards; sh++) {
        st = load_table(s, sh, t, err);
        if (!st)
            st = search_shard(s, sh, t, q, n, k, mine, err);
    }
    candidates_settle(mine, n, k);
    for (size_t i = 0, j = 0; i < count; i++) /* hand each query its list */
        if (v[i].table == t && v[i].vec && !v[i].status) {
            lists[i] = mine[j];
            mine[j++] = (candidate_list){0};
        }
    for (size_t j = 0; mine && j < n; j++)
        free(mine[j].items);
    free(mine);
    free(q);
    return st;
}

/* Copies per query its candidates (and their paths), or its error, into one
 * results block. status/error (count): the queries' own. */
static ims_status make_results(const candidate_list *lists, const ims_index_table *table, const ims_status *status,
                               const char *const *error, size_t count, ims_search_results **out, ims_error *err)
{
    results_block *r = calloc(1, sizeof *r);
    size_t hits = 0, bytes = 0;
    for (size_t i = 0; i < count; i++) {
        if (status[i]) {
            bytes += strlen(error[i] ? error[i] : ims_status_name(status[i])) + 1;
            continue;
        }
        for (size_t j = 0; j < lists[i].count; j++, hits++)
            bytes += strlen(lists[i].items[j].path) + 1;
    }
    if (r) {
        r->results = calloc(count ? count : 1, sizeof *r->results);
        r->hits = malloc((hits ? hits : 1) * sizeof *r->hits);
        r->paths = malloc(bytes ? bytes : 1);
    }
    if (!r || !r->results || !r->hits || !r->paths) {
        ims_search_results_free(r ? &r->pub : NULL);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for the results of %zu queries", count);
    }
    ims_search_hit *h = r->hits;
    char *p = r->paths;
    for (size_t i = 0; i < count; i++) {
        r->results[i].table = table[i];
        r->results[i].hits = h;
        if (status[i]) {
            const char *why = error[i] ? error[i] : ims_status_name(status[i]);
            size_t len = strlen(why) + 1;
            memcpy(p, why, len);
            r->results[i].status = status[i];
            r->results[i].error = p;
            p += len;
            r->pub.failed++;
            continue;
        }
        for (size_t j = 0; j < lists[i].count; j++) {
            const candidate *c = &lists[i].items[j];
            size_t len = strlen(c->path) + 1;
            memcpy(p, c->path, len);
            *h++ = (ims_search_hit){.row = c->row, .score = c->score, .path = p, .chunk = c->chunk,
                                    .offset = c->offset};
            p += len;
            r->results[i].count++;
        }
    }
    r->pub.count = (int64_t)count;
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

/* ---- The two steps ---------------------------------------------------------------------------- */

/* The vectors of one embedding, with everything they point to. */
typedef struct vectors_block {
    ims_search_vectors pub; /* first: ims_search_vectors_free casts back */
    ims_search_vector *items;
    query_set qs;
    double load_s, embed_s; /* loading the models, embedding (ims_searcher_search reports them) */
} vectors_block;

void ims_search_vectors_free(ims_search_vectors *pub)
{
    if (!pub)
        return;
    vectors_block *v = (vectors_block *)pub;
    for (size_t i = 0; v->qs.vec && v->qs.error && i < v->qs.count; i++) {
        free(v->qs.vec[i]);
        free(v->qs.error[i]);
    }
    free(v->qs.vec);
    free(v->qs.error);
    free(v->qs.status);
    free(v->qs.table);
    free(v->items);
    free(v);
}

static ims_status check_queries(const ims_search_query *queries, int64_t count64, ims_error *err)
{
    if (count64 < 0 || (count64 > 0 && !queries))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "search: %lld queries at %p", (long long)count64,
                             (const void *)queries);
    for (size_t i = 0; i < (size_t)count64; i++) {
        const ims_search_query *q = &queries[i];
        if (!q->text == !q->image)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "search: query %zu needs a text or an image, not %s", i,
                                 q->text ? "both" : "neither");
        if (q->image && q->table != IMS_INDEX_TABLE_VISUAL && q->table != IMS_INDEX_TABLE_SEMANTIC)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "search: query %zu: unknown table %d", i, (int)q->table);
    }
    return IMS_OK;
}

/* Loads the models the queries need. */
static ims_status prepare(ims_searcher *s, size_t n_text, const size_t n_image[SEARCH_TABLES], ims_error *err)
{
    ims_status st = need_config(s, err);
    if (!st && n_text)
        st = load_text(s, err);
    if (!st && n_image[IMS_INDEX_TABLE_SEMANTIC])
        st = need_semantic(s, "image queries on the semantic table", err);
    if (!st && (n_image[0] || n_image[1]))
        st = load_image(s, err);
    if (!st && n_image[IMS_INDEX_TABLE_SEMANTIC])
        st = load_class_embeddings(s, err);
    return st;
}

ims_status ims_searcher_embed(ims_searcher *s, const ims_search_query *queries, int64_t count64,
                              ims_search_vectors **out, ims_error *err)
{
    *out = NULL;
    ims_status st = check_queries(queries, count64, err);
    if (st)
        return st;
    size_t count = (size_t)count64, slots = count ? count : 1, n_text = 0, n_image[SEARCH_TABLES] = {0, 0};
    vectors_block *v = calloc(1, sizeof *v);
    if (!v)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    v->qs = (query_set){queries, count, calloc(slots, sizeof *v->qs.table), calloc(slots, sizeof *v->qs.vec),
                        calloc(slots, sizeof *v->qs.status), calloc(slots, sizeof *v->qs.error)};
    v->items = calloc(slots, sizeof *v->items);
    query_set *qs = &v->qs;
    if (!qs->table || !qs->vec || !qs->status || !qs->error || !v->items)
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < count; i++) {
        qs->table[i] = queries[i].text ? IMS_INDEX_TABLE_SEMANTIC : queries[i].table;
        if (queries[i].text && blank_text(queries[i].text))
            st = query_failed(qs, i, IMS_ERR_ARGUMENT, "%s%s", "an empty text query", "", err);
        else if (queries[i].text)
            n_text++;
        else
            n_image[qs->table[i]]++;
    }
    double t0 = ims_clock_seconds();
    if (!st)
        st = prepare(s, n_text, n_image, err);
    double t1 = ims_clock_seconds();
    if (!st)
        st = embed_texts(s, qs, n_text, err);
    if (!st)
        st = embed_images(s, qs, n_image[0] + n_image[1], err);
    v->load_s = t1 - t0;
    v->embed_s = ims_clock_seconds() - t1;
    for (size_t i = 0; !st && i < count; i++) {
        ims_index_table t = qs->table[i];
        int dim = t == IMS_INDEX_TABLE_SEMANTIC ? s->cfg->semantic_dim : s->cfg->visual_dim;
        v->items[i] = (ims_search_vector){t, qs->vec[i] ? dim : 0, qs->vec[i], qs->status[i], qs->error[i]};
    }
    v->pub.count = (int64_t)count;
    v->pub.items = v->items;
    if (st) {
        ims_search_vectors_free(&v->pub);
        return st;
    }
    *out = &v->pub;
    return IMS_OK;
}

ims_status ims_searcher_search_vectors(ims_searcher *s, const ims_search_vector *v, int64_t count64, int k,
                                       ims_search_results **out, ims_error *err)
{
    *out = NULL;
    if (k < 1 || k > IMS_KNN_MAX_K)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "search: k = %d is out of range 1..%d", k, IMS_KNN_MAX_K);
    if (count64 < 0 || (count64 > 0 && !v))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "search: %lld vectors at %p", (long long)count64, (const void *)v);
    size_t count = (size_t)count64, slots = count ? count : 1;
    for (size_t i = 0; s->cfg && i < count; i++) {
        if (v[i].table != IMS_INDEX_TABLE_VISUAL && v[i].table != IMS_INDEX_TABLE_SEMANTIC)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "search: vector %zu: unknown table %d", i, (int)v[i].table);
        int dim = v[i].table == IMS_INDEX_TABLE_SEMANTIC ? s->cfg->semantic_dim : s->cfg->visual_dim;
        if (!v[i].status && v[i].vec && v[i].dim != dim)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "search: vector %zu has %d dimensions, the %s table %d", i,
                                 v[i].dim, table_name(v[i].table), dim);
        if (!v[i].status && v[i].vec && v[i].table == IMS_INDEX_TABLE_SEMANTIC && dim == 0)
            return need_semantic(s, "semantic queries", err);
    }
    candidate_list *lists = calloc(slots, sizeof *lists);
    ims_index_table *table = calloc(slots, sizeof *table);
    ims_status *status = calloc(slots, sizeof *status);
    const char **error = calloc(slots, sizeof *error);
    ims_status st = lists && table && status && error ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < count; i++) {
        table[i] = v[i].table;
        status[i] = v[i].status ? v[i].status : v[i].vec ? IMS_OK : IMS_ERR_ARGUMENT;
        error[i] = v[i].status ? v[i].error : v[i].vec ? NULL : "no vector";
    }
    double t0 = ims_clock_seconds();
    s->table_load_s = 0;
    for (int t = 0; !st && t < SEARCH_TABLES; t++) {
        st = search_table(s, v, count, (ims_index_table)t, k, lists, err);
        if (st)
            imsi_error_prefix(err, st, "the %s table", table_name((ims_index_table)t));
    }
    if (!st)
        st = make_results(lists, table, status, error, count, out, err);
    if (!st) {
        (*out)->load_s = s->table_load_s;
        (*out)->search_s = ims_clock_seconds() - t0 - s->table_load_s;
    }
    for (size_t i = 0; lists && i < count; i++)
        free(lists[i].items);
    free(lists);
    free(table);
    free(status);
    free(error);
    return st;
}

ims_status ims_searcher_search(ims_searcher *s, const ims_search_query *queries, int64_t count, int k,
                               ims_search_results **out, ims_error *err)
{
    *out = NULL;
    if (k < 1 || k > IMS_KNN_MAX_K)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "search: k = %d is out of range 1..%d", k, IMS_KNN_MAX_K);
    ims_search_vectors *v = NULL;
    ims_status st = ims_searcher_embed(s, queries, count, &v, err);
    if (!st)
        st = ims_searcher_search_vectors(s, v->items, v->count, k, out, err);
    if (!st) {
        const vectors_block *vb = (const vectors_block *)v;
        (*out)->load_s += vb->load_s;
        (*out)->embed_s = vb->embed_s;
    }
    ims_search_vectors_free(v);
    return st;
}

ims_status ims_search_results_merge(const ims_search_results *const *parts, int64_t n, int k,
                                    ims_search_results **out, ims_error *err)
{
    *out = NULL;
    if (n < 1 || !parts || !parts[0] || k < 1 || k > IMS_KNN_MAX_K)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "merge: %lld parts, k = %d", (long long)n, k);
    size_t count = (size_t)parts[0]->count, slots = count ? count : 1;
    for (int64_t p = 1; p < n; p++)
        if (!parts[p] || parts[p]->count != parts[0]->count)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "merge: part %lld answers %lld queries, part 0 %lld",
                                 (long long)p, parts[p] ? (long long)parts[p]->count : -1LL, (long long)count);
    candidate_list *lists = calloc(slots, sizeof *lists);
    ims_index_table *table = calloc(slots, sizeof *table);
    ims_status *status = calloc(slots, sizeof *status);
    const char **error = calloc(slots, sizeof *error);
    ims_status st = lists && table && status && error ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < count; i++) {
        table[i] = parts[0]->results[i].table;
        for (int64_t p = 0; !st && p < n; p++) {
            const ims_search_result *r = &parts[p]->results[i];
            if (r->status && !status[i]) {
                status[i] = r->status;
                error[i] = r->error;
            }
            for (int j = 0; !st && j < r->count; j++) {
                const ims_search_hit *h = &r->hits[j];
                candidate c = {h->score, h->row, h->path ? h->path : "", h->chunk, h->offset};
                st = candidate_push(&lists[i], &c, err);
            }
        }
    }
    if (!st) {
        candidates_settle(lists, count, k);
        st = make_results(lists, table, status, error, count, out, err);
    }
    for (int64_t p = 0; !st && p < n; p++) { /* the parts ran side by side: the slowest of each */
        (*out)->load_s = fmax((*out)->load_s, parts[p]->load_s);
        (*out)->embed_s = fmax((*out)->embed_s, parts[p]->embed_s);
        (*out)->search_s = fmax((*out)->search_s, parts[p]->search_s);
    }
    for (size_t i = 0; lists && i < count; i++)
        free(lists[i].items);
    free(lists);
    free(table);
    free(status);
    free(error);
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
