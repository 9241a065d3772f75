/* index/store_write.c: the index's writer (docs/FORMAT.md, "The index"):
 * the writer lock, leftovers of a killed writer, appending rows and failures,
 * tombstones, and the commit.
 *
 * A commit writes one chunk: its tables, rows.txt, failures.txt and, when it
 * retires records, tombstones.txt, each to a temporary name, synced and
 * renamed; then the manifest that lists the chunk is replaced the same way.
 * The manifest is the one commit point: a reader (or the next writer) sees the
 * chunk and its tombstones together, or neither. A tombstone is committed in
 * the same chunk as the record that replaces it, or before it (never after),
 * so a crash can lose a file's records but never leave two live ones.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* flock */
#include "index/store.h"

#include "core/atomic_file.h"
#include "core/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INDEX_MAX_DIM 65536
#define INDEX_MAX_CHUNK_ROWS (1 << 20)
#define INDEX_MAX_CONSE_TOP 100000

/* ---- The writer lock ------------------------------------------------------------------------ */

static char *join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s/%s", dir, name);
    return p;
}

/* The lock file's note: "PID\tHOST\tSINCE\n" split into fields (NULL where absent). */
static void read_holder(int f, char *buf, size_t size, char *fields[3])
{
    ssize_t n = pread(f, buf, size - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    fields[0] = buf;
    fields[1] = fields[2] = NULL;
    for (int i = 1; i < 3 && fields[i - 1]; i++)
        if ((fields[i] = strchr(fields[i - 1], '\t')))
            *fields[i]++ = '\0';
    char *nl = fields[2] ? strchr(fields[2], '\n') : NULL;
    if (nl)
        *nl = '\0';
    if (!fields[2] || !fields[0][0] || strspn(fields[0], "0123456789") != strlen(fields[0]))
        fields[0] = fields[1] = fields[2] = NULL;
}

static void this_host(char *host, size_t size)
{
    snprintf(host, size, "?");
    gethostname(host, size);
    host[size - 1] = '\0';
    for (char *c = host; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

/* The noted holder is a process of this host that has exited, is exiting or
 * is a zombie: a writer killed a moment ago, whose lock the kernel drops once
 * all its threads are gone. Only decides whether to wait for the lock, never
 * to take it without flock. */
static int holder_exiting(char *const fields[3])
{
    char host[128], stat_path[64], stat[512];
    this_host(host, sizeof host);
    if (!fields[0] || strlen(fields[0]) > 18 || strcmp(fields[1], host) != 0)
        return 0;
    snprintf(stat_path, sizeof stat_path, "/proc/%s/stat", fields[0]);
    int f = open(stat_path, O_RDONLY | O_CLOEXEC);
    if (f < 0)
        return errno == ENOENT;
    ssize_t n = read(f, stat, sizeof stat - 1);
    close(f);
    stat[n > 0 ? n : 0] = '\0';
    /* "PID (COMM) STATE PPID PGRP SESSION TTY TPGID FLAGS ...": COMM may hold anything. A process
     * killed a moment ago is PF_EXITING while the kernel tears its memory down (seconds for a large
     * or ASan-built one), then closes its files (the lock goes), then is a zombie. */
    const char *paren = strrchr(stat, ')');
    char state = 0;
    unsigned flags = 0;
    if (!paren || sscanf(paren + 1, " %c %*d %*d %*d %*d %*d %u", &state, &flags) != 2)
        return 0;
    return state == 'Z' || state == 'X' || (flags & 0x4u /* PF_EXITING */);
}

/* flock, waiting up to 10 s while the noted holder is a killed writer still
 * exiting, and up to 1 s for the note of a holder that has just taken the lock
 * (so that the refusal can name it). */
static int take_lock(int f, char holder[256], char *fields[3])
{
    for (int tries = 0;; tries++) {
        if (flock(f, LOCK_EX | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK)
            return errno;
        read_holder(f, holder, 256, fields);
        int wait = fields[0] ? holder_exiting(fields) && tries < 200 : tries < 20;
        if (!wait)
            return EWOULDBLOCK;
        nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
    }
}

ims_status imsi_index_lock(const char *dir, int *fd, ims_error *err)
{
    *fd = -1;
    char *path = join(dir, "lock");
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
    struct stat sb;
    ims_status st = IMS_OK;
    char holder[256];
    char *fields[3] = {NULL, NULL, NULL};
    int e;
    if (f < 0)
        st = ims_error_set(err, IMS_ERR_IO, "cannot open the lock file '%s': %s", path, strerror(errno));
    else if (fstat(f, &sb) != 0 || !S_ISREG(sb.st_mode))
        st = ims_error_set(err, IMS_ERR_IO, "the lock file '%s' is not a regular file", path);
    else if ((e = take_lock(f, holder, fields)) != 0 && e != EWOULDBLOCK)
        st = ims_error_set(err, IMS_ERR_IO, "cannot lock '%s': %s", path, strerror(e));
    else if (e && fields[0])
        st = ims_error_set(err, IMS_ERR_BUSY,
                           "index '%.200s' is being written by process %.20s on host '%.64s' (since %.24s): one "
                           "writer at a time (search it meanwhile, or wait)",
                           dir, fields[0], fields[1], fields[2]);
    else if (e)
        st = ims_error_set(err, IMS_ERR_BUSY,
                           "index '%.200s' is being written by another process: one writer at a time", dir);
    if (!st) {
        /* Who holds it, for the message of a refused writer (not needed for safety). */
        char host[128], since[32] = "?", line[256];
        this_host(host, sizeof host);
        time_t now = time(NULL);
        struct tm tm;
        if (gmtime_r(&now, &tm))
            strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
        int n = snprintf(line, sizeof line, "%ld\t%s\t%s\n", (long)getpid(), host, since);
        if (ftruncate(f, 0) != 0 || pwrite(f, line, (size_t)n, 0) != n) {
            /* informational only: a writer without the note still holds the lock */
        }
        *fd = f;
    } else if (f >= 0) {
        close(f);
    }
    free(path);
    return st;
}

void imsi_index_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* drops the flock; the file stays (removing it would race with the next writer) */
}

/* "chunk-<id>.<suffix>" -> id and 1, for the suffixes a chunk has. */
static int chunk_file_name(const char *name, int64_t *id)
{
    if (strncmp(name, "chunk-", 6) != 0)
        return 0;
    const char *p = name + 6;
    size_t digits = strspn(p, "0123456789");
    if (digits < 6 || digits > 12 || p[digits] != '.')
        return 0;
    for (int k = 0; k < IMSI_CHUNK_FILES; k++)
        if (strcmp(p + digits + 1, imsi_chunk_suffix(k)) == 0) {
            *id = strtoll(p, NULL, 10);
            return 1;
        }
    return 0;
}

/* "NAME.tmp.<pid>" for a NAME the index writes. */
static int temporary_name(const char *name)
{
    const char *tmp = strstr(name, ".tmp.");
    if (!tmp || tmp[5] == '\0' || strspn(tmp + 5, "0123456789") != strlen(tmp + 5))
        return 0;
    size_t len = (size_t)(tmp - name);
    char base[256];
    int64_t id;
    if (len >= sizeof base)
        return 0;
    memcpy(base, name, len);
    base[len] = '\0';
    return !strcmp(base, "manifest.json") || !strcmp(base, "classes.npy") || chunk_file_name(base, &id);
}

static int listed(const int64_t *ids, size_t count, int64_t id)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] == id)
            return 1;
        if (ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

size_t imsi_index_remove_leftovers(const char *dir, const int64_t *ids, size_t count)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t id;
        int leftover = temporary_name(e->d_name) || (chunk_file_name(e->d_name, &id) && !listed(ids, count, id));
        if (leftover && unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed++;
    }
    closedir(d);
    if (removed)
        imsi_sync_dir(dir);
    return removed;
}

/* ---- Opening for writing ---------------------------------------------------------------------- */

static ims_status check_config(const ims_index_config *c, ims_error *err)
{
    if (c->dtype != IMS_DTYPE_F16 && c->dtype != IMS_DTYPE_F32)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index dtype %s: only f16 and f32 are stored",
                             ims_dtype_name(c->dtype));
    if (c->chunk_rows < 1 || c->chunk_rows > INDEX_MAX_CHUNK_ROWS)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "chunk_rows %d: expected 1..%d", c->chunk_rows,
                             INDEX_MAX_CHUNK_ROWS);
    if (c->visual_dim < 1 || c->visual_dim > INDEX_MAX_DIM)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "visual_dim %d: expected 1..%d", c->visual_dim, INDEX_MAX_DIM);
    if (c->semantic_dim < 0 || c->semantic_dim > INDEX_MAX_DIM)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "semantic_dim %d: expected 0..%d", c->semantic_dim,
                             INDEX_MAX_DIM);
    if (c->conse_top < 1 || c->conse_top > INDEX_MAX_CONSE_TOP)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "conse_top %d: expected 1..%d", c->conse_top, INDEX_MAX_CONSE_TOP);
    if (c->precision < -1 || c->precision > IMS_PRECISION_FP16)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "precision %d: expected an ims_precision or -1", c->precision);
    return IMS_OK;
}

