/* models/text_embedder.c: texts -> sentence embeddings: the tokenizer and the text
 * encoder behind one call (search queries, ConSE's class names, embed-text).
 *
 * The texts are tokenized one by one, ordered by token count and encoded in
 * batches of similar lengths (little padding), then scattered back to their
 * places: the result does not depend on the order or grouping of the texts.
 */
#include "imgsearch.h"

#include "core/error.h"

#include <stdlib.h>
#include <string.h>

enum { TEXT_EMBED_BATCH = 64 };

struct ims_text_embedder {
    ims_tokenizer *tok;
    ims_text_encoder *enc;
    int max_len; /* tokens per text, [CLS] and [SEP] included */
};

ims_status ims_text_embedder_create(ims_backend *be, const ims_weights *w, ims_precision precision,
                                    ims_text_embedder **out, ims_error *err)
{
    *out = NULL;
    ims_text_embedder *e = calloc(1, sizeof *e);
    if (!e)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    /* The text encoder has no TF32 path: an image model's tf32 runs the text model in fp32. */
    if (precision == IMS_PRECISION_TF32)
        precision = IMS_PRECISION_FP32;
    ims_status st = ims_tokenizer_create_from_weights(w, &e->tok, err);
    if (!st)
        st = ims_text_encoder_create(be, w, precision, &e->enc, err);
    if (st) {
        ims_text_embedder_free(e);
        return st;
    }
    e->max_len = ims_tokenizer_max_len(e->tok);
    int enc_max = ims_text_encoder_max_seq_length(e->enc);
    if (enc_max > 0 && enc_max < e->max_len)
        e->max_len = enc_max;
    *out = e;
    return IMS_OK;
}

void ims_text_embedder_free(ims_text_embedder *e)
{
    if (!e)
        return;
    ims_text_encoder_free(e->enc);
    ims_tokenizer_free(e->tok);
    free(e);
}

int ims_text_embedder_dim(const ims_text_embedder *e) { return ims_text_encoder_dim(e->enc); }


typedef struct text_item {
    int32_t *ids; /* (max_len) */
    int count;
    size_t index;
} text_item;

static int by_length(const void *a, const void *b)
{
    const text_item *x = a, *y = b;
    if (x->count != y->count)
        return x->count < y->count ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

ims_status ims_text_embed(const ims_text_embedder *e, const char *const *texts, int64_t n64, float *out, ims_error *err)
{
    if (n64 < 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "%lld texts", (long long)n64);
    size_t n = (size_t)n64;
    if (n == 0)
        return IMS_OK;
    size_t dim = (size_t)ims_text_encoder_dim(e->enc), L = (size_t)e->max_len;
    text_item *items = calloc(n, sizeof *items);
    int32_t *all_ids = malloc(n * L * sizeof *all_ids);
    int32_t *batch_ids = malloc(TEXT_EMBED_BATCH * L * sizeof *batch_ids);
    int32_t lengths[TEXT_EMBED_BATCH];
    float *batch_out = malloc(TEXT_EMBED_BATCH * dim * sizeof *batch_out);
    ims_status st = items && all_ids && batch_ids && batch_out ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < n; i++) {
        items[i].ids = all_ids + i * L;
        items[i].index = i;
        st = ims_tokenizer_encode(e->tok, texts[i], strlen(texts[i]), items[i].ids, e->max_len, &items[i].count, err);
        if (st)
            imsi_error_prefix(err, st, "text %zu", i);
    }
    if (!st)
        qsort(items, n, sizeof *items, by_length);
    int32_t pad = ims_tokenizer_special_id(e->tok, IMS_TOKEN_PAD);
    for (size_t first = 0; !st && first < n; first += TEXT_EMBED_BATCH) {
        int b = (int)(n - first < TEXT_EMBED_BATCH ? n - first : TEXT_EMBED_BATCH);
        int t = items[first + (size_t)b - 1].count; /* the longest: sorted */
        for (int i = 0; i < b; i++) {
            const text_item *it = &items[first + (size_t)i];
            lengths[i] = it->count;
            for (int j = 0; j < t; j++)
                batch_ids[(size_t)i * (size_t)t + (size_t)j] = j < it->count ? it->ids[j] : (pad >= 0 ? pad : 0);
        }
        st = ims_text_encoder_encode(e->enc, batch_ids, lengths, b, t, batch_out, err);
        for (int i = 0; !st && i < b; i++)
            memcpy(out + items[first + (size_t)i].index * dim, batch_out + (size_t)i * dim, dim * sizeof *out);
    }
    free(items);
    free(all_ids);
    free(batch_ids);
    free(batch_out);
    return st;
}
