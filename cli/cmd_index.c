/* cmd_index.c: `imgsearch index DIR... -o INDEX --image-model M.isw`: builds or
 * extends an index (engine/index/indexer.c), with progress and failures on stderr and
 * a summary on stdout. */
#include "cli.h"

static const char index_usage[] =
    "usage: imgsearch index DIR|FILE... -o INDEX --image-model IV3.isw [--text-model TXT.isw]\n"
    "                       [--batch N] [--device auto|cpu|cuda] [--gpu N] [--threads N]\n"
    "                       [--precision fp32|tf32|fp16] [--mode torchvision|fid]\n"
    "                       [--dtype f16|f32] [--chunk-rows N] [--conse-top T]\n"
    "                       [--max-pixels N] [--verbose]\n"
    "\n"
    "Indexes every image under the folders (recursively, symbolic links followed,\n"
    "each folder once, files in sorted order) into the folder INDEX: files named\n"
    ".jpg .jpeg .jpe .jfif .png .webp .tif .tiff .gif .bmp (any case), each\n"
    "decoded by its content whatever its name; other files are ignored and\n"
    "counted by extension. Per image\n"
    "the L2-normalized Inception-v3 pool features (for search by image)\n"
    "and, with --text-model, a ConSE embedding in the text model's space (for\n"
    "search by text). docs/FORMAT.md describes the folder.\n"
    "\n"
    "Run it again on the same INDEX to resume after an interruption or to add new\n"
    "files: files already indexed (or recorded as failed) are skipped.\n"
    "\n"
    "  -o, --output INDEX      the index folder (created if absent)\n"
    "  --image-model M.isw     Inception-v3 weights (imgsearch convert)\n"
    "  --text-model M.isw      a BERT sentence encoder for the semantic table\n"
    "  --device auto|cpu|cuda  auto (default): cuda when a GPU is usable, else cpu\n"
    "  --gpu N                 which GPU (default 0)\n"
    "  --precision P           the image model's arithmetic on the GPU (default fp16\n"
    "                          on cuda, fp32 on cpu)\n"
    "  --batch N               images per forward pass (default 64 on cuda, 16 on cpu)\n"
    "  --threads N             decode threads (default: the CPU count, at most 16)\n"
    "  --mode torchvision|fid  the preprocessing (default: the model's)\n"
    "  --dtype f16|f32         storage of the tables (default f16)\n"
    "  --chunk-rows N          rows per chunk file (default 4096)\n"
    "  --conse-top T           classes mixed per semantic embedding (default 10)\n"
    "  --max-pixels N          refuse images of more than N pixels (default 178956970,\n"
    "                          as Pillow); warn above N / 2 (a possible decompression bomb)\n"
    "  --verbose               list the ignored files (not named like an image) on stderr\n"
    "\n"
    "Exit status: 0 every image indexed; 3 the index is complete but some files\n"
    "were skipped (each reported on stderr and recorded in the index with its\n"
    "reason); 1 the run failed (the index keeps every committed chunk); 2 bad\n"
    "command line.\n";

typedef struct index_cli {
    cli_progress bar;
    int verbose;
} index_cli;

static void on_failure(void *ctx, const char *path, const char *reason)
{
    index_cli *c = ctx;
    if (c->bar.tty && c->bar.drawn)
        fputs("\r\033[K", stderr);
    cli_report_file("skipped ", path, reason);
}

static void on_warning(void *ctx, const char *path, const char *message)
{
    index_cli *c = ctx;
    if (c->bar.tty && c->bar.drawn)
        fputs("\r\033[K", stderr);
    cli_image_warning(path, message);
}

static void on_progress(void *ctx, const ims_index_progress *p)
{
    index_cli *c = ctx;
    if (p->stage == IMS_INDEX_STAGE_PLANNED) {
        char ignored[512] = "";
        if (p->walk && ims_file_list_ignored_summary(p->walk, ignored, sizeof ignored) >= sizeof ignored)
            snprintf(ignored + sizeof ignored - 5, 5, "...");
        if (c->verbose && p->walk)
            for (int64_t i = 0; i < p->walk->ignored_count; i++) {
                fputs("imgsearch: ignored ", stderr);
                text_safe(stderr, p->walk->ignored[i]);
                fputc('\n', stderr);
            }
        /* the extensions come from file names: through text_safe */
        fprintf(stderr, "imgsearch: %lld images to index (%lld already in the index; ignored: ", (long long)p->total,
                (long long)p->already);
        text_safe(stderr, ignored[0] ? ignored : "none");
        fprintf(stderr, "); about %.1f MiB on disk, %.1f MiB of host buffers\n",
                (double)p->estimated_disk_bytes / (1 << 20), (double)p->estimated_host_bytes / (1 << 20));
        cli_progress_init(&c->bar, "images", p->total);
        return;
    }
    cli_progress_update(&c->bar, p->done, p->failed, p->stage == IMS_INDEX_STAGE_FINISHED);
}

