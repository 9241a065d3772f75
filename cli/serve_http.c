/* serve_http.c: serve's HTTP side on libmicrohttpd (a thread per connection):
 * the routes, the checks on every request, the answers and the log.
 *
 *   GET /                 the page (serve_page.c)
 *   GET /api/search?text=T|row=R[&k=K][&table=visual|semantic]
 *   POST /api/search[?k=K][&table=...]   the body is an image
 *   GET /api/thumb/ROW    an indexed row's JPEG thumbnail
 *   GET /api/health, GET /api/info
 *
 * Every answer but the page and thumbnails is JSON; every error is
 * {"error": "..."} with a 4xx (the request's fault), 503 (the queue is full)
 * or 500. Files are reached only through row ids of the index, never through
 * a path from the request. Bodies, texts and k are bounded before any work.
 */
#include "serve.h"

#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* One request's state across the handler's calls (the body arrives in pieces). */
typedef struct request {
    double t0;
    char *body;
    size_t len, cap;
    int too_big;  /* the body passed max_upload: refused once it has arrived */
    int answered; /* refused from its headers alone */
} request;

/* What a request did, for the log and the stats. */
typedef struct outcome {
    int status;
    const serve_job *job; /* a search's times, or NULL */
} outcome;

static enum MHD_Result respond(struct MHD_Connection *c, int status, const char *type, void *body, size_t len,
                               outcome *oc)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Cache-Control", strncmp(type, "image/", 6) ? "no-store" : "private, max-age=300");
    if (!strncmp(type, "text/html", 9))
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                                "script-src 'unsafe-inline'; connect-src 'self'");
    if (status == 405)
        MHD_add_response_header(r, "Allow", "GET, HEAD, POST");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    oc->status = status;
    return ret;
}

static enum MHD_Result respond_error(struct MHD_Connection *c, int status, const char *msg, outcome *oc)
{
    serve_job j = {0};
    serve_job_error(&j, status, msg);
    return j.body ? respond(c, status, "application/json", j.body, j.body_len, oc) : MHD_NO;
}

/* A decimal number in lo..hi, all of s: 0, or -1. */
static int parse_int64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t v = 0;
    if (!s || !*s || strlen(s) > 18)
        return -1;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static const char *arg(struct MHD_Connection *c, const char *key)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
}

/* k and table of a search request into job: NULL, or what is wrong. */
static const char *search_params(serve_server *s, struct MHD_Connection *c, serve_job *job, char *msg, size_t size)
{
    const char *k = arg(c, "k"), *table = arg(c, "table");
    int64_t v = 10;
    if (k && parse_int64(k, 1, s->limits.max_k, &v)) {
        snprintf(msg, size, "k must be a whole number in 1..%d", s->limits.max_k);
        return msg;
    }
    job->k = (int)v;
    if (table && strcmp(table, "visual") && strcmp(table, "semantic"))
        return "table must be visual or semantic";
    job->table = table && !strcmp(table, "semantic") ? IMS_INDEX_TABLE_SEMANTIC : IMS_INDEX_TABLE_VISUAL;
    return NULL;
}

static enum MHD_Result run_job(serve_server *s, struct MHD_Connection *c, serve_job *job, outcome *oc)
{
    if (serve_engine_run(s->engine, job)) {
        char msg[128];
        snprintf(msg, sizeof msg, "busy: %d searches are waiting already; try again", s->limits.queue_max);
        return respond_error(c, 503, msg, oc);
    }
    oc->job = job;
    char *body = job->body;
    job->body = NULL;
    return body ? respond(c, job->http_status, "application/json", body, job->body_len, oc)
                : respond_error(c, 500, "out of memory", oc);
}

