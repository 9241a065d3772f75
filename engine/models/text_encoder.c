/* text_encoder.c: a BERT sentence encoder (all-MiniLM-L6-v2 and its family).
 *
 * The graph only: every computation is an imsi_op_* call, so the same code runs
 * on the CPU and CUDA backends. Hyper-parameters come from the weights file's
 * bert.* metadata (docs/FORMAT.md); the weights are uploaded once at creation
 * (matrices in the activation dtype, everything else f32).
 *
 * One forward pass over a bucket of `rows` sequences padded to T tokens
 * (n = rows x T tokens, H hidden, I intermediate):
 *   x (n, H)      = LayerNorm(word[id] + pos[t] + type[0])
 *   per layer:
 *     qkv (n, 3H) = x . Wqkv^T + bqkv
 *     ctx (n, H)  = softmax(Q K^T / sqrt(D) over real keys) V, per head
 *     x (n, H)    = LayerNorm(ctx . Wo^T + bo + x)
 *     mid (n, I)  = GELU(x . Wi^T + bi)
 *     x (n, H)    = LayerNorm(mid . Wout^T + bout + x)
 *   emb (rows, H) = mean (or CLS) pooling over real tokens, L2-normalized
 *
 * Bucketing: a batch is sorted by length (longest first) and cut into buckets
 * of at most bucket_tokens padded tokens (and of similar lengths: bucket_rows),
 * each padded only to its own longest sequence; results are scattered back to
 * the caller's order. Padding never
 * changes a real token's result (keys past a sequence's length are masked and
 * every other op works per token), so an embedding does not depend on its batch.
 */
#include "models/text_encoder.h"
#include "models/weights_upload.h"

#include "backend/backend.h"
#include "core/error.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENC_DEFAULT_BUCKET_TOKENS 8192
#define ENC_BUCKET_MIN_TOKENS 256 /* below this a GEMM's rows cost more than padding */

typedef struct enc_layer {
    imsi_tensor qkv_w, qkv_b; /* (3H, H) act, (3H) f32 */
    imsi_tensor ao_w, ao_b;   /* (H, H), (H) */
    imsi_tensor ln1_g, ln1_b; /* (H), (H) */
    imsi_tensor in_w, in_b;   /* (I, H), (I) */
    imsi_tensor out_w, out_b; /* (H, I), (H) */
    imsi_tensor ln2_g, ln2_b; /* (H), (H) */
} enc_layer;

/* A device buffer of cap elements, viewed with the shape of each bucket. */
typedef struct enc_buf {
    imsi_tensor t; /* 1-D (cap) */
    int64_t cap;
} enc_buf;

struct ims_text_encoder {
    ims_backend *be;
    ims_precision precision;
    ims_dtype act; /* activations and weight matrices */
    int vocab, h, layers, heads, inter, max_pos, type_vocab, max_seq;
    double eps;
    imsi_pooling pooling;
    int normalize;
    int bucket_tokens;

    imsi_tensor word, pos, type, emb_g, emb_b; /* (V, H), (P, H), (Y, H), (H), (H) f32 */
    enc_layer *layer;                         /* (layers) */

    /* Workspace, grown on demand. */
    enc_buf ids, lengths;                        /* i32 (tokens), (rows) */
    enc_buf x, qkv, ctx, tmp, mid, scores;       /* act */
    enc_buf pooled;                              /* f32 (rows x H) */
    int32_t *host_ids, *host_lengths, *order;    /* host staging */
    float *host_out;
    int64_t host_tokens, host_rows;
};

/* ---- Weights -------------------------------------------------------------------- */

static ims_status meta_int(const ims_weights *w, const char *key, int lo, int hi, int *out, ims_error *err)
{
    int64_t v = 0;
    ims_status st = ims_weights_get_i64(w, key, &v, err);
    if (st)
        return st;
    if (v < lo || v > hi)
        return ims_error_set(err, IMS_ERR_FORMAT, "metadata %s = %lld outside %d..%d", key, (long long)v, lo, hi);
    *out = (int)v;
    return IMS_OK;
}

