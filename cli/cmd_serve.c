/* cmd_serve.c: `imgsearch serve INDEX_OR_SET`: a local web page and JSON API over
 * one index, with the models and tables loaded once.
 *
 * The command line, start-up and shutdown only: serve_http.c answers the
 * requests, serve_engine.c owns the searcher, serve_thumbs.c the thumbnails.
 * SIGINT and SIGTERM write their number to a pipe that the main thread
 * waits on (whichever thread the signal lands in, even during start-up);
 * it then stops the server cleanly: the connections are closed, the searches
 * in hand finished, the uploads' folder removed.
 */
#include "cli.h"
#include "html.h"
#include "serve.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char serve_usage[] =
    "usage: imgsearch serve INDEX_OR_SET [--host 127.0.0.1] [--port 8080]\n"
    "                       [--device auto|cpu|cuda] [--gpu N] [--dtype f16|f32]\n"
    "                       [--text-model M.isw] [--image-model M.isw] [--no-verify]\n"
    "                       [--max-k K] [--max-upload MIB] [--max-text BYTES]\n"
    "                       [--queue N] [--connections N] [--timeout S]\n"
    "                       [--thumb-cache MIB] [--max-pixels N] [--quiet]\n"
    "\n"
    "Serves a page for searching an index (or a set of shards) by text or by an\n"
    "uploaded image, with the results as a grid of thumbnails, and its JSON API:\n"
    "  GET  /api/search?text=TEXT&k=K           text on the semantic table\n"
    "  GET  /api/search?row=ID&k=K&table=T      the indexed image of a hit's id (more like this)\n"
    "  POST /api/search?k=K&table=T             the body is an image file\n"
    "       -> {\"query\", \"table\", \"results\": [{\"rank\", \"path\", \"score\", \"row\",\n"
    "          \"chunk\", \"offset\", \"id\"}], \"latency_ms\"} (search --json's fields, and id)\n"
    "  GET  /api/thumb/ID                       the JPEG thumbnail of a row\n"
    "  GET  /api/info, GET /api/health          the index, limits, counts, latency\n"
    "The models and tables are loaded once, at start. Errors are JSON\n"
    "{\"error\": ...} with a 4xx status; 503 when --queue searches wait already.\n"
    "Only files of the index are ever read, by row id. Each request is logged on\n"
    "stderr with its time. SIGINT or SIGTERM stops it.\n"
    "\n"
    "  --host ADDR          the IPv4 or IPv6 address to listen on, or localhost\n"
    "                       (default 127.0.0.1: this machine only; another warns)\n"
    "  --port N             the port (default 8080; 0: any free port, printed)\n"
    "  --max-k K            the largest k a request may ask (default 1000)\n"
    "  --max-upload MIB     the largest uploaded image (default 32)\n"
    "  --max-text BYTES     the longest text query (default 4096)\n"
    "  --queue N            searches that may wait for the engine (default 64)\n"
    "  --connections N      open connections at most (default 128)\n"
    "  --timeout S          close a connection idle or stalled this long (default 30)\n"
    "  --thumb-cache MIB    thumbnails kept in memory (default 64)\n"
    "  --quiet              no line per request\n"
    "  --dtype, --device, --gpu, --text-model, --image-model, --no-verify: as search\n"
    CLI_MAX_PIXELS_HELP;

typedef struct serve_args {
    const char *index_dir, *host, *text_model, *image_model;
    int port, no_verify, quiet, upload_mib, thumb_mib;
    cli_device device;
    ims_dtype dtype;
    ims_decode_options decode;
    serve_limits limits;
} serve_args;

