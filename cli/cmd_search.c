/* cmd_search.c: `imgsearch search INDEX (--text T | --image F | --queries FILE)`:
 * top-k images of an index for text or image queries.
 *
 * Text queries are embedded by the text model and searched in the semantic
 * table; image queries go through Inception-v3 and are searched in the visual
 * table (or, with --table semantic, mixed into the semantic space by ConSE).
 * All queries of a run form one batch per table, searched by the k-NN kernels
 * over the table loaded once onto the device.
 */
#include "encode_images.h"

#include <stdlib.h>
#include <string.h>

static const char search_usage[] =
    "usage: imgsearch search INDEX (--text TEXT | --image FILE | --queries FILE)...\n"
    "                        [-k K] [--json] [--table visual|semantic]\n"
    "                        [--device cuda|cpu] [--gpu N] [--dtype f16|f32]\n"
    "                        [--text-model M.isw] [--image-model M.isw]\n"
    "\n"
    "Finds the K images of INDEX most similar to each query (cosine similarity,\n"
    "exact). --text, --image and --queries may be repeated and combined.\n"
    "\n"
    "  --text TEXT          a text query (needs an index built with --text-model)\n"
    "  --image FILE         an image query\n"
    "  --queries FILE       one query per line: text, or @PATH for an image\n"
    "  -k K                 results per query (default 10)\n"
    "  --table T            the table image queries use: visual (default: the\n"
    "                       Inception features) or semantic (ConSE, as text)\n"
    "  --json               JSON lines: {\"query\": ..., \"results\": [{\"rank\",\n"
    "                       \"path\", \"score\"}]}\n"
    "  --dtype f16|f32      the table's storage for the search (default: f16 on a\n"
    "                       GPU, half the bytes to stream; f32 on the CPU, where f16\n"
    "                       rows cost a conversion per search)\n"
    "  --text-model M       the text model (default: the one the index was built with)\n"
    "  --image-model M      the image model (default: likewise)\n";

typedef struct search_query {
    const char *text; /* the query as given (text, or the image path) */
    int image;
    int table;        /* IMS_INDEX_TABLE_* */
    float *vector;    /* (dim of its table) */
    int64_t *ids;     /* (k) */
    float *scores;    /* (k) */
} search_query;

typedef struct search_args {
    const char *index_dir, *device, *text_model, *image_model;
    int k, json, gpu, semantic_images;
    ims_dtype dtype; /* IMS_DTYPE_COUNT: the backend's default */
    search_query *queries;
    size_t count, cap;
    char **owned; /* lines read from --queries files */
    size_t owned_count, owned_cap;
} search_args;

static int add_query(search_args *a, const char *text, int image)
{
    if (a->count == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        search_query *q = realloc(a->queries, cap * sizeof *q);
        if (!q)
            return -1;
        a->queries = q;
        a->cap = cap;
    }
    a->queries[a->count++] = (search_query){.text = text, .image = image};
    return 0;
}

static int keep_line(search_args *a, char *line)
{
    if (a->owned_count == a->owned_cap) {
        size_t cap = a->owned_cap ? a->owned_cap * 2 : 16;
        char **p = realloc(a->owned, cap * sizeof *p);
        if (!p)
            return -1;
        a->owned = p;
        a->owned_cap = cap;
    }
    a->owned[a->owned_count++] = line;
    return 0;
}

static int read_queries_file(search_args *a, const char *path)
{
    FILE *f = !strcmp(path, "-") ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "imgsearch: cannot open queries file '%s'\n", path);
        return CLI_EXIT_FAILURE;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue; /* blank lines separate nothing */
        char *copy = strdup(line);
        if (!copy || keep_line(a, copy) || add_query(a, copy[0] == '@' ? copy + 1 : copy, copy[0] == '@'))
            rc = CLI_EXIT_FAILURE;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    return rc;
}

