/* hf_model_dir.c: reads a Hugging Face BERT / sentence-transformers model
 * directory (hf_model_dir.h documents the files and the rules).
 *
 * Order: modules.json (which folders hold the transformer and the pooling
 * config), then the transformer folder's config.json, weights file, vocab.txt,
 * tokenizer_config.json and sentence_bert_config.json, then the pooling config.
 */
#include "hf_model_dir.h"
#include "core/json.h"

#include "core/error.h"
#include "core/file_map.h"
#include "io/weights_format.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Text files here are small (vocab.txt ~ 230 KB); the cap only stops a
 * mistaken path to a huge file from being read whole. */
#define HF_TEXT_MAX (64u * 1024u * 1024u)

const char *imsi_hf_pooling_name(hf_pooling pooling)
{
    switch (pooling) {
    case HF_POOLING_MEAN: return "mean";
    case HF_POOLING_CLS: return "cls";
    }
    return "?";
}

/* ---- Files ------------------------------------------------------------------------- */

/* "a/b" (or a copy of a when b is empty), or NULL when out of memory. */
static char *path_join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > SIZE_MAX - nb - 2)
        return NULL;
    char *p = malloc(na + nb + 2);
    if (!p)
        return NULL;
    memcpy(p, a, na);
    if (nb) {
        p[na] = '/';
        memcpy(p + na + 1, b, nb + 1);
    } else {
        p[na] = '\0';
    }
    return p;
}

static int is_regular_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Reads and parses a JSON file whose root must be `root_kind`. IMS_ERR_NOT_FOUND
 * when it does not exist. */
static ims_status read_json_file(const char *path, json_kind root_kind, json_doc *doc, ims_error *err)
{
    doc->root = NULL;
    doc->blocks = NULL;
    char *text;
    size_t len;
    ims_status st = imsi_file_read_text(path, HF_TEXT_MAX, &text, &len, err);
    if (st)
        return st;
    st = imsi_json_parse(text, len, NULL, doc, err);
    free(text);
    if (st)
        return imsi_error_prefix(err, st, "%s", path);
    st = imsi_json_expect_kind(doc->root, root_kind, path, err);
    if (st)
        imsi_json_doc_free(doc);
    return st;
}

/* ---- Typed fields ------------------------------------------------------------------ */

/* A required integer field in [min, max]; a missing one is a format error. */
static ims_status get_int(const json_value *obj, const char *path, const char *key, int min, int max, int *out,
                          ims_error *err)
{
    int64_t v;
    ims_status st = imsi_json_member_int64(obj, path, key, min, max, &v, err);
    if (st == IMS_ERR_NOT_FOUND && err)
        err->code = IMS_ERR_FORMAT; /* a required field: the file is malformed */
    if (st)
        return st == IMS_ERR_NOT_FOUND ? IMS_ERR_FORMAT : st;
    *out = (int)v;
    return IMS_OK;
}

static ims_status get_double(const json_value *obj, const char *path, const char *key, double *out, ims_error *err)
{
    ims_status st = imsi_json_member_double(obj, path, key, out, err);
    if (st == IMS_ERR_NOT_FOUND && err)
        err->code = IMS_ERR_FORMAT;
    return st == IMS_ERR_NOT_FOUND ? IMS_ERR_FORMAT : st;
}

static ims_status get_string(const json_value *obj, const char *path, const char *key, const char **out,
                             ims_error *err)
{
    ims_status st = imsi_json_member_string(obj, path, key, out, NULL, err);
    if (st == IMS_ERR_NOT_FOUND && err)
        err->code = IMS_ERR_FORMAT;
    return st == IMS_ERR_NOT_FOUND ? IMS_ERR_FORMAT : st;
}

/* An optional boolean: *out is untouched when the key is absent or null. */
static ims_status get_opt_bool(const json_value *obj, const char *path, const char *key, int *out, ims_error *err)
{
    const json_value *v = imsi_json_object_get(obj, key);
    if (!v || v->kind == JSON_NULL)
        return IMS_OK;
    char what[512];
    snprintf(what, sizeof what, "%s: '%s'", path, key);
    return imsi_json_get_bool(v, what, out, err);
}

