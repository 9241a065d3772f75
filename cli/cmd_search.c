/* cmd_search.c: `imgsearch search INDEX (--text T | --image F | --queries FILE)`:
 * top-k images of an index (or an index set) for text or image queries.
 *
 * The command line and the printing only: the search itself is the
 * library's searcher (engine/index/search.c), which embeds the queries with
 * the index's models and answers each table's queries as one batch; with
 * --mpi, the ranks of an MPI job share the set's shards (search_mpi.c).
 */
#include "cli.h"
#include "search_mpi.h"
#include "html.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const char search_usage[] =
    "usage: imgsearch search INDEX (--text TEXT | --image FILE | --queries FILE)...\n"
    "                        [-k K] [--json] [--table visual|semantic] [--mpi]\n"
    "                        [--device auto|cpu|cuda] [--gpu N|local] [--dtype f16|f32]\n"
    "                        [--text-model M.isw] [--image-model M.isw] [--no-verify]\n"
    "                        [--relative-to DIR] [--max-pixels N]\n"
    "                        [--html OUT.html [--html-links]]\n"
    "\n"
    "Finds the K images of INDEX most similar to each query (cosine similarity,\n"
    "exact). --text, --image and --queries may be repeated and combined. Paths are\n"
    "printed as the index stores them: absolute, so they work from any folder.\n"
    "INDEX may be an index set (a set file from 'imgsearch index-set create', or a\n"
    "folder of shard folders): the answer is the one a single index of the same\n"
    "files gives (equal scores are ordered by path), and --json hits carry their\n"
    "\"shard\" (row, chunk and offset are then the shard's).\n"
    "A query that cannot be embedded (an image that cannot be read, an empty\n"
    "text) is reported on stderr and the others are answered; the exit status is\n"
    "then 3.\n"
    "\n"
    "  --text TEXT          a text query (needs an index built with --text-model)\n"
    "  --image FILE         an image query (JPEG, PNG, WebP, TIFF, GIF or BMP)\n"
    "  --queries FILE       one query per line ('-': stdin): a text, or @PATH for an\n"
    "                       image; a line starting with # is a comment; \\#, \\@ and\n"
    "                       \\\\ at the start of a line stand for #, @ and \\ as text;\n"
    "                       blank lines are skipped\n"
    "  -k K                 results per query (default 10)\n"
    "  --table T            the table image queries use: visual (default: the\n"
    "                       Inception features) or semantic (ConSE, as text)\n"
    "  --json               JSON lines: {\"query\": ..., \"table\": ..., \"results\":\n"
    "                       [{\"rank\", \"path\", \"score\", \"row\", \"chunk\", \"offset\"}]}\n"
    "                       (row: the row id; its vectors are row offset of\n"
    "                       chunk-<chunk>.*.npy); a failed query has \"error\" instead\n"
    "                       of \"results\"\n"
    "  --relative-to DIR    print paths relative to DIR\n"
    "  --html OUT.html      also write a contact sheet: one self-contained page with\n"
    "                       each query and its results as a grid of thumbnails\n"
    "                       (embedded JPEGs, long side 256) with rank, score and path\n"
    "  --html-links         in the page, link the original files instead of\n"
    "                       embedding thumbnails (for a large k)\n"
    "  --dtype f16|f32      the table's storage for the search (default: f16 on a\n"
    "                       GPU, half the bytes to stream; f32 on the CPU, where f16\n"
    "                       rows cost a conversion per search)\n"
    "  --device auto|cpu|cuda\n"
    "                       where to embed and search: auto (default) is cuda when\n"
    "                       a GPU is usable, else cpu\n"
    "  --gpu N|local        which GPU (default 0); local: the process's rank on its\n"
    "                       node (OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID), modulo\n"
    "                       the GPUs it sees\n"
    "  --mpi                run as one rank of an MPI job (mpirun -n R imgsearch\n"
    "                       search SET --mpi ...): each rank searches its shards of\n"
    "                       the set (shard i on rank i % R), rank 0 embeds the\n"
    "                       queries, merges exactly and prints; a rank that fails\n"
    "                       fails the run, naming the rank (docs/SCALE.md)\n"
    "  --text-model M       the text model (default: the one the index was built with)\n"
    "  --image-model M      the image model (default: likewise)\n"
    "  --no-verify          check the index's table files by size only, not by\n"
    "                       their CRC-32 (faster loading of very large indexes)\n"
    CLI_MAX_PIXELS_HELP;