static int str_is(ims_str s, const char *text) { return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0; }

static ims_status read_config(ims_text_encoder *e, const ims_weights *w, ims_error *err)
{
    ims_str arch, act, pooling;
    ims_status st = ims_weights_get_string(w, "architecture", &arch, err);
    if (!st && !str_is(arch, "bert"))
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "architecture '%.*s' is not a BERT text encoder", (int)arch.len,
                           arch.ptr);
    if (!st) st = meta_int(w, "bert.vocab_size", 1, 1 << 24, &e->vocab, err);
    if (!st) st = meta_int(w, "bert.hidden_size", 1, 1 << 16, &e->h, err);
    if (!st) st = meta_int(w, "bert.num_layers", 1, 1024, &e->layers, err);
    if (!st) st = meta_int(w, "bert.num_heads", 1, 1024, &e->heads, err);
    if (!st) st = meta_int(w, "bert.intermediate_size", 1, 1 << 18, &e->inter, err);
    if (!st) st = meta_int(w, "bert.max_position_embeddings", 1, 1 << 16, &e->max_pos, err);
    if (!st) st = meta_int(w, "bert.type_vocab_size", 1, 1 << 16, &e->type_vocab, err);
    if (!st) st = meta_int(w, "bert.max_seq_length", 1, 1 << 16, &e->max_seq, err);
    if (!st) st = meta_int(w, "bert.normalize", 0, 1, &e->normalize, err);
    if (!st) st = ims_weights_get_f64(w, "bert.layer_norm_eps", &e->eps, err);
    if (!st) st = ims_weights_get_string(w, "bert.hidden_act", &act, err);
    if (!st) st = ims_weights_get_string(w, "bert.pooling", &pooling, err);
    if (st)
        return st;
    if (e->h % e->heads != 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "bert.hidden_size %d is not a multiple of bert.num_heads %d", e->h,
                             e->heads);
    if (e->max_seq > e->max_pos)
        return ims_error_set(err, IMS_ERR_FORMAT, "bert.max_seq_length %d exceeds bert.max_position_embeddings %d",
                             e->max_seq, e->max_pos);
    if (!(e->eps > 0.0 && e->eps < 1.0))
        return ims_error_set(err, IMS_ERR_FORMAT, "bert.layer_norm_eps %g outside (0, 1)", e->eps);
    if (!str_is(act, "gelu"))
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "bert.hidden_act '%.*s' (only 'gelu', exact erf)", (int)act.len,
                             act.ptr);
    if (str_is(pooling, "mean"))
        e->pooling = IMS_POOLING_MEAN;
    else if (str_is(pooling, "cls"))
        e->pooling = IMS_POOLING_CLS;
    else
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "bert.pooling '%.*s' (mean or cls)", (int)pooling.len,
                             pooling.ptr);
    return IMS_OK;
}

/* Uploads the file tensor `name` of shape (rows) or (rows, cols) as dtype. */
static ims_status upload_tensor(ims_text_encoder *e, const ims_weights *w, const char *name, int64_t rows,
                                int64_t cols, ims_dtype dtype, imsi_tensor *out, ims_error *err)
{
    const ims_weight_tensor *wt = ims_weights_tensor_find(w, name);
    if (!wt)
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s' is missing", name);
    int ndim = cols ? 2 : 1;
    if (wt->ndim != ndim || wt->shape[0] != rows || (cols && wt->shape[1] != cols))
        return ims_error_set(err, IMS_ERR_FORMAT, "tensor '%s': expected (%lld%s%lld), got %d dims (%lld, %lld)", name,
                             (long long)rows, cols ? ", " : "", cols ? (long long)cols : 0LL, wt->ndim,
                             (long long)wt->shape[0], wt->ndim > 1 ? (long long)wt->shape[1] : 1LL);
    return imsi_weights_upload(e->be, wt, dtype, out, err);
}