/* ---- modules.json ------------------------------------------------------------------ */

typedef struct hf_layout {
    char *transformer_dir; /* folder of config.json, vocab.txt, ... */
    char *pooling_dir;     /* folder of the pooling config.json */
    int pooling_required;  /* modules.json names the pooling folder */
    int normalize;
} hf_layout;

/* A module path must stay inside the model directory. */
static ims_status check_module_path(const char *path, const char *p, size_t index, ims_error *err)
{
    char shown[128];
    if (p[0] == '/')
        return ims_error_set(err, IMS_ERR_FORMAT, "%s: module %zu: path '%s' is absolute", path, index,
                             imsi_json_printable(p, shown, sizeof shown));
    for (const char *c = p; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 2 && c[0] == '.' && c[1] == '.')
            return ims_error_set(err, IMS_ERR_FORMAT, "%s: module %zu: path '%s' leaves the model directory", path,
                                 index, imsi_json_printable(p, shown, sizeof shown));
        c += n + (c[n] == '/');
    }
    return IMS_OK;
}

static ims_status read_modules(const char *dir, hf_layout *lay, ims_error *err)
{
    char *path = path_join(dir, "modules.json");
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    json_doc doc;
    ims_status st = read_json_file(path, JSON_ARRAY, &doc, err);
    if (st == IMS_ERR_NOT_FOUND) {
        /* no pipeline: a plain Hugging Face model directory */
        free(path);
        lay->transformer_dir = path_join(dir, "");
        lay->pooling_dir = path_join(dir, "1_Pooling");
        return lay->transformer_dir && lay->pooling_dir ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    if (st) {
        free(path);
        return st;
    }
    const char *transformer = NULL, *pooling = NULL;
    for (size_t i = 0; i < doc.root->arr.count && !st; i++) {
        const json_value *m = &doc.root->arr.items[i];
        char what[512];
        snprintf(what, sizeof what, "%s: module %zu", path, i);
        const char *type, *mpath;
        st = imsi_json_expect_kind(m, JSON_OBJECT, what, err);
        if (!st)
            st = get_string(m, what, "type", &type, err);
        if (!st)
            st = get_string(m, what, "path", &mpath, err);
        if (!st)
            st = check_module_path(path, mpath, i, err);
        if (st)
            break;
        if (strcmp(type, "sentence_transformers.models.Transformer") == 0) {
            if (transformer)
                st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "%s: more than one Transformer module", path);
            transformer = mpath;
        } else if (strcmp(type, "sentence_transformers.models.Pooling") == 0) {
            if (pooling)
                st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "%s: more than one Pooling module", path);
            pooling = mpath;
        } else if (strcmp(type, "sentence_transformers.models.Normalize") == 0) {
            lay->normalize = 1;
        } else {
            char shown[128];
            st = ims_error_set(err, IMS_ERR_UNSUPPORTED,
                               "%s: module %zu has type '%s', which is not supported (only Transformer, Pooling, "
                               "Normalize)",
                               path, i, imsi_json_printable(type, shown, sizeof shown));
        }
    }
    if (!st && !transformer)
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: no sentence_transformers.models.Transformer module", path);
    if (!st) {
        lay->transformer_dir = path_join(dir, transformer);
        lay->pooling_dir = path_join(dir, pooling ? pooling : "1_Pooling");
        lay->pooling_required = pooling != NULL;
        if (!lay->transformer_dir || !lay->pooling_dir)
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    imsi_json_doc_free(&doc);
    free(path);
    return st;
}

/* ---- config.json -------------------------------------------------------------------- */