typedef struct search_query {
    const char *text; /* the query as given (text, or the image path) */
    int image;
} search_query;

typedef struct search_args {
    const char *index_dir, *text_model, *image_model, *relative_to, *html;
    cli_device device;
    int k, json, semantic_images, no_verify, mpi, gpu_local, html_links;
    ims_dtype dtype; /* IMS_DTYPE_COUNT: the backend's default */
    ims_decode_options decode; /* --max-pixels */
    search_query *queries;
    size_t count, cap;
    char **owned; /* lines read from --queries files */
    size_t owned_count, owned_cap;
} search_args;

static void on_image_warning(void *ctx, const char *path, const char *message)
{
    (void)ctx;
    cli_image_warning(path, message);
}

static int add_query(search_args *a, const char *text, int image)
{
    if (a->count == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        search_query *q = realloc(a->queries, cap * sizeof *q);
        if (!q)
            return -1;
        a->queries = q;
        a->cap = cap;
    }
    a->queries[a->count++] = (search_query){.text = text, .image = image};
    return 0;
}

static int keep_line(search_args *a, char *line)
{
    if (a->owned_count == a->owned_cap) {
        size_t cap = a->owned_cap ? a->owned_cap * 2 : 16;
        char **p = realloc(a->owned, cap * sizeof *p);
        if (!p)
            return -1;
        a->owned = p;
        a->owned_cap = cap;
    }
    a->owned[a->owned_count++] = line;
    return 0;
}

static int read_queries_file(search_args *a, const char *path)
{
    FILE *f = !strcmp(path, "-") ? stdin : fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "imgsearch: cannot open queries file '%s': %s\n", path, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    char what[64 + 4096];
    snprintf(what, sizeof what, f == stdin ? "stdin (queries)" : "queries file '%s'", path);
    cli_lines in;
    cli_lines_init(&in, f, what);
    char *line;
    size_t len;
    int rc = 0, got;
    while (!rc && (got = cli_lines_next(&in, &line, &len)) > 0) {
        while (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue; /* blank lines separate nothing; # starts a comment */
        if (len == 1 && line[0] == '@') {
            fprintf(stderr, "imgsearch: %s line %zu: '@' names no image (write @PATH)\n", what, in.line_no);
            rc = CLI_EXIT_FAILURE;
            break;
        }
        /* \#, \@ and \\ at the start: the character itself, as text */
        int escaped = len >= 2 && line[0] == '\\' && strchr("#@\\", line[1]);
        char *copy = strdup(line + escaped);
        int image = !escaped && copy && copy[0] == '@';
        if (!copy || keep_line(a, copy) || add_query(a, image ? copy + 1 : copy, image))
            rc = CLI_EXIT_FAILURE;
    }
    if (got < 0)
        rc = CLI_EXIT_FAILURE;
    cli_lines_free(&in);
    if (f != stdin)
        fclose(f);
    return rc;
}

enum { QUERY_TEXT, QUERY_IMAGE, QUERY_FILE };

/* The value of --text, --image or --queries (a file of queries): 0, or the exit status. */
static int query_option(cli_args *c, search_args *a, int kind)
{
    const char *v = NULL;
    int rc = kind == QUERY_TEXT ? cli_arg_string(c, &v) : cli_arg_path(c, &v);
    if (rc)
        return rc;
    if (kind == QUERY_FILE)
        rc = read_queries_file(a, v);
    else if (add_query(a, v, kind == QUERY_IMAGE))
        rc = cli_fail("out of memory");
    return rc ? cli_args_stop(c, rc) : 0;
}

/* --gpu N, or local: the node-local rank's GPU. */
static void gpu_option(cli_args *c, search_args *a)
{
    const char *v = NULL;
    if (cli_arg_string(c, &v))
        return;
    char *end;
    long n = strtol(v, &end, 10);
    if (!strcmp(v, "local"))
        a->gpu_local = 1;
    else if (*v && !*end && n >= 0 && n <= CLI_GPU_MAX)
        a->device.gpu = (int)n, a->gpu_local = 0;
    else
        cli_args_stop(c, cli_args_error(c, "--gpu '%s': expected an integer in 0..%d or local", v, CLI_GPU_MAX));
}

/* --gpu local: the process's rank on its node, modulo the GPUs it sees. */
static void resolve_local_gpu(search_args *a)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "PMI_LOCAL_RANK"};
    int rank = 0, count = 0;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) {
            rank = atoi(getenv(vars[i]));
            break;
        }
    ims_error ignored;
    if (ims_cuda_device_count(&count, &ignored) != IMS_OK || count < 1)
        count = 1;
    a->device.gpu = (rank < 0 ? 0 : rank) % count;
}

