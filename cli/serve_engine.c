/* serve_engine.c: the one thread that owns the searcher, and the bounded
 * queue of jobs the connection threads hand it.
 *
 * The searcher is not thread-safe and the device is one, so jobs are answered
 * one at a time in arrival order; a connection thread waits for its own job.
 * When queue_max jobs wait already, a new one is refused at once (the server
 * answers 503), so a burst cannot pile up unbounded work or memory.
 */
#include "serve.h"

#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct serve_engine {
    serve_engine_options o;
    pthread_mutex_t mu;
    pthread_cond_t wake; /* a job arrived, or stop */
    pthread_cond_t done; /* a job was answered */
    serve_job *head, *tail;
    int queued, stopping, started;
    pthread_t thread;
};

void serve_job_error(serve_job *job, int http_status, const char *msg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f) {
        fputs("{\"error\": ", f);
        json_string(f, msg, strlen(msg));
        fputs("}\n", f);
        fclose(f);
    }
    free(job->body);
    job->body = buf;
    job->body_len = buf ? len : 0;
    job->http_status = http_status;
}

/* The error of a failed query, the upload's temporary path replaced by words. */
static void query_error(serve_job *job, int http_status, const char *msg)
{
    size_t n = job->kind == SERVE_QUERY_UPLOAD ? strlen(job->text) : 0;
    char buf[IMS_ERROR_MSG_MAX + 64];
    if (n && !strncmp(msg, job->text, n)) {
        snprintf(buf, sizeof buf, "the uploaded image%s", msg + n);
        msg = buf;
    }
    serve_job_error(job, http_status, msg);
}

static void write_query(FILE *f, const serve_job *job, const ims_index_set *idx)
{
    fputs("{\"query\": ", f);
    if (job->kind == SERVE_QUERY_TEXT) {
        json_string(f, job->text, strlen(job->text));
    } else if (job->kind == SERVE_QUERY_UPLOAD) {
        fprintf(f, "{\"upload_bytes\": %zu}", job->upload_bytes);
    } else {
        fprintf(f, "{\"row\": %lld, ", (long long)job->row);
        json_path(f, "image", ims_index_set_live_row(idx, job->row)->path);
        fputc('}', f);
    }
}

/* The answer as `search --json` writes it, plus the times. */
static void write_result(serve_job *job, const ims_index_set *idx, const ims_search_results *res)
{
    const ims_search_result *r = &res->results[0];
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        serve_job_error(job, 500, "out of memory");
        return;
    }
    write_query(f, job, idx);
    fprintf(f, ", \"table\": \"%s\", \"results\": [", r->table == IMS_INDEX_TABLE_SEMANTIC ? "semantic" : "visual");
    for (int j = 0; j < r->count; j++) {
        const ims_search_hit *h = &r->hits[j];
        fprintf(f, "%s{\"rank\": %d, ", j ? ", " : "", j + 1);
        json_path(f, "path", h->path);
        fputs(", \"score\": ", f);
        json_double(f, h->score);
        /* search --json's fields (a set's hit: its shard, and row, chunk and offset in the shard), and the
         * id that row= and /api/thumb/ take */
        if (ims_index_set_is_set(idx))
            fprintf(f, ", \"shard\": %lld", (long long)IMS_INDEX_SET_SHARD(h->row));
        fprintf(f, ", \"row\": %lld, \"chunk\": %lld, \"offset\": %lld, \"id\": %lld}",
                (long long)IMS_INDEX_SET_SHARD_ROW(h->row), (long long)h->chunk, (long long)h->offset,
                (long long)h->row);
    }
    fprintf(f, "], \"latency_ms\": {\"queued\": %.3f, \"load\": %.3f, \"embed\": %.3f, \"search\": %.3f}}\n",
            job->queued_s * 1e3, res->load_s * 1e3, res->embed_s * 1e3, res->search_s * 1e3);
    fclose(f);
    free(job->body);
    job->body = buf;
    job->body_len = len;
    job->http_status = 200;
}