static int model_equal(const ims_weights_identity *a, const ims_weights_identity *b)
{
    return a->bytes == b->bytes && a->crc32 == b->crc32;
}

ims_status imsi_index_compare_config(const ims_index_config *have, const ims_index_config *want, ims_error *err)
{
    if (!model_equal(&have->image_model, &want->image_model))
        return ims_error_set(err, IMS_ERR_ARGUMENT,
                             "it was built with image model '%s' (crc32 %08x), not '%s' (crc32 %08x)",
                             have->image_model.name, (unsigned)have->image_model.crc32, want->image_model.name,
                             (unsigned)want->image_model.crc32);
    if (have->semantic_dim != want->semantic_dim && (!have->semantic_dim || !want->semantic_dim))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "it was built %s a text model; this run has %s",
                             have->semantic_dim ? "with" : "without", want->semantic_dim ? "one" : "none");
    if (have->semantic_dim && !model_equal(&have->text_model, &want->text_model))
        return ims_error_set(err, IMS_ERR_ARGUMENT,
                             "it was built with text model '%s' (crc32 %08x), not '%s' (crc32 %08x)",
                             have->text_model.name, (unsigned)have->text_model.crc32, want->text_model.name,
                             (unsigned)want->text_model.crc32);
    if (have->mode != want->mode)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "it was built with --mode %s, not %s", ims_preprocess_mode_name(have->mode),
                             ims_preprocess_mode_name(want->mode));
    if (have->dtype != want->dtype)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "it stores --dtype %s, not %s", ims_dtype_name(have->dtype),
                             ims_dtype_name(want->dtype));
    if (have->visual_dim != want->visual_dim || have->semantic_dim != want->semantic_dim)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "its tables have %d and %d columns, not %d and %d",
                             have->visual_dim, have->semantic_dim, want->visual_dim, want->semantic_dim);
    if (have->chunk_rows != want->chunk_rows)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "its chunks hold %d rows (--chunk-rows %d), not %d",
                             have->chunk_rows, have->chunk_rows, want->chunk_rows);
    if (have->semantic_dim && have->conse_top != want->conse_top)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "its semantic rows mix %d classes (--conse-top %d), not %d",
                             have->conse_top, have->conse_top, want->conse_top);
    if (have->precision >= 0 && want->precision >= 0 && have->precision != want->precision)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "its rows were computed with --precision %s, not %s",
                             ims_precision_name((ims_precision)have->precision),
                             ims_precision_name((ims_precision)want->precision));
    return IMS_OK;
}