static ims_status upload_layer(ims_text_encoder *e, const ims_weights *w, int l, enc_layer *L, ims_error *err)
{
    char n[160];
    int64_t h = e->h, in = e->inter;
    ims_dtype a = e->act, f = IMS_DTYPE_F32;
    struct {
        const char *suffix;
        int64_t rows, cols;
        ims_dtype dtype;
        imsi_tensor *dst;
    } items[] = {
        {"attention.qkv.weight", 3 * h, h, a, &L->qkv_w},
        {"attention.qkv.bias", 3 * h, 0, f, &L->qkv_b},
        {"attention.output.dense.weight", h, h, a, &L->ao_w},
        {"attention.output.dense.bias", h, 0, f, &L->ao_b},
        {"attention.output.LayerNorm.weight", h, 0, f, &L->ln1_g},
        {"attention.output.LayerNorm.bias", h, 0, f, &L->ln1_b},
        {"intermediate.dense.weight", in, h, a, &L->in_w},
        {"intermediate.dense.bias", in, 0, f, &L->in_b},
        {"output.dense.weight", h, in, a, &L->out_w},
        {"output.dense.bias", h, 0, f, &L->out_b},
        {"output.LayerNorm.weight", h, 0, f, &L->ln2_g},
        {"output.LayerNorm.bias", h, 0, f, &L->ln2_b},
    };
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        snprintf(n, sizeof n, "encoder.layer.%d.%s", l, items[i].suffix);
        ims_status st = upload_tensor(e, w, n, items[i].rows, items[i].cols, items[i].dtype, items[i].dst, err);
        if (st)
            return st;
    }
    return IMS_OK;
}

static ims_status upload_weights(ims_text_encoder *e, const ims_weights *w, ims_error *err)
{
    int64_t h = e->h;
    ims_dtype f = IMS_DTYPE_F32;
    ims_status st = upload_tensor(e, w, "embeddings.word_embeddings.weight", e->vocab, h, f, &e->word, err);
    if (!st) st = upload_tensor(e, w, "embeddings.position_embeddings.weight", e->max_pos, h, f, &e->pos, err);
    if (!st) st = upload_tensor(e, w, "embeddings.token_type_embeddings.weight", e->type_vocab, h, f, &e->type, err);
    if (!st) st = upload_tensor(e, w, "embeddings.LayerNorm.weight", h, 0, f, &e->emb_g, err);
    if (!st) st = upload_tensor(e, w, "embeddings.LayerNorm.bias", h, 0, f, &e->emb_b, err);
    for (int l = 0; l < e->layers && !st; l++)
        st = upload_layer(e, w, l, &e->layer[l], err);
    return st;
}

/* ---- Workspace -------------------------------------------------------------------- */

static ims_status buf_reserve(ims_backend *be, enc_buf *b, ims_dtype dtype, int64_t need, ims_error *err)
{
    if (need <= b->cap)
        return IMS_OK;
    imsi_tensor_free(&b->t);
    b->cap = 0;
    ims_status st = imsi_tensor_alloc(be, dtype, 1, (int64_t[]){need}, &b->t, err);
    if (!st)
        b->cap = need;
    return st;
}

static ims_status reserve_device(ims_text_encoder *e, int64_t rows, int64_t t, ims_error *err)
{
    int64_t n = rows * t;
    ims_backend *be = e->be;
    ims_status st = buf_reserve(be, &e->ids, IMS_DTYPE_I32, n, err);
    if (!st) st = buf_reserve(be, &e->lengths, IMS_DTYPE_I32, rows, err);
    if (!st) st = buf_reserve(be, &e->x, e->act, n * e->h, err);
    if (!st) st = buf_reserve(be, &e->qkv, e->act, n * 3 * e->h, err);
    if (!st) st = buf_reserve(be, &e->ctx, e->act, n * e->h, err);
    if (!st) st = buf_reserve(be, &e->tmp, e->act, n * e->h, err);
    if (!st) st = buf_reserve(be, &e->mid, e->act, n * e->inter, err);
    if (!st) st = buf_reserve(be, &e->scores, e->act, rows * e->heads * t * t, err);
    if (!st) st = buf_reserve(be, &e->pooled, IMS_DTYPE_F32, rows * e->h, err);
    return st;
}