static enum MHD_Result search_get(serve_server *s, struct MHD_Connection *c, serve_job *job, outcome *oc)
{
    char msg[160];
    const char *bad = search_params(s, c, job, msg, sizeof msg);
    if (bad)
        return respond_error(c, 400, bad, oc);
    const char *text = arg(c, "text"), *row = arg(c, "row");
    if (!text == !row)
        return respond_error(c, 400, "give text=TEXT or row=ROW (one of them)", oc);
    if (row) {
        if (parse_int64(row, 0, INT64_MAX / 2, &job->row) || !ims_index_set_live_row(s->index, job->row))
            return respond_error(c, 404, "no such row in the index", oc);
        job->kind = SERVE_QUERY_ROW;
        return run_job(s, c, job, oc);
    }
    size_t len = strlen(text);
    if (len > s->limits.max_text) {
        snprintf(msg, sizeof msg, "the text is %zu bytes, longer than %zu", len, s->limits.max_text);
        return respond_error(c, 413, msg, oc);
    }
    if (!text_is_utf8(text, len))
        return respond_error(c, 400, "the text is not valid UTF-8", oc);
    job->kind = SERVE_QUERY_TEXT;
    job->text = text;
    return run_job(s, c, job, oc);
}

/* The body into a new file of the private upload folder: 0, or -1. */
static int save_upload(serve_server *s, const request *rq, char *path, size_t size)
{
    pthread_mutex_lock(&s->mu);
    unsigned long long seq = ++s->upload_seq;
    pthread_mutex_unlock(&s->mu);
    snprintf(path, size, "%s/upload-%llu", s->upload_dir, seq);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < rq->len) {
        ssize_t n = write(fd, rq->body + done, rq->len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    if (close(fd) != 0 || done != rq->len) {
        unlink(path);
        return -1;
    }
    return 0;
}

static enum MHD_Result search_post(serve_server *s, struct MHD_Connection *c, const request *rq, serve_job *job,
                                   outcome *oc)
{
    char msg[160];
    const char *bad = search_params(s, c, job, msg, sizeof msg);
    if (bad)
        return respond_error(c, 400, bad, oc);
    if (rq->too_big) {
        snprintf(msg, sizeof msg, "the upload is larger than %zu bytes", s->limits.max_upload);
        return respond_error(c, 413, msg, oc);
    }
    if (rq->len == 0)
        return respond_error(c, 400, "no image: POST the image file as the body", oc);
    if (ims_image_sniff(rq->body, rq->len) == IMS_IMAGE_FORMAT_UNKNOWN)
        return respond_error(c, 415, "the upload is not an image (JPEG, PNG, WebP, TIFF, GIF or BMP)", oc);
    char path[4096 + 64];
    if (save_upload(s, rq, path, sizeof path))
        return respond_error(c, 500, "cannot store the upload", oc);
    job->kind = SERVE_QUERY_UPLOAD;
    job->text = path;
    job->upload_bytes = rq->len;
    enum MHD_Result ret = run_job(s, c, job, oc);
    unlink(path);
    return ret;
}

static enum MHD_Result thumb(serve_server *s, struct MHD_Connection *c, const char *row_text, outcome *oc)
{
    int64_t row;
    const ims_file_entry *file = NULL;
    if (parse_int64(row_text, 0, INT64_MAX / 2, &row) || !(file = ims_index_set_live_row(s->index, row)))
        return respond_error(c, 404, "no such row in the index", oc);
    uint8_t *jpeg = NULL;
    size_t size = 0;
    ims_error err = {0};
    if (serve_thumbs_get(s->thumbs, row, file->path, &jpeg, &size, &err)) {
        char msg[IMS_ERROR_MSG_MAX + 32];
        snprintf(msg, sizeof msg, "no thumbnail: %s", err.msg);
        return respond_error(c, 404, msg, oc);
    }
    return respond(c, 200, "image/jpeg", jpeg, size, oc);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void info_latency(FILE *f, const serve_stats *st)
{
    size_t n = st->searches < SERVE_LATENCY_RING ? (size_t)st->searches : SERVE_LATENCY_RING;
    float sorted[SERVE_LATENCY_RING];
    memcpy(sorted, st->ring, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_float);
    double d = st->searches ? (double)st->searches : 1.0;
    fprintf(f, "\"latency_ms\": {\"searches\": %llu, \"embed_mean\": %.3f, \"search_mean\": %.3f, "
               "\"total_mean\": %.3f, \"total_max\": %.3f",
            (unsigned long long)st->searches, st->embed_sum / d * 1e3, st->search_sum / d * 1e3,
            st->total_sum / d * 1e3, st->total_max * 1e3);
    static const int pct[] = {50, 90, 99};
    for (int i = 0; i < 3; i++)
        fprintf(f, ", \"total_p%d\": %.3f", pct[i], n ? sorted[(n - 1) * (size_t)pct[i] / 100] : 0.0);
    fputs("}", f);
}

static enum MHD_Result info(serve_server *s, struct MHD_Connection *c, outcome *oc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return respond_error(c, 500, "out of memory", oc);
    ims_index_info ii;
    ims_index_set_get_info(s->index, &ii);
    size_t entries, bytes;
    uint64_t hits, misses;
    serve_thumbs_stats(s->thumbs, &entries, &bytes, &hits, &misses);
    fputs("{", f);
    json_path(f, "index", s->index_name);
    fprintf(f, ", \"version\": \"%s\", \"device\": \"%s\", \"rows\": %lld, \"rows_stored\": %lld, "
               "\"tables\": [\"visual\"%s], \"synthetic\": %s, ",
            IMS_VERSION_STRING, s->device, (long long)ii.live_rows, (long long)ii.rows,
            s->has_semantic ? ", \"semantic\"" : "", s->synthetic ? "true" : "false");
    fprintf(f, "\"limits\": {\"max_k\": %d, \"max_text_bytes\": %zu, \"max_upload_bytes\": %zu, \"queue\": %d, "
               "\"connections\": %d, \"timeout_s\": %d}, \"queue_waiting\": %d, ",
            s->limits.max_k, s->limits.max_text, s->limits.max_upload, s->limits.queue_max, s->limits.connections,
            s->limits.timeout_s, serve_engine_queued(s->engine));
    pthread_mutex_lock(&s->mu);
    const serve_stats *st = &s->stats;
    fprintf(f, "\"requests\": {\"total\": %llu, \"ok\": %llu, \"client_errors\": %llu, \"server_errors\": %llu, "
               "\"busy\": %llu}, ",
            (unsigned long long)st->requests, (unsigned long long)st->ok, (unsigned long long)st->client_errors,
            (unsigned long long)st->server_errors, (unsigned long long)st->busy);
    info_latency(f, st);
    pthread_mutex_unlock(&s->mu);
    fprintf(f, ", \"thumbnails\": {\"cached\": %zu, \"bytes\": %zu, \"hits\": %llu, \"misses\": %llu}}\n", entries,
            bytes, (unsigned long long)hits, (unsigned long long)misses);
    if (fclose(f) != 0) {
        free(buf);
        return respond_error(c, 500, "out of memory", oc);
    }
    return respond(c, 200, "application/json", buf, len, oc);
}

static enum MHD_Result route(serve_server *s, struct MHD_Connection *c, const char *url, const char *method,
                             const request *rq, serve_job *job, outcome *oc)
{
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!strcmp(url, "/api/search")) {
        if (get)
            return search_get(s, c, job, oc);
        if (post)
            return search_post(s, c, rq, job, oc);
    } else if (!strcmp(url, "/") || !strcmp(url, "/api/health") || !strcmp(url, "/api/info") ||
               !strncmp(url, "/api/thumb/", 11)) {
        if (get && !strcmp(url, "/")) {
            char *page = malloc(s->page_len);
            if (!page)
                return respond_error(c, 500, "out of memory", oc);
            memcpy(page, s->page, s->page_len);
            return respond(c, 200, "text/html; charset=utf-8", page, s->page_len, oc);
        }
        if (get && !strcmp(url, "/api/health"))
            return respond(c, 200, "application/json", strdup("{\"status\": \"ok\"}\n"), 17, oc);
        if (get && !strcmp(url, "/api/info"))
            return info(s, c, oc);
        if (get)
            return thumb(s, c, url + 11, oc);
    } else {
        return respond_error(c, 404, "no such page: the API is /api/search, /api/thumb/ROW, /api/info, /api/health",
                             oc);
    }
    return respond_error(c, 405, "method not allowed here", oc);
}

static void log_request(serve_server *s, const char *method, const char *url, const outcome *oc, double total)
{
    pthread_mutex_lock(&s->mu);
    serve_stats *st = &s->stats;
    st->requests++;
    st->ok += oc->status < 400;
    st->client_errors += oc->status >= 400 && oc->status < 500;
    st->server_errors += oc->status >= 500 && oc->status != 503;
    st->busy += oc->status == 503;
    const serve_job *j = oc->job;
    if (j && oc->status == 200) {
        st->ring[st->searches % SERVE_LATENCY_RING] = (float)(total * 1e3);
        st->searches++;
        st->embed_sum += j->embed_s;
        st->search_sum += j->search_s;
        st->total_sum += total;
        st->total_max = total > st->total_max ? total : st->total_max;
    }
    pthread_mutex_unlock(&s->mu);
    if (s->quiet)
        return;
    /* one line, written at once, so lines of threads do not interleave */
    char line[512];
    int n = snprintf(line, sizeof line, "imgsearch: serve: %.8s ", method);
    for (const char *p = url; *p && n < 300; p++)
        n += snprintf(line + n, sizeof line - (size_t)n, (unsigned char)*p < 0x21 || (unsigned char)*p >= 0x7f
                                                              ? "\\x%02x" : "%c", (unsigned char)*p);
    n += snprintf(line + n, sizeof line - (size_t)n, " %d", oc->status);
    if (j && oc->status == 200)
        n += snprintf(line + n, sizeof line - (size_t)n, " k=%d: embed %.1f ms, search %.1f ms, queued %.1f ms,", j->k,
                      j->embed_s * 1e3, j->search_s * 1e3, j->queued_s * 1e3);
    snprintf(line + n, sizeof line - (size_t)n, " total %.1f ms\n", total * 1e3);
    fputs(line, stderr);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    serve_server *s = cls;
    request *rq = *con_cls;
    if (!rq) { /* the headers are in: the body (if any) follows in later calls */
        if (!(rq = calloc(1, sizeof *rq)))
            return MHD_NO;
        rq->t0 = ims_clock_seconds();
        *con_cls = rq;
        /* a body announced larger than allowed is refused before it is read */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        int64_t announced = 0;
        if (cl && (parse_int64(cl, 0, INT64_MAX / 2, &announced) || (uint64_t)announced > s->limits.max_upload)) {
            outcome oc = {0};
            char msg[96];
            snprintf(msg, sizeof msg, "the upload is larger than %zu bytes", s->limits.max_upload);
            enum MHD_Result ret = respond_error(c, 413, msg, &oc);
            log_request(s, method, url, &oc, ims_clock_seconds() - rq->t0);
            rq->answered = 1;
            return ret;
        }
        return MHD_YES;
    }
    if (rq->answered) { /* refused already: the rest of the body is dropped */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) { /* a piece of the body */
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->too_big || n > s->limits.max_upload - rq->len) {
            rq->too_big = 1; /* read and dropped, answered 413 at the end */
            free(rq->body);
            rq->body = NULL;
            rq->len = rq->cap = 0;
            return MHD_YES;
        }
        if (rq->len + n > rq->cap) {
            size_t cap = rq->cap ? rq->cap * 2 : 65536;
            while (cap < rq->len + n)
                cap *= 2;
            char *b = realloc(rq->body, cap);
            if (!b)
                return MHD_NO;
            rq->body = b;
            rq->cap = cap;
        }
        memcpy(rq->body + rq->len, upload_data, n);
        rq->len += n;
        return MHD_YES;
    }
    serve_job job = {0};
    outcome oc = {0};
    enum MHD_Result ret = route(s, c, url, method, rq, &job, &oc);
    log_request(s, method, url, &oc, ims_clock_seconds() - rq->t0);
    free(job.body);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    request *rq = *con_cls;
    if (rq) {
        free(rq->body);
        free(rq);
    }
    *con_cls = NULL;
}

ims_status serve_http_start(serve_server *s, const void *addr, int ipv6, struct MHD_Daemon **out, int *port,
                            ims_error *err)
{
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | (ipv6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, s, MHD_OPTION_SOCK_ADDR, addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)s->limits.connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->limits.timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024 + 2 * s->limits.max_text),
        MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!d)
        return ims_error_set(err, IMS_ERR_IO, "cannot listen there (%s): the port may be in use, or the address "
                                              "not this machine's",
                             errno ? strerror(errno) : "libmicrohttpd refused");
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port = di ? di->port : 0;
    *out = d;
    return IMS_OK;
}
