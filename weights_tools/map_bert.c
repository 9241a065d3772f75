/* map_bert.c: a Hugging Face / sentence-transformers BERT model directory ->
 * the engine's BERT weights.
 *
 * The hyper-parameters, pooling, max_seq_length and vocabulary come from the
 * directory (hf_model_dir.h); the weights from its model.safetensors or
 * pytorch_model.bin, with or without a "bert." prefix. Query, key and value
 * are fused into one (3H, H) matrix per layer (one GEMM instead of three);
 * everything else keeps its Hugging Face name. Weight matrices take the
 * requested dtype; biases and LayerNorm parameters stay f32. position_ids and
 * the pooler (unused by sentence embeddings) are dropped.
 */
#include "convert.h"
#include "hf_model_dir.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bert_source {
    const ckpt *c;
    const char *prefix; /* "" or "bert." */
    char missing[IMS_ERROR_MSG_MAX], misshaped[IMS_ERROR_MSG_MAX];
    size_t missing_count, misshaped_count;
} bert_source;

static void list_add(char *list, size_t *count, const char *text)
{
    if ((*count)++ < 10) {
        size_t used = strlen(list);
        snprintf(list + used, IMS_ERROR_MSG_MAX - used, "%s%s", used ? ", " : "", text);
    }
}

/* Finds prefix + name with the given 1-D or 2-D shape; records what is wrong. */
static const ckpt_tensor *find(bert_source *s, const char *name, int64_t rows, int64_t cols)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", s->prefix, name);
    const ckpt_tensor *t = imsi_ckpt_find(s->c, full);
    if (!t) {
        list_add(s->missing, &s->missing_count, full);
        return NULL;
    }
    int ndim = cols ? 2 : 1;
    if (t->ndim != ndim || t->shape[0] != rows || (cols && t->shape[1] != cols) || t->dtype == CKPT_BOOL) {
        char text[300];
        snprintf(text, sizeof text, "%s (expected %lld%s%.0lld)", full, (long long)rows, cols ? " x " : "",
                 (long long)cols);
        list_add(s->misshaped, &s->misshaped_count, text);
        return NULL;
    }
    return t;
}

/* Copies tensors (each (rows_i, cols)) one after another as one float tensor. */
static ims_status add_stacked(imsi_weights_writer *wr, const char *name, ims_dtype dtype, const ckpt_tensor **parts,
                              int n_parts, ims_error *err)
{
    int64_t rows = 0, cols = parts[0]->ndim == 2 ? parts[0]->shape[1] : 0;
    for (int i = 0; i < n_parts; i++)
        rows += parts[i]->shape[0];
    size_t n = (size_t)rows * (size_t)(cols ? cols : 1);
    float *v = malloc(n * sizeof *v);
    if (!v)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for '%s'", name);
    size_t at = 0;
    for (int i = 0; i < n_parts; i++) {
        imsi_ckpt_tensor_read_f32(parts[i], v + at);
        at += (size_t)imsi_ckpt_tensor_numel(parts[i]);
    }
    return cols ? imsi_weights_writer_add_floats(wr, name, dtype, 2, (int64_t[]){rows, cols}, v, err)
                : imsi_weights_writer_add_floats(wr, name, dtype, 1, (int64_t[]){rows}, v, err);
}

static ims_status add_one(imsi_weights_writer *wr, const char *name, ims_dtype dtype, const ckpt_tensor *t,
                          ims_error *err)
{
    return add_stacked(wr, name, dtype, &t, 1, err);
}

/* name and its .weight (rows, cols) + .bias (rows) */
static ims_status add_linear(bert_source *s, imsi_weights_writer *wr, const char *name, int64_t rows, int64_t cols,
                             ims_dtype dtype, ims_error *err)
{
    char w[200], b[200];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    const ckpt_tensor *tw = find(s, w, rows, cols), *tb = find(s, b, rows, 0);
    if (!tw || !tb)
        return IMS_OK; /* reported together after the walk */
    ims_status st = add_one(wr, w, dtype, tw, err);
    return st ? st : add_one(wr, b, IMS_DTYPE_F32, tb, err);
}

static ims_status add_layer_norm(bert_source *s, imsi_weights_writer *wr, const char *name, int64_t h, ims_error *err)
{
    return add_linear(s, wr, name, h, 0, IMS_DTYPE_F32, err);
}

