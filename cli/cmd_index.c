/* cmd_index.c: `imgsearch index DIR... -o INDEX --image-model M.isw`: builds or
 * extends an index (engine/index/indexer.c), with progress and failures on stderr and
 * a summary on stdout. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

static const char index_usage[] =
    "usage: imgsearch index DIR|FILE... -o INDEX --image-model IV3.isw [--text-model TXT.isw]\n"
    "                       [--batch N] [--device cuda|cpu] [--gpu N] [--threads N]\n"
    "                       [--precision fp32|tf32|fp16] [--mode torchvision|fid]\n"
    "                       [--dtype f16|f32] [--chunk-rows N] [--conse-top T]\n"
    "\n"
    "Indexes every JPEG and PNG under the folders (recursively, symbolic links\n"
    "followed, each folder once, files in sorted order) into the folder INDEX:\n"
    "per image the L2-normalized Inception-v3 pool features (for search by image)\n"
    "and, with --text-model, a ConSE embedding in the text model's space (for\n"
    "search by text). docs/FORMAT.md describes the folder.\n"
    "\n"
    "Run it again on the same INDEX to resume after an interruption or to add new\n"
    "files: files already indexed (or recorded as failed) are skipped.\n"
    "\n"
    "  -o, --output INDEX      the index folder (created if absent)\n"
    "  --image-model M.isw     Inception-v3 weights (imgsearch convert)\n"
    "  --text-model M.isw      a BERT sentence encoder for the semantic table\n"
    "  --device cuda|cpu       default: cuda when a GPU is usable, else cpu\n"
    "  --precision P           the image model's arithmetic on the GPU (default fp16\n"
    "                          on cuda, fp32 on cpu)\n"
    "  --batch N               images per forward pass (default 64 on cuda, 16 on cpu)\n"
    "  --threads N             decode threads (default: the CPU count, at most 16)\n"
    "  --mode torchvision|fid  the preprocessing (default: the model's)\n"
    "  --dtype f16|f32         storage of the tables (default f16)\n"
    "  --chunk-rows N          rows per chunk file (default 4096)\n"
    "  --conse-top T           classes mixed per semantic embedding (default 10)\n"
    "\n"
    "Exit status: 0 every image indexed; 3 the index is complete but some files\n"
    "were skipped (each reported on stderr and recorded in the index with its\n"
    "reason); 1 the run failed (the index keeps every committed chunk); 2 bad\n"
    "command line.\n";

typedef struct index_cli {
    cli_progress bar;
} index_cli;

static void on_failure(void *ctx, const char *path, const char *reason)
{
    index_cli *c = ctx;
    if (c->bar.tty && c->bar.drawn)
        fputs("\r\033[K", stderr);
    fprintf(stderr, "imgsearch: skipped %s: %s\n", path, reason);
}

static void on_progress(void *ctx, const ims_index_progress *p)
{
    index_cli *c = ctx;
    if (p->stage == IMS_INDEX_STAGE_PLANNED) {
        fprintf(stderr,
                "imgsearch: %zu images to index (%zu already in the index, %zu non-image files ignored); "
                "about %.1f MiB on disk, %.1f MiB of host buffers\n",
                p->total, p->already, p->ignored, (double)p->estimated_disk_bytes / (1 << 20),
                (double)p->estimated_host_bytes / (1 << 20));
        cli_progress_init(&c->bar, "images", p->total);
        return;
    }
    cli_progress_update(&c->bar, p->done, p->failed, p->stage == IMS_INDEX_STAGE_FINISHED);
}

int cmd_index(int argc, char **argv)
{
    ims_index_run_options o;
    ims_index_run_options_init(&o);
    const char *image_path = NULL, *text_path = NULL, *device = NULL, *precision = NULL, *mode = NULL;
    const char **roots = calloc((size_t)argc, sizeof *roots);
    size_t root_count = 0;
    int batch = 0, threads = 0, gpu = 0;
    if (!roots)
        return CLI_EXIT_FAILURE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(index_usage, stdout);
            free(roots);
            return CLI_EXIT_OK;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && next) {
            o.index_dir = argv[++i];
        } else if (!strcmp(a, "--image-model") && next) {
            image_path = argv[++i];
        } else if (!strcmp(a, "--text-model") && next) {
            text_path = argv[++i];
        } else if (!strcmp(a, "--device") && next) {
            device = argv[++i];
        } else if (!strcmp(a, "--precision") && next) {
            precision = argv[++i];
        } else if (!strcmp(a, "--mode") && next) {
            mode = argv[++i];
        } else if (!strcmp(a, "--dtype") && next) {
            const char *d = argv[++i];
            if (strcmp(d, "f16") && strcmp(d, "f32"))
                rc = cli_usage_error("index", "--dtype '%s': expected f16 or f32", d);
            o.dtype = !strcmp(d, "f16") ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
        } else if (!strcmp(a, "--batch") && next) {
            rc = cli_parse_int("index", a, argv[++i], 1, 4096, &batch);
        } else if (!strcmp(a, "--threads") && next) {
            rc = cli_parse_int("index", a, argv[++i], 1, 256, &threads);
        } else if (!strcmp(a, "--gpu") && next) {
            rc = cli_parse_int("index", a, argv[++i], 0, 64, &gpu);
        } else if (!strcmp(a, "--chunk-rows") && next) {
            rc = cli_parse_int("index", a, argv[++i], 1, 1 << 20, &o.chunk_rows);
        } else if (!strcmp(a, "--conse-top") && next) {
            rc = cli_parse_int("index", a, argv[++i], 1, 100000, &o.conse_top);
        } else if (a[0] == '-' && a[1] != '\0') {
            rc = cli_usage_error("index", "unknown option '%s' (or its value is missing)", a);
        } else {
            roots[root_count++] = a;
        }
        if (rc) {
            free(roots);
            return rc;
        }
    }
    int rc = CLI_EXIT_OK;
    if (!o.index_dir)
        rc = cli_usage_error("index", "no output: -o INDEX");
    else if (!image_path)
        rc = cli_usage_error("index", "no image model: --image-model IV3.isw");
    else if (root_count == 0)
        rc = cli_usage_error("index", "no folders or images to index");
    if (rc) {
        free(roots);
        return rc;
    }

    ims_error err = {0};
    cli_models m;
    ims_status st = cli_models_open(&m, device, gpu, precision, image_path, text_path, &err);
    if (!st)
        st = cli_parse_mode(mode, m.image_weights, &o.mode, &err);
    if (!st && cli_models_synthetic(&m))
        fprintf(stderr, "imgsearch: WARNING: %s holds synthetic weights: the embeddings are not meaningful\n",
                image_path);
    index_cli ctx = {0};
    ims_index_progress result = {0};
    if (!st) {
        int cuda = ims_backend_get_info(m.backend)->kind == IMS_BACKEND_CUDA;
        o.roots = roots;
        o.root_count = root_count;
        o.backend = m.backend;
        o.image_model = m.image_weights;
        o.image_model_path = image_path;
        o.text = m.text;
        o.text_model_path = text_path;
        o.precision = m.precision;
        o.batch_size = batch ? batch : cuda ? 64 : 16;
        o.threads = threads ? threads : cli_default_threads(16);
        o.progress = on_progress;
        o.on_failure = on_failure;
        o.progress_ctx = &ctx;
        st = ims_index_run(&o, &result, &err);
    }
    cli_models_close(&m);
    free(roots);
    if (st) {
        if (ctx.bar.tty && ctx.bar.drawn)
            fputc('\n', stderr);
        return cli_error(&err);
    }
    printf("indexed %zu images into %s (%zu skipped, %zu already there) in %.1f s: "
           "waiting for decode %.1f s, model %.1f s, writing %.1f s\n",
           result.indexed, o.index_dir, result.failed, result.already, result.elapsed_s, result.decode_wait_s,
           result.model_s, result.write_s);
    return result.failed ? CLI_EXIT_SOME_FAILED : CLI_EXIT_OK;
}
