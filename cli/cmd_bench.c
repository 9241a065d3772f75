/* cmd_bench.c: `imgsearch bench`: how fast this machine runs imgsearch's
 * workloads, as a table people can publish and compare (llama-bench's
 * conventions: several values per option in one run, repetitions, md, csv,
 * json or jsonl). The options and the command; the sweeps and the method are
 * in bench_workloads.c, the formats and --compare in bench_output.c.
 * bench/RESULTS.md records runs.
 */
#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char bench_usage[] =
    "usage: imgsearch bench [-w LIST] [-b LIST] [-p LIST] [--seq LIST]\n"
    "                       [--knn-shape LIST] [-r N] [--warmup N] [--seconds S]\n"
    "                       [-o md|csv|json|jsonl]\n"
    "                       [--compare RUN.json] [--device auto|cpu|cuda] [--gpu N]\n"
    "                       [--list-devices] [--quick] [--image-model M.isw]\n"
    "                       [--text-model M.isw] [--images DIR]\n"
    "\n"
    "Measures imgsearch's workloads on one device: one row per point of the sweep\n"
    "(every combination of the listed values), with the median, min and max rate\n"
    "over the repetitions, its unit, the FLOP or bytes per item and the fraction\n"
    "of this device's ceilings measured in the same run (copy bandwidth, GEMM).\n"
    "LIST is comma-separated values: -b 1,8,32 -p fp16,fp32.\n"
    "\n"
    "  -w, --workload LIST  inception, text, knn, index, decode, tokenize (default:\n"
    "                       all; those missing their input are skipped, with a note);\n"
    "                       knn-parts (only when named): per --knn-shape the k-NN\n"
    "                       search split into its parts: scores alone (k = 1), with\n"
    "                       the selection of k, and streamed in 8 chunks merged on\n"
    "                       the host, each with GB/s and its fraction of the copy\n"
    "                       bandwidth measured in the same run\n"
    "  -b, --batch LIST     images or texts per call: inception, text, index\n"
    "                       (default: 1,8,32,128,256 on a GPU, 1,8 on the CPU)\n"
    "  -p, --precision LIST fp32, tf32, fp16: inception, text (fp32 and fp16), index\n"
    "                       (default: all three on a GPU, fp32 on the CPU)\n"
    "      --seq LIST       short (16 tokens), long (128): text, tokenize\n"
    "      --knn-shape LIST N:D:B:k, a search of B queries for the k nearest among\n"
    "                       N rows of D dimensions (default: 384- and 2048-d tables)\n"
    "  -r, --reps N         repetitions per point (default 5; --quick 3)\n"
    "      --warmup N       untimed calls before them (default 1)\n"
    "      --seconds S      time per point, shared by its repetitions; each makes\n"
    "                       calls until its share has passed, at least one\n"
    "                       (default 2; --quick 0.5)\n"
    "  -o, --output FMT     md (default on a terminal), csv, json (one document,\n"
    "                       the default otherwise) or jsonl (one object per line)\n"
    "      --json           the same as -o jsonl\n"
    "      --compare RUN    add the median of a run saved with -o json or jsonl for\n"
    "                       the same workload and parameters, and the ratio to it\n"
    "  --device auto|cpu|cuda\n"
    "                       the backend: auto (default) is cuda when a GPU is usable,\n"
    "                       else cpu\n"
    "  --gpu N              which GPU (default 0)\n"
    "      --list-devices   list the devices bench can run on, and stop\n"
    "      --quick          smaller shapes and fewer repetitions (a smoke run)\n"
    "  --image-model M      Inception-v3 weights (default: synthetic weights of the\n"
    "                       same shapes)\n"
    "  --text-model M       BERT weights: text and tokenize need them\n"
    "  --images DIR         a folder of images: index (end to end, into a temporary\n"
    "                       index) and decode (decode + preprocess) need it\n";

/* ---- Lists of values ----------------------------------------------------------------- */

/* Calls item(a, o, value) for each comma-separated value of the current
 * option; 0 or the exit status. */
