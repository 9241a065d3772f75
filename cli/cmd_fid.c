/* cmd_fid.c: `imgsearch fid A [B]`: FID between two sets of images (image
 * folders or .npz statistics), KID (--kid) and the Inception Score (--is),
 * and the statistics file of one set (--save-stats OUT.npz), as pytorch-fid,
 * clean-fid and torch-fidelity compute them (engine/models/fid_*.c).
 *
 * Folders are walked like `index`'s and run through the image model with the
 * same loop as embed-image; statistics stream (no feature matrix is kept
 * unless --kid asks for the features themselves, or --is for the logits).
 * An index folder is recognized and refused: its tables hold L2-normalized
 * features (f16 by default), not the raw pool features FID needs. (Index
 * sets, issue 20, will come through the same input kinds: see input_kind.)
 */
#include "encode_images.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const char fid_usage[] =
    "usage: imgsearch fid A [B] [--image-model M.isw] [--mode fid|clean|torchvision] [--save-stats OUT.npz]\n"
    "                     [--kid] [--kid-subsets N] [--kid-subset-size N] [--is] [--is-splits N]\n"
    "                     [--seed N] [--force] [--json] [--device auto|cpu|cuda] [--gpu N]\n"
    "                     [--precision fp32|tf32|fp16] [--batch N] [--threads N] [--max-pixels N]\n"
    "\n"
    "Frechet Inception Distance between A and B, each an image folder (walked like\n"
    "index's: recursively, image names only) or an .npz of statistics (mu, sigma:\n"
    "pytorch-fid's and clean-fid's files, or ours).\n"
    "\n"
    "  --image-model M.isw  the model, for image folders: pytorch-fid's FID Inception\n"
    "                       (imgsearch convert pt_inception-2015-12-05-6726825d.pth)\n"
    "                       for numbers comparable with the papers'\n"
    "  --mode fid           pytorch-fid's preprocessing (bilinear 299 x 299); default:\n"
    "                       the model's. clean: clean-fid's (Pillow bicubic 299 x 299\n"
    "                       in float, (x - 128) / 128). torchvision: resize 342, crop 299\n"
    "  --save-stats OUT.npz write A's statistics (mu and sigma in float64, pytorch-fid's\n"
    "                       keys, plus the mode and image count) and stop\n"
    "  --kid                also the Kernel Inception Distance (cubic polynomial kernel,\n"
    "                       unbiased MMD; subsets drawn as torch-fidelity draws them)\n"
    "  --kid-subsets N      subsets (default 100)\n"
    "  --kid-subset-size N  images per subset (default 1000, at most the smaller set)\n"
    "  --is                 the Inception Score of each image folder (the classifier's\n"
    "                       logits without the bias, as torch-fidelity)\n"
    "  --is-splits N        splits (default 10)\n"
    "  --seed N             KID's subsets and IS's shuffle (default 2020, torch-fidelity's)\n"
    "  --force              compare statistics made with different modes\n"
    "  --json               one JSON object on stdout\n"
    "  --device auto|cpu|cuda, --gpu N, --precision P, --batch N, --threads N\n"
    "                       as for embed-image\n"
    CLI_MAX_PIXELS_HELP
    "\n"
    "Exit status: 0 success, 1 failure, 2 bad command line, 3 some images could not\n"
    "be read (each reported on stderr; the scores use the others).\n";

enum { INPUT_IMAGES = 0, INPUT_STATS = 1 };

typedef struct fid_input {
    const char *path;
    int kind;
    int loaded_file;        /* statistics read from a file (their count may be unknown) */
    char mode[32];          /* "fid", "clean", "torchvision", or "" (a file that does not say) */
    ims_fid_stats *stats;
    float *features;        /* (rows, dim), with --kid */
    float *logits;          /* (rows, classes), with --is: fc's bias taken off */
    int64_t rows, cap_f, cap_l;
    int dim, classes;
    size_t listed, failed;  /* image files found; those that could not be used */
    double is_mean, is_std;
} fid_input;