static ims_status reserve_host(ims_text_encoder *e, int64_t rows, int64_t tokens, ims_error *err)
{
    if (tokens > e->host_tokens) {
        free(e->host_ids);
        e->host_tokens = 0;
        if (!(e->host_ids = malloc((size_t)tokens * sizeof *e->host_ids)))
            return ims_error_set(err, IMS_ERR_NOMEM, "text encoder: out of host memory for %lld token ids",
                                 (long long)tokens);
        e->host_tokens = tokens;
    }
    if (rows > e->host_rows) {
        free(e->host_lengths), free(e->order), free(e->host_out);
        e->host_rows = 0;
        e->host_lengths = malloc((size_t)rows * sizeof *e->host_lengths);
        e->order = malloc((size_t)rows * sizeof *e->order);
        e->host_out = malloc((size_t)rows * e->h * sizeof *e->host_out);
        if (!e->host_lengths || !e->order || !e->host_out)
            return ims_error_set(err, IMS_ERR_NOMEM, "text encoder: out of host memory for %lld rows", (long long)rows);
        e->host_rows = rows;
    }
    return IMS_OK;
}

/* ---- The forward pass ------------------------------------------------------------ */

/* y (m, n) = x (m, k) . w (n, k)^T in the activation dtype (the op takes it
 * from the tensors); the biases are added by the next op. */
static ims_status matmul(ims_text_encoder *e, const imsi_tensor *x, const imsi_tensor *w, imsi_tensor *y,
                         ims_error *err)
{
    return imsi_op_linear(e->be, x, w, NULL, y, err);
}

static ims_status run_layer(ims_text_encoder *e, const enc_layer *L, int64_t rows, int64_t t, ims_error *err)
{
    int64_t n = rows * t, h = e->h;
    imsi_tensor x = imsi_tensor_view(&e->x.t, 2, n, h, 1, 1);          /* (n, H) */
    imsi_tensor qkv = imsi_tensor_view(&e->qkv.t, 2, n, 3 * h, 1, 1);  /* (n, 3H) */
    imsi_tensor qkv3 = imsi_tensor_view(&e->qkv.t, 3, rows, t, 3 * h, 1); /* (rows, T, 3H) */
    imsi_tensor ctx3 = imsi_tensor_view(&e->ctx.t, 3, rows, t, h, 1);  /* (rows, T, H) */
    imsi_tensor ctx = imsi_tensor_view(&e->ctx.t, 2, n, h, 1, 1);      /* (n, H) */
    imsi_tensor tmp = imsi_tensor_view(&e->tmp.t, 2, n, h, 1, 1);      /* (n, H) */
    imsi_tensor mid = imsi_tensor_view(&e->mid.t, 2, n, e->inter, 1, 1); /* (n, I) */
    imsi_tensor scores = imsi_tensor_view(&e->scores.t, 4, rows, e->heads, t, t); /* (rows, heads, T, T) */
    imsi_tensor lengths = imsi_tensor_view(&e->lengths.t, 1, rows, 1, 1, 1);     /* (rows) */

    ims_status st = matmul(e, &x, &L->qkv_w, &qkv, err);
    if (!st) st = imsi_op_bias_act(e->be, &qkv, &L->qkv_b, IMS_ACT_NONE, &qkv, err);
    if (!st) st = imsi_op_attention(e->be, &qkv3, &lengths, e->heads, &scores, &ctx3, err);
    if (!st) st = matmul(e, &ctx, &L->ao_w, &tmp, err);
    if (!st) st = imsi_op_add_layernorm(e->be, &tmp, &L->ao_b, &x, &L->ln1_g, &L->ln1_b, e->eps, &x, err);
    if (!st) st = matmul(e, &x, &L->in_w, &mid, err);
    if (!st) st = imsi_op_bias_act(e->be, &mid, &L->in_b, IMS_ACT_GELU, &mid, err);
    if (!st) st = matmul(e, &mid, &L->out_w, &tmp, err);
    if (!st) st = imsi_op_add_layernorm(e->be, &tmp, &L->out_b, &x, &L->ln2_g, &L->ln2_b, e->eps, &x, err);
    return st;
}

