/* cmd_index.c: `imgsearch index DIR... -o INDEX --image-model M.isw`: builds an
 * index or brings it up to date with its folders (engine/index/indexer.c),
 * with progress and failures on stderr and a summary on stdout; and the
 * index's maintenance: --compact INDEX, --upgrade INDEX (engine/index/compact.c). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char index_usage[] =
    "usage: imgsearch index [DIR|FILE...] -o INDEX [--image-model IV3.isw] [--text-model TXT.isw]\n"
    "                       [--batch N] [--device auto|cpu|cuda] [--gpu N] [--threads N]\n"
    "                       [--precision fp32|tf32|fp16] [--mode torchvision|fid|clean]\n"
    "                       [--dtype f16|f32] [--chunk-rows N] [--conse-top T]\n"
    "                       [--commit-every SECONDS] [--retry-failed] [--verify-content]\n"
    "                       [--no-prune] [--max-pixels N] [--verbose] [--shard I/N|auto]\n"
    "       imgsearch index --compact INDEX\n"
    "       imgsearch index --upgrade INDEX [--base DIR]\n"
    "\n"
    "Indexes every image under the folders (recursively, symbolic links followed,\n"
    "each folder once, files in sorted order) into the folder INDEX: files named\n"
    ".jpg .jpeg .jpe .jfif .png .webp .tif .tiff .gif .bmp (any case), each\n"
    "decoded by its content whatever its name; other files are ignored and\n"
    "counted by extension. Per image the L2-normalized Inception-v3 pool features\n"
    "(for search by image) and, with --text-model, a ConSE embedding in the text\n"
    "model's space (for search by text). docs/FORMAT.md describes the folder.\n"
    "\n"
    "Run it again on the same INDEX to resume after an interruption or to bring\n"
    "the index up to date: new files are added; a file whose size or modification\n"
    "time changed is indexed again (its old row retired); the rows of files gone\n"
    "from the folders are retired (search never returns them); files recorded as\n"
    "failed are tried again when they changed. Without DIR it updates the folders\n"
    "the index recorded. The index remembers its models, --mode, --dtype,\n"
    "--chunk-rows, --conse-top and --precision: leave them out; one that\n"
    "contradicts the index is refused. --batch, --threads, --device and\n"
    "--commit-every only change the speed. One writer at a time: a second run on\n"
    "the same INDEX is refused while the first holds it; search works meanwhile.\n"
    "\n"
    "  -o, --output INDEX      the index folder (created if absent; a folder that holds\n"
    "                          other files is refused)\n"
    "  --image-model M.isw     Inception-v3 weights (imgsearch convert); default: the index's\n"
    "  --text-model M.isw      a BERT sentence encoder for the semantic table; default: the index's\n"
    "  --device auto|cpu|cuda  auto (default): cuda when a GPU is usable, else cpu\n"
    "  --gpu N                 which GPU (default 0)\n"
    "  --precision P           the image model's arithmetic on the GPU (default: the\n"
    "                          index's, else fp16 on cuda, fp32 on cpu)\n"
    "  --batch N               images per forward pass (default 64 on cuda, 16 on cpu)\n"
    "  --threads N             decode threads (default: the CPU count, at most 16)\n"
    "  --mode torchvision|fid|clean  the preprocessing (default: the index's, else the model's)\n"
    "  --dtype f16|f32         storage of the tables (default f16)\n"
    "  --chunk-rows N          rows per chunk file at most (default 4096)\n"
    "  --conse-top T           classes mixed per semantic embedding (default 10)\n"
    "  --commit-every S        commit at least every S seconds (default 60): a kill\n"
    "                          loses at most about that much work\n"
    "  --retry-failed          try every file recorded as failed again\n"
    "  --verify-content        also compare each file's bytes (CRC-32) with what was\n"
    "                          indexed, not just its size and time (reads every file)\n"
    "  --no-prune              keep the rows of files that are gone (removable media)\n"
    "  --max-pixels N          refuse images of more than N pixels (default 178956970,\n"
    "                          as Pillow); warn above N / 2 (a possible decompression bomb)\n"
    "  --verbose               list the ignored files (not named like an image) on stderr\n"
    "  --shard I/N|auto        index only shard I (0..N-1) of the files: those whose path\n"
    "                          below its folder hashes to I (adding files never moves\n"
    "                          one); auto: I and N from the launcher's environment\n"
    "                          (SLURM_ARRAY_TASK_ID/_COUNT, OMPI_COMM_WORLD_RANK/_SIZE,\n"
    "                          PMI_RANK/_SIZE). {shard} in -o becomes I (4 digits).\n"
    "                          The index remembers its shard; search a set of shards\n"
    "                          with 'imgsearch index-set' (docs/SCALE.md)\n"
    "  --compact INDEX         rewrite INDEX without its retired rows (small chunks\n"
    "                          merged), crash-safely; row ids are renumbered\n"
    "  --upgrade INDEX         rewrite a format-version-1 INDEX as version 2: its paths\n"
    "                          become absolute, relative to --base DIR (default: the\n"
    "                          current folder: run it where the index was made)\n"
    "\n"
    "Exit status: 0 every image indexed; 3 the index is complete but some files\n"
    "were skipped in this run (each reported on stderr and recorded in the index\n"
    "with its reason); 1 the run failed (the index keeps every committed chunk);\n"
    "2 bad command line.\n";

typedef struct index_cli {
    cli_progress bar;
    int verbose;
} index_cli;

static void clear_bar(index_cli *c)
{
    if (c->bar.tty && c->bar.drawn)
        fputs("\r\033[K", stderr);
}

static void on_failure(void *ctx, const char *path, const char *reason)
{
    clear_bar(ctx);
    cli_report_file("skipped ", path, reason);
}

static void on_warning(void *ctx, const char *path, const char *message)
{
    clear_bar(ctx);
    cli_image_warning(path, message);
}

static void on_progress(void *ctx, const ims_index_progress *p)
{
    index_cli *c = ctx;
    if (p->stage == IMS_INDEX_STAGE_PLANNED) {
        if (p->synthetic)
            fprintf(stderr, "imgsearch: WARNING: the image model holds synthetic weights: the embeddings are not "
                            "meaningful\n");
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
        fprintf(stderr, "imgsearch: %lld images to index (%lld already in the index, %lld gone from the folders; "
                        "ignored: ",
                (long long)p->total, (long long)p->already, (long long)p->removed);
        text_safe(stderr, ignored[0] ? ignored : "none");
        fprintf(stderr, "); about %.1f MiB on disk, %.1f MiB of host buffers\n",
                (double)p->estimated_disk_bytes / (1 << 20), (double)p->estimated_host_bytes / (1 << 20));
        cli_progress_init(&c->bar, "images", (size_t)p->total);
        return;
    }
    cli_progress_update(&c->bar, (size_t)p->done, (size_t)p->failed, p->stage == IMS_INDEX_STAGE_FINISHED);
}

typedef struct index_args {
    const char *image_path, *text_path;
    const char *compact, *upgrade, *base; /* maintenance: the index to rewrite */
    cli_device device;
    int precision, mode; /* CLI_PRECISION_DEFAULT, CLI_MODE_MODEL when not given */
    int verbose;
    const char *shard_text; /* --shard */
    int shard, shards;      /* shards 0: not given */
    char *output;           /* -o with {shard} replaced */
    cli_list roots;
} index_args;

