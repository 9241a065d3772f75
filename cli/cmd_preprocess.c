/* cmd_preprocess.c: `imgsearch preprocess IMAGE... -o OUT.npy`: the exact
 * network input for a list of images, as a NumPy .npy file, for comparison with
 * the reference Python pipelines.
 *
 * The .npy file (format 1.0, data at a multiple of 64 bytes, C order) is
 * written by engine/io/npy.c's streamed writer. Images go through engine/image/loader.c (decode
 * threads, batches in order) and are streamed to a temporary file in the
 * output's folder, which is synced and renamed over OUT only when every image
 * succeeded: a crash or a failed image leaves no partial OUT.
 */
#include "cli.h"

static const char preprocess_usage[] =
    "usage: imgsearch preprocess IMAGE... -o OUT.npy [--mode torchvision|fid|clean] [--uint8]\n"
    "                            [--exif ignore|apply] [--threads N] [--max-pixels N]\n"
    "\n"
    "Writes the exact network input of each IMAGE (JPEG, PNG, WebP, TIFF, GIF or BMP,\n"
    "recognized by content) as one NumPy .npy\n"
    "array, in the order given, for comparison with the Python reference pipelines.\n"
    "\n"
    "  -o, --output OUT.npy   the file to write (replaced atomically)\n"
    "  --mode torchvision     resize the short side to 342 (Pillow bilinear), center\n"
    "                         crop 299, normalize with the ImageNet mean and std\n"
    "                         (the default)\n"
    "  --mode fid             bilinear resize to 299 x 299 (torch interpolate), then\n"
    "                         scale to [-1, 1]\n"
    "  --mode clean           clean-fid's: Pillow bicubic resize to 299 x 299 of each\n"
    "                         channel in float, clip to 0..255, (x - 128) / 128\n"
    "  --uint8                torchvision mode only: the resized and cropped pixels\n"
    "                         before normalization\n"
    "  --exif apply|ignore    apply the EXIF orientation (default), or ignore it as\n"
    "                         torchvision's own pipeline does\n"
    "  --threads N            decode threads (default: the CPU count, at most 8)\n"
    "  --max-pixels N         refuse images of more than N pixels (default 178956970,\n"
    "                         as Pillow); warn above N / 2\n"
    "\n"
    "Output: float32 of shape (N, 3, 299, 299), or uint8 of shape (N, 299, 299, 3)\n"
    "with --uint8. A summary line goes to stdout.\n"
    "\n"
    "If any image cannot be read or decoded, each failure is reported on stderr as\n"
    "'imgsearch: IMAGE: reason', nothing is written, and the exit status is 1.\n";

typedef struct preprocess_options {
    const char *output;
    cli_list images;
    ims_preprocess_mode mode;
    int uint8, exif, threads;
    ims_decode_options decode; /* --max-pixels */
} preprocess_options;

enum { PREPROCESS_BATCH = 16, PREPROCESS_MAX_THREADS = 8 };

/* ---- Command line ------------------------------------------------------------------ */

/* Fills o from argv; returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, preprocess_options *o)
{
    static const char *const exif_names[] = {"ignore", "apply", NULL};
    cli_args a;
    cli_args_init(&a, "preprocess", preprocess_usage, argc, argv);
    int mode = (int)o->mode;
    while (cli_args_next(&a)) {
        if (a.operand)
            cli_operand_add(&a, &o->images);
        else if (cli_is(&a, "--uint8"))
            o->uint8 = 1;
        else if (cli_is(&a, "-o|--output"))
            cli_arg_path(&a, &o->output);
        else if (cli_is(&a, "--mode"))
            cli_arg_mode(&a, &mode);
        else if (cli_is(&a, "--exif"))
            cli_arg_choice(&a, exif_names, &o->exif); /* 1: apply */
        else if (cli_is(&a, "--threads"))
            cli_arg_int(&a, 1, 256, &o->threads);
        else if (cli_is(&a, CLI_MAX_PIXELS_OPTION))
            cli_arg_max_pixels(&a, &o->decode);
        else
            cli_args_unknown(&a);
    }
    if (a.status >= 0)
        return a.status;
    o->mode = (ims_preprocess_mode)mode;
    if (!o->images.count)
        return cli_args_error(&a, "missing IMAGE");
    if (!o->output)
        return cli_args_error(&a, "missing -o OUT.npy");
    if (o->uint8 && o->mode != IMS_PREPROCESS_TORCHVISION)
        return cli_args_error(&a, "--uint8 exists in torchvision mode only");
    return -1;
}

