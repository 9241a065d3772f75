/* search_mpi.c: `mpirun -n R imgsearch search SET --mpi ...`: exact search of
 * an index set spread over the ranks of an MPI job (built only with MPI; the
 * library itself never links MPI).
 *
 * Rank r opens shards i with i % R == r (ims_index_set_open_part) on its own
 * backend. Rank 0 embeds the queries (ims_searcher_embed) and broadcasts the
 * vectors; every rank searches its shards (ims_searcher_search_vectors); rank
 * 0 gathers the hits and merges them (ims_search_results_merge): the answer
 * of one searcher over the whole set. After every step the ranks agree on
 * its outcome (an all-gather of each rank's status and message), so a rank
 * that fails (a missing shard, memory) fails the whole run with its rank and
 * reason: never a partial answer presented as complete.
 *
 * Wire formats (all ranks run the same binary: native byte order and sizes):
 * vectors: count (i64), per query {table, dim, status} (3 x i32), then the
 * floats of the vectors with dim > 0, in query order. Hits: per query
 * {status (i32), count (i32)}, then per hit {row, chunk, offset (3 x i64),
 * score (f32), path length (u32), path bytes}.
 */
#include "search_mpi.h"

#include <mpi.h>
#include <stdlib.h>
#include <string.h>

typedef struct rank_status {
    int32_t status;
    char msg[IMS_ERROR_MSG_MAX];
} rank_status;

/* Every rank learns every rank's outcome of a step; all return the first
 * failing rank's status, err saying "rank R: reason". */
static ims_status agree(int ranks, ims_status st, ims_error *err)
{
    rank_status mine = {(int32_t)st, ""};
    if (st)
        snprintf(mine.msg, sizeof mine.msg, "%s", err && err->msg[0] ? err->msg : ims_status_name(st));
    rank_status *all = malloc((size_t)ranks * sizeof *all);
    if (!all) /* no way to agree: stop the job rather than answer in part */
        MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Allgather(&mine, (int)sizeof mine, MPI_BYTE, all, (int)sizeof mine, MPI_BYTE, MPI_COMM_WORLD);
    ims_status out = IMS_OK;
    for (int r = 0; r < ranks && !out; r++)
        if (all[r].status) {
            out = (ims_status)all[r].status;
            ims_error_set(err, out, "rank %d: %.480s", r, all[r].msg);
        }
    free(all);
    return out;
}

/* ---- A growable byte buffer and a bounded reader ------------------------------------------- */

typedef struct bytes {
    char *p;
    size_t len, cap;
    int failed;
} bytes;

static void put(bytes *b, const void *v, size_t n)
{
    if (b->failed || n == 0)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, v, n);
    b->len += n;
}

typedef struct reader {
    const char *p;
    size_t left;
} reader;

static int get(reader *r, void *v, size_t n)
{
    if (n > r->left)
        return -1;
    if (n == 0)
        return 0;
    memcpy(v, r->p, n);
    r->p += n;
    r->left -= n;
    return 0;
}

/* ---- The steps ----------------------------------------------------------------------------------- */

/* The vectors as every rank receives them. */
typedef struct shared_vectors {
    int64_t count;
    ims_search_vector *items; /* (count), vec pointing into floats */
    float *floats;
} shared_vectors;

static void shared_vectors_free(shared_vectors *s)
{
    free(s->items);
    free(s->floats);
}

static void pack_vectors(const ims_search_vectors *v, bytes *b)
{
    put(b, &v->count, sizeof v->count);
    for (int64_t i = 0; i < v->count; i++) {
        const ims_search_vector *x = &v->items[i];
        int32_t head[3] = {(int32_t)x->table, x->vec && !x->status ? x->dim : 0, (int32_t)x->status};
        put(b, head, sizeof head);
    }
    for (int64_t i = 0; i < v->count; i++)
        if (v->items[i].vec && !v->items[i].status)
            put(b, v->items[i].vec, (size_t)v->items[i].dim * sizeof(float));
}

