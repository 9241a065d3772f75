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
    "                             [--what features|logits] [--mode torchvision|fid|clean]\n"
    "                             [--device auto|cpu|cuda] [--gpu N] [--precision fp32|tf32|fp16]\n"
    "                             [--batch N] [--threads N] [--max-pixels N]\n"
    "\n"
    "Writes each IMAGE's Inception-v3 output as one row of a float32 NumPy array\n"
    "(JPEG, PNG, WebP, TIFF, GIF or BMP, recognized by content).\n"
    "\n"
    "  --image-model M.isw  the model (imgsearch convert)\n"
    "  -o, --output OUT.npy the file to write (replaced atomically)\n"
    "  --what features      the 2048-d pooled features (default; the FID feature)\n"
    "  --what logits        the class logits\n"
    "  --mode M             preprocessing: torchvision (resize 342, crop 299) or fid\n"
    "                       (bilinear 299 x 299); default: the model's\n"
    "  --device auto|cpu|cuda\n"
    "                       where to run: auto (default) is cuda when a GPU is\n"
    "                       usable, else cpu\n"
    "  --gpu N              which GPU (default 0)\n"
    "  --precision P        fp32 (default), tf32 or fp16 (cuda only)\n"
    "  --batch N            images per forward pass (default 32)\n"
    "  --threads N          decode threads (default: the CPU count, at most 8)\n"
    CLI_MAX_PIXELS_HELP
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
    return ims_npy_writer_open(c->output, IMS_DTYPE_F32, 2, shape, &c->w, &err) ? cli_error(&err) : 0;
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

/* Fills o and c from argv (o->images: the list's items); returns -1 to go on,
 * or the exit status. */
static int parse_args(int argc, char **argv, encode_options *o, cli_list *images, embed_ctx *c)
{
    static const char *const what_names[] = {"features", "logits", NULL};
    cli_args a;
    cli_args_init(&a, "embed-image", embed_usage, argc, argv);
    while (cli_args_next(&a)) {
        if (encode_options_take(&a, o, images))
            continue;
        if (cli_is(&a, "-o|--output"))
            cli_arg_path(&a, &c->output);
        else if (cli_is(&a, "--what"))
            cli_arg_choice(&a, what_names, &c->logits); /* 1: logits */
        else
            cli_args_unknown(&a);
    }
    if (a.status >= 0)
        return a.status;
    int status = encode_options_finish(&a, o, images);
    if (status >= 0)
        return status;
    if (!c->output)
        return cli_args_error(&a, "missing -o OUT.npy");
    return -1;
}

int cmd_embed_image(int argc, char **argv)
{
    encode_options o;
    encode_options_init(&o);
    embed_ctx c = {0};
    cli_list images = {0};
    int status = parse_args(argc, argv, &o, &images, &c);
    if (status < 0) {
        size_t ok = 0;
        status = embed_finish(&c, encode_images(&o, embed_ready, embed_one, &c, &ok));
        if (status == CLI_EXIT_OK || status == CLI_EXIT_SOME_FAILED)
            printf("%s: %zu of %zu images, float32 (%zu, %d) %s\n", c.output, c.rows, o.count, c.rows, c.dim,
                   c.logits ? "logits" : "features");
    }
    cli_list_free(&images);
    return status;
}