/* A new index goes into a new or empty folder: never into /, a home folder or
 * a folder of photos, where its files would mix with others. Only what a
 * writer killed before its first commit leaves may be there (the lock file,
 * temporary files). */
static ims_status check_new_folder(const char *dir, ims_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ims_error_set(err, IMS_ERR_IO, "cannot read folder '%s': %s", dir, strerror(errno));
    struct dirent *e;
    const char *other = NULL;
    while (!other && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "lock") &&
            !temporary_name(e->d_name))
            other = e->d_name;
    ims_status st = other ? ims_error_set(err, IMS_ERR_ARGUMENT,
                                          "'%s' is not an index and not empty (it holds '%.200s'): give a new or "
                                          "empty folder", dir, other)
                          : IMS_OK;
    closedir(d);
    return st;
}

static ims_status alloc_pending(ims_index *idx, ims_error *err)
{
    size_t vd = (size_t)idx->cfg.visual_dim, sd = (size_t)idx->cfg.semantic_dim, n = (size_t)idx->cfg.chunk_rows;
    idx->pending_visual = malloc(n * vd * sizeof(float));
    idx->pending_semantic = sd ? malloc(n * sd * sizeof(float)) : NULL;
    if (!idx->pending_visual || (sd && !idx->pending_semantic))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for a chunk of %zu rows", n);
    return IMS_OK;
}