/* Returns 0 to go on, -1 after --help, or the exit status. */
static int parse_serve_args(int argc, char **argv, serve_args *a)
{
    a->host = "127.0.0.1";
    a->port = 8080;
    a->dtype = IMS_DTYPE_COUNT;
    a->upload_mib = 32;
    a->thumb_mib = 64;
    a->limits = (serve_limits){.max_k = 1000, .max_text = 4096, .queue_max = 64, .connections = 128, .timeout_s = 30};
    ims_decode_options_init(&a->decode);
    int max_text = 4096;
    cli_args c;
    cli_args_init(&c, "serve", serve_usage, argc, argv);
    while (cli_args_next(&c)) {
        if (c.operand && !a->index_dir)
            a->index_dir = c.operand;
        else if (cli_is(&c, "--host"))
            cli_arg_string(&c, &a->host);
        else if (cli_is(&c, "--port"))
            cli_arg_int(&c, 0, 65535, &a->port);
        else if (cli_is(&c, "--max-k"))
            cli_arg_int(&c, 1, IMS_KNN_MAX_K, &a->limits.max_k);
        else if (cli_is(&c, "--max-upload"))
            cli_arg_int(&c, 1, 1024, &a->upload_mib);
        else if (cli_is(&c, "--max-text"))
            cli_arg_int(&c, 1, 1 << 20, &max_text);
        else if (cli_is(&c, "--queue"))
            cli_arg_int(&c, 1, 100000, &a->limits.queue_max);
        else if (cli_is(&c, "--connections"))
            cli_arg_int(&c, 1, 10000, &a->limits.connections);
        else if (cli_is(&c, "--timeout"))
            cli_arg_int(&c, 1, 3600, &a->limits.timeout_s);
        else if (cli_is(&c, "--thumb-cache"))
            cli_arg_int(&c, 0, 1 << 20, &a->thumb_mib);
        else if (cli_is(&c, "--quiet"))
            a->quiet = 1;
        else if (cli_is(&c, CLI_DEVICE_OPTIONS))
            cli_arg_device(&c, &a->device);
        else if (cli_is(&c, "--dtype"))
            cli_arg_dtype(&c, &a->dtype);
        else if (cli_is(&c, "--no-verify"))
            a->no_verify = 1;
        else if (cli_is(&c, "--text-model"))
            cli_arg_path(&c, &a->text_model);
        else if (cli_is(&c, "--image-model"))
            cli_arg_path(&c, &a->image_model);
        else if (cli_is(&c, CLI_MAX_PIXELS_OPTION))
            cli_arg_max_pixels(&c, &a->decode);
        else
            cli_args_unknown(&c);
    }
    if (c.status >= 0)
        return c.status == CLI_EXIT_OK ? -1 : c.status;
    if (!a->index_dir)
        return cli_args_error(&c, "no index given");
    a->limits.max_text = (size_t)max_text;
    a->limits.max_upload = (size_t)a->upload_mib << 20;
    return 0;
}

/* The listening address from --host: an IPv4 or IPv6 literal. */
typedef struct listen_addr {
    union {
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
    } sa;
    int ipv6, loopback;
} listen_addr;

static ims_status parse_host(const char *host, int port, listen_addr *out, ims_error *err)
{
    memset(out, 0, sizeof *out);
    if (!strcmp(host, "localhost"))
        host = "127.0.0.1"; /* the one name taken: no resolver decides where we listen */
    if (inet_pton(AF_INET, host, &out->sa.v4.sin_addr) == 1) {
        out->sa.v4.sin_family = AF_INET;
        out->sa.v4.sin_port = htons((uint16_t)port);
        out->loopback = (ntohl(out->sa.v4.sin_addr.s_addr) >> 24) == 127;
        return IMS_OK;
    }
    if (inet_pton(AF_INET6, host, &out->sa.v6.sin6_addr) == 1) {
        out->sa.v6.sin6_family = AF_INET6;
        out->sa.v6.sin6_port = htons((uint16_t)port);
        out->ipv6 = 1;
        out->loopback = IN6_IS_ADDR_LOOPBACK(&out->sa.v6.sin6_addr);
        return IMS_OK;
    }
    return ims_error_set(err, IMS_ERR_ARGUMENT,
                         "--host '%s' is not an IPv4 or IPv6 address (such as 127.0.0.1 or ::1) or localhost", host);
}