typedef struct fid_args {
    fid_input in[2];
    int inputs;
    const char *save;
    int kid, is, json, force, splits;
    int64_t seed;
    ims_kid_options kid_o;
    encode_options enc;
    const float *bias; /* (classes) fc.bias in f32, for --is */
    float *bias_copy;
    ims_backend *be;        /* the model, opened once for every folder */
    ims_image_encoder *model;
} fid_args;

/* What an operand is: an .npz file, or images (a folder or an image file).
 * An index folder is refused here; index sets (issue 20) would be read here. */
static int input_kind(const char *path, int *kind)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return cli_fail("%s: cannot read it: no such file or folder", path);
    size_t n = strlen(path);
    if (S_ISREG(sb.st_mode) && n > 4 && !strcasecmp(path + n - 4, ".npz")) {
        *kind = INPUT_STATS;
        return 0;
    }
    if (S_ISDIR(sb.st_mode)) {
        char manifest[4096];
        if (snprintf(manifest, sizeof manifest, "%s/manifest.json", path) < (int)sizeof manifest &&
            stat(manifest, &sb) == 0)
            return cli_fail("%s: an index stores L2-normalized (f16) features, not the pool features FID needs: "
                            "give its image folders instead", path);
    }
    *kind = INPUT_IMAGES;
    return 0;
}

typedef struct sink_ctx {
    fid_input *in;
    const fid_args *f;
} sink_ctx;

/* The statistics (and kept rows) of one input, sized by the model. */
static int input_ready(fid_input *in, const ims_image_encoder *enc)
{
    in->dim = ims_image_encoder_feature_dim(enc);
    in->classes = ims_image_encoder_num_classes(enc);
    ims_error err = {0};
    return ims_fid_stats_create(in->dim, &in->stats, &err) ? cli_error(&err) : 0;
}

/* Keeps a row of features or logits (n values) in a growing array. */
static int keep_row(float **arr, int64_t rows, int64_t *cap, const float *row, int n)
{
    if (rows == *cap) {
        int64_t cap2 = *cap ? *cap * 2 : 256;
        float *p = realloc(*arr, (size_t)cap2 * (size_t)n * sizeof *p);
        if (!p)
            return cli_fail("out of memory keeping %lld feature rows", (long long)rows);
        *arr = p;
        *cap = cap2;
    }
    memcpy(*arr + (size_t)rows * n, row, (size_t)n * sizeof *row);
    return 0;
}

static int fid_sink(void *vctx, size_t index, const char *path, const float *features, const float *logits,
                    const ims_image_encoder *enc)
{
    (void)index, (void)path, (void)enc;
    sink_ctx *c = vctx;
    fid_input *in = c->in;
    ims_error err = {0};
    if (ims_fid_stats_add(in->stats, features, 1, &err))
        return cli_file_error(path, &err);
    if (c->f->kid && keep_row(&in->features, in->rows, &in->cap_f, features, in->dim))
        return 1;
    if (c->f->is) {
        float row[2048 * 2];
        if (in->classes > (int)(sizeof row / sizeof row[0]))
            return cli_fail("%d classes are too many for --is", in->classes);
        for (int j = 0; j < in->classes; j++)
            row[j] = logits[j] - c->f->bias[j];
        if (keep_row(&in->logits, in->rows, &in->cap_l, row, in->classes))
            return 1;
    }
    in->rows++;
    return 0;
}

/* A folder's (or image file's) images through the model into in->stats. */
static int run_images(fid_args *f, fid_input *in)
{
    ims_error err = {0};
    ims_file_list list = {0};
    if (ims_file_list_walk(&in->path, 1, &list, &err))
        return cli_error(&err);
    for (int64_t i = 0; i < list.problem_count; i++)
        cli_report_file("", list.problems[i].path, list.problems[i].reason);
    const char **paths = calloc(list.file_count ? (size_t)list.file_count : 1, sizeof *paths);
    if (!paths) {
        ims_file_list_free(&list);
        return cli_fail("out of memory");
    }
    for (int64_t i = 0; i < list.file_count; i++)
        paths[i] = list.files[i].path;
    in->listed = (size_t)list.file_count;
    int status = CLI_EXIT_OK;
    size_t ok = 0;
    if (!list.file_count) {
        status = cli_fail("%s: no images found", in->path);
    } else {
        encode_options o = f->enc;
        o.images = paths;
        o.count = (size_t)list.file_count;
        sink_ctx c = {in, f};
        status = input_ready(in, f->model);
        if (!status)
            status = encode_images_with(&o, f->be, f->model, fid_sink, &c, &ok);
    }
    in->failed = (size_t)list.problem_count + (in->listed - ok);
    if (status == CLI_EXIT_OK && list.problem_count)
        status = CLI_EXIT_SOME_FAILED;
    free(paths);
    ims_file_list_free(&list);
    return status;
}