static ims_status read_config(const char *dir, hf_bert_config *c, ims_error *err)
{
    char *path = path_join(dir, "config.json");
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    json_doc doc;
    ims_status st = read_json_file(path, JSON_OBJECT, &doc, err);
    if (st) {
        free(path);
        return st;
    }
    const json_value *r = doc.root;
    const char *s;
    char shown[80];
    st = get_string(r, path, "model_type", &s, err);
    if (!st && strcmp(s, "bert") != 0)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED,
                           "%s: model_type '%s' is not supported (only 'bert'; other types lay out their weights "
                           "differently)",
                           path, imsi_json_printable(s, shown, sizeof shown));
    if (!st)
        st = get_string(r, path, "hidden_act", &s, err);
    if (!st && strcmp(s, "gelu") != 0)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED,
                           "%s: hidden_act '%s' is not supported (only 'gelu', the exact erf GELU)", path,
                           imsi_json_printable(s, shown, sizeof shown));
    const json_value *pe = imsi_json_object_get(r, "position_embedding_type");
    if (!st && pe && pe->kind != JSON_NULL) {
        char what[512];
        snprintf(what, sizeof what, "%s: 'position_embedding_type'", path);
        st = imsi_json_get_string(pe, what, &s, NULL, err);
        if (!st && strcmp(s, "absolute") != 0)
            st = ims_error_set(err, IMS_ERR_UNSUPPORTED,
                               "%s: position_embedding_type '%s' is not supported (only 'absolute')", path,
                               imsi_json_printable(s, shown, sizeof shown));
    }
    if (!st)
        st = get_int(r, path, "vocab_size", 1, 1 << 24, &c->vocab_size, err);
    if (!st)
        st = get_int(r, path, "hidden_size", 1, 1 << 16, &c->hidden_size, err);
    if (!st)
        st = get_int(r, path, "num_hidden_layers", 1, 1024, &c->num_layers, err);
    if (!st)
        st = get_int(r, path, "num_attention_heads", 1, c->hidden_size, &c->num_heads, err);
    if (!st)
        st = get_int(r, path, "intermediate_size", 1, 1 << 20, &c->intermediate_size, err);
    if (!st)
        st = get_int(r, path, "max_position_embeddings", 2, 1 << 20, &c->max_position_embeddings, err);
    if (!st)
        st = get_int(r, path, "type_vocab_size", 1, 1 << 16, &c->type_vocab_size, err);
    if (!st)
        st = get_double(r, path, "layer_norm_eps", &c->layer_norm_eps, err);
    if (!st && !(c->layer_norm_eps > 0 && c->layer_norm_eps < 1))
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: layer_norm_eps = %g is not in (0, 1)", path, c->layer_norm_eps);
    if (!st && c->hidden_size % c->num_heads != 0)
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: hidden_size %d is not divisible by num_attention_heads %d", path,
                           c->hidden_size, c->num_heads);
    imsi_json_doc_free(&doc);
    free(path);
    return st;
}

/* ---- Weights ------------------------------------------------------------------------ */

static ims_status find_weights(const char *dir, char **out, ims_error *err)
{
    static const char *const names[] = {"model.safetensors", "pytorch_model.bin"};
    for (size_t i = 0; i < 2; i++) {
        char *p = path_join(dir, names[i]);
        if (!p)
            return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
        if (is_regular_file(p)) {
            *out = p;
            return IMS_OK;
        }
        free(p);
    }
    return ims_error_set(err, IMS_ERR_NOT_FOUND, "%s: no model.safetensors or pytorch_model.bin", dir);
}

/* ---- vocab.txt ------------------------------------------------------------------------ */

static int token_cmp(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    int c = strcmp(*x, *y);
    /* equal tokens: by address, i.e. by line, so the later one is reported */
    return c ? c : (*x < *y ? -1 : *x > *y);
}

static ims_status check_vocab_unique(const char *path, char **vocab, size_t count, ims_error *err)
{
    char **sorted = malloc((count ? count : 1) * sizeof *sorted);
    if (!sorted)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    memcpy(sorted, vocab, count * sizeof *sorted);
    qsort(sorted, count, sizeof *sorted, token_cmp);
    ims_status st = IMS_OK;
    for (size_t i = 1; i < count && !st; i++) {
        if (strcmp(sorted[i], sorted[i - 1]) != 0)
            continue;
        /* tokens lie in file order in one buffer: find their ids */
        size_t a = 0, b = 0;
        for (size_t k = 0; k < count; k++) {
            if (vocab[k] == sorted[i - 1])
                a = k;
            if (vocab[k] == sorted[i])
                b = k;
        }
        char shown[128];
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: token '%s' appears on lines %zu and %zu", path,
                           imsi_json_printable(sorted[i], shown, sizeof shown), a + 1, b + 1);
    }
    free(sorted);
    return st;
}

