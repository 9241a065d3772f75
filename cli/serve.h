/* serve.h: what the parts of `imgsearch serve` share (cmd_serve.c: the
 * command and HTTP; serve_engine.c: the one thread that owns the searcher and
 * its bounded queue; serve_thumbs.c: the thumbnail cache; serve_page.c: the
 * page).
 *
 * Threads: libmicrohttpd runs a thread per connection; a request that needs
 * the engine queues a job and waits for it; the engine thread answers the
 * jobs one at a time (the searcher is not thread-safe, and the device is one).
 */
#ifndef IMS_CLI_SERVE_H
#define IMS_CLI_SERVE_H

#include "imgsearch.h"

#include <pthread.h>
#include <stddef.h>

/* ---- the engine (serve_engine.c) ------------------------------------------------ */

typedef struct serve_engine serve_engine;

typedef enum serve_query_kind {
    SERVE_QUERY_TEXT = 0,
    SERVE_QUERY_UPLOAD, /* an uploaded image, in a private temporary file */
    SERVE_QUERY_ROW,    /* "more like this": an indexed row's image */
} serve_query_kind;

typedef struct serve_job {
    /* in */
    serve_query_kind kind;
    const char *text;  /* TEXT: the text; UPLOAD: the temporary file */
    size_t upload_bytes;
    int64_t row;       /* ROW */
    ims_index_table table;
    int k;
    /* out */
    int http_status;   /* 200, or the error's */
    char *body;        /* JSON (malloc'd), the result or {"error": ...} */
    size_t body_len;
    double queued_s, embed_s, search_s, total_s;
    /* private */
    int done;
    struct serve_job *next;
} serve_job;

typedef struct serve_engine_options {
    const ims_index_set *index; /* an index or a set of shards (ims_index_set_open) */
    ims_searcher *searcher;
    int queue_max; /* jobs waiting at most; more get 503 */
} serve_engine_options;

ims_status serve_engine_start(const serve_engine_options *o, serve_engine **out, ims_error *err);
/* Queues job and waits for its answer: 0; -1 when the queue is full (nothing
 * done: answer 503). */
int serve_engine_run(serve_engine *e, serve_job *job);
int serve_engine_queued(serve_engine *e); /* jobs waiting now */
/* Answers the jobs already queued, then stops the thread. NULL is fine. */
void serve_engine_stop(serve_engine *e);

/* A JSON error body {"error": msg} (malloc'd) into job, with status. */
void serve_job_error(serve_job *job, int http_status, const char *msg);

/* ---- thumbnails (serve_thumbs.c) ---------------------------------------------------- */

typedef struct serve_thumbs serve_thumbs;

ims_status serve_thumbs_create(size_t max_bytes, int side, serve_thumbs **out, ims_error *err);
/* The JPEG thumbnail of the file of row (made once, then from the cache while
 * it fits): *jpeg is a copy for the caller (free). */
ims_status serve_thumbs_get(serve_thumbs *t, int64_t row, const char *path, uint8_t **jpeg, size_t *size,
                            ims_error *err);
void serve_thumbs_stats(serve_thumbs *t, size_t *entries, size_t *bytes, uint64_t *hits, uint64_t *misses);
void serve_thumbs_free(serve_thumbs *t);

/* ---- the server (serve_http.c) ------------------------------------------------------ */

#define SERVE_LATENCY_RING 4096 /* the searches /api/info's percentiles are over */

typedef struct serve_limits {
    int max_k;            /* k at most */
    size_t max_text;      /* bytes of a text query */
    size_t max_upload;    /* bytes of an uploaded image */
    int queue_max;        /* searches waiting at most (then 503) */
    int connections;      /* open connections at most */
    int timeout_s;        /* an idle or stalled connection is closed after this */
} serve_limits;

typedef struct serve_stats {
    uint64_t requests, ok, client_errors, server_errors, busy;
    uint64_t searches;
    double embed_sum, search_sum, total_sum, total_max; /* seconds, over the searches */
    float ring[SERVE_LATENCY_RING]; /* the latest searches' totals, ms */
} serve_stats;

typedef struct serve_server {
    const char *index_name;
    ims_index_set *index; /* an index or a set of shards */
    serve_engine *engine;
    serve_thumbs *thumbs;
    serve_limits limits;
    char *page;
    size_t page_len;
    char upload_dir[4096]; /* a private temporary folder for uploads */
    const char *device;    /* "cpu", "cuda:0" */
    int synthetic, has_semantic, quiet;
    pthread_mutex_t mu;    /* stats, upload_seq */
    serve_stats stats;
    uint64_t upload_seq;
} serve_server;

struct MHD_Daemon;
/* Starts listening on addr (a struct sockaddr of addr_len bytes); *port gets
 * the port bound (port 0 asks for a free one). */
ims_status serve_http_start(serve_server *s, const void *addr, int ipv6, struct MHD_Daemon **out, int *port,
                            ims_error *err);

/* ---- the page (serve_page.c) -------------------------------------------------------- */

/* The single page GET / answers (malloc'd, NUL-terminated), or NULL. */
char *serve_page_make(const char *index_name, int synthetic, int has_semantic, int max_k, size_t *len);

#endif /* IMS_CLI_SERVE_H */
