/* cmd_embed_text.c: `imgsearch embed-text --text-model M.isw`: sentence
 * embeddings of lines on stdin (or --text), as a .npy file or JSON lines. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char embed_text_usage[] =
    "usage: imgsearch embed-text --text-model M.isw [--text TEXT]... [-o OUT.npy] [--json]\n"
    "                            [--device cuda|cpu] [--gpu N] [--precision fp32|fp16]\n"
    "\n"
    "Embeds each --text, or else each line of stdin, with the sentence encoder\n"
    "(mean pooling over the tokens, L2-normalized as the model says).\n"
    "\n"
    "  -o OUT.npy   write a float32 array (N, dim) that numpy.load reads\n"
    "  --json       one JSON line per text: {\"text\": ..., \"embedding\": [...]}\n"
    "               (the default when no -o is given)\n"
    "  --precision  fp16 on a GPU by default; the CPU computes in fp32\n";

typedef struct text_list {
    char **items;
    size_t count, cap;
    int owned; /* items were read from stdin */
} text_list;

static int text_list_add(text_list *l, char *s)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **p = realloc(l->items, cap * sizeof *p);
        if (!p)
            return -1;
        l->items = p;
        l->cap = cap;
    }
    l->items[l->count++] = s;
    return 0;
}

static int read_stdin_lines(text_list *l)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    l->owned = 1;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        char *copy = strdup(line);
        if (!copy || text_list_add(l, copy)) {
            free(copy);
            free(line);
            return -1;
        }
    }
    free(line);
    return 0;
}

int cmd_embed_text(int argc, char **argv)
{
    const char *model = NULL, *output = NULL, *device = NULL, *precision = NULL;
    int json = 0, gpu = 0, rc = 0;
    text_list texts = {0};
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(embed_text_usage, stdout);
            free(texts.items);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--text-model") && next) {
            model = argv[++i];
        } else if (!strcmp(a, "--text") && next) {
            rc = text_list_add(&texts, argv[++i]) ? CLI_EXIT_FAILURE : 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && next) {
            output = argv[++i];
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--device") && next) {
            device = argv[++i];
        } else if (!strcmp(a, "--gpu") && next) {
            rc = cli_parse_int("embed-text", a, argv[++i], 0, 64, &gpu);
        } else if (!strcmp(a, "--precision") && next) {
            precision = argv[++i];
        } else {
            rc = cli_usage_error("embed-text", "unexpected argument '%s' (or its value is missing)", a);
        }
    }
    if (!rc && !model)
        rc = cli_usage_error("embed-text", "no model: --text-model M.isw");
    if (!rc && texts.count == 0 && read_stdin_lines(&texts))
        rc = CLI_EXIT_FAILURE;
    ims_error err = {0};
    cli_models m = {0};
    float *out = NULL;
    ims_status st = IMS_OK;
    if (!rc)
        st = cli_models_open(&m, device, gpu, precision, NULL, model, &err);
    int dim = st || rc ? 0 : ims_text_embedder_dim(m.text);
    if (!rc && !st && texts.count > 0) {
        out = malloc(texts.count * (size_t)dim * sizeof *out);
        st = out ? ims_text_embed(m.text, (const char *const *)texts.items, texts.count, out, &err) : IMS_ERR_NOMEM;
    }
    if (!rc && !st && output) {
        int64_t shape[2] = {(int64_t)texts.count, dim};
        st = ims_npy_write(output, IMS_NPY_F32, 2, shape, out, &err);
    }
    if (!rc && !st && (json || !output)) {
        for (size_t i = 0; i < texts.count; i++) {
            printf("{\"text\": ");
            json_string(stdout, texts.items[i], strlen(texts.items[i]));
            printf(", \"embedding\": [");
            for (int d = 0; d < dim; d++) {
                if (d)
                    fputs(", ", stdout);
                printf("%.9g", out[i * (size_t)dim + (size_t)d]);
            }
            printf("]}\n");
        }
    }
    if (!rc && !st && output)
        fprintf(stderr, "imgsearch: wrote %zu embeddings of %d dims to %s\n", texts.count, dim, output);
    cli_models_close(&m);
    free(out);
    if (texts.owned)
        for (size_t i = 0; i < texts.count; i++)
            free(texts.items[i]);
    free(texts.items);
    if (rc)
        return rc;
    if (st && !err.msg[0])
        snprintf(err.msg, sizeof err.msg, "%s", ims_status_name(st));
    return st ? cli_error(&err) : CLI_EXIT_OK;
}