static ims_status doom(ims_index *idx, int64_t ref, ims_error *err);

/* With the lock held: reads the index, removes leftovers, readies the writer. */
static ims_status writer_load(ims_index *idx, int allow_v1, ims_error *err)
{
    ims_status st = imsi_index_load(idx, err);
    if (!st && idx->version < IMSI_INDEX_VERSION && !allow_v1)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED,
                           "index format version %d: it can be searched as it is, but adding to it needs version %d: "
                           "upgrade it first (imgsearch index --upgrade INDEX, run from the folder it was indexed from)",
                           idx->version, IMSI_INDEX_VERSION);
    if (st)
        return st;
    int64_t *ids = malloc((idx->chunk_count ? idx->chunk_count : 1) * sizeof *ids);
    if (!ids)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t c = 0; c < idx->chunk_count; c++)
        ids[c] = idx->chunks[c].id;
    imsi_index_remove_leftovers(idx->dir, ids, idx->chunk_count);
    free(ids);
    idx->writable = 1;
    st = alloc_pending(idx, err);
    /* Records hidden by a later one of their path get the tombstones they lack. */
    for (size_t i = 0; !st && i < idx->shadowed_count; i++)
        st = doom(idx, idx->shadowed[i], err);
    idx->shadowed_count = 0;
    return st;
}

ims_status imsi_index_open_writer(const char *dir, int allow_v1, ims_index **out, ims_error *err)
{
    *out = NULL;
    ims_index *idx = imsi_index_new(dir, err);
    if (!idx)
        return IMS_ERR_NOMEM;
    ims_status st = imsi_index_lock(dir, &idx->lock_fd, err);
    if (!st)
        st = writer_load(idx, allow_v1, err);
    if (st) {
        ims_index_close(idx);
        return st == IMS_ERR_BUSY ? st : imsi_error_prefix(err, st, "index '%s'", dir);
    }
    *out = idx;
    return IMS_OK;
}

int imsi_index_has_manifest(const char *dir)
{
    char *path = join(dir, "manifest.json");
    struct stat sb;
    int exists = path && lstat(path, &sb) == 0;
    free(path);
    return exists;
}

ims_status ims_index_open_for_writing(const char *dir, const ims_index_config *cfg, ims_index **out,
                                      ims_error *err)
{
    *out = NULL;
    ims_status st = check_config(cfg, err);
    if (st)
        return st;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return ims_error_set(err, IMS_ERR_IO, "cannot create index folder '%s': %s", dir, strerror(errno));
    /* (a writer that won a race to create the index may have just committed it) */
    if (!imsi_index_has_manifest(dir) && (st = check_new_folder(dir, err)) && !imsi_index_has_manifest(dir))
        return st;
    ims_index *idx = imsi_index_new(dir, err);
    if (!idx)
        return IMS_ERR_NOMEM;
    st = imsi_index_lock(dir, &idx->lock_fd, err);
    if (st) {
        ims_index_close(idx);
        return st;
    }
    if (imsi_index_has_manifest(dir)) { /* it existed, or a writer made it before we took the lock */
        st = writer_load(idx, 0, err);
        if (!st)
            st = imsi_index_compare_config(&idx->cfg, cfg, err);
    } else {
        idx->cfg = *cfg;
        imsi_index_remove_leftovers(dir, NULL, 0);
        idx->writable = 1;
        st = imsi_index_reindex(idx, err);
        if (!st)
            st = imsi_index_manifest_write(idx, 0, err); /* an empty index is a valid index */
        if (!st)
            st = alloc_pending(idx, err);
    }
    if (st) {
        ims_index_close(idx);
        return imsi_error_prefix(err, st, "index '%s'", dir);
    }
    *out = idx;
    return IMS_OK;
}

/* ---- Records ---------------------------------------------------------------------------------- */

static ims_status check_writable(const ims_index *idx, ims_error *err)
{
    if (!idx->writable)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s' was opened read-only", idx->dir);
    return IMS_OK;
}