/* What the image model decides: the mode the folders run in (the option,
 * else the model's) and, for --is, fc.bias as float32 (the logits
 * torch-fidelity scores are the classifier's without its bias). */
static int load_model_facts(fid_args *f, const char **mode)
{
    ims_error err = {0};
    ims_weights *w = NULL;
    if (ims_weights_open(f->enc.model, 0, &w, &err))
        return cli_error(&err);
    *mode = ims_preprocess_mode_name(cli_mode_resolve(f->enc.mode, w));
    const ims_weight_tensor *t = ims_weights_tensor_find(w, "fc.bias");
    int status = 0;
    if (f->is && (!t || t->ndim != 1 || (t->dtype != IMS_DTYPE_F32 && t->dtype != IMS_DTYPE_F16)))
        status = cli_fail("%s: no fc.bias (float32 or float16) for --is", f->enc.model);
    else if (f->is && !(f->bias_copy = malloc((size_t)t->shape[0] * sizeof *f->bias_copy)))
        status = cli_fail("out of memory");
    for (int64_t i = 0; f->is && !status && i < t->shape[0]; i++)
        f->bias_copy[i] = t->dtype == IMS_DTYPE_F32 ? ((const float *)t->data)[i]
                                                     : ims_f16_to_f32(((const uint16_t *)t->data)[i]);
    f->bias = f->bias_copy;
    ims_weights_close(w);
    return status;
}

static int load_stats(fid_args *f, fid_input *in)
{
    ims_error err = {0};
    if (f->kid || f->is)
        return cli_fail("%s: %s needs the images, not their statistics", in->path, f->kid ? "--kid" : "--is");
    if (ims_fid_stats_load(in->path, &in->stats, in->mode, sizeof in->mode, &err))
        return cli_error(&err);
    in->loaded_file = 1;
    if (!in->mode[0])
        fprintf(stderr, "imgsearch: note: %s does not record its mode (another tool's file)\n", in->path);
    return 0;
}

/* Every input's statistics (and features or logits); the worst exit status. */
static int gather_inputs(fid_args *f)
{
    const char *mode = NULL;
    int worst = CLI_EXIT_OK;
    for (int i = 0; i < f->inputs; i++) {
        fid_input *in = &f->in[i];
        int status;
        if (in->kind == INPUT_STATS) {
            status = load_stats(f, in);
        } else {
            if (!f->enc.model)
                return cli_fail("%s: images need --image-model M.isw", in->path);
            status = mode ? 0 : load_model_facts(f, &mode);
            if (!status && !f->model)
                status = encode_model_open(&f->enc, &f->be, &f->model);
            if (!status) {
                snprintf(in->mode, sizeof in->mode, "%s", mode);
                status = run_images(f, in);
            }
        }
        if (status != CLI_EXIT_OK && status != CLI_EXIT_SOME_FAILED)
            return status;
        worst = status > worst ? status : worst;
    }
    if (f->inputs == 2 && f->in[0].mode[0] && f->in[1].mode[0] && strcmp(f->in[0].mode, f->in[1].mode) != 0 &&
        !f->force)
        return cli_fail("%s was made in mode %s and %s in mode %s: their scores do not compare (--force to "
                        "compare them anyway)", f->in[0].path, f->in[0].mode, f->in[1].path, f->in[1].mode);
    return worst;
}

static void free_inputs(fid_args *f)
{
    for (int i = 0; i < 2; i++) {
        ims_fid_stats_free(f->in[i].stats);
        free(f->in[i].features);
        free(f->in[i].logits);
    }
    free(f->bias_copy);
    ims_image_encoder_free(f->model);
    ims_backend_free(f->be);
}