static int parse_list(cli_args *a, bench_options *o, int (*item)(cli_args *, bench_options *, const char *))
{
    const char *v = NULL;
    if (cli_arg_string(a, &v))
        return a->status;
    char buf[1024];
    if (strlen(v) >= sizeof buf)
        return cli_args_error(a, "%s: the list is too long", a->opt);
    snprintf(buf, sizeof buf, "%s", v);
    char *save = NULL;
    int any = 0;
    for (char *p = strtok_r(buf, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        int rc = item(a, o, p);
        if (rc)
            return rc;
        any = 1;
    }
    return any ? 0 : cli_args_error(a, "%s: expected a comma-separated list of values", a->opt);
}

static int workload_item(cli_args *a, bench_options *o, const char *v)
{
    for (int i = 0; i < BENCH_WORKLOAD_COUNT; i++)
        if (!strcmp(v, bench_workload_name(i))) {
            o->workloads |= 1u << i;
            return 0;
        }
    return cli_args_error(a,
                          "unknown workload '%s' (the workloads: inception, text, knn, index, decode, tokenize, "
                          "knn-parts)",
                          v);
}

static int parse_int(const char *v, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

static int batch_item(cli_args *a, bench_options *o, const char *v)
{
    long x = 0;
    if (parse_int(v, 1, 65536, &x))
        return cli_args_error(a, "%s '%s': expected batch sizes from 1 to 65536", a->opt, v);
    if (o->batch_count == BENCH_MAX_VALUES)
        return cli_args_error(a, "%s: at most %d values", a->opt, BENCH_MAX_VALUES);
    o->batches[o->batch_count++] = (int)x;
    return 0;
}

static int precision_item(cli_args *a, bench_options *o, const char *v)
{
    ims_precision p;
    if (ims_precision_parse(v, &p, NULL))
        return cli_args_error(a, "unknown precision '%s' (the precisions: fp32, tf32, fp16)", v);
    if (o->precision_count == BENCH_MAX_VALUES)
        return cli_args_error(a, "%s: at most %d values", a->opt, BENCH_MAX_VALUES);
    o->precisions[o->precision_count++] = p;
    return 0;
}

static int seq_item(cli_args *a, bench_options *o, const char *v)
{
    bench_seq s;
    if (!strcmp(v, "short"))
        s = BENCH_SEQ_SHORT;
    else if (!strcmp(v, "long"))
        s = BENCH_SEQ_LONG;
    else
        return cli_args_error(a, "unknown sequence length '%s' (expected short or long)", v);
    if (o->seq_count == 2)
        return cli_args_error(a, "%s: at most 2 values", a->opt);
    o->seqs[o->seq_count++] = s;
    return 0;
}

static int knn_item(cli_args *a, bench_options *o, const char *v)
{
    long long n = 0;
    int d = 0, b = 0, k = 0, used = 0;
    if (sscanf(v, "%lld:%d:%d:%d%n", &n, &d, &b, &k, &used) != 4 || v[used] || n < 1 || n > 1000000000 || d < 1 ||
        d > 65536 || b < 1 || b > 65536 || k < 1 || k > IMS_KNN_MAX_K || k > n)
        return cli_args_error(a, "%s '%s': expected N:D:B:k (rows, dimensions, queries, k; 1 <= k <= min(N, %d))",
                              a->opt, v, IMS_KNN_MAX_K);
    if (o->knn_count == BENCH_MAX_VALUES)
        return cli_args_error(a, "%s: at most %d values", a->opt, BENCH_MAX_VALUES);
    o->knn[o->knn_count++] = (bench_knn_shape){n, d, b, k};
    return 0;
}

static int parse_seconds(cli_args *a, double *out)
{
    const char *v = NULL;
    if (cli_arg_string(a, &v))
        return a->status;
    char *end = NULL;
    double s = strtod(v, &end);
    if (end == v || *end || !isfinite(s) || s < 0 || s > 3600)
        return cli_args_error(a, "%s '%s': expected seconds from 0 to 3600", a->opt, v);
    *out = s;
    return 0;
}

/* ---- Options ---------------------------------------------------------------------------- */

/* Returns -1 to go on, or the exit status. */
static int parse_bench_options(int argc, char **argv, bench_options *o)
{
    static const char *const formats[] = {"md", "csv", "json", "jsonl", NULL};
    memset(o, 0, sizeof *o);
    int reps = -1, warmup = 1, format = -1;
    double seconds = -1;
    cli_args a;
    cli_args_init(&a, "bench", bench_usage, argc, argv);
    while (cli_args_next(&a)) {
        if (cli_is(&a, "-w|--workload"))
            parse_list(&a, o, workload_item);
        else if (cli_is(&a, "-b|--batch"))
            parse_list(&a, o, batch_item);
        else if (cli_is(&a, "-p|--precision"))
            parse_list(&a, o, precision_item);
        else if (cli_is(&a, "--seq"))
            parse_list(&a, o, seq_item);
        else if (cli_is(&a, "--knn-shape"))
            parse_list(&a, o, knn_item);
        else if (cli_is(&a, "-r|--reps"))
            cli_arg_int(&a, 1, BENCH_MAX_REPS, &reps);
        else if (cli_is(&a, "--warmup"))
            cli_arg_int(&a, 0, 1000, &warmup);
        else if (cli_is(&a, "--seconds"))
            parse_seconds(&a, &seconds);
        else if (cli_is(&a, "-o|--output"))
            cli_arg_choice(&a, formats, &format);
        else if (cli_is(&a, "--json"))
            format = BENCH_FORMAT_JSONL;
        else if (cli_is(&a, "--compare"))
            cli_arg_path(&a, &o->compare);
        else if (cli_is(&a, "--list-devices"))
            o->list_devices = 1;
        else if (cli_is(&a, "--quick"))
            o->quick = 1;
        else if (cli_is(&a, CLI_DEVICE_OPTIONS))
            cli_arg_device(&a, &o->device);
        else if (cli_is(&a, "--image-model"))
            cli_arg_path(&a, &o->image_model);
        else if (cli_is(&a, "--text-model"))
            cli_arg_path(&a, &o->text_model);
        else if (cli_is(&a, "--images"))
            cli_arg_path(&a, &o->images);
        else
            cli_args_unknown(&a);
    }
    if (a.status >= 0)
        return a.status;
    o->workloads_given = o->workloads != 0;
    if (!o->workloads)
        o->workloads = ((1u << BENCH_WORKLOAD_COUNT) - 1) & ~(1u << BENCH_KNN_PARTS);
    for (int i = 0; o->workloads_given && i < BENCH_WORKLOAD_COUNT; i++) {
        const char *missing = o->workloads & (1u << i) ? bench_workload_missing(o, (bench_workload_id)i) : NULL;
        if (missing)
            return cli_args_error(&a, "workload %s: %s", bench_workload_name(i), missing);
    }
    o->reps = reps > 0 ? reps : o->quick ? 3 : 5;
    o->warmup = warmup;
    o->seconds = seconds >= 0 ? seconds : o->quick ? 0.5 : 2;
    o->format = format >= 0 ? (bench_format)format : isatty(STDOUT_FILENO) ? BENCH_FORMAT_MD : BENCH_FORMAT_JSON;
    return -1;
}

/* ---- --list-devices ------------------------------------------------------------------------ */

static void list_device(const bench_options *o, const ims_backend_info *info, int first)
{
    if (o->format == BENCH_FORMAT_JSON || o->format == BENCH_FORMAT_JSONL) {
        printf("%s{\"backend\": \"%s\", \"device\": ", o->format == BENCH_FORMAT_JSON && !first ? ",\n" : "",
               info->name);
        json_string(stdout, info->device, strlen(info->device));
        if (info->kind == IMS_BACKEND_CPU)
            printf(", \"threads\": %d}", info->threads);
        else
            printf(", \"compute_capability\": \"%d.%d\", \"multiprocessors\": %d, \"memory_bytes\": %llu}",
                   info->compute_major, info->compute_minor, info->multiprocessors,
                   (unsigned long long)info->memory_total);
        printf("%s", o->format == BENCH_FORMAT_JSONL ? "\n" : "");
        return;
    }
    printf("%-8s ", info->name);
    text_safe(stdout, info->device);
    if (info->kind == IMS_BACKEND_CPU)
        printf(" (%d threads)\n", info->threads);
    else
        printf(" (compute capability %d.%d, %d SMs, %.1f GiB)\n", info->compute_major, info->compute_minor,
               info->multiprocessors, (double)info->memory_total / 1073741824.0);
}

/* The CPU backend and each CUDA device (--device cpu, --device cuda --gpu N);
 * why there is no GPU goes to stderr. */
static int list_devices(const bench_options *o)
{
    ims_error err = {0};
    ims_backend *be = NULL;
    if (ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err))
        return cli_error(&err);
    if (o->format == BENCH_FORMAT_JSON)
        printf("[");
    list_device(o, ims_backend_get_info(be), 1);
    ims_backend_free(be);
    int count = 0;
    if (ims_cuda_device_count(&count, &err))
        fprintf(stderr, "imgsearch: bench: no GPU: %s\n", err.msg);
    for (int i = 0; i < count; i++) {
        if (ims_backend_create(IMS_BACKEND_CUDA, i, &be, &err)) {
            fprintf(stderr, "imgsearch: bench: cuda:%d unusable: %s\n", i, err.msg);
            continue;
        }
        list_device(o, ims_backend_get_info(be), 0);
        ims_backend_free(be);
    }
    if (o->format == BENCH_FORMAT_JSON)
        printf("]\n");
    return CLI_EXIT_OK;
}

/* ---- The command ------------------------------------------------------------------------------ */

static void bench_env_init(bench_ctx *c)
{
    bench_env *e = &c->env;
    e->info = ims_backend_get_info(c->be);
    e->version_count = ims_library_version_list(e->versions, IMS_LIBRARY_VERSIONS_MAX);
    e->commit = "unknown";
    for (size_t i = 0; i < e->version_count; i++)
        if (!strcmp(e->versions[i].name, "commit"))
            e->commit = e->versions[i].version;
    ims_backend_get_clocks(c->be, &e->clocks);
}

int cmd_bench(int argc, char **argv)
{
    bench_options opt;
    int rc = parse_bench_options(argc, argv, &opt);
    if (rc >= 0)
        return rc;
    if (opt.list_devices)
        return list_devices(&opt);
    ims_error err = {0};
    bench_baseline base = {0};
    if (opt.compare && bench_baseline_load(opt.compare, &base, &err))
        return cli_error(&err);
    bench_out out = {.opt = &opt, .base = opt.compare ? &base : NULL};
    bench_ctx c = {.opt = &opt, .out = &out};
    ims_status st = cli_device_open(&opt.device, &c.be, &err);
    if (!st)
        st = ims_backend_timer_create(c.be, &c.timer, &err);
    if (!st)
        st = ims_backend_measure_peaks(c.be, opt.quick, &c.env.peaks, &err);
    if (!st) {
        bench_env_init(&c);
        out.env = &c.env;
        bench_out_begin(&out);
    }
    for (int i = 0; !st && i < BENCH_WORKLOAD_COUNT; i++) {
        if (!(opt.workloads & (1u << i)))
            continue;
        const char *missing = bench_workload_missing(&opt, (bench_workload_id)i);
        if (missing) {
            fprintf(stderr, "imgsearch: bench: skipped %s: %s\n", bench_workload_name(i), missing);
            continue;
        }
        st = bench_workload_run(&c, (bench_workload_id)i, &err);
    }
    if (out.env)
        bench_out_end(&out);
    ims_backend_timer_free(c.timer);
    ims_backend_free(c.be);
    bench_baseline_free(&base);
    if (st)
        return cli_error(&err);
    if (out.rows == 0)
        return cli_fail("bench: no results: every point was skipped (see the notes above)");
    return CLI_EXIT_OK;
}