/* Returns 0 to go on, -1 after --help, or the exit status. */
static int parse_search_args(int argc, char **argv, search_args *a)
{
    static const char *const table_names[] = {"visual", "semantic", NULL};
    a->k = 10;
    a->dtype = IMS_DTYPE_COUNT;
    ims_decode_options_init(&a->decode);
    cli_args c;
    cli_args_init(&c, "search", search_usage, argc, argv);
    while (cli_args_next(&c)) {
        if (c.operand && !a->index_dir)
            a->index_dir = c.operand;
        else if (cli_is(&c, "--text"))
            query_option(&c, a, QUERY_TEXT);
        else if (cli_is(&c, "--image"))
            query_option(&c, a, QUERY_IMAGE);
        else if (cli_is(&c, "--queries"))
            query_option(&c, a, QUERY_FILE);
        else if (cli_is(&c, "-k"))
            cli_arg_int(&c, 1, IMS_KNN_MAX_K, &a->k);
        else if (cli_is(&c, "--json"))
            a->json = 1;
        else if (cli_is(&c, "--table"))
            cli_arg_choice(&c, table_names, &a->semantic_images); /* 1: semantic */
        else if (cli_is(&c, "--gpu"))
            gpu_option(&c, a);
        else if (cli_is(&c, CLI_DEVICE_OPTIONS))
            cli_arg_device(&c, &a->device);
        else if (cli_is(&c, "--mpi"))
            a->mpi = 1;
        else if (cli_is(&c, "--dtype"))
            cli_arg_dtype(&c, &a->dtype);
        else if (cli_is(&c, "--no-verify"))
            a->no_verify = 1;
        else if (cli_is(&c, "--text-model"))
            cli_arg_path(&c, &a->text_model);
        else if (cli_is(&c, "--image-model"))
            cli_arg_path(&c, &a->image_model);
        else if (cli_is(&c, "--relative-to"))
            cli_arg_path(&c, &a->relative_to);
        else if (cli_is(&c, "--html"))
            cli_arg_path(&c, &a->html);
        else if (cli_is(&c, "--html-links"))
            a->html_links = 1;
        else if (cli_is(&c, CLI_MAX_PIXELS_OPTION))
            cli_arg_max_pixels(&c, &a->decode);
        else
            cli_args_unknown(&c);
    }
    if (c.status >= 0)
        return c.status == CLI_EXIT_OK ? -1 : c.status;
    if (!a->index_dir)
        return cli_args_error(&c, "no index given");
    if (a->count == 0)
        return cli_args_error(&c, "no query: give --text, --image or --queries");
    if (a->html_links && !a->html)
        return cli_args_error(&c, "--html-links needs --html OUT.html");
    return 0;
}

/* path relative to base (both absolute, without "." or ".." parts) into buf. */
static void relative_path(const char *base, const char *path, char *buf, size_t size)
{
    if (path[0] != '/') { /* a version-1 index's relative path: as stored */
        snprintf(buf, size, "%s", path);
        return;
    }
    size_t common = 0; /* the length of the leading folders both share */
    for (size_t i = 0;; i++) {
        int end_base = base[i] == '\0' || base[i] == '/', end_path = path[i] == '\0' || path[i] == '/';
        if (end_base && end_path)
            common = i;
        if (base[i] == '\0' || path[i] == '\0' || base[i] != path[i])
            break;
    }
    size_t used = 0;
    for (const char *p = base + common; *p; p++) /* one ".." per folder of base below the common part */
        if (*p == '/' && p[1] != '\0' && used + 3 < size)
            used += (size_t)snprintf(buf + used, size - used, "../");
    const char *rest = path + common + (path[common] == '/');
    if (used == 0 && *rest == '\0')
        rest = ".";
    snprintf(buf + used, size - used, "%s", rest);
}