static int parse_search_args(int argc, char **argv, search_args *a)
{
    a->k = 10;
    a->dtype = IMS_DTYPE_COUNT;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(search_usage, stdout);
            return -1;
        } else if (!strcmp(s, "--text") && next) {
            rc = add_query(a, argv[++i], 0) ? CLI_EXIT_FAILURE : 0;
        } else if (!strcmp(s, "--image") && next) {
            rc = add_query(a, argv[++i], 1) ? CLI_EXIT_FAILURE : 0;
        } else if (!strcmp(s, "--queries") && next) {
            rc = read_queries_file(a, argv[++i]);
        } else if (!strcmp(s, "-k") && next) {
            rc = cli_parse_int("search", s, argv[++i], 1, IMS_KNN_MAX_K, &a->k);
        } else if (!strcmp(s, "--json")) {
            a->json = 1;
        } else if (!strcmp(s, "--table") && next) {
            const char *t = argv[++i];
            if (strcmp(t, "visual") && strcmp(t, "semantic"))
                rc = cli_usage_error("search", "--table '%s': expected visual or semantic", t);
            a->semantic_images = !strcmp(t, "semantic");
        } else if (!strcmp(s, "--device") && next) {
            a->device = argv[++i];
        } else if (!strcmp(s, "--gpu") && next) {
            rc = cli_parse_int("search", s, argv[++i], 0, 64, &a->gpu);
        } else if (!strcmp(s, "--dtype") && next) {
            const char *d = argv[++i];
            if (strcmp(d, "f16") && strcmp(d, "f32"))
                rc = cli_usage_error("search", "--dtype '%s': expected f16 or f32", d);
            a->dtype = !strcmp(d, "f32") ? IMS_DTYPE_F32 : IMS_DTYPE_F16;
        } else if (!strcmp(s, "--text-model") && next) {
            a->text_model = argv[++i];
        } else if (!strcmp(s, "--image-model") && next) {
            a->image_model = argv[++i];
        } else if (s[0] == '-' && s[1] != '\0') {
            rc = cli_usage_error("search", "unknown option '%s' (or its value is missing)", s);
        } else if (!a->index_dir) {
            a->index_dir = s;
        } else {
            rc = cli_usage_error("search", "unexpected argument '%s'", s);
        }
        if (rc)
            return rc;
    }
    if (!a->index_dir)
        return cli_usage_error("search", "no index given");
    if (a->count == 0)
        return cli_usage_error("search", "no query: give --text, --image or --queries");
    return 0;
}

/* The model file to load: the option, else the path the index recorded, which
 * must still hold the same bytes (size and CRC-32). */
static ims_status resolve_model(const char *given, const ims_index_model *recorded, const char *what,
                                const char **out, ims_error *err)
{
    *out = given ? given : recorded->path;
    ims_index_model now;
    ims_status st = ims_index_model_identify(*out, &now, err);
    if (st)
        return st;
    if (now.bytes != recorded->bytes || now.crc32 != recorded->crc32) {
        snprintf(err->msg, sizeof err->msg,
                 "%s model '%.200s' (crc32 %08x) is not the one the index was built with ('%.200s', crc32 %08x)", what, *out,
                 (unsigned)now.crc32, recorded->name, (unsigned)recorded->crc32);
        return err->code = IMS_ERR_ARGUMENT;
    }
    return IMS_OK;
}

/* Where the image sink puts each query image's vector. */
typedef struct image_sink {
    search_args *a;
    const size_t *which;   /* image i of the loader is query which[i] */
    const float *class_emb; /* (classes, semantic_dim) for --table semantic, else NULL */
    int semantic_dim;
    int conse_top;          /* as the index's rows were mixed */
    ims_error *err;
} image_sink;