/* Pools x of the current bucket into pooled (rows, H) and downloads it to out. */
static ims_status pool_download(ims_text_encoder *e, int64_t rows, int64_t t, imsi_pooling pooling, int normalize,
                                float *out, ims_error *err)
{
    imsi_tensor x3 = imsi_tensor_view(&e->x.t, 3, rows, t, e->h, 1);
    imsi_tensor lengths = imsi_tensor_view(&e->lengths.t, 1, rows, 1, 1, 1);
    imsi_tensor pooled = imsi_tensor_view(&e->pooled.t, 2, rows, e->h, 1, 1);
    ims_status st = imsi_op_pool_normalize(e->be, &x3, &lengths, pooling, normalize, &pooled, err);
    if (!st)
        st = imsi_backend_download(e->be, out, (size_t)rows * e->h * sizeof *out, &pooled, err);
    return st;
}

/* Runs the bucket whose ids (rows, T) and lengths (rows) are in host_ids /
 * host_lengths: out (rows, H) gets the embeddings, or (layer_means) out
 * (rows, layers + 1, H) the mean of every hidden state. */
static ims_status run_bucket(ims_text_encoder *e, int64_t rows, int64_t t, float *out, int layer_means,
                             ims_error *err)
{
    ims_status st = reserve_device(e, rows, t, err);
    if (st)
        return st;
    imsi_tensor ids = imsi_tensor_view(&e->ids.t, 2, rows, t, 1, 1);
    imsi_tensor lengths = imsi_tensor_view(&e->lengths.t, 1, rows, 1, 1, 1);
    imsi_tensor x3 = imsi_tensor_view(&e->x.t, 3, rows, t, e->h, 1);
    st = imsi_backend_upload(e->be, &ids, e->host_ids, (size_t)(rows * t) * sizeof(int32_t), err);
    if (!st) st = imsi_backend_upload(e->be, &lengths, e->host_lengths, (size_t)rows * sizeof(int32_t), err);
    if (!st) st = imsi_op_embed_layernorm(e->be, &ids, &e->word, &e->pos, &e->type, &e->emb_g, &e->emb_b, e->eps,
                                          &x3, err);
    int64_t stride = (int64_t)e->h * (e->layers + 1);
    float *step = layer_means ? malloc((size_t)rows * e->h * sizeof *step) : NULL;
    if (layer_means && !step)
        return ims_error_set(err, IMS_ERR_NOMEM, "text encoder: out of memory for layer means");
    for (int l = 0; l <= e->layers && !st; l++) {
        if (l > 0)
            st = run_layer(e, &e->layer[l - 1], rows, t, err);
        if (!st && layer_means) {
            st = pool_download(e, rows, t, IMS_POOLING_MEAN, 0, step, err);
            for (int64_t r = 0; r < rows && !st; r++)
                memcpy(out + r * stride + (int64_t)l * e->h, step + r * e->h, (size_t)e->h * sizeof *out);
        }
    }
    free(step);
    if (!st && !layer_means)
        st = pool_download(e, rows, t, e->pooling, e->normalize, out, err);
    return st;
}