/* Loads the models and tables now (a text and an indexed image, answered and
 * dropped), so the first request does not pay for it. A failure here is only
 * noted: the request that needs the part will say what is wrong. */
static void warm_up(ims_searcher *searcher, const ims_index_set *set, int has_semantic)
{
    const ims_index *idx = NULL;
    for (int64_t i = 0; i < ims_index_set_shard_count(set) && !idx; i++)
        if ((idx = ims_index_set_shard(set, i)) && ims_index_live_row_count(idx) == 0)
            idx = NULL;
    ims_search_query q[2] = {{.text = "warm up"}, {.table = IMS_INDEX_TABLE_VISUAL}};
    int n = 0;
    if (has_semantic)
        q[n++] = (ims_search_query){.text = "warm up"};
    if (idx)
        q[n++] = (ims_search_query){.image = ims_index_row(idx, ims_index_live_row(idx, 0))->path};
    ims_search_results *res = NULL;
    ims_error err = {0};
    if (n && ims_searcher_search(searcher, q, n, 1, &res, &err)) {
        fputs("imgsearch: serve: note: loading at start failed: ", stderr);
        text_safe(stderr, err.msg);
        fputc('\n', stderr);
    }
    ims_search_results_free(res);
}

/* Removes the uploads' folder (and anything a crashed request left in it). */
static void remove_upload_dir(const char *dir)
{
    if (!dir[0])
        return;
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[PATH_MAX + 300];
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static ims_status make_upload_dir(char *dir, size_t size, ims_error *err)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/imgsearch-serve-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        ims_status st = ims_error_set(err, IMS_ERR_IO, "cannot make a folder for uploads (%s): %s", dir,
                                      strerror(errno));
        dir[0] = '\0';
        return st;
    }
    return IMS_OK;
}

static ims_status open_searcher(const serve_args *a, const ims_index_set *set, ims_backend *be, ims_searcher **out,
                                ims_error *err)
{
    ims_search_options so;
    ims_search_options_init(&so);
    so.backend = be;
    so.dtype = a->dtype;
    so.image_model = a->image_model;
    so.text_model = a->text_model;
    so.decode = a->decode;
    so.verify = !a->no_verify;
    return ims_searcher_open_set(set, &so, out, err);
}

/* Serves until SIGINT or SIGTERM. */
/* The stop signals' pipe: a signal handler can reach nothing else, so this
 * one file-private variable is the exception to "no globals". */
static int stop_pipe[2] = {-1, -1};

static void on_stop_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    ssize_t n = write(stop_pipe[1], &b, 1); /* async-signal-safe; a full pipe has one already */
    (void)n;
}

static ims_status catch_stop_signals(ims_error *err)
{
    if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return ims_error_set(err, IMS_ERR_IO, "cannot make a pipe: %s", strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* also where a shell started us with SIGINT ignored */
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-answer is that connection's error only */
    return IMS_OK;
}

/* Blocks until SIGINT or SIGTERM; returns it. */
static int wait_stop_signal(void)
{
    struct pollfd p = {.fd = stop_pipe[0], .events = POLLIN};
    unsigned char b = 0;
    for (;;) {
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            return SIGTERM;
        if (read(stop_pipe[0], &b, 1) == 1)
            return b;
    }
}

static void release_stop_signals(void)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    for (int i = 0; i < 2; i++)
        if (stop_pipe[i] >= 0)
            close(stop_pipe[i]);
    stop_pipe[0] = stop_pipe[1] = -1;
}