static ims_status read_vocab(const char *dir, int vocab_size, hf_model_dir *out, ims_error *err)
{
    char *path = path_join(dir, "vocab.txt");
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    char *buf;
    size_t len;
    ims_status st = imsi_file_read_text(path, HF_TEXT_MAX, &buf, &len, err);
    if (st) {
        free(path);
        return st;
    }
    /* lines = newlines, plus one for a last line without a newline */
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += buf[i] == '\n';
    if (len && buf[len - 1] != '\n')
        lines++;
    if (lines != (size_t)vocab_size) {
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: %zu tokens, but config.json says vocab_size %d", path, lines,
                           vocab_size);
        goto done;
    }
    out->vocab = malloc(lines * sizeof *out->vocab);
    if (!out->vocab) {
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
        goto done;
    }
    out->vocab_storage = buf;
    size_t pos = 0;
    for (size_t line = 0; line < lines; line++) {
        size_t end = pos;
        while (end < len && buf[end] != '\n')
            end++;
        size_t tok_end = end > pos && buf[end - 1] == '\r' ? end - 1 : end; /* CRLF */
        if (tok_end == pos) {
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s: line %zu is empty", path, line + 1);
            goto done;
        }
        if (memchr(buf + pos, '\r', tok_end - pos)) {
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s: line %zu contains a carriage return that does not end it", path,
                               line + 1);
            goto done;
        }
        if (!imsi_isw_utf8_valid(buf + pos, tok_end - pos)) {
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s: line %zu is not valid UTF-8 or contains a NUL byte", path,
                               line + 1);
            goto done;
        }
        buf[tok_end] = '\0';
        out->vocab[line] = buf + pos;
        out->vocab_count = line + 1;
        pos = end + 1;
    }
    st = check_vocab_unique(path, out->vocab, out->vocab_count, err);
done:
    if (out->vocab_storage != buf)
        free(buf);
    free(path);
    return st;
}

/* ---- Tokenizer and sentence-transformers settings ----------------------------------- */

static ims_status read_tokenizer_config(const char *dir, hf_bert_config *c, ims_error *err)
{
    c->do_lower_case = 1;
    char *path = path_join(dir, "tokenizer_config.json");
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    json_doc doc;
    ims_status st = read_json_file(path, JSON_OBJECT, &doc, err);
    if (st == IMS_ERR_NOT_FOUND) {
        free(path);
        return IMS_OK;
    }
    if (!st)
        st = get_opt_bool(doc.root, path, "do_lower_case", &c->do_lower_case, err);
    int strip = c->do_lower_case, chinese = 1;
    if (!st)
        st = get_opt_bool(doc.root, path, "strip_accents", &strip, err);
    if (!st && strip != c->do_lower_case)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED,
                           "%s: strip_accents %s with do_lower_case %s is not supported (accents are stripped exactly "
                           "when lowercasing)",
                           path, strip ? "true" : "false", c->do_lower_case ? "true" : "false");
    if (!st)
        st = get_opt_bool(doc.root, path, "tokenize_chinese_chars", &chinese, err);
    if (!st && !chinese)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "%s: tokenize_chinese_chars false is not supported", path);
    imsi_json_doc_free(&doc);
    free(path);
    return st;
}

static ims_status read_sbert_config(const char *dir, hf_bert_config *c, ims_error *err)
{
    c->max_seq_length = c->max_position_embeddings < 512 ? c->max_position_embeddings : 512;
    char *path = path_join(dir, "sentence_bert_config.json");
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    json_doc doc;
    ims_status st = read_json_file(path, JSON_OBJECT, &doc, err);
    if (st == IMS_ERR_NOT_FOUND) {
        free(path);
        return IMS_OK;
    }
    const json_value *v = st ? NULL : imsi_json_object_get(doc.root, "max_seq_length");
    if (v && v->kind != JSON_NULL) {
        char what[512];
        snprintf(what, sizeof what, "%s: 'max_seq_length'", path);
        int64_t n;
        st = imsi_json_get_int64(v, what, 2, c->max_position_embeddings, &n, err);
        if (!st)
            c->max_seq_length = (int)n;
    }
    int lower = 0;
    if (!st)
        st = get_opt_bool(doc.root, path, "do_lower_case", &lower, err);
    if (!st && lower && !c->do_lower_case)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED,
                           "%s: do_lower_case true with a tokenizer that does not lowercase is not supported", path);
    imsi_json_doc_free(&doc);
    free(path);
    return st;
}

