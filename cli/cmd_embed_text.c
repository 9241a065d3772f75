/* cmd_embed_text.c: `imgsearch embed-text --text-model M.isw`: sentence
 * embeddings of lines on stdin (or --text), as a .npy file or JSON lines. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char embed_text_usage[] =
    "usage: imgsearch embed-text --text-model M.isw [--text TEXT]... [-o OUT.npy] [--json]\n"
    "                            [--device auto|cpu|cuda] [--gpu N] [--precision fp32|fp16]\n"
    "\n"
    "Embeds each --text, or else each line of stdin, with the sentence encoder\n"
    "(mean pooling over the tokens, L2-normalized as the model says).\n"
    "\n"
    "  --text-model M.isw      a converted BERT sentence encoder (imgsearch convert)\n"
    "  --text TEXT             a text to embed (repeat for more; default: stdin's lines)\n"
    "  -o, --output OUT.npy    write a float32 array (N, dim) that numpy.load reads\n"
    "  --json                  one JSON line per text: {\"text\": ..., \"embedding\": [...]}\n"
    "                          (the default when no -o is given)\n"
    "  --device auto|cpu|cuda  auto (default): cuda when a GPU is usable, else cpu\n"
    "  --gpu N                 which GPU (default 0)\n"
    "  --precision fp32|fp16   fp16 on a GPU by default; the CPU computes in fp32\n";

/* Lines read from stdin (owned). */
typedef struct line_list {
    char **items;
    size_t count, cap;
} line_list;

static void line_list_free(line_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
}

/* 0, or -1 after the reader or an allocation failure said why. */
static int read_stdin_lines(line_list *l)
{
    cli_lines in;
    cli_lines_init(&in, stdin, "stdin");
    char *line;
    size_t len;
    int rc = 0, got;
    while (!rc && (got = cli_lines_next(&in, &line, &len)) > 0) {
        while (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (l->count == l->cap) {
            size_t n = l->cap ? l->cap * 2 : 64;
            char **p = realloc(l->items, n * sizeof *p);
            if (!p) {
                cli_fail("out of memory reading stdin");
                rc = -1;
                break;
            }
            l->items = p;
            l->cap = n;
        }
        if (!(l->items[l->count] = strdup(line))) {
            cli_fail("out of memory reading stdin");
            rc = -1;
        } else {
            l->count++;
        }
    }
    if (got < 0)
        rc = -1;
    cli_lines_free(&in);
    return rc;
}

typedef struct embed_text_args {
    const char *model, *output;
    int json, precision;
    cli_device device;
    cli_list texts; /* --text values */
} embed_text_args;

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, embed_text_args *e)
{
    static const char *const precision_names[] = {"fp32", "fp16", NULL};
    static const ims_precision precisions[] = {IMS_PRECISION_FP32, IMS_PRECISION_FP16};
    int precision = -1;
    cli_args a;
    cli_args_init(&a, "embed-text", embed_text_usage, argc, argv);
    while (cli_args_next(&a)) {
        if (cli_is(&a, "--text-model"))
            cli_arg_path(&a, &e->model);
        else if (cli_is(&a, "--text"))
            cli_arg_append(&a, &e->texts);
        else if (cli_is(&a, "-o|--output"))
            cli_arg_path(&a, &e->output);
        else if (cli_is(&a, "--json"))
            e->json = 1;
        else if (cli_is(&a, CLI_DEVICE_OPTIONS))
            cli_arg_device(&a, &e->device);
        else if (cli_is(&a, "--precision"))
            cli_arg_choice(&a, precision_names, &precision);
        else
            cli_args_unknown(&a);
    }
    if (a.status >= 0)
        return a.status;
    e->precision = precision < 0 ? CLI_PRECISION_DEFAULT : (int)precisions[precision];
    if (!e->model)
        return cli_args_error(&a, "no model: --text-model M.isw");
    return -1;
}

/* 0, or 1 after saying which text's embedding is not finite (a model with
 * NaN or Inf weights): such numbers are never printed or written. */
static int check_finite(const float *out, size_t count, int dim)
{
    for (size_t i = 0; i < count * (size_t)dim; i++)
        if (!isfinite(out[i])) {
            fprintf(stderr, "imgsearch: the text model gave a non-finite embedding for text %zu\n", i / (size_t)dim + 1);
            return 1;
        }
    return 0;
}

static void print_json(const char *const *texts, size_t count, const float *out, int dim)
{
    for (size_t i = 0; i < count; i++) {
        printf("{\"text\": ");
        json_string(stdout, texts[i], strlen(texts[i]));
        printf(", \"embedding\": [");
        for (int d = 0; d < dim; d++) {
            if (d)
                fputs(", ", stdout);
            printf("%.9g", out[i * (size_t)dim + (size_t)d]);
        }
        printf("]}\n");
    }
}

static int run_embed_text(const embed_text_args *e, const char *const *texts, size_t count)
{
    ims_error err = {0};
    cli_models m;
    ims_text_embedder *text = NULL;
    float *out = NULL;
    ims_status st = cli_models_load(&m, &e->device, e->precision, NULL, e->model, &err);
    if (!st)
        st = ims_text_embedder_create(m.backend, m.text_weights, m.precision, &text, &err);
    int dim = st ? 0 : ims_text_embedder_dim(text);
    if (!st && count > 0) {
        out = malloc(count * (size_t)dim * sizeof *out);
        st = out ? ims_text_embed(text, texts, (int64_t)count, out, &err)
                 : ims_error_set(&err, IMS_ERR_NOMEM, "out of memory for %zu embeddings", count);
    }
    int bad = !st && out && check_finite(out, count, dim);
    if (!st && !bad && e->output) {
        int64_t shape[2] = {(int64_t)count, dim};
        st = ims_npy_write(e->output, IMS_DTYPE_F32, 2, shape, out, &err);
    }
    if (!st && !bad && (e->json || !e->output))
        print_json(texts, count, out, dim);
    if (!st && !bad && e->output)
        fprintf(stderr, "imgsearch: wrote %zu embeddings of %d dims to %s\n", count, dim, e->output);
    ims_text_embedder_free(text);
    cli_models_close(&m);
    free(out);
    return st ? cli_error(&err) : bad ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

int cmd_embed_text(int argc, char **argv)
{
    embed_text_args e = {0};
    line_list lines = {0};
    int rc = parse_args(argc, argv, &e);
    if (rc < 0 && e.texts.count == 0 && read_stdin_lines(&lines))
        rc = CLI_EXIT_FAILURE;
    if (rc < 0)
        rc = e.texts.count ? run_embed_text(&e, e.texts.items, e.texts.count)
                           : run_embed_text(&e, (const char *const *)lines.items, lines.count);
    line_list_free(&lines);
    cli_list_free(&e.texts);
    return rc;
}
