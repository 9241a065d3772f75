/* cmd_classify.c: `imgsearch classify IMAGE... --image-model M.isw`: the top-k
 * classes of each image with their probabilities (softmax over the logits,
 * computed in double). */
#include "encode_images.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char classify_usage[] =
    "usage: imgsearch classify IMAGE... --image-model M.isw [-k 5] [--json]\n"
    "                          [--device cpu|cuda] [--precision fp32|tf32|fp16] [--batch N]\n"
    "\n"
    "Prints the k most probable classes of each IMAGE (JPEG or PNG) under an\n"
    "Inception-v3 weight file (imgsearch convert), with softmax probabilities.\n"
    "\n"
    "  --image-model M.isw  the model\n"
    "  -k N                 classes per image (default 5)\n"
    "  --json               one JSON array: {\"image\", \"top\": [{\"class\", \"label\", \"probability\"}]}\n"
    "  --device cpu|cuda    default: cuda when a GPU is usable, else cpu\n"
    "  --precision P        fp32 (default), tf32 or fp16 (cuda only)\n"
    "  --batch N            images per forward pass (default 32)\n"
    "\n"
    "Images are preprocessed as the model's metadata says (torchvision or fid).\n"
    "Exit status: 0 success, 1 failure, 2 bad command line, 3 some images could\n"
    "not be read (each reported on stderr; the others are classified).\n";

typedef struct classify_ctx {
    int k, json;
    size_t printed;
    double *probs; /* (classes) */
    int *top;      /* (k) */
} classify_ctx;

static int classify_ready(void *vctx, const ims_image_encoder *enc)
{
    classify_ctx *c = vctx;
    int classes = ims_image_encoder_num_classes(enc);
    if (c->k > classes)
        c->k = classes;
    c->probs = malloc((size_t)classes * sizeof *c->probs);
    c->top = malloc((size_t)c->k * sizeof *c->top);
    if (!c->probs || !c->top) {
        fprintf(stderr, "imgsearch: out of memory\n");
        return 1;
    }
    if (c->json)
        printf("[");
    return 0;
}

static int classify_one(void *vctx, size_t index, const char *path, const float *features, const float *logits,
                        const ims_image_encoder *enc)
{
    (void)index, (void)features;
    classify_ctx *c = vctx;
    int classes = ims_image_encoder_num_classes(enc);
    double mx = -INFINITY, sum = 0.0;
    for (int i = 0; i < classes; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < classes; i++)
        sum += c->probs[i] = exp((double)logits[i] - mx);
    for (int i = 0; i < classes; i++)
        c->probs[i] /= sum;
    for (int t = 0; t < c->k; t++) { /* k is small: selection by repeated scans, lowest index on ties */
        int best = -1;
        for (int i = 0; i < classes; i++) {
            int used = 0;
            for (int u = 0; u < t && !used; u++)
                used = c->top[u] == i;
            if (!used && (best < 0 || c->probs[i] > c->probs[best]))
                best = i;
        }
        c->top[t] = best;
    }
    if (c->json) {
        printf("%s\n  {\"image\": ", c->printed ? "," : "");
        json_string(stdout, path, strlen(path));
        printf(", \"top\": [");
        for (int t = 0; t < c->k; t++) {
            ims_str label = ims_image_encoder_label(enc, c->top[t]);
            printf("%s{\"class\": %d, \"label\": ", t ? ", " : "", c->top[t]);
            if (label.ptr)
                json_string(stdout, label.ptr, label.len);
            else
                printf("null");
            printf(", \"probability\": ");
            json_double(stdout, c->probs[c->top[t]]);
            printf("}");
        }
        printf("]}");
    } else {
        printf("%s\n", path);
        for (int t = 0; t < c->k; t++) {
            ims_str label = ims_image_encoder_label(enc, c->top[t]);
            printf("  %.4f  %4d  %.*s\n", c->probs[c->top[t]], c->top[t], label.ptr ? (int)label.len : 1,
                   label.ptr ? label.ptr : "-");
        }
    }
    c->printed++;
    return ferror(stdout) ? 1 : 0;
}

int cmd_classify(int argc, char **argv)
{
    encode_options o;
    encode_options_init(&o);
    classify_ctx c = {.k = 5};
    o.images = calloc((size_t)argc, sizeof *o.images);
    if (!o.images) {
        fprintf(stderr, "imgsearch: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    int status = -1;
    for (int i = 1; i < argc && status < 0; i++) {
        const char *a = argv[i];
        int r = encode_parse_option("classify", argc, argv, &i, &o);
        if (r < 0) {
            status = CLI_EXIT_USAGE;
        } else if (r) {
            continue;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(classify_usage, stdout);
            status = CLI_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            c.json = 1;
        } else if (!strcmp(a, "-k")) {
            char *end = NULL;
            long k = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : 0;
            if (i + 1 >= argc || end == argv[i + 1] || *end || k < 1 || k > 100000)
                status = cli_usage_error("classify", "-k needs a number in 1..100000");
            i++;
            c.k = (int)k;
        } else if (a[0] == '-' && a[1]) {
            status = cli_usage_error("classify", "unknown option '%s'", a);
        } else {
            o.images[o.count++] = a;
        }
    }
    if (status < 0 && !o.count)
        status = cli_usage_error("classify", "missing IMAGE");
    if (status < 0 && !o.model)
        status = cli_usage_error("classify", "missing --image-model M.isw");
    if (status < 0) {
        size_t ok = 0;
        status = encode_images(&o, classify_ready, classify_one, &c, &ok);
        if (c.json && c.probs)
            printf("%s]\n", c.printed ? "\n" : "");
    }
    free(c.probs), free(c.top), free(o.images);
    return status;
}