static int store_image_query(void *ctx, size_t index, const char *path, const float *features, const float *logits,
                             const ims_image_encoder *enc)
{
    (void)path;
    image_sink *s = ctx;
    search_query *q = &s->a->queries[s->which[index]];
    int fd = ims_image_encoder_feature_dim(enc), nc = ims_image_encoder_num_classes(enc);
    int dim = s->class_emb ? s->semantic_dim : fd;
    q->table = s->class_emb ? IMS_INDEX_TABLE_SEMANTIC : IMS_INDEX_TABLE_VISUAL;
    if (!(q->vector = malloc((size_t)dim * sizeof *q->vector)))
        return 1;
    if (s->class_emb)
        return ims_conse_embed(logits, 1, nc, s->class_emb, dim, s->conse_top, q->vector, s->err) != IMS_OK;
    memcpy(q->vector, features, (size_t)fd * sizeof *features); /* the k-NN table normalizes queries */
    return 0;
}

/* Embeds the image queries (the loader, Inception-v3 on the search's backend),
 * then L2-normalized features (visual) or ConSE (semantic). A query image that
 * cannot be read fails the search. */
static ims_status embed_images(search_args *a, ims_index *index, cli_models *m, ims_error *err)
{
    const ims_index_config *cfg = ims_index_get_config(index);
    size_t n = 0;
    for (size_t i = 0; i < a->count; i++)
        n += a->queries[i].image;
    if (n == 0)
        return IMS_OK;
    const char **paths = malloc(n * sizeof *paths);
    size_t *which = malloc(n * sizeof *which);
    ims_image_encoder *enc = NULL;
    float *class_emb = NULL;
    int classes = 0;
    ims_status st = paths && which ? IMS_OK : IMS_ERR_NOMEM;
    for (size_t i = 0, j = 0; !st && i < a->count; i++)
        if (a->queries[i].image) {
            paths[j] = a->queries[i].text;
            which[j++] = i;
        }
    if (!st)
        st = ims_image_encoder_create(m->backend, m->image_weights, m->precision, &enc, err);
    if (!st && ims_image_encoder_feature_dim(enc) != cfg->visual_dim) {
        snprintf(err->msg, sizeof err->msg, "the image model gives %d features, the index holds %d",
                 ims_image_encoder_feature_dim(enc), cfg->visual_dim);
        st = err->code = IMS_ERR_ARGUMENT;
    }
    if (!st && a->semantic_images)
        st = ims_index_load_class_embeddings(index, &class_emb, &classes, err);
    if (!st && a->semantic_images && classes != ims_image_encoder_num_classes(enc)) {
        snprintf(err->msg, sizeof err->msg, "the index holds %d class embeddings, the model has %d classes", classes,
                 ims_image_encoder_num_classes(enc));
        st = err->code = IMS_ERR_FORMAT;
    }
    if (!st) {
        encode_options eo;
        encode_options_init(&eo);
        eo.images = paths;
        eo.count = n;
        eo.mode = (int)cfg->mode;
        eo.batch = 16;
        image_sink sink = {a, which, class_emb, cfg->semantic_dim, cfg->conse_top, err};
        size_t ok = 0;
        if (encode_images_with(&eo, m->backend, enc, store_image_query, &sink, &ok) != CLI_EXIT_OK) {
            if (!err->msg[0])
                snprintf(err->msg, sizeof err->msg, "%zu of %zu query images could not be embedded", n - ok, n);
            st = err->code = err->code ? err->code : IMS_ERR_ARGUMENT;
        }
    }
    if (st == IMS_ERR_NOMEM && !err->msg[0])
        snprintf(err->msg, sizeof err->msg, "out of memory");
    ims_image_encoder_free(enc);
    free(class_emb);
    free(paths);
    free(which);
    return st;
}