static ims_status add_tensors(bert_source *s, const hf_bert_config *cfg, ims_dtype dtype, imsi_weights_writer *wr,
                              ims_error *err)
{
    int64_t h = cfg->hidden_size, inter = cfg->intermediate_size;
    const char *emb[3] = {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                          "embeddings.token_type_embeddings.weight"};
    int64_t emb_rows[3] = {cfg->vocab_size, cfg->max_position_embeddings, cfg->type_vocab_size};
    ims_status st = IMS_OK;
    for (int i = 0; i < 3 && !st; i++) {
        const ckpt_tensor *t = find(s, emb[i], emb_rows[i], h);
        if (t)
            st = add_one(wr, emb[i], dtype, t, err);
    }
    if (!st)
        st = add_layer_norm(s, wr, "embeddings.LayerNorm", h, err);
    for (int l = 0; l < cfg->num_layers && !st; l++) {
        char name[200], base[64];
        snprintf(base, sizeof base, "encoder.layer.%d.", l);
        const ckpt_tensor *w[3], *b[3];
        const char *qkv[3] = {"query", "key", "value"};
        int found = 1;
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "%sattention.self.%s.weight", base, qkv[i]);
            w[i] = find(s, name, h, h);
            snprintf(name, sizeof name, "%sattention.self.%s.bias", base, qkv[i]);
            b[i] = find(s, name, h, 0);
            found &= w[i] && b[i];
        }
        if (found) {
            snprintf(name, sizeof name, "%sattention.qkv.weight", base);
            st = add_stacked(wr, name, dtype, w, 3, err);
            snprintf(name, sizeof name, "%sattention.qkv.bias", base);
            if (!st)
                st = add_stacked(wr, name, IMS_DTYPE_F32, b, 3, err);
        }
        snprintf(name, sizeof name, "%sattention.output.dense", base);
        if (!st)
            st = add_linear(s, wr, name, h, h, dtype, err);
        snprintf(name, sizeof name, "%sattention.output.LayerNorm", base);
        if (!st)
            st = add_layer_norm(s, wr, name, h, err);
        snprintf(name, sizeof name, "%sintermediate.dense", base);
        if (!st)
            st = add_linear(s, wr, name, inter, h, dtype, err);
        snprintf(name, sizeof name, "%soutput.dense", base);
        if (!st)
            st = add_linear(s, wr, name, h, inter, dtype, err);
        snprintf(name, sizeof name, "%soutput.LayerNorm", base);
        if (!st)
            st = add_layer_norm(s, wr, name, h, err);
    }
    return st;
}

/* Keys a BertModel checkpoint may carry that sentence embeddings do not use. */
static int is_ignored_key(const char *key)
{
    return strstr(key, "embeddings.position_ids") != NULL || strstr(key, "pooler.") != NULL;
}

/* Every key must be one the mapper used or an ignored one: the counts tell. */
static ims_status check_unexpected(const bert_source *s, const hf_bert_config *cfg, size_t *ignored, ims_error *err)
{
    size_t expected = 5 + (size_t)cfg->num_layers * 16, found = 0;
    char list[IMS_ERROR_MSG_MAX] = "";
    size_t listed = 0;
    *ignored = 0;
    for (size_t i = 0; i < s->c->count; i++) {
        const char *key = s->c->tensors[i].name;
        size_t plen = strlen(s->prefix);
        int layer = -1;
        char rest[200];
        if (is_ignored_key(key)) {
            (*ignored)++;
        } else if (strncmp(key, s->prefix, plen) != 0) {
            list_add(list, &listed, key);
        } else if (!strncmp(key + plen, "embeddings.", 11) ||
                   (sscanf(key + plen, "encoder.layer.%d.%199s", &layer, rest) == 2 && layer >= 0 &&
                    layer < cfg->num_layers)) {
            found++;
        } else {
            list_add(list, &listed, key);
        }
    }
    if (listed || found != expected)
        return ims_error_set(err, IMS_ERR_FORMAT, "unexpected keys for a %d-layer BERT: %s%s", cfg->num_layers,
                             listed ? list : "(other embedding or layer keys)",
                             listed > 10 ? " ..." : "");
    return IMS_OK;
}

static int vocab_id(const hf_model_dir *d, const char *token)
{
    for (size_t i = 0; i < d->vocab_count; i++)
        if (strcmp(d->vocab[i], token) == 0)
            return (int)i;
    return -1;
}