static ims_status unpack_vectors(const char *p, size_t len, shared_vectors *out, ims_error *err)
{
    reader r = {p, len};
    int64_t count = 0;
    if (get(&r, &count, sizeof count) || count < 0 || (uint64_t)count > len / 12)
        return ims_error_set(err, IMS_ERR_FORMAT, "malformed query vectors from rank 0");
    out->count = count;
    out->items = calloc((size_t)count + 1, sizeof *out->items);
    size_t floats = 0;
    for (int64_t i = 0; out->items && i < count; i++) {
        int32_t head[3];
        if (get(&r, head, sizeof head) || head[1] < 0 || head[1] > (1 << 20))
            return ims_error_set(err, IMS_ERR_FORMAT, "malformed query vectors from rank 0");
        out->items[i] = (ims_search_vector){(ims_index_table)head[0], head[1], NULL, (ims_status)head[2], NULL};
        if (head[2])
            out->items[i].error = "the query could not be embedded (rank 0 says why)";
        floats += (size_t)head[1];
    }
    if (out->items && floats > r.left / sizeof(float))
        return ims_error_set(err, IMS_ERR_FORMAT, "malformed query vectors from rank 0");
    if (!out->items || !(out->floats = malloc((floats ? floats : 1) * sizeof(float))))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for the query vectors");
    if (get(&r, out->floats, floats * sizeof(float)) || r.left)
        return ims_error_set(err, IMS_ERR_FORMAT, "malformed query vectors from rank 0");
    for (int64_t i = 0, at = 0; i < count; at += out->items[i++].dim)
        out->items[i].vec = out->items[i].dim ? out->floats + at : NULL;
    return IMS_OK;
}

/* Broadcasts bytes b from rank 0 (the others receive into b). Collective;
 * every rank returns the same status. */