static ims_status embed_texts(search_args *a, cli_models *m, ims_error *err)
{
    size_t n = 0;
    for (size_t i = 0; i < a->count; i++)
        n += !a->queries[i].image;
    if (n == 0)
        return IMS_OK;
    int dim = ims_text_embedder_dim(m->text);
    const char **texts = malloc(n * sizeof *texts);
    float *out = malloc(n * (size_t)dim * sizeof *out);
    ims_status st = texts && out ? IMS_OK : IMS_ERR_NOMEM;
    for (size_t i = 0, j = 0; !st && i < a->count; i++)
        if (!a->queries[i].image)
            texts[j++] = a->queries[i].text;
    if (!st)
        st = ims_text_embed(m->text, texts, n, out, err);
    for (size_t i = 0, j = 0; !st && i < a->count; i++) {
        search_query *q = &a->queries[i];
        if (q->image)
            continue;
        q->table = IMS_INDEX_TABLE_SEMANTIC;
        if (!(q->vector = malloc((size_t)dim * sizeof *q->vector))) {
            st = IMS_ERR_NOMEM;
            break;
        }
        memcpy(q->vector, out + j++ * (size_t)dim, (size_t)dim * sizeof *out);
    }
    if (st == IMS_ERR_NOMEM && !err->msg[0])
        snprintf(err->msg, sizeof err->msg, "out of memory");
    free(texts);
    free(out);
    return st;
}

/* Loads one table onto the backend and answers every query that uses it, as
 * one batch. */
static ims_status search_table(search_args *a, ims_index *index, ims_backend *be, int table, ims_error *err)
{
    size_t n = 0;
    for (size_t i = 0; i < a->count; i++)
        n += a->queries[i].table == table;
    if (n == 0)
        return IMS_OK;
    float *queries = NULL;
    int64_t *ids = NULL;
    float *scores = NULL;
    const ims_index_config *cfg = ims_index_get_config(index);
    int dim = table == IMS_INDEX_TABLE_SEMANTIC ? cfg->semantic_dim : cfg->visual_dim;
    ims_knn_table *knn = NULL;
    int64_t count = (int64_t)ims_index_row_count(index);
    ims_knn_options ko;
    ims_knn_options_init(&ko);
    ko.dtype = a->dtype != IMS_DTYPE_COUNT                                ? a->dtype
               : ims_backend_get_info(be)->kind == IMS_BACKEND_CUDA ? IMS_DTYPE_F16
                                                                    : IMS_DTYPE_F32;
    ims_status st = ims_knn_create(be, dim, &ko, &knn, err);
    if (!st) /* chunk by chunk, f16 rows as stored: no f32 copy of the table */
        st = ims_index_load_knn(index, table, knn, err);
    queries = malloc(n * (size_t)dim * sizeof *queries);
    ids = malloc(n * (size_t)a->k * sizeof *ids);
    scores = malloc(n * (size_t)a->k * sizeof *scores);
    if (!st && (!queries || !ids || !scores)) {
        snprintf(err->msg, sizeof err->msg, "out of memory for %zu queries", n);
        st = err->code = IMS_ERR_NOMEM;
    }
    for (size_t i = 0, j = 0; !st && i < a->count; i++)
        if (a->queries[i].table == table)
            memcpy(queries + j++ * (size_t)dim, a->queries[i].vector, (size_t)dim * sizeof *queries);
    if (!st && count > 0)
        st = ims_knn_search(knn, queries, (int64_t)n, a->k, ids, scores, err);
    for (size_t i = 0, j = 0; !st && i < a->count; i++) {
        search_query *q = &a->queries[i];
        if (q->table != table)
            continue;
        q->ids = malloc((size_t)a->k * sizeof *q->ids);
        q->scores = malloc((size_t)a->k * sizeof *q->scores);
        if (!q->ids || !q->scores) {
            st = IMS_ERR_NOMEM;
            break;
        }
        for (int r = 0; r < a->k; r++) {
            q->ids[r] = count > 0 ? ids[j * (size_t)a->k + (size_t)r] : -1;
            q->scores[r] = count > 0 ? scores[j * (size_t)a->k + (size_t)r] : 0;
        }
        j++;
    }
    ims_knn_free(knn);
    free(queries);
    free(ids);
    free(scores);
    return st;
}