/* Checks the caller's batch: sizes, lengths and the ids of real tokens. */
static ims_status check_batch(const ims_text_encoder *e, const int32_t *ids, const int32_t *lengths, int b, int t,
                              ims_error *err)
{
    if (b < 1 || t < 1 || !ids || !lengths)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "text encoder: batch (%d, %d) is empty", b, t);
    for (int i = 0; i < b; i++) {
        if (lengths[i] < 1 || lengths[i] > t || lengths[i] > e->max_seq)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "text encoder: lengths[%d] = %d outside 1..%d", i, lengths[i],
                                 t < e->max_seq ? t : e->max_seq);
        for (int j = 0; j < lengths[i]; j++) {
            int32_t id = ids[(size_t)i * t + j];
            if (id < 0 || id >= e->vocab)
                return ims_error_set(err, IMS_ERR_ARGUMENT, "text encoder: ids[%d][%d] = %d outside the vocabulary 0..%d",
                                     i, j, id, e->vocab - 1);
        }
    }
    return IMS_OK;
}

/* Packs rows order[first .. first + rows) of ids into host_ids (rows, tb). */
static void pack_bucket(ims_text_encoder *e, const int32_t *ids, const int32_t *lengths, int t, int first, int rows,
                        int tb)
{
    for (int r = 0; r < rows; r++) {
        int src = e->order[first + r], len = lengths[src];
        int32_t *dst = e->host_ids + (size_t)r * tb;
        memcpy(dst, ids + (size_t)src * t, (size_t)len * sizeof *dst);
        memset(dst + len, 0, (size_t)(tb - len) * sizeof *dst); /* [PAD]; masked anyway */
        e->host_lengths[r] = len;
    }
}

static void sort_by_length(int32_t *order, const int32_t *lengths, int b)
{
    /* insertion sort keyed on lengths: no global state, stable, and batches
     * are at most a few thousand rows */
    for (int i = 0; i < b; i++)
        order[i] = i;
    for (int i = 1; i < b; i++) {
        int32_t v = order[i];
        int j = i - 1;
        while (j >= 0 && lengths[order[j]] < lengths[v]) {
            order[j + 1] = order[j];
            j--;
        }
        order[j + 1] = v;
    }
}

/* How many of the sorted rows (longest first, the first tb tokens long) one
 * bucket takes: as many as fit in bucket_tokens padded tokens, but once the
 * bucket holds ENC_BUCKET_MIN_TOKENS a row shorter than 4/5 of tb starts the
 * next one, so padding stays under a quarter of a large bucket (a batch of
 * 3- to 30-token sentences padded to one length did 2.3x the work). */
static int bucket_rows(const int32_t *order, const int32_t *lengths, int left, int tb, int64_t bucket_tokens)
{
    int64_t cap = bucket_tokens / tb;
    int rows = 1;
    while (rows < left && rows < cap) {
        int len = lengths[order[rows]];
        if ((int64_t)rows * tb >= ENC_BUCKET_MIN_TOKENS && len * 5 < tb * 4)
            break;
        rows++;
    }
    return rows;
}

ims_status ims_text_encoder_encode(ims_text_encoder *e, const int32_t *ids, const int32_t *lengths, int64_t b64,
                                   int t, float *out, ims_error *err)
{
    if (b64 < 1 || b64 > INT_MAX)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "text encoder: batch %lld outside 1..%d", (long long)b64, INT_MAX);
    int b = (int)b64;
    ims_status st = check_batch(e, ids, lengths, b, t, err);
    if (st)
        return st;
    int longest = 0;
    for (int i = 0; i < b; i++)
        longest = lengths[i] > longest ? lengths[i] : longest;
    int64_t bucket_tokens = e->bucket_tokens > longest ? e->bucket_tokens : longest;
    st = reserve_host(e, b, bucket_tokens, err);
    if (st)
        return st;
    sort_by_length(e->order, lengths, b);
    for (int first = 0; first < b && !st;) {
        int tb = lengths[e->order[first]]; /* the bucket's longest */
        int rows = bucket_rows(e->order + first, lengths, b - first, tb, bucket_tokens);
        pack_bucket(e, ids, lengths, t, first, rows, tb);
        st = run_bucket(e, rows, tb, e->host_out, 0, err);
        for (int r = 0; r < rows && !st; r++)
            memcpy(out + (size_t)e->order[first + r] * e->h, e->host_out + (size_t)r * e->h,
                   (size_t)e->h * sizeof *out);
        first += rows;
    }
    return st;
}