ims_status imsi_index_add_row(ims_index *idx, const ims_file_entry *file, int has_crc, uint32_t crc32,
                              const float *visual, const float *semantic, ims_error *err)
{
    ims_status st = check_writable(idx, err);
    if (st)
        return st;
    if (idx->cfg.semantic_dim && !semantic)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s' needs a semantic embedding for each row", idx->dir);
    if (!file->path || !file->path[0])
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s': a row needs a path", idx->dir);
    size_t at = idx->row_count + idx->pending_rows;
    st = imsi_index_grow((void **)&idx->rows, &idx->row_cap, at + 1, sizeof *idx->rows, err);
    if (st)
        return st;
    imsi_row *r = &idx->rows[at];
    *r = (imsi_row){.file = *file, .crc32 = crc32, .has_crc = (uint8_t)(has_crc != 0)};
    if (!(r->file.path = strdup(file->path)))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    size_t vd = (size_t)idx->cfg.visual_dim, sd = (size_t)idx->cfg.semantic_dim;
    memcpy(idx->pending_visual + idx->pending_rows * vd, visual, vd * sizeof(float));
    if (sd)
        memcpy(idx->pending_semantic + idx->pending_rows * sd, semantic, sd * sizeof(float));
    idx->pending_rows++;
    if (idx->pending_rows == (size_t)idx->cfg.chunk_rows)
        return ims_index_commit(idx, err);
    return IMS_OK;
}

ims_status ims_index_add(ims_index *idx, const ims_file_entry *file, const float *visual, const float *semantic,
                         ims_error *err)
{
    return imsi_index_add_row(idx, file, 0, 0, visual, semantic, err);
}

ims_status imsi_index_add_failure_file(ims_index *idx, const ims_file_entry *file, const char *reason,
                                       ims_error *err)
{
    ims_status st = check_writable(idx, err);
    if (st)
        return st;
    if (!file->path || !file->path[0])
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s': a failure needs a path", idx->dir);
    size_t at = idx->failure_count + idx->pending_failures;
    st = imsi_index_grow((void **)&idx->failures, &idx->failure_cap, at + 1, sizeof *idx->failures, err);
    if (st)
        return st;
    imsi_failure *p = &idx->failures[at];
    *p = (imsi_failure){.size = file->size, .mtime_ns = file->mtime_ns};
    p->problem.path = strdup(file->path);
    p->problem.reason = strdup(reason && *reason ? reason : "unknown error");
    if (!p->problem.path || !p->problem.reason) {
        free(p->problem.path);
        free(p->problem.reason);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    /* a chunk holds at most chunk_rows failures, as it does rows */
    if (++idx->pending_failures == (size_t)idx->cfg.chunk_rows)
        return ims_index_commit(idx, err);
    return IMS_OK;
}

ims_status ims_index_add_failure(ims_index *idx, const char *path, const char *reason, ims_error *err)
{
    ims_file_entry file = {(char *)path, 0, 0};
    return imsi_index_add_failure_file(idx, &file, reason, err);
}

static ims_status doom(ims_index *idx, int64_t ref, ims_error *err)
{
    ims_status st = imsi_index_grow((void **)&idx->pending_dead, &idx->pending_dead_cap, idx->pending_dead_count + 1,
                                    sizeof *idx->pending_dead, err);
    if (st)
        return st;
    if (imsi_ref_is_failure(ref))
        idx->failures[imsi_ref_index(ref)].doomed = 1;
    else
        idx->rows[ref].doomed = 1;
    idx->pending_dead[idx->pending_dead_count++] = ref;
    /* a chunk holds at most chunk_rows tombstones: a huge deletion commits in pieces */
    if (idx->pending_dead_count == (size_t)idx->cfg.chunk_rows)
        return ims_index_commit(idx, err);
    return IMS_OK;
}

ims_status ims_index_remove(ims_index *idx, int64_t row, ims_error *err)
{
    ims_status st = check_writable(idx, err);
    if (st)
        return st;
    if (row < 0 || (uint64_t)row >= idx->row_count || idx->rows[row].dead || idx->rows[row].doomed)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s': row %lld is not a live committed row", idx->dir,
                             (long long)row);
    return doom(idx, row, err);
}

ims_status ims_index_remove_failure(ims_index *idx, int64_t failure, ims_error *err)
{
    ims_status st = check_writable(idx, err);
    if (st)
        return st;
    if (failure < 0 || (uint64_t)failure >= idx->failure_count || idx->failures[failure].dead ||
        idx->failures[failure].doomed)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s': failure %lld is not a live committed failure",
                             idx->dir, (long long)failure);
    return doom(idx, imsi_ref_failure(failure), err);
}