static void answer(serve_engine *e, serve_job *job)
{
    ims_search_query q = {.table = job->table};
    if (job->kind == SERVE_QUERY_TEXT) {
        q.text = job->text;
    } else if (job->kind == SERVE_QUERY_UPLOAD) {
        q.image = job->text;
    } else {
        const ims_file_entry *row = ims_index_set_live_row(e->o.index, job->row);
        if (!row) {
            serve_job_error(job, 404, "no such row in the index");
            return;
        }
        q.image = row->path;
    }
    ims_search_results *res = NULL;
    ims_error err = {0};
    ims_status st = ims_searcher_search(e->o.searcher, &q, 1, job->k, &res, &err);
    if (st) {
        /* not the query's fault unless it asked for what the index lacks */
        int client = st == IMS_ERR_ARGUMENT || st == IMS_ERR_UNSUPPORTED || st == IMS_ERR_NOT_FOUND;
        serve_job_error(job, client ? 400 : 500, err.msg[0] ? err.msg : ims_status_name(st));
    } else if (res->results[0].status) {
        query_error(job, job->kind == SERVE_QUERY_TEXT ? 400 : 422, res->results[0].error);
    } else {
        job->embed_s = res->embed_s;
        job->search_s = res->search_s;
        write_result(job, e->o.index, res);
    }
    ims_search_results_free(res);
}

static void *engine_main(void *arg)
{
    serve_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->head && !e->stopping)
            pthread_cond_wait(&e->wake, &e->mu);
        serve_job *job = e->head;
        if (!job)
            break; /* stopping, and every job answered */
        e->head = job->next;
        if (!e->head)
            e->tail = NULL;
        e->queued--;
        pthread_mutex_unlock(&e->mu);
        double t0 = ims_clock_seconds();
        job->queued_s = t0 - job->queued_s; /* it held the time it was queued */
        answer(e, job);
        job->total_s = ims_clock_seconds() - t0 + job->queued_s;
        pthread_mutex_lock(&e->mu);
        job->done = 1;
        pthread_cond_broadcast(&e->done);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

ims_status serve_engine_start(const serve_engine_options *o, serve_engine **out, ims_error *err)
{
    *out = NULL;
    serve_engine *e = calloc(1, sizeof *e);
    if (!e)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    e->o = *o;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->wake, NULL);
    pthread_cond_init(&e->done, NULL);
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        serve_engine_stop(e);
        return ims_error_set(err, IMS_ERR_NOMEM, "cannot start the engine thread");
    }
    e->started = 1;
    *out = e;
    return IMS_OK;
}

int serve_engine_run(serve_engine *e, serve_job *job)
{
    pthread_mutex_lock(&e->mu);
    if (e->queued >= e->o.queue_max || e->stopping) {
        pthread_mutex_unlock(&e->mu);
        return -1;
    }
    job->done = 0;
    job->next = NULL;
    job->queued_s = ims_clock_seconds();
    if (e->tail)
        e->tail->next = job;
    else
        e->head = job;
    e->tail = job;
    e->queued++;
    pthread_cond_signal(&e->wake);
    while (!job->done)
        pthread_cond_wait(&e->done, &e->mu);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int serve_engine_queued(serve_engine *e)
{
    pthread_mutex_lock(&e->mu);
    int n = e->queued;
    pthread_mutex_unlock(&e->mu);
    return n;
}

void serve_engine_stop(serve_engine *e)
{
    if (!e)
        return;
    if (e->started) {
        pthread_mutex_lock(&e->mu);
        e->stopping = 1;
        pthread_cond_signal(&e->wake);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->thread, NULL);
    }
    pthread_cond_destroy(&e->done);
    pthread_cond_destroy(&e->wake);
    pthread_mutex_destroy(&e->mu);
    free(e);
}