static void print_results(const search_args *a, const ims_index *index)
{
    for (size_t i = 0; i < a->count; i++) {
        const search_query *q = &a->queries[i];
        if (a->json) {
            printf("{\"query\": ");
            if (q->image) {
                printf("{\"image\": ");
                json_string(stdout, q->text, strlen(q->text));
                printf("}");
            } else {
                json_string(stdout, q->text, strlen(q->text));
            }
            printf(", \"table\": \"%s\", \"results\": [", q->table == IMS_INDEX_TABLE_SEMANTIC ? "semantic" : "visual");
        } else {
            printf("%s%s \"%s\" (%s table)\n", i ? "\n" : "", q->image ? "image" : "text", q->text,
                   q->table == IMS_INDEX_TABLE_SEMANTIC ? "semantic" : "visual");
            printf("%4s  %8s  %s\n", "rank", "score", "path");
        }
        int shown = 0;
        for (int r = 0; r < a->k; r++) {
            if (q->ids[r] < 0)
                break;
            const ims_file_entry *e = ims_index_row(index, (size_t)q->ids[r]);
            if (a->json) {
                printf("%s{\"rank\": %d, \"path\": ", shown ? ", " : "", r + 1);
                json_string(stdout, e->path, strlen(e->path));
                printf(", \"score\": ");
                json_double(stdout, q->scores[r]);
                printf("}");
            } else {
                printf("%4d  %8.4f  %s\n", r + 1, q->scores[r], e->path);
            }
            shown++;
        }
        if (a->json)
            printf("]}\n");
        else if (shown == 0)
            printf("      (the index is empty)\n");
    }
}

int cmd_search(int argc, char **argv)
{
    search_args a = {0};
    int rc = parse_search_args(argc, argv, &a);
    ims_error err = {0};
    ims_index *index = NULL;
    cli_models m = {0};
    ims_status st = IMS_OK;
    if (rc)
        goto done;
    st = ims_index_open(a.index_dir, &index, &err);
    const ims_index_config *cfg = st ? NULL : ims_index_get_config(index);
    int need_text = 0, need_image = 0;
    for (size_t i = 0; i < a.count; i++) {
        need_text |= !a.queries[i].image;
        need_image |= a.queries[i].image;
    }
    if (!st && (need_text || a.semantic_images) && cfg->semantic_dim == 0) {
        snprintf(err.msg, sizeof err.msg,
                 "index '%s' has no semantic table (it was built without --text-model): %s", a.index_dir,
                 need_text ? "text queries need it" : "--table semantic needs it");
        st = err.code = IMS_ERR_ARGUMENT;
    }
    const char *text_path = NULL, *image_path = NULL;
    if (!st && need_text)
        st = resolve_model(a.text_model, &cfg->text_model, "text", &text_path, &err);
    if (!st && need_image)
        st = resolve_model(a.image_model, &cfg->image_model, "image", &image_path, &err);
    if (!st)
        st = cli_models_open(&m, a.device, a.gpu, NULL, image_path, text_path, &err);
    if (!st && (cli_models_synthetic(&m) || cfg->image_model.synthetic))
        fprintf(stderr, "imgsearch: WARNING: the image model holds synthetic weights: results are not meaningful\n");
    if (!st)
        st = embed_texts(&a, &m, &err);
    if (!st)
        st = embed_images(&a, index, &m, &err);
    if (!st)
        st = search_table(&a, index, m.backend, IMS_INDEX_TABLE_VISUAL, &err);
    if (!st)
        st = search_table(&a, index, m.backend, IMS_INDEX_TABLE_SEMANTIC, &err);
    if (!st)
        print_results(&a, index);
done:
    cli_models_close(&m);
    ims_index_close(index);
    for (size_t i = 0; i < a.count; i++) {
        free(a.queries[i].vector);
        free(a.queries[i].ids);
        free(a.queries[i].scores);
    }
    for (size_t i = 0; i < a.owned_count; i++)
        free(a.owned[i]);
    free(a.owned);
    free(a.queries);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (st && !err.msg[0])
        snprintf(err.msg, sizeof err.msg, "%s", ims_status_name(st));
    return st ? cli_error(&err) : CLI_EXIT_OK;
}