/* An integer in 0..max from text (all of it); -1 if it is not one. */
static int small_int(const char *t, int max)
{
    if (!t || !*t)
        return -1;
    char *end;
    long v = strtol(t, &end, 10);
    return *end || v < 0 || v > max ? -1 : (int)v;
}

/* --shard I/N, or auto: the launcher's rank and size. 0, or a message. */
static const char *parse_shard(const char *text, int *shard, int *shards)
{
    static const char *const vars[][3] = {{"SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"},
                                          {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", NULL},
                                          {"PMI_RANK", "PMI_SIZE", NULL}};
    if (strcmp(text, "auto") == 0) {
        for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
            int id = small_int(getenv(vars[i][0]), 1 << 20), count = small_int(getenv(vars[i][1]), 1 << 20);
            int min = vars[i][2] && getenv(vars[i][2]) ? small_int(getenv(vars[i][2]), 1 << 20) : 0;
            if (id < 0 || count < 1 || min < 0)
                continue;
            *shard = id - min; /* an array 1-8 is shards 0..7 */
            *shards = count;
            return *shard >= 0 && *shard < count ? NULL : "auto: the launcher's task id is outside its count";
        }
        return "auto: none of SLURM_ARRAY_TASK_ID/_COUNT, OMPI_COMM_WORLD_RANK/_SIZE, PMI_RANK/_SIZE is set";
    }
    const char *slash = strchr(text, '/');
    char num[16];
    if (!slash || (size_t)(slash - text) >= sizeof num)
        return "expected I/N (such as 3/8) or auto";
    memcpy(num, text, (size_t)(slash - text));
    num[slash - text] = '\0';
    *shard = small_int(num, 1 << 20);
    *shards = small_int(slash + 1, 1 << 20);
    if (*shard < 0 || *shards < 1 || *shard >= *shards)
        return "expected I/N with 0 <= I < N <= 1048576 (such as 3/8) or auto";
    return NULL;
}