typedef struct index_args {
    const char *image_path, *text_path;
    cli_device device;
    int precision, mode; /* CLI_PRECISION_DEFAULT, CLI_MODE_MODEL when not given */
    int batch, threads;  /* 0: the defaults */
    int verbose;
    cli_list roots;
} index_args;

/* Fills x and the run options o from argv; returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, index_args *x, ims_index_run_options *o)
{
    cli_args a;
    cli_args_init(&a, "index", index_usage, argc, argv);
    while (cli_args_next(&a)) {
        if (a.operand)
            cli_operand_add(&a, &x->roots);
        else if (cli_is(&a, "-o|--output"))
            cli_arg_path(&a, &o->index_dir);
        else if (cli_is(&a, "--image-model"))
            cli_arg_path(&a, &x->image_path);
        else if (cli_is(&a, "--text-model"))
            cli_arg_path(&a, &x->text_path);
        else if (cli_is(&a, CLI_DEVICE_OPTIONS))
            cli_arg_device(&a, &x->device);
        else if (cli_is(&a, "--precision"))
            cli_arg_precision(&a, &x->precision);
        else if (cli_is(&a, "--mode"))
            cli_arg_mode(&a, &x->mode);
        else if (cli_is(&a, "--dtype"))
            cli_arg_dtype(&a, &o->dtype);
        else if (cli_is(&a, "--batch"))
            cli_arg_int(&a, 1, 4096, &x->batch);
        else if (cli_is(&a, "--threads"))
            cli_arg_int(&a, 1, 256, &x->threads);
        else if (cli_is(&a, "--chunk-rows"))
            cli_arg_int(&a, 1, 1 << 20, &o->chunk_rows);
        else if (cli_is(&a, "--conse-top"))
            cli_arg_int(&a, 1, 100000, &o->conse_top);
        else if (cli_is(&a, CLI_MAX_PIXELS_OPTION))
            cli_arg_max_pixels(&a, &o->decode);
        else if (cli_is(&a, "--verbose|-v"))
            x->verbose = 1;
        else
            cli_args_unknown(&a);
    }
    if (a.status >= 0)
        return a.status;
    if (!o->index_dir)
        return cli_args_error(&a, "no output: -o INDEX");
    if (!x->image_path)
        return cli_args_error(&a, "no image model: --image-model IV3.isw");
    if (x->roots.count == 0)
        return cli_args_error(&a, "no folders or images to index");
    return -1;
}

int cmd_index(int argc, char **argv)
{
    ims_index_run_options o;
    ims_index_run_options_init(&o);
    index_args x = {.precision = CLI_PRECISION_DEFAULT, .mode = CLI_MODE_MODEL};
    int rc = parse_args(argc, argv, &x, &o);
    if (rc >= 0) {
        cli_list_free(&x.roots);
        return rc;
    }
    const char *image_path = x.image_path, *text_path = x.text_path;

    ims_error err = {0};
    cli_models m;
    ims_status st = cli_models_load(&m, &x.device, x.precision, image_path, text_path, &err);
    if (!st)
        o.mode = cli_mode_resolve(x.mode, m.image_weights);
    if (!st && cli_models_synthetic(&m))
        fprintf(stderr, "imgsearch: WARNING: %s holds synthetic weights: the embeddings are not meaningful\n",
                image_path);
    index_cli ctx = {.verbose = x.verbose};
    ims_index_progress result = {0};
    if (!st) {
        int cuda = ims_backend_get_info(m.backend)->kind == IMS_BACKEND_CUDA;
        o.roots = x.roots.items;
        o.root_count = x.roots.count;
        o.backend = m.backend;
        o.image_model = m.image_weights;
        o.text_model = m.text_weights;
        o.precision = m.precision;
        o.batch_size = x.batch ? x.batch : cuda ? 64 : 16;
        o.threads = x.threads ? x.threads : cli_default_threads(16);
        o.progress = on_progress;
        o.on_failure = on_failure;
        o.on_warning = on_warning;
        o.progress_ctx = &ctx;
        st = ims_index_run(&o, &result, &err);
    }
    cli_models_close(&m);
    cli_list_free(&x.roots);
    if (st) {
        if (ctx.bar.tty && ctx.bar.drawn)
            fputc('\n', stderr);
        return cli_error(&err);
    }
    printf("indexed %lld images into %s (%lld skipped, %lld already there) in %.1f s: "
           "waiting for decode %.1f s, model %.1f s, writing %.1f s\n",
           (long long)result.indexed, o.index_dir, (long long)result.failed, (long long)result.already, result.elapsed_s, result.decode_wait_s,
           result.model_s, result.write_s);
    return result.failed ? CLI_EXIT_SOME_FAILED : CLI_EXIT_OK;
}