/* ---- Roots and settings ------------------------------------------------------------------------- */

ims_status imsi_index_add_roots(ims_index *idx, const char *const *roots, size_t count, ims_error *err)
{
    for (size_t i = 0; i < count; i++) {
        size_t at = 0;
        while (at < idx->root_count && strcmp(idx->roots[at], roots[i]) < 0)
            at++;
        if (at < idx->root_count && strcmp(idx->roots[at], roots[i]) == 0)
            continue;
        ims_status st = imsi_index_insert_root(idx, at, roots[i], err);
        if (st)
            return st;
        idx->dirty = 1;
    }
    return IMS_OK;
}

void imsi_index_set_settings(ims_index *idx, const imsi_index_settings *s)
{
    if (memcmp(&idx->settings, s, sizeof *s) != 0) {
        idx->settings = *s;
        idx->dirty = 1;
    }
}

/* ---- Writing a chunk -------------------------------------------------------------------------- */

static ims_status write_table(const ims_index *idx, int64_t chunk, int which, const void *rows, size_t n, int raw,
                              ims_error *err)
{
    int dim = which == IMSI_CHUNK_SEMANTIC ? idx->cfg.semantic_dim : idx->cfg.visual_dim;
    char *path = imsi_index_file_path(idx, chunk, imsi_chunk_suffix(which));
    size_t count = n * (size_t)dim;
    int convert = !raw && idx->cfg.dtype == IMS_DTYPE_F16 && count;
    uint16_t *half = convert ? malloc(count * sizeof *half) : NULL;
    if (!path || (convert && !half)) {
        free(path);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; half && i < count; i++)
        half[i] = ims_f32_to_f16(((const float *)rows)[i]);
    int64_t shape[2] = {(int64_t)n, dim};
    ims_status st = ims_npy_write(path, idx->cfg.dtype, 2, shape, half ? (const void *)half : rows, err);
    free(half);
    free(path);
    return st;
}

/* rows.txt, failures.txt or tombstones.txt of a chunk, line by line. */
static ims_status write_lines(const ims_index *idx, const imsi_chunk *ch, int which, const imsi_chunk_data *d,
                              ims_error *err)
{
    char *path = imsi_index_file_path(idx, ch->id, imsi_chunk_suffix(which));
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    imsi_atomic_file af;
    ims_status st = imsi_atomic_file_open(&af, path, err);
    free(path);
    if (st)
        return st;
    FILE *f = af.f;
    if (which == IMSI_CHUNK_ROWS) {
        for (size_t i = d->first_row; i < d->first_row + ch->rows; i++) {
            const imsi_row *r = &idx->rows[i];
            fprintf(f, "%llu\t%lld\t", (unsigned long long)r->file.size, (long long)r->file.mtime_ns);
            if (r->has_crc)
                fprintf(f, "%08x\t", (unsigned)r->crc32);
            else
                fputs("-\t", f);
            imsi_index_escape_write(f, r->file.path, strlen(r->file.path));
            fputc('\n', f);
        }
    } else if (which == IMSI_CHUNK_FAILURES) {
        for (size_t i = d->first_failure; i < d->first_failure + ch->failures; i++) {
            const imsi_failure *p = &idx->failures[i];
            fprintf(f, "%llu\t%lld\t", (unsigned long long)p->size, (long long)p->mtime_ns);
            imsi_index_escape_write(f, p->problem.path, strlen(p->problem.path));
            fputc('\t', f);
            imsi_index_escape_write(f, p->problem.reason, strlen(p->problem.reason));
            fputc('\n', f);
        }
    } else {
        for (size_t i = 0; i < ch->tombstones; i++)
            fprintf(f, "%s\t%lld\n", imsi_ref_is_failure(d->dead[i]) ? "failure" : "row",
                    (long long)imsi_ref_index(d->dead[i]));
    }
    if (ferror(f)) {
        imsi_atomic_file_abort(&af);
        return ims_error_set(err, IMS_ERR_IO, "writing chunk %lld of '%s' failed", (long long)ch->id, idx->dir);
    }
    return imsi_atomic_file_commit(&af, err);
}