typedef struct fid_scores {
    double fid, kid_mean, kid_std;
    int kid_size;
} fid_scores;

static int compute(fid_args *f, fid_scores *sc)
{
    ims_error err = {0};
    for (int i = 0; f->is && i < f->inputs; i++) {
        fid_input *in = &f->in[i];
        if (ims_inception_score(in->logits, in->rows, in->classes, f->splits, (uint32_t)f->seed, &in->is_mean,
                                &in->is_std, &err))
            return cli_file_error(in->path, &err);
    }
    for (int i = 0; i < f->inputs; i++)
        if (!f->in[i].loaded_file && ims_fid_stats_count(f->in[i].stats) < 2)
            return cli_fail("%s: %lld usable image(s): FID statistics need at least 2", f->in[i].path,
                            (long long)ims_fid_stats_count(f->in[i].stats));
    if (f->inputs < 2)
        return 0;
    if (ims_fid_distance(f->in[0].stats, f->in[1].stats, &sc->fid, &err))
        return cli_error(&err);
    if (f->kid) {
        f->kid_o.seed = (uint32_t)f->seed;
        if (ims_kid(f->in[0].features, f->in[0].rows, f->in[1].features, f->in[1].rows, f->in[0].dim, &f->kid_o,
                    &sc->kid_mean, &sc->kid_std, &sc->kid_size, &err))
            return cli_error(&err);
    }
    return 0;
}

static void print_input_json(const fid_input *in, int is)
{
    fputs("{", stdout);
    json_path(stdout, "path", in->path);
    printf(", \"kind\": \"%s\", \"mode\": ", in->kind == INPUT_STATS ? "statistics" : "images");
    json_string(stdout, in->mode, strlen(in->mode));
    printf(", \"images\": %lld", (long long)ims_fid_stats_count(in->stats));
    if (in->kind == INPUT_IMAGES)
        printf(", \"failed\": %zu", in->failed);
    if (is && in->kind == INPUT_IMAGES) {
        fputs(", \"is\": {\"mean\": ", stdout);
        json_double(stdout, in->is_mean);
        fputs(", \"std\": ", stdout);
        json_double(stdout, in->is_std);
        fputs("}", stdout);
    }
    fputs("}", stdout);
}

static void print_json(const fid_args *f, const fid_scores *sc)
{
    fputs("{\"inputs\": [", stdout);
    for (int i = 0; i < f->inputs; i++) {
        fputs(i ? ", " : "", stdout);
        print_input_json(&f->in[i], f->is);
    }
    fputs("]", stdout);
    if (f->save) {
        fputs(", ", stdout);
        json_path(stdout, "saved", f->save);
    }
    if (f->inputs == 2) {
        fputs(", \"fid\": ", stdout);
        json_double(stdout, sc->fid);
    }
    if (f->inputs == 2 && f->kid) {
        fputs(", \"kid\": {\"mean\": ", stdout);
        json_double(stdout, sc->kid_mean);
        fputs(", \"std\": ", stdout);
        json_double(stdout, sc->kid_std);
        printf(", \"subsets\": %d, \"subset_size\": %d, \"seed\": %lld}", f->kid_o.subsets, sc->kid_size,
               (long long)f->seed);
    }
    if (f->is)
        printf(", \"is_splits\": %d", f->splits);
    fputs("}\n", stdout);
}