typedef struct printer {
    const search_args *a;
    int is_set; /* hits name their shard */
    char base[PATH_MAX]; /* --relative-to, resolved */
} printer;

static const char *shown_path(const printer *pr, const char *path, char *buf, size_t size)
{
    if (!pr->a->relative_to)
        return path;
    relative_path(pr->base, path, buf, size);
    return buf;
}

static void print_results(const printer *pr, const ims_search_results *res)
{
    const search_args *a = pr->a;
    char *buf = malloc(2 * PATH_MAX + 64);
    size_t size = buf ? 2 * PATH_MAX + 64 : 0;
    for (size_t i = 0; i < a->count; i++) {
        const search_query *q = &a->queries[i];
        const ims_search_result *r = &res->results[i];
        const char *table = r->table == IMS_INDEX_TABLE_SEMANTIC ? "semantic" : "visual";
        if (a->json) {
            printf("{\"query\": ");
            if (q->image) {
                printf("{");
                json_path(stdout, "image", q->text);
                printf("}");
            } else {
                json_string(stdout, q->text, strlen(q->text));
            }
            printf(", \"table\": \"%s\", ", table);
            if (r->status) {
                printf("\"error\": ");
                json_string(stdout, r->error, strlen(r->error));
                printf("}\n");
                continue;
            }
            printf("\"results\": [");
        } else {
            printf("%s%s \"", i ? "\n" : "", q->image ? "image" : "text");
            text_safe(stdout, q->text);
            printf("\" (%s table)\n", table);
            if (r->status) {
                printf("      error: ");
                text_safe(stdout, r->error);
                fputc('\n', stdout);
                continue;
            }
            printf("%4s  %8s  %s\n", "rank", "score", "path");
        }
        for (int j = 0; j < r->count; j++) {
            const ims_search_hit *h = &r->hits[j];
            const char *path = buf ? shown_path(pr, h->path, buf, size) : h->path;
            if (a->json) {
                printf("%s{\"rank\": %d, ", j ? ", " : "", j + 1);
                json_path(stdout, "path", path);
                printf(", \"score\": ");
                json_double(stdout, h->score);
                if (pr->is_set)
                    printf(", \"shard\": %lld", (long long)IMS_INDEX_SET_SHARD(h->row));
                printf(", \"row\": %lld, \"chunk\": %lld, \"offset\": %lld}",
                       (long long)(pr->is_set ? IMS_INDEX_SET_SHARD_ROW(h->row) : h->row), (long long)h->chunk,
                       (long long)h->offset);
            } else {
                printf("%4d  %8.4f  ", j + 1, h->score);
                text_safe(stdout, path);
                fputc('\n', stdout);
            }
        }
        if (a->json)
            printf("]}\n");
        else if (r->count == 0)
            printf("      (the index is empty)\n");
    }
    free(buf);
}

/* One process searches the whole set (or index). */
static ims_status search_local(search_args *a, const ims_search_options *so_in, const ims_search_query *queries,
                               printer *pr, int *synthetic, ims_search_results **res, ims_error *err)
{
    ims_index_set *set = NULL;
    ims_backend *be = NULL;
    ims_searcher *searcher = NULL;
    ims_status st = ims_index_set_open(a->index_dir, &set, err);
    if (!st) {
        pr->is_set = ims_index_set_is_set(set);
        ims_index_info info;
        ims_index_get_info(ims_index_set_shard(set, 0), &info);
        if (!pr->is_set && info.version < 2)
            fprintf(stderr, "imgsearch: note: %s is index format version %d: its paths are relative to the folder it "
                            "was indexed from; 'imgsearch index --upgrade %s' (run there) makes them absolute\n",
                    a->index_dir, info.version, a->index_dir);
    }
    if (!st)
        st = cli_device_open(&a->device, &be, err);
    ims_search_options so = *so_in;
    so.backend = be;
    if (!st)
        st = ims_searcher_open_set(set, &so, &searcher, err);
    if (!st)
        st = ims_searcher_search(searcher, queries, (int64_t)a->count, a->k, res, err);
    *synthetic = searcher && ims_searcher_synthetic(searcher);
    ims_searcher_close(searcher);
    ims_backend_free(be);
    ims_index_set_close(set);
    return st;
}