ims_status imsi_index_write_chunk(ims_index *idx, imsi_chunk *ch, const imsi_chunk_data *d, ims_error *err)
{
    size_t at = (size_t)ch->id;
    ch->recorded = 1;
    ch->tombstones = ch->dead_rows + ch->dead_failures;
    ims_status st = write_table(idx, ch->id, IMSI_CHUNK_VISUAL, d->visual, ch->rows, d->raw, err);
    if (!st)
        imsi_index_crash_point(at, "visual");
    if (!st && idx->cfg.semantic_dim)
        st = write_table(idx, ch->id, IMSI_CHUNK_SEMANTIC, d->semantic, ch->rows, d->raw, err);
    if (!st)
        imsi_index_crash_point(at, "semantic");
    if (!st)
        st = write_lines(idx, ch, IMSI_CHUNK_ROWS, d, err);
    if (!st)
        imsi_index_crash_point(at, "rows");
    if (!st)
        st = write_lines(idx, ch, IMSI_CHUNK_FAILURES, d, err);
    if (!st)
        imsi_index_crash_point(at, "failures");
    if (!st && ch->tombstones)
        st = write_lines(idx, ch, IMSI_CHUNK_TOMBSTONES, d, err);
    if (!st && ch->tombstones)
        imsi_index_crash_point(at, "tombstones");
    for (int k = 0; !st && k < IMSI_CHUNK_FILES; k++)
        if ((k != IMSI_CHUNK_SEMANTIC || idx->cfg.semantic_dim) && (k != IMSI_CHUNK_TOMBSTONES || ch->tombstones))
            st = imsi_index_measure(idx, ch->id, k, &ch->files[k], err);
    return st;
}

/* ---- The commit ----------------------------------------------------------------------------------- */

ims_status ims_index_commit(ims_index *idx, ims_error *err)
{
    ims_status st = check_writable(idx, err);
    if (st)
        return st;
    if (idx->pending_rows == 0 && idx->pending_failures == 0 && idx->pending_dead_count == 0) {
        if (!idx->dirty)
            return IMS_OK;
        st = imsi_index_manifest_write(idx, idx->chunk_count, err); /* new roots or settings only */
        if (!st)
            idx->dirty = 0;
        return st ? imsi_error_prefix(err, st, "index '%s'", idx->dir) : IMS_OK;
    }
    size_t c = idx->chunk_count;
    st = imsi_index_grow((void **)&idx->chunks, &idx->chunk_cap, c + 1, sizeof *idx->chunks, err);
    if (st)
        return st;
    imsi_chunk ch = {.id = idx->next_chunk, .rows = idx->pending_rows, .failures = idx->pending_failures};
    for (size_t i = 0; i < idx->pending_dead_count; i++) {
        if (imsi_ref_is_failure(idx->pending_dead[i]))
            ch.dead_failures++;
        else
            ch.dead_rows++;
    }
    imsi_chunk_data d = {.first_row = idx->row_count, .first_failure = idx->failure_count,
                         .visual = idx->pending_visual, .semantic = idx->pending_semantic, .dead = idx->pending_dead};
    st = imsi_index_write_chunk(idx, &ch, &d, err);
    if (!st) {
        idx->chunks[c] = ch;
        idx->next_chunk++;
        st = imsi_index_manifest_write(idx, c + 1, err);
        if (st)
            idx->next_chunk--;
    }
    if (st)
        return imsi_error_prefix(err, st, "index '%s'", idx->dir);
    /* Committed: the tombstones apply, then the pending records join the index
     * (their paths now point at them). */
    idx->chunk_count = c + 1;
    for (size_t i = 0; i < idx->pending_dead_count; i++) {
        int64_t ref = idx->pending_dead[i];
        uint8_t *dead = imsi_ref_is_failure(ref) ? &idx->failures[imsi_ref_index(ref)].dead : &idx->rows[ref].dead;
        if (*dead == 0) {
            if (imsi_ref_is_failure(ref))
                idx->dead_failures++;
            else
                idx->dead_rows++;
        }
        *dead = 1;
    }
    idx->pending_dead_count = 0;
    size_t row = idx->row_count, failure = idx->failure_count;
    idx->row_count += idx->pending_rows;
    idx->failure_count += idx->pending_failures;
    idx->pending_rows = idx->pending_failures = 0;
    idx->dirty = 0;
    st = imsi_index_map_records(idx, row, failure, err);
    if (!st)
        st = imsi_index_reindex(idx, err);
    return st;
}