/* -o with {shard} replaced by the shard number; NULL when out of memory. */
static char *shard_output(const char *dir, int shard)
{
    const char *at = strstr(dir, "{shard}");
    size_t len = strlen(dir) + 16;
    char *out = malloc(len);
    if (out && at)
        snprintf(out, len, "%.*s%04d%s", (int)(at - dir), dir, shard, at + 7);
    else if (out)
        snprintf(out, len, "%s", dir);
    return out;
}

static int is_index(const char *dir)
{
    char path[4200];
    struct stat sb;
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    return stat(path, &sb) == 0;
}

/* Fills x and the run options o from argv; returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, index_args *x, ims_index_run_options *o)
{
    cli_args a;
    int seconds = 0;
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
            cli_arg_int(&a, 1, 4096, &o->batch_size);
        else if (cli_is(&a, "--threads"))
            cli_arg_int(&a, 1, 256, &o->threads);
        else if (cli_is(&a, "--chunk-rows"))
            cli_arg_int(&a, 1, 1 << 20, &o->chunk_rows);
        else if (cli_is(&a, "--conse-top"))
            cli_arg_int(&a, 1, 100000, &o->conse_top);
        else if (cli_is(&a, "--commit-every"))
            cli_arg_int(&a, 1, 86400, &seconds);
        else if (cli_is(&a, "--retry-failed"))
            o->retry_failed = 1;
        else if (cli_is(&a, "--verify-content"))
            o->verify_content = 1;
        else if (cli_is(&a, "--no-prune"))
            o->keep_missing = 1;
        else if (cli_is(&a, CLI_MAX_PIXELS_OPTION))
            cli_arg_max_pixels(&a, &o->decode);
        else if (cli_is(&a, "--verbose|-v"))
            x->verbose = 1;
        else if (cli_is(&a, "--shard"))
            cli_arg_string(&a, &x->shard_text);
        else if (cli_is(&a, "--compact"))
            cli_arg_path(&a, &x->compact);
        else if (cli_is(&a, "--upgrade"))
            cli_arg_path(&a, &x->upgrade);
        else if (cli_is(&a, "--base"))
            cli_arg_path(&a, &x->base);
        else
            cli_args_unknown(&a);
    }
    if (a.status >= 0)
        return a.status;
    o->commit_every_s = seconds; /* 0: the index's, else 60 */
    if (x->compact || x->upgrade) {
        if (x->compact && x->upgrade)
            return cli_args_error(&a, "--compact and --upgrade: one at a time (--upgrade also compacts)");
        if (x->roots.count || o->index_dir || x->image_path || x->text_path)
            return cli_args_error(&a, "--%s INDEX takes no folders, -o or models", x->compact ? "compact" : "upgrade");
        return -1;
    }
    if (x->base)
        return cli_args_error(&a, "--base goes with --upgrade INDEX");
    if (!o->index_dir)
        return cli_args_error(&a, "no output: -o INDEX");
    const char *bad = x->shard_text ? parse_shard(x->shard_text, &x->shard, &x->shards) : NULL;
    if (bad)
        return cli_args_error(&a, "--shard %s: %s", x->shard_text, bad);
    if (!(x->output = x->shards ? shard_output(o->index_dir, x->shard) : strdup(o->index_dir)))
        return cli_args_error(&a, "out of memory");
    o->index_dir = x->output;
    int existing = is_index(o->index_dir);
    if (!x->image_path && !existing)
        return cli_args_error(&a, "no image model: --image-model IV3.isw (only an existing index remembers its models)");
    if (x->roots.count == 0 && !existing)
        return cli_args_error(&a, "no folders or images to index");
    return -1;
}