static ims_status broadcast(int rank, int ranks, bytes *b, ims_error *err)
{
    uint64_t len = b->failed ? UINT64_MAX : b->len;
    MPI_Bcast(&len, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (len == UINT64_MAX || len > INT32_MAX)
        return ims_error_set(err, IMS_ERR_NOMEM, "rank 0: the query vectors do not fit in one broadcast");
    ims_status st = IMS_OK;
    if (rank != 0) {
        b->len = b->cap = (size_t)len;
        if (!(b->p = malloc(len ? len : 1)))
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for the query vectors");
    }
    st = agree(ranks, st, err);
    if (!st)
        MPI_Bcast(b->p, (int)len, MPI_BYTE, 0, MPI_COMM_WORLD);
    return st;
}

static void pack_results(const ims_search_results *res, bytes *b)
{
    for (int64_t i = 0; res && i < res->count; i++) {
        const ims_search_result *r = &res->results[i];
        int32_t head[2] = {(int32_t)r->status, r->count};
        put(b, head, sizeof head);
        for (int j = 0; j < r->count; j++) {
            const ims_search_hit *h = &r->hits[j];
            int64_t where[3] = {h->row, h->chunk, h->offset};
            uint32_t len = (uint32_t)strlen(h->path);
            put(b, where, sizeof where);
            put(b, &h->score, sizeof h->score);
            put(b, &len, sizeof len);
            put(b, h->path, len);
        }
    }
}

/* One rank's hits for count queries, as results the merge reads. The paths
 * are copied out of the received bytes (NUL-terminated). */
typedef struct rank_results {
    ims_search_results pub;
    ims_search_result *results;
    ims_search_hit *hits;
    char *paths;
} rank_results;

static void rank_results_free(rank_results *r)
{
    free(r->results);
    free(r->hits);
    free(r->paths);
}

static ims_status unpack_results(int from, const char *p, size_t len, int64_t count, int k, rank_results *out,
                                 ims_error *err)
{
    /* at most k hits per query, each at least 32 bytes: bounds before allocating */
    size_t hits_max = len / 32 + 1, count_z = (size_t)count;
    out->results = calloc(count_z + 1, sizeof *out->results);
    out->hits = malloc(hits_max * sizeof *out->hits);
    out->paths = malloc(len + hits_max + 1);
    if (!out->results || !out->hits || !out->paths)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for the hits of rank %d", from);
    reader r = {p, len};
    size_t h = 0, used = 0;
    for (size_t i = 0; i < count_z; i++) {
        int32_t head[2];
        if (get(&r, head, sizeof head) || head[1] < 0 || head[1] > k)
            return ims_error_set(err, IMS_ERR_FORMAT, "malformed hits from rank %d", from);
        out->results[i] = (ims_search_result){.status = (ims_status)head[0], .count = head[1], .hits = out->hits + h};
        for (int j = 0; j < head[1]; j++, h++) {
            int64_t where[3];
            float score;
            uint32_t plen;
            if (h >= hits_max || get(&r, where, sizeof where) || get(&r, &score, sizeof score) ||
                get(&r, &plen, sizeof plen) || plen > r.left)
                return ims_error_set(err, IMS_ERR_FORMAT, "malformed hits from rank %d", from);
            char *path = out->paths + used;
            get(&r, path, plen);
            path[plen] = '\0';
            used += plen + 1;
            out->hits[h] = (ims_search_hit){where[0], score, path, where[1], where[2]};
        }
    }
    if (r.left)
        return ims_error_set(err, IMS_ERR_FORMAT, "malformed hits from rank %d", from);
    out->pub.count = count;
    out->pub.results = out->results;
    return IMS_OK;
}

/* Gathers every rank's packed hits on rank 0 and merges them with its own. */
static ims_status gather_merge(int rank, int ranks, const ims_search_results *mine, int64_t count, int k,
                               ims_search_results **out, ims_error *err)
{
    bytes b = {0};
    pack_results(mine, &b);
    int *sizes = calloc((size_t)ranks, sizeof *sizes), *offsets = calloc((size_t)ranks, sizeof *offsets);
    char *all = NULL;
    ims_status st = IMS_OK;
    if (b.failed || !sizes || !offsets)
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for this rank's hits");
    else if (b.len > INT32_MAX)
        st = ims_error_set(err, IMS_ERR_NOMEM, "this rank's hits (%zu bytes) do not fit in one message", b.len);
    st = agree(ranks, st, err);
    int agreed = !st; /* every rank takes the same collective steps from here */
    int my_len = (int)b.len;
    if (agreed)
        MPI_Gather(&my_len, 1, MPI_INT, sizes, 1, MPI_INT, 0, MPI_COMM_WORLD);
    uint64_t total = 0;
    for (int r = 0; !st && rank == 0 && r < ranks; r++) {
        offsets[r] = (int)total;
        total += (uint64_t)sizes[r];
        if (total > INT32_MAX)
            st = ims_error_set(err, IMS_ERR_NOMEM, "the hits of all ranks do not fit in one gather: use fewer "
                                                   "queries per run");
    }
    if (!st && rank == 0 && !(all = malloc(total ? total : 1)))
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for the hits of all ranks");
    if (agreed)
        st = agree(ranks, st, err);
    int merging = !st;
    if (!st)
        MPI_Gatherv(b.p, my_len, MPI_BYTE, all, sizes, offsets, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (!st && rank == 0) {
        rank_results *parts = calloc((size_t)ranks, sizeof *parts);
        const ims_search_results **list = calloc((size_t)ranks, sizeof *list);
        if (!parts || !list)
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
        else
            list[0] = mine; /* its own: the failed queries' reasons */
        for (int r = 1; !st && r < ranks; r++) {
            st = unpack_results(r, all + offsets[r], (size_t)sizes[r], count, k, &parts[r], err);
            list[r] = &parts[r].pub;
        }
        if (!st)
            st = ims_search_results_merge(list, ranks, k, out, err);
        for (int r = 0; parts && r < ranks; r++)
            rank_results_free(&parts[r]);
        free(parts);
        free(list);
    }
    if (merging) /* rank 0's merge failing fails every rank */
        st = agree(ranks, st, err);
    free(b.p);
    free(sizes);
    free(offsets);
    free(all);
    return st;
}

/* ---- The run ------------------------------------------------------------------------------------ */

typedef struct mpi_run {
    int rank, ranks;
    ims_backend *be;
    ims_index_set *set;
    ims_searcher *searcher;
} mpi_run;

/* Opens this rank's backend, shards and searcher, and checks its shards agree with rank 0's. */
static ims_status open_part(const cli_mpi_search *m, mpi_run *r, ims_error *err)
{
    ims_status st = cli_device_open(m->device, &r->be, err);
    if (!st)
        st = ims_index_set_open_part(m->set_path, r->rank, r->ranks, &r->set, err);
    ims_search_options so = *m->options;
    so.backend = r->be;
    if (!st)
        st = ims_searcher_open_set(r->set, &so, &r->searcher, err);
    st = agree(r->ranks, st, err);
    if (st)
        return st;
    /* the same set everywhere (each rank read it from its own file system), and shards that agree */
    ims_index_config ref = {0};
    int64_t shards = ims_index_set_shard_count(r->set);
    if (r->rank == 0)
        ref = *ims_index_set_config(r->set);
    MPI_Bcast(&shards, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    MPI_Bcast(&ref, (int)sizeof ref, MPI_BYTE, 0, MPI_COMM_WORLD);
    if (shards != ims_index_set_shard_count(r->set))
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "'%s' names %lld shards here, %lld on rank 0", m->set_path,
                           (long long)ims_index_set_shard_count(r->set), (long long)shards);
    const ims_index_config *mine = ims_index_set_config(r->set);
    ims_error why = {0};
    if (!st && mine && (st = ims_index_config_compare(&ref, mine, &why)) != IMS_OK)
        st = ims_error_set(err, st, "its shards differ from rank 0's: %s", why.msg);
    return agree(r->ranks, st, err);
}

/* Rank 0 embeds; every rank gets the vectors, searches its shards; rank 0 merges. */
static ims_status run_steps(const cli_mpi_search *m, mpi_run *r, ims_search_results **out, ims_error *err)
{
    ims_search_vectors *v = NULL;
    ims_status st = r->rank == 0 ? ims_searcher_embed(r->searcher, m->queries, (int64_t)m->count, &v, err) : IMS_OK;
    st = agree(r->ranks, st, err);
    if (st)
        return st;
    bytes b = {0};
    if (r->rank == 0)
        pack_vectors(v, &b);
    shared_vectors sv = {0};
    st = broadcast(r->rank, r->ranks, &b, err);
    if (!st) {
        if (r->rank != 0)
            st = unpack_vectors(b.p, b.len, &sv, err);
        st = agree(r->ranks, st, err);
    }
    const ims_search_vector *items = r->rank == 0 ? v->items : sv.items;
    int64_t count = r->rank == 0 ? v->count : sv.count;
    ims_search_results *mine = NULL;
    if (!st) {
        st = ims_searcher_search_vectors(r->searcher, items, count, m->k, &mine, err);
        st = agree(r->ranks, st, err);
    }
    if (!st)
        st = gather_merge(r->rank, r->ranks, mine, count, m->k, out, err);
    ims_search_results_free(mine);
    shared_vectors_free(&sv);
    free(b.p);
    ims_search_vectors_free(v);
    return st;
}

ims_status cli_search_mpi(const cli_mpi_search *m, cli_mpi_outcome *o, ims_search_results **out, ims_error *err)
{
    *out = NULL;
    int started = 0;
    MPI_Initialized(&started);
    if (!started && MPI_Init(NULL, NULL) != MPI_SUCCESS) {
        o->root = 1;
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "--mpi: MPI_Init failed (run under mpirun or srun)");
    }
    mpi_run r = {0};
    MPI_Comm_rank(MPI_COMM_WORLD, &r.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &r.ranks);
    o->root = r.rank == 0;
    o->ranks = r.ranks;
    ims_status st = open_part(m, &r, err);
    if (!st)
        st = run_steps(m, &r, out, err);
    if (r.set)
        o->is_set = ims_index_set_is_set(r.set);
    if (r.searcher)
        o->synthetic = ims_searcher_synthetic(r.searcher);
    ims_searcher_close(r.searcher);
    ims_index_set_close(r.set);
    ims_backend_free(r.be);
    MPI_Finalize();
    return st;
}