/* ---- The command ---------------------------------------------------------------------- */

/* Streams every batch into out; reports each failed image. Returns the exit status. */
static int write_batches(ims_image_loader *ld, const preprocess_options *o, ims_npy_writer *out, size_t *failed)
{
    ims_error err = {0};
    if (ims_image_loader_start(ld, o->images.items, o->images.count, &err))
        return cli_error(&err);
    const ims_image_batch *b;
    ims_status st;
    ims_error write_error = {0};
    while ((st = ims_image_loader_next(ld, &b, &err)) == IMS_OK) {
        for (int j = 0; j < b->count; j++)
            if (b->items[j].status)
                fprintf(stderr, "imgsearch: %s: %s\n", b->items[j].path, b->items[j].reason);
            else if (b->items[j].warnings)
                cli_image_warning(b->items[j].path, b->items[j].reason);
        *failed += (size_t)b->failed;
        size_t n = (size_t)b->count * b->item_bytes;
        if (!*failed && !write_error.code)
            (void)ims_npy_writer_write(out, b->data, n, &write_error);
        ims_image_loader_release(ld, b);
    }
    if (st != IMS_ERR_NOT_FOUND)
        return cli_error(&err);
    if (write_error.code && !*failed)
        return cli_error(&write_error);
    return *failed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

static int run_preprocess(const preprocess_options *o)
{
    double t0 = ims_clock_seconds();
    ims_image_loader_options lo;
    ims_image_loader_options_init(&lo);
    lo.mode = o->mode;
    lo.output = o->uint8 ? IMS_LOADER_OUTPUT_U8 : IMS_LOADER_OUTPUT_F32;
    lo.layout = IMS_LAYOUT_NCHW;
    lo.batch_size = PREPROCESS_BATCH;
    lo.threads = o->threads;
    if ((size_t)lo.threads > o->images.count)
        lo.threads = (int)o->images.count;
    lo.decode = o->decode;
    lo.decode.apply_exif_orientation = o->exif;

    const int64_t s = IMS_IMAGE_INPUT_SIZE;
    const int64_t shape_u8[4] = {(int64_t)o->images.count, s, s, 3}, shape_f32[4] = {(int64_t)o->images.count, 3, s, s};
    ims_npy_writer *out = NULL;
    ims_error err = {0};
    if (ims_npy_writer_open(o->output, o->uint8 ? IMS_DTYPE_U8 : IMS_DTYPE_F32, 4, o->uint8 ? shape_u8 : shape_f32,
                            &out, &err))
        return cli_error(&err);

    ims_image_loader *ld = NULL;
    if (ims_image_loader_create(&lo, NULL, &ld, &err)) {
        ims_npy_writer_discard(out);
        return cli_error(&err);
    }
    size_t failed = 0;
    int status = write_batches(ld, o, out, &failed);
    ims_image_loader_stats stats;
    ims_image_loader_get_stats(ld, &stats);
    ims_image_loader_free(ld);
    if (status) {
        ims_npy_writer_discard(out);
        if (failed)
            fprintf(stderr, "imgsearch: %zu of %zu images failed; %s not written\n", failed, o->images.count, o->output);
        return status;
    }
    if (ims_npy_writer_commit(out, &err))
        return cli_error(&err);

    if (o->uint8)
        printf("%s: %zu images, uint8 (%zu, %d, %d, 3)", o->output, o->images.count, o->images.count, (int)s, (int)s);
    else
        printf("%s: %zu images, float32 (%zu, 3, %d, %d)", o->output, o->images.count, o->images.count, (int)s, (int)s);
    printf(", %s mode, exif %s; %.2f s (read %.2f s, decode %.2f s, preprocess %.2f s over %d threads)\n",
           ims_preprocess_mode_name(o->mode), o->exif ? "applied" : "ignored",
           ims_clock_seconds() - t0, stats.read_s, stats.decode_s, stats.preprocess_s, lo.threads);
    return CLI_EXIT_OK;
}

int cmd_preprocess(int argc, char **argv)
{
    preprocess_options o = {.mode = IMS_PREPROCESS_TORCHVISION, .exif = 1,
                            .threads = cli_default_threads(PREPROCESS_MAX_THREADS)};
    ims_decode_options_init(&o.decode);
    int status = parse_args(argc, argv, &o);
    if (status < 0)
        status = run_preprocess(&o);
    cli_list_free(&o.images);
    return status;
}