/* --compact INDEX, --upgrade INDEX: the index rewritten without its retired rows. */
static int run_compact(const index_args *x)
{
    ims_index_compact_options co;
    ims_index_compact_options_init(&co);
    co.upgrade = x->upgrade != NULL;
    co.base = x->base;
    const char *dir = x->upgrade ? x->upgrade : x->compact;
    ims_index_compact_report r;
    ims_error err = {0};
    double start = ims_clock_seconds();
    if (ims_index_compact(dir, &co, &r, &err))
        return cli_error(&err);
    int upgraded = x->upgrade && r.from_version < 2;
    printf("%s %s%s: %lld rows and %lld failures kept, %lld rows and %lld failures dropped; %lld chunks -> %lld; "
           "%.1f MiB -> %.1f MiB in %.1f s\n",
           upgraded ? "upgraded" : "compacted", dir,
           upgraded ? " to format version 2" : x->upgrade ? " (it was format version 2 already)" : "",
           (long long)r.rows, (long long)r.failures, (long long)r.dropped_rows, (long long)r.dropped_failures,
           (long long)r.chunks_before, (long long)r.chunks_after, (double)r.bytes_before / (1 << 20),
           (double)r.bytes_after / (1 << 20), ims_clock_seconds() - start);
    return CLI_EXIT_OK;
}

int cmd_index(int argc, char **argv)
{
    ims_index_run_options o;
    ims_index_run_options_init(&o);
    index_args x = {.precision = CLI_PRECISION_DEFAULT, .mode = CLI_MODE_MODEL};
    int rc = parse_args(argc, argv, &x, &o);
    if (rc < 0 && (x.compact || x.upgrade))
        rc = run_compact(&x);
    if (rc >= 0) {
        cli_list_free(&x.roots);
        free(x.output);
        return rc;
    }
    ims_error err = {0};
    cli_models m;
    /* Models not given come from the index (by its recorded paths, checked by CRC-32). */
    ims_status st = cli_models_load(&m, &x.device, x.precision, x.image_path, x.text_path, &err);
    index_cli ctx = {.verbose = x.verbose};
    ims_index_progress result = {0};
    if (!st) {
        o.roots = x.roots.items;
        o.root_count = x.roots.count;
        o.backend = m.backend;
        o.image_model = m.image_weights;
        o.text_model = m.text_weights;
        o.precision = x.precision; /* -1: the index's, else the device's default */
        o.mode = x.mode == CLI_MODE_MODEL ? -1 : x.mode;
        o.progress = on_progress;
        o.on_failure = on_failure;
        o.on_warning = on_warning;
        o.progress_ctx = &ctx;
        st = ims_index_run_shard(&o, x.shard, x.shards, &result, &err);
    }
    cli_models_close(&m);
    cli_list_free(&x.roots);
    if (st) {
        free(x.output);
        if (ctx.bar.tty && ctx.bar.drawn)
            fputc('\n', stderr);
        return cli_error(&err);
    }
    printf("indexed %lld images into %s: %lld added, %lld updated, %lld removed, %lld retried (%lld skipped, "
           "%lld already there; %lld commits) in %.1f s: waiting for decode %.1f s, model %.1f s, writing %.1f s\n",
           (long long)result.indexed, o.index_dir, (long long)result.added, (long long)result.updated,
           (long long)result.removed, (long long)result.retried, (long long)result.failed, (long long)result.already,
           (long long)result.commits, result.elapsed_s, result.decode_wait_s, result.model_s, result.write_s);
    free(x.output);
    return result.failed ? CLI_EXIT_SOME_FAILED : CLI_EXIT_OK;
}