/* ---- Pooling ------------------------------------------------------------------------ */

static ims_status read_pooling(const hf_layout *lay, hf_bert_config *c, ims_error *err)
{
    c->pooling = HF_POOLING_MEAN;
    char *path = path_join(lay->pooling_dir, "config.json");
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    json_doc doc;
    ims_status st = read_json_file(path, JSON_OBJECT, &doc, err);
    if (st == IMS_ERR_NOT_FOUND && !lay->pooling_required) {
        free(path);
        return IMS_OK;
    }
    if (st) {
        free(path);
        return st;
    }
    /* the one pooling_mode_* key that is true (its name, printable) */
    char chosen[80] = "";
    for (size_t i = 0; i < doc.root->obj.count && !st; i++) {
        const json_member *m = &doc.root->obj.members[i];
        if (strncmp(m->key, "pooling_mode_", 13) != 0)
            continue;
        char what[512], shown[80];
        imsi_json_printable(m->key, shown, sizeof shown);
        snprintf(what, sizeof what, "%s: '%s'", path, shown);
        int on;
        st = imsi_json_get_bool(&m->value, what, &on, err);
        if (st || !on)
            continue;
        if (chosen[0])
            st = ims_error_set(err, IMS_ERR_UNSUPPORTED,
                               "%s: both %s and %s are true; combined pooling modes are not supported", path, chosen,
                               shown);
        memcpy(chosen, shown, sizeof chosen);
    }
    if (!st && !chosen[0])
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: no pooling_mode_* field is true", path);
    if (!st && strcmp(chosen, "pooling_mode_mean_tokens") == 0)
        c->pooling = HF_POOLING_MEAN;
    else if (!st && strcmp(chosen, "pooling_mode_cls_token") == 0)
        c->pooling = HF_POOLING_CLS;
    else if (!st)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED,
                           "%s: %s is not supported (only pooling_mode_mean_tokens and pooling_mode_cls_token)", path,
                           chosen);
    const json_value *dim = imsi_json_object_get(doc.root, "word_embedding_dimension");
    if (!st && dim) {
        char what[512];
        snprintf(what, sizeof what, "%s: 'word_embedding_dimension'", path);
        int64_t n;
        st = imsi_json_get_int64(dim, what, c->hidden_size, c->hidden_size, &n, err);
    }
    imsi_json_doc_free(&doc);
    free(path);
    return st;
}

/* ---- Entry points -------------------------------------------------------------------- */

void imsi_hf_model_dir_free(hf_model_dir *d)
{
    if (!d)
        return;
    free(d->weights_path);
    free(d->vocab);
    free(d->vocab_storage);
    memset(d, 0, sizeof *d);
}

ims_status imsi_hf_model_dir_open(const char *dir, hf_model_dir *out, ims_error *err)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "model directory '%s': not a directory", dir);
    hf_layout lay = {0};
    ims_status st = read_modules(dir, &lay, err);
    if (!st)
        st = read_config(lay.transformer_dir, &out->config, err);
    if (!st)
        st = find_weights(lay.transformer_dir, &out->weights_path, err);
    if (!st)
        st = read_vocab(lay.transformer_dir, out->config.vocab_size, out, err);
    if (!st)
        st = read_tokenizer_config(lay.transformer_dir, &out->config, err);
    if (!st)
        st = read_sbert_config(lay.transformer_dir, &out->config, err);
    if (!st)
        st = read_pooling(&lay, &out->config, err);
    out->config.normalize = lay.normalize;
    free(lay.transformer_dir);
    free(lay.pooling_dir);
    if (st)
        imsi_hf_model_dir_free(out);
    return st;
}