/* The contact sheet (--html): 0, or the exit status after saying why. */
static int write_html(const search_args *a, const ims_search_results *res, int synthetic)
{
    html_query *hq = calloc(a->count ? a->count : 1, sizeof *hq);
    FILE *f = hq ? fopen(a->html, "wb") : NULL;
    if (!f) {
        free(hq);
        return cli_fail("cannot write '%s': %s", a->html, hq ? strerror(errno) : "out of memory");
    }
    for (size_t i = 0; i < a->count; i++)
        hq[i] = (html_query){.text = a->queries[i].text, .image = a->queries[i].image};
    html_sheet_options o = {.index_name = a->index_dir, .thumb_side = HTML_THUMB_SIDE, .links = a->html_links,
                            .synthetic = synthetic, .decode = a->decode};
    int bad = html_sheet_write(f, &o, hq, res);
    bad |= fclose(f) != 0;
    free(hq);
    return bad ? cli_fail("cannot write '%s': %s", a->html, strerror(errno)) : 0;
}

int cmd_search(int argc, char **argv)
{
    search_args a = {0};
    int rc = parse_search_args(argc, argv, &a);
    ims_error err = {0};
    ims_search_query *queries = NULL;
    ims_search_results *res = NULL;
    ims_status st = IMS_OK;
    int failed = 0, synthetic = 0, root = 1;
    if (rc)
        goto done;
    queries = calloc(a.count, sizeof *queries);
    if (!queries)
        st = ims_error_set(&err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < a.count; i++) {
        if (a.queries[i].image)
            queries[i].image = a.queries[i].text;
        else
            queries[i].text = a.queries[i].text;
        queries[i].table = a.semantic_images ? IMS_INDEX_TABLE_SEMANTIC : IMS_INDEX_TABLE_VISUAL;
    }
    printer pr = {.a = &a};
    if (!st && a.relative_to && !realpath(a.relative_to, pr.base))
        st = ims_error_set(&err, IMS_ERR_NOT_FOUND, "--relative-to '%s': %s", a.relative_to, strerror(errno));
    if (a.gpu_local)
        resolve_local_gpu(&a);
    ims_search_options so;
    ims_search_options_init(&so);
    so.dtype = a.dtype;
    so.image_model = a.image_model;
    so.text_model = a.text_model;
    so.decode = a.decode;
    so.on_warning = on_image_warning;
    so.verify = !a.no_verify;
    if (!st && a.mpi) {
        cli_mpi_search m = {a.index_dir, &a.device, &so, queries, a.count, a.k};
        cli_mpi_outcome o = {0};
        st = cli_search_mpi(&m, &o, &res, &err);
        root = o.root;
        pr.is_set = o.is_set;
        synthetic = o.synthetic;
    } else if (!st) {
        st = search_local(&a, &so, queries, &pr, &synthetic, &res, &err);
    }
    if (synthetic && root)
        fprintf(stderr, "imgsearch: WARNING: the image model holds synthetic weights: results are not meaningful\n");
    if (!st && res && root && a.html && (rc = write_html(&a, res, synthetic)) != 0)
        goto done;
    if (!st && res) {
        print_results(&pr, res);
        for (int64_t i = 0; i < res->count; i++)
            if (res->results[i].status) {
                fputs("imgsearch: ", stderr);
                if (!a.queries[i].image)
                    fprintf(stderr, "query %lld: ", (long long)i + 1);
                text_safe(stderr, res->results[i].error);
                fputc('\n', stderr);
            }
    }
done:
    failed = res && res->failed > 0;
    ims_search_results_free(res);
    free(queries);
    for (size_t i = 0; i < a.owned_count; i++)
        free(a.owned[i]);
    free(a.owned);
    free(a.queries);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (st && !err.msg[0])
        ims_error_set(&err, st, "%s", ims_status_name(st));
    if (st && !root) /* rank 0 says why and fails the job: a failing exit here could have mpirun kill rank 0 first */
        return CLI_EXIT_OK;
    if (st)
        return cli_error(&err);
    return failed ? CLI_EXIT_SOME_FAILED : CLI_EXIT_OK;
}
