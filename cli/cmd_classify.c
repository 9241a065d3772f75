/* cmd_classify.c: `imgsearch classify IMAGE... --image-model M.isw`: the top-k
 * classes of each image with their probabilities (softmax over the logits,
 * computed in double). */
#include "encode_images.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char classify_usage[] =
    "usage: imgsearch classify IMAGE... --image-model M.isw [-k 5] [--json]\n"
    "                          [--device auto|cpu|cuda] [--gpu N] [--precision fp32|tf32|fp16]\n"
    "                          [--mode torchvision|fid|clean] [--batch N] [--threads N] [--max-pixels N]\n"
    "\n"
    "Prints the k most probable classes of each IMAGE (JPEG, PNG, WebP, TIFF, GIF\n"
    "or BMP, recognized by content) under an\n"
    "Inception-v3 weight file (imgsearch convert), with softmax probabilities.\n"
    "\n"
    "  --image-model M.isw  the model\n"
    "  -k N                 classes per image (default 5)\n"
    "  --json               one JSON array: {\"image\", \"top\": [{\"class\", \"label\", \"probability\"}]}\n"
    "  --device auto|cpu|cuda\n"
    "                       where to run: auto (default) is cuda when a GPU is\n"
    "                       usable, else cpu\n"
    "  --gpu N              which GPU (default 0)\n"
    "  --precision P        fp32 (default), tf32 or fp16 (cuda only)\n"
    "  --mode M             preprocessing: torchvision (resize 342, crop 299) or fid\n"
    "                       (bilinear 299 x 299); default: the model's\n"
    "  --batch N            images per forward pass (default 32)\n"
    "  --threads N          decode threads (default: the CPU count, at most 8)\n"
    CLI_MAX_PIXELS_HELP
    "\n"
    "Images are preprocessed as the model's metadata says unless --mode is given.\n"
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
    for (int i = 0; i < classes; i++) {
        if (!isfinite(logits[i])) { /* a model with NaN or Inf weights: no probability to print */
            fprintf(stderr, "imgsearch: ");
            text_safe(stderr, path);
            fprintf(stderr, ": the model gave a non-finite logit for class %d\n", i);
            return 1;
        }
        mx = logits[i] > mx ? logits[i] : mx;
    }
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
        printf("%s\n  {", c->printed ? "," : "");
        json_path(stdout, "image", path);
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
        text_safe(stdout, path);
        fputc('\n', stdout);
        for (int t = 0; t < c->k; t++) {
            ims_str label = ims_image_encoder_label(enc, c->top[t]);
            printf("  %.4f  %4d  %.*s\n", c->probs[c->top[t]], c->top[t], label.ptr ? (int)label.len : 1,
                   label.ptr ? label.ptr : "-");
        }
    }
    c->printed++;
    return ferror(stdout) ? 1 : 0;
}

/* Fills o and c from argv (o->images: the list's items); returns -1 to go on,
 * or the exit status. */
static int parse_args(int argc, char **argv, encode_options *o, cli_list *images, classify_ctx *c)
{
    cli_args a;
    cli_args_init(&a, "classify", classify_usage, argc, argv);
    while (cli_args_next(&a)) {
        if (encode_options_take(&a, o, images))
            continue;
        if (cli_is(&a, "-k"))
            cli_arg_int(&a, 1, 100000, &c->k);
        else if (cli_is(&a, "--json"))
            c->json = 1;
        else
            cli_args_unknown(&a);
    }
    if (a.status >= 0)
        return a.status;
    return encode_options_finish(&a, o, images);
}

int cmd_classify(int argc, char **argv)
{
    encode_options o;
    encode_options_init(&o);
    classify_ctx c = {.k = 5};
    cli_list images = {0};
    int status = parse_args(argc, argv, &o, &images, &c);
    if (status < 0) {
        size_t ok = 0;
        status = encode_images(&o, classify_ready, classify_one, &c, &ok);
        if (c.json && c.probs)
            printf("%s]\n", c.printed ? "\n" : "");
    }
    free(c.probs), free(c.top);
    cli_list_free(&images);
    return status;
}