static ims_status add_metadata(const hf_model_dir *d, const ims_convert_options *o, imsi_weights_writer *wr,
                               ims_error *err)
{
    const hf_bert_config *c = &d->config;
    const char *special[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    const char *keys[5] = {"tokenizer.pad_id", "tokenizer.unk_id", "tokenizer.cls_id", "tokenizer.sep_id",
                           "tokenizer.mask_id"};
    ims_status st = imsi_weights_writer_add_string(wr, "architecture", "bert", err);
    if (!st) st = imsi_weights_writer_add_string(wr, "name", o->source ? o->source : "BERT sentence encoder", err);
    if (!st) st = imsi_weights_writer_add_string(wr, "converter", "imgsearch convert " IMS_VERSION_STRING, err);
    if (!st && o->source) st = imsi_weights_writer_add_string(wr, "source", o->source, err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "bert.vocab_size", c->vocab_size, err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "bert.hidden_size", c->hidden_size, err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "bert.num_layers", c->num_layers, err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "bert.num_heads", c->num_heads, err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "bert.intermediate_size", c->intermediate_size, err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "bert.max_position_embeddings", c->max_position_embeddings, err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "bert.type_vocab_size", c->type_vocab_size, err);
    if (!st) st = imsi_weights_writer_add_f64(wr, "bert.layer_norm_eps", c->layer_norm_eps, err);
    if (!st) st = imsi_weights_writer_add_string(wr, "bert.hidden_act", "gelu", err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "bert.qkv_fused", 1, err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "bert.max_seq_length", c->max_seq_length, err);
    if (!st) st = imsi_weights_writer_add_string(wr, "bert.pooling", imsi_hf_pooling_name(c->pooling), err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "bert.normalize", c->normalize, err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "tokenizer.do_lower_case", c->do_lower_case, err);
    for (int i = 0; i < 5 && !st; i++) {
        int id = vocab_id(d, special[i]);
        if (id < 0)
            st = ims_error_set(err, IMS_ERR_FORMAT, "vocab.txt has no %s token", special[i]);
        else
            st = imsi_weights_writer_add_i64(wr, keys[i], id, err);
    }
    if (!st)
        st = imsi_weights_writer_add_string_array(wr, "tokenizer.vocab", (const char *const *)d->vocab, d->vocab_count,
                                                  err);
    return st;
}

ims_status imsi_convert_model_dir(const char *dir, const char *output, const ims_convert_options *o, ims_convert_report *report,
                                  ims_error *err)
{
    if (o->arch != IMS_CONVERT_ARCH_AUTO && o->arch != IMS_CONVERT_ARCH_BERT)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "'%s' is a model directory: only --arch bert converts from one", dir);
    hf_model_dir d;
    ims_status st = imsi_hf_model_dir_open(dir, &d, err);
    if (st)
        return st;
    ckpt *c = NULL;
    imsi_weights_writer *wr = NULL;
    st = imsi_ckpt_open(d.weights_path, &c, err);
    if (!st) {
        report->arch = IMS_CONVERT_ARCH_BERT;
        report->format = imsi_ckpt_format_name(c->format);
        report->tensors_in = c->count;
        st = imsi_weights_writer_create(&wr, err);
    }
    bert_source s = {.c = c, .prefix = ""};
    if (!st && !imsi_ckpt_find(c, "embeddings.word_embeddings.weight") && imsi_ckpt_find(c, "bert.embeddings.word_embeddings.weight"))
        s.prefix = "bert.";
    if (!st)
        st = add_metadata(&d, o, wr, err);
    if (!st)
        st = add_tensors(&s, &d.config, o->dtype, wr, err);
    if (!st && (s.missing_count || s.misshaped_count))
        st = ims_error_set(err, IMS_ERR_FORMAT, "not a BERT checkpoint matching config.json:%s%s%s%s%s",
                           s.missing_count ? " missing: " : "", s.missing, s.misshaped_count ? "; mis-shaped: " : "",
                           s.misshaped, s.missing_count + s.misshaped_count > 10 ? " ..." : "");
    if (!st)
        st = check_unexpected(&s, &d.config, &report->tensors_ignored, err);
    if (!st) {
        report->tensors_out = 5 + (size_t)d.config.num_layers * 12;
        st = imsi_weights_writer_write_file(wr, output, err);
    }
    imsi_weights_writer_free(wr);
    imsi_ckpt_free(c);
    imsi_hf_model_dir_free(&d);
    if (st)
        return imsi_error_prefix(err, st, "converting '%s'", dir);
    return IMS_OK;
}