static void print_text(const fid_args *f, const fid_scores *sc)
{
    for (int i = 0; i < f->inputs; i++) {
        const fid_input *in = &f->in[i];
        printf("%s: ", i ? "B" : "A");
        text_safe(stdout, in->path);
        printf(" (%lld images, mode %s)\n", (long long)ims_fid_stats_count(in->stats),
               in->mode[0] ? in->mode : "not recorded");
        if (f->is && in->kind == INPUT_IMAGES)
            printf("IS %s: %.6f +- %.6f (%d splits)\n", i ? "B" : "A", in->is_mean, in->is_std, f->splits);
    }
    if (f->save) {
        fputs("saved: ", stdout);
        text_safe(stdout, f->save);
        fputs("\n", stdout);
    }
    if (f->inputs == 2)
        printf("FID: %.6f (%lld and %lld images, mode %s)\n", sc->fid, (long long)ims_fid_stats_count(f->in[0].stats),
               (long long)ims_fid_stats_count(f->in[1].stats), f->in[0].mode[0] ? f->in[0].mode : f->in[1].mode);
    if (f->inputs == 2 && f->kid)
        printf("KID: %.8f +- %.8f (%d subsets of %d, seed %lld)\n", sc->kid_mean, sc->kid_std, f->kid_o.subsets,
               sc->kid_size, (long long)f->seed);
}

/* Returns -1 to go on, or the exit status. */
static int parse_args(int argc, char **argv, fid_args *f)
{
    cli_args a;
    cli_args_init(&a, "fid", fid_usage, argc, argv);
    cli_list unused = {0};
    while (cli_args_next(&a)) {
        if (a.operand && f->inputs < 2)
            f->in[f->inputs++].path = a.operand;
        else if (a.operand)
            cli_args_unknown(&a);
        else if (encode_options_take(&a, &f->enc, &unused))
            continue;
        else if (cli_is(&a, "--save-stats"))
            cli_arg_path(&a, &f->save);
        else if (cli_is(&a, "--kid"))
            f->kid = 1;
        else if (cli_is(&a, "--kid-subsets"))
            cli_arg_int(&a, 1, 100000, &f->kid_o.subsets);
        else if (cli_is(&a, "--kid-subset-size"))
            cli_arg_int(&a, 2, 1 << 20, &f->kid_o.subset_size);
        else if (cli_is(&a, "--is"))
            f->is = 1;
        else if (cli_is(&a, "--is-splits"))
            cli_arg_int(&a, 1, 100000, &f->splits);
        else if (cli_is(&a, "--seed"))
            cli_arg_int64(&a, 0, 0xffffffffLL, &f->seed);
        else if (cli_is(&a, "--force"))
            f->force = 1;
        else if (cli_is(&a, "--json"))
            f->json = 1;
        else
            cli_args_unknown(&a);
    }
    cli_list_free(&unused);
    if (a.status >= 0)
        return a.status;
    if (!f->inputs)
        return cli_args_error(&a, "missing A (an image folder or an .npz of statistics)");
    if (f->inputs == 2 && f->save)
        return cli_args_error(&a, "--save-stats takes one input (fid A --save-stats OUT.npz)");
    if (f->inputs == 1 && !f->save && !f->is)
        return cli_args_error(&a, "missing B (FID compares two inputs; --save-stats or --is take one)");
    if (f->kid && f->inputs < 2)
        return cli_args_error(&a, "--kid compares two inputs");
    return -1;
}

int cmd_fid(int argc, char **argv)
{
    fid_args f;
    memset(&f, 0, sizeof f);
    encode_options_init(&f.enc);
    ims_kid_options_init(&f.kid_o);
    f.splits = 10;
    f.seed = 2020;
    int status = parse_args(argc, argv, &f);
    if (status >= 0)
        return status;
    for (int i = 0; i < f.inputs && status < 0; i++)
        if (input_kind(f.in[i].path, &f.in[i].kind))
            status = CLI_EXIT_FAILURE;
    if (status < 0)
        status = gather_inputs(&f);
    fid_scores sc = {0};
    if ((status == CLI_EXIT_OK || status == CLI_EXIT_SOME_FAILED) && compute(&f, &sc))
        status = CLI_EXIT_FAILURE;
    ims_error err = {0};
    if ((status == CLI_EXIT_OK || status == CLI_EXIT_SOME_FAILED) && f.save &&
        ims_fid_stats_save(f.in[0].stats, f.save, f.in[0].mode, &err))
        status = cli_error(&err);
    if (status == CLI_EXIT_OK || status == CLI_EXIT_SOME_FAILED) {
        if (f.json)
            print_json(&f, &sc);
        else
            print_text(&f, &sc);
    }
    free_inputs(&f);
    return status;
}
