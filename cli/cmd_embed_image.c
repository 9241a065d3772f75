/* cmd_embed_image.c: `imgsearch embed-image IMAGE... --image-model M.isw -o
 * OUT.npy`: Inception-v3 pooled features (or logits) of images as a float32
 * NumPy array (N, D), one row per image that could be read, in input order.
 * The rows stream through the .npy writer (engine/io/npy.c), whose row count is
 * completed at the end (it is known only then), into a temporary file renamed
 * over OUT.
 */
#include "encode_images.h"

#include <stdlib.h>
#include <string.h>

static const char embed_usage[] =
    "usage: imgsearch embed-image IMAGE... --image-model M.isw -o OUT.npy\n"
    "                             [--what features|logits] [--mode torchvision|fid]\n"
    "                             [--device cpu|cuda] [--precision fp32|tf32|fp16] [--batch N]\n"
    "\n"
    "Writes each IMAGE's Inception-v3 output as one row of a float32 NumPy array.\n"
    "\n"
    "  --image-model M.isw  the model (imgsearch convert)\n"
    "  -o, --output OUT.npy the file to write (replaced atomically)\n"
    "  --what features      the 2048-d pooled features (default; the FID feature)\n"
    "  --what logits        the class logits\n"
    "  --mode M             preprocessing: torchvision (resize 342, crop 299) or fid\n"
    "                       (bilinear 299 x 299); default: the model's\n"
    "  --device, --precision, --batch: as in classify\n"
    "\n"
    "Exit status: 0 success, 1 failure (nothing written), 2 bad command line,\n"
    "3 some images could not be read (each reported on stderr; OUT holds the rows\n"
    "of the others, in order).\n";

typedef struct embed_ctx {
    const char *output;
    ims_npy_writer *w;
    int logits, dim;
    size_t rows;
} embed_ctx;

static int embed_ready(void *vctx, const ims_image_encoder *enc)
{
    embed_ctx *c = vctx;
    c->dim = c->logits ? ims_image_encoder_num_classes(enc) : ims_image_encoder_feature_dim(enc);
    ims_error err = {0};
    int64_t shape[2] = {IMS_NPY_ROWS_UNKNOWN, c->dim};
    return ims_npy_writer_open(c->output, IMS_NPY_F32, 2, shape, &c->w, &err) ? cli_error(&err) : 0;
}

static int embed_one(void *vctx, size_t index, const char *path, const float *features, const float *logits,
                     const ims_image_encoder *enc)
{
    (void)index, (void)path, (void)enc;
    embed_ctx *c = vctx;
    const float *row = c->logits ? logits : features;
    ims_error err = {0};
    if (ims_npy_writer_write(c->w, row, (size_t)c->dim * sizeof *row, &err))
        return cli_error(&err);
    c->rows++;
    return 0;
}

/* Commits OUT when every image, or some of them (exit 3), gave a row;
 * otherwise leaves OUT as it was. */
static int embed_finish(embed_ctx *c, int status)
{
    if (!c->w)
        return status;
    int keep = status == CLI_EXIT_OK || (status == CLI_EXIT_SOME_FAILED && c->rows > 0);
    ims_error err = {0};
    if (!keep)
        ims_npy_writer_discard(c->w);
    else if (ims_npy_writer_commit(c->w, &err))
        status = cli_error(&err);
    c->w = NULL;
    return status == CLI_EXIT_SOME_FAILED && !c->rows ? CLI_EXIT_FAILURE : status;
}

int cmd_embed_image(int argc, char **argv)
{
    encode_options o;
    encode_options_init(&o);
    embed_ctx c = {0};
    o.images = calloc((size_t)argc, sizeof *o.images);
    if (!o.images) {
        fprintf(stderr, "imgsearch: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    int status = -1;
    for (int i = 1; i < argc && status < 0; i++) {
        const char *a = argv[i];
        int r = encode_parse_option("embed-image", argc, argv, &i, &o);
        if (r < 0) {
            status = CLI_EXIT_USAGE;
        } else if (r) {
            continue;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(embed_usage, stdout);
            status = CLI_EXIT_OK;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--what")) {
            if (i + 1 >= argc) {
                status = cli_usage_error("embed-image", "%s needs a value", a);
                break;
            }
            const char *v = argv[++i];
            if (strcmp(a, "--what"))
                c.output = v;
            else if (!strcmp(v, "features") || !strcmp(v, "logits"))
                c.logits = !strcmp(v, "logits");
            else
                status = cli_usage_error("embed-image", "--what must be features or logits, not '%s'", v);
        } else if (a[0] == '-' && a[1]) {
            status = cli_usage_error("embed-image", "unknown option '%s'", a);
        } else {
            o.images[o.count++] = a;
        }
    }
    if (status < 0 && !o.count)
        status = cli_usage_error("embed-image", "missing IMAGE");
    if (status < 0 && !o.model)
        status = cli_usage_error("embed-image", "missing --image-model M.isw");
    if (status < 0 && !c.output)
        status = cli_usage_error("embed-image", "missing -o OUT.npy");
    if (status < 0) {
        size_t ok = 0;
        status = embed_finish(&c, encode_images(&o, embed_ready, embed_one, &c, &ok));
        if (status == CLI_EXIT_OK || status == CLI_EXIT_SOME_FAILED)
            printf("%s: %zu of %zu images, float32 (%zu, %d) %s\n", c.output, c.rows, o.count, c.rows, c.dim,
                   c.logits ? "logits" : "features");
    }
    free(o.images);
    return status;
}