ims_status imsi_text_encoder_layer_means(ims_text_encoder *e, const int32_t *ids, const int32_t *lengths, int b,
                                         int t, float *out, ims_error *err)
{
    ims_status st = check_batch(e, ids, lengths, b, t, err);
    if (!st)
        st = reserve_host(e, b, (int64_t)b * t, err);
    if (st)
        return st;
    for (int i = 0; i < b; i++)
        e->order[i] = i;
    pack_bucket(e, ids, lengths, t, 0, b, t);
    return run_bucket(e, b, t, out, 1, err);
}

/* ---- Lifetime ----------------------------------------------------------------------- */

static void free_layer(enc_layer *L)
{
    imsi_tensor *ts[] = {&L->qkv_w, &L->qkv_b, &L->ao_w, &L->ao_b, &L->ln1_g, &L->ln1_b,
                        &L->in_w,  &L->in_b,  &L->out_w, &L->out_b, &L->ln2_g, &L->ln2_b};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        imsi_tensor_free(ts[i]);
}

void ims_text_encoder_free(ims_text_encoder *e)
{
    if (!e)
        return;
    for (int l = 0; e->layer && l < e->layers; l++)
        free_layer(&e->layer[l]);
    free(e->layer);
    imsi_tensor *ts[] = {&e->word, &e->pos, &e->type, &e->emb_g, &e->emb_b};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
        imsi_tensor_free(ts[i]);
    enc_buf *bufs[] = {&e->ids, &e->lengths, &e->x, &e->qkv, &e->ctx, &e->tmp, &e->mid, &e->scores, &e->pooled};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        imsi_tensor_free(&bufs[i]->t);
    free(e->host_ids), free(e->host_lengths), free(e->order), free(e->host_out);
    free(e);
}

ims_status ims_text_encoder_create(ims_backend *be, const ims_weights *w, ims_precision precision,
                                   ims_text_encoder **out, ims_error *err)
{
    *out = NULL;
    if (precision != IMS_PRECISION_FP32 && precision != IMS_PRECISION_FP16)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "text encoder: unknown precision %d", (int)precision);
    ims_text_encoder *e = calloc(1, sizeof *e);
    if (!e)
        return ims_error_set(err, IMS_ERR_NOMEM, "text encoder: out of memory");
    e->be = be;
    e->precision = precision;
    e->act = precision == IMS_PRECISION_FP16 ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
    e->bucket_tokens = ENC_DEFAULT_BUCKET_TOKENS;
    ims_status st = read_config(e, w, err);
    if (!st && !(e->layer = calloc((size_t)e->layers, sizeof *e->layer)))
        st = ims_error_set(err, IMS_ERR_NOMEM, "text encoder: out of memory for %d layers", e->layers);
    if (!st)
        st = upload_weights(e, w, err);
    if (st) {
        ims_text_encoder_free(e);
        return imsi_error_prefix(err, st, "text encoder");
    }
    *out = e;
    return IMS_OK;
}

int ims_text_encoder_dim(const ims_text_encoder *e) { return e->h; }
int ims_text_encoder_max_seq_length(const ims_text_encoder *e) { return e->max_seq; }
int imsi_text_encoder_layers(const ims_text_encoder *e) { return e->layers; }

void imsi_text_encoder_set_bucket_tokens(ims_text_encoder *e, int tokens) { e->bucket_tokens = tokens > 0 ? tokens : 1; }