static ims_status serve_until_signal(serve_server *s, const serve_args *a, ims_error *err)
{
    listen_addr la;
    ims_status st = parse_host(a->host, a->port, &la, err);
    if (st)
        return st;
    if (!la.loopback)
        fprintf(stderr, "imgsearch: serve: WARNING: listening on %s, not on this machine only: anyone who can reach "
                        "it can search the index and see its images' thumbnails\n",
                a->host);
    struct MHD_Daemon *d = NULL;
    int port = 0;
    if ((st = serve_http_start(s, &la.sa, la.ipv6, &d, &port, err)) != IMS_OK) {
        char why[IMS_ERROR_MSG_MAX];
        snprintf(why, sizeof why, "%s", err ? err->msg : "");
        return ims_error_set(err, st, "%s port %d: %s", a->host, a->port, why);
    }
    ims_index_info ii;
    ims_index_set_get_info(s->index, &ii);
    fprintf(stderr, "imgsearch: serving %s (%lld images) on http://%s%s%s:%d/ (device %s)\n", s->index_name,
            (long long)ii.live_rows, la.ipv6 ? "[" : "", a->host, la.ipv6 ? "]" : "", port, s->device);
    fflush(stderr);
    int sig = wait_stop_signal();
    fprintf(stderr, "imgsearch: serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    MHD_stop_daemon(d); /* closes the connections; waits for their threads, whose searches finish */
    return IMS_OK;
}

int cmd_serve(int argc, char **argv)
{
    serve_args a = {0};
    int rc = parse_serve_args(argc, argv, &a);
    if (rc)
        return rc < 0 ? CLI_EXIT_OK : rc;
    serve_server s = {.index_name = a.index_dir, .limits = a.limits, .quiet = a.quiet};
    pthread_mutex_init(&s.mu, NULL);
    ims_error err = {0};
    ims_backend *be = NULL;
    ims_searcher *searcher = NULL;
    ims_status st = catch_stop_signals(&err); /* first: a signal during the loading stops it once loaded */
    if (!st)
        st = ims_index_set_open(a.index_dir, &s.index, &err);
    if (!st)
        st = cli_device_open(&a.device, &be, &err);
    if (!st)
        st = open_searcher(&a, s.index, be, &searcher, &err);
    if (!st) {
        s.device = ims_backend_get_info(be)->name;
        s.has_semantic = ims_index_set_config(s.index)->semantic_dim > 0;
        fprintf(stderr, "imgsearch: serve: loading the models and tables of %s ...\n", a.index_dir);
        double t0 = ims_clock_seconds();
        warm_up(searcher, s.index, s.has_semantic);
        s.synthetic = ims_searcher_synthetic(searcher);
        fprintf(stderr, "imgsearch: serve: loaded in %.1f s\n", ims_clock_seconds() - t0);
        if (s.synthetic)
            fprintf(stderr, "imgsearch: WARNING: the image model holds synthetic weights: results are not "
                            "meaningful\n");
        serve_engine_options eo = {.index = s.index, .searcher = searcher, .queue_max = a.limits.queue_max};
        st = serve_engine_start(&eo, &s.engine, &err);
    }
    if (!st)
        st = serve_thumbs_create((size_t)a.thumb_mib << 20, HTML_THUMB_SIDE, &s.thumbs, &err);
    if (!st && !(s.page = serve_page_make(a.index_dir, s.synthetic, s.has_semantic, a.limits.max_k, &s.page_len)))
        st = ims_error_set(&err, IMS_ERR_NOMEM, "out of memory");
    if (!st)
        st = make_upload_dir(s.upload_dir, sizeof s.upload_dir, &err);
    if (!st)
        st = serve_until_signal(&s, &a, &err);
    serve_engine_stop(s.engine);
    remove_upload_dir(s.upload_dir);
    if (!st)
        fprintf(stderr, "imgsearch: serve: stopped after %llu requests (%llu searches)\n",
                (unsigned long long)s.stats.requests, (unsigned long long)s.stats.searches);
    serve_thumbs_free(s.thumbs);
    free(s.page);
    ims_searcher_close(searcher);
    ims_backend_free(be);
    ims_index_set_close(s.index);
    pthread_mutex_destroy(&s.mu);
    release_stop_signals();
    return st ? cli_error(&err) : CLI_EXIT_OK;
}
