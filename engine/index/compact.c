/* index/compact.c: compaction (and the version-1 upgrade) of an index folder
 * (include/imgsearch.h, ims_index_compact; docs/FORMAT.md, "Compaction").
 *
 * Under the writer lock: the live records (rows and failures, in their
 * order) are written as new chunks of chunk_rows rows and failures each, under
 * ids after every existing one, so no file a reader of the old manifest uses
 * is touched; the table bytes are copied as stored (no conversion). The new
 * manifest, which lists only the new chunks, is the commit point; then the old
 * chunks' files are removed (a kill before that leaves them as leftovers the
 * next writer removes). A kill at any moment leaves the old index or the new.
 * Upgrading a version-1 index is the same rewrite, with its relative paths
 * made absolute against the folder it was indexed from.
 */
#define _POSIX_C_SOURCE 200809L
#include "index/store.h"

#include "core/atomic_file.h"
#include "core/error.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ims_index_compact_options_init(ims_index_compact_options *o)
{
    memset(o, 0, sizeof *o);
}

/* base + "/" + p (p itself when absolute) without "." and ".." components or
 * repeated slashes; malloc'd. Lexical: a version-1 path named the file as
 * the walk reached it, so its symbolic links are kept as they were. */
static char *absolute_path(const char *base, const char *p)
{
    size_t cap = strlen(base) + strlen(p) + 3;
    char *joined = malloc(cap), *out = malloc(cap);
    if (!joined || !out) {
        free(joined);
        free(out);
        return NULL;
    }
    snprintf(joined, cap, p[0] == '/' ? "%s" : "%s/%s", p[0] == '/' ? p : base, p);
    size_t len = 0;
    for (char *s = joined; *s;) {
        while (*s == '/')
            s++;
        char *e = s + strcspn(s, "/");
        size_t n = (size_t)(e - s);
        if (n == 0 || (n == 1 && s[0] == '.')) {
            /* nothing */
        } else if (n == 2 && s[0] == '.' && s[1] == '.') {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--; /* the slash before it */
        } else {
            out[len++] = '/';
            memcpy(out + len, s, n);
            len += n;
        }
        s = e;
    }
    if (len == 0)
        out[len++] = '/';
    out[len] = '\0';
    free(joined);
    return out;
}

/* Version 1 stored paths as given on the command line: made absolute. */
static ims_status upgrade_paths(ims_index *idx, const char *base_given, ims_error *err)
{
    char cwd[PATH_MAX], base[PATH_MAX];
    if (!base_given && !getcwd(cwd, sizeof cwd))
        return ims_error_set(err, IMS_ERR_IO, "cannot tell the current folder: %s", strerror(errno));
    if (!realpath(base_given ? base_given : cwd, base))
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "the base folder '%.300s': %s", base_given ? base_given : cwd,
                             strerror(errno));
    for (size_t i = 0; i < idx->row_count + idx->failure_count; i++) {
        char **path = i < idx->row_count ? &idx->rows[i].file.path : &idx->failures[i - idx->row_count].problem.path;
        char *abs = absolute_path(base, *path);
        if (!abs)
            return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
        free(*path);
        *path = abs;
    }
    /* the map's keys were those strings; a compaction looks nothing up */
    free(idx->paths.keys);
    free(idx->paths.refs);
    idx->paths = (imsi_path_map){0};
    return IMS_OK;
}

/* Where a live row's vectors are now: the chunk (position) and the row in it. */
typedef struct row_source {
    size_t chunk, offset;
} row_source;

/* Copies the rows src[0..n) of table `which` into out (n, dim) in the stored
 * dtype, mapping each source chunk once (sources come in row order). */
static ims_status gather_table(const ims_index *idx, int which, const row_source *src, size_t n, char *out,
                               ims_error *err)
{
    int dim = which == IMSI_CHUNK_SEMANTIC ? idx->cfg.semantic_dim : idx->cfg.visual_dim;
    size_t row_bytes = (size_t)dim * ims_dtype_size(idx->cfg.dtype);
    ims_npy *npy = NULL;
    size_t mapped = SIZE_MAX;
    ims_status st = IMS_OK;
    for (size_t i = 0; !st && i < n; i++) {
        if (src[i].chunk != mapped) {
            ims_npy_close(npy);
            mapped = src[i].chunk;
            st = imsi_index_map_table(idx, mapped, which, 1, &npy, err);
        }
        if (!st)
            memcpy(out + i * row_bytes, (const char *)ims_npy_data(npy) + src[i].offset * row_bytes, row_bytes);
    }
    ims_npy_close(npy);
    return st;
}

typedef struct compaction {
    ims_index *idx;
    imsi_row *rows;         /* the live rows in order (their paths still owned by idx->rows) */
    row_source *src;        /* (rows) */
    imsi_failure *failures; /* the live failures in order */
    size_t row_count, failure_count;
    imsi_chunk *chunks; /* the new ones */
    size_t chunk_count;
    char *visual, *semantic; /* one chunk's tables, in the stored dtype */
} compaction;

static ims_status collect(compaction *k, ims_error *err)
{
    ims_index *idx = k->idx;
    size_t c_rows = (size_t)idx->cfg.chunk_rows;
    k->rows = malloc((idx->row_count ? idx->row_count : 1) * sizeof *k->rows);
    k->src = malloc((idx->row_count ? idx->row_count : 1) * sizeof *k->src);
    k->failures = malloc((idx->failure_count ? idx->failure_count : 1) * sizeof *k->failures);
    size_t vd = (size_t)idx->cfg.visual_dim, sd = (size_t)idx->cfg.semantic_dim, es = ims_dtype_size(idx->cfg.dtype);
    k->visual = malloc(c_rows * vd * es);
    k->semantic = sd ? malloc(c_rows * sd * es) : NULL;
    if (!k->rows || !k->src || !k->failures || !k->visual || (sd && !k->semantic))
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for the compaction of %zu rows", idx->row_count);
    size_t row = 0;
    for (size_t c = 0; c < idx->chunk_count; c++)
        for (size_t i = 0; i < idx->chunks[c].rows; i++, row++)
            if (!idx->rows[row].dead && !idx->rows[row].doomed) {
                k->src[k->row_count] = (row_source){c, i};
                k->rows[k->row_count++] = idx->rows[row];
            }
    for (size_t i = 0; i < idx->failure_count; i++)
        if (!idx->failures[i].dead && !idx->failures[i].doomed)
            k->failures[k->failure_count++] = idx->failures[i];
    size_t by_rows = (k->row_count + c_rows - 1) / c_rows, by_failures = (k->failure_count + c_rows - 1) / c_rows;
    size_t n = by_rows > by_failures ? by_rows : by_failures;
    k->chunks = calloc(n ? n : 1, sizeof *k->chunks);
    if (!k->chunks)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    k->chunk_count = n;
    return IMS_OK;
}

/* Writes the new chunks' files (idx->rows and failures are the live ones meanwhile). */
static ims_status write_new_chunks(compaction *k, ims_error *err)
{
    ims_index *idx = k->idx;
    size_t c_rows = (size_t)idx->cfg.chunk_rows;
    ims_status st = IMS_OK;
    for (size_t c = 0; !st && c < k->chunk_count; c++) {
        size_t r0 = c * c_rows, f0 = c * c_rows;
        size_t nr = r0 < k->row_count ? (k->row_count - r0 < c_rows ? k->row_count - r0 : c_rows) : 0;
        size_t nf = f0 < k->failure_count ? (k->failure_count - f0 < c_rows ? k->failure_count - f0 : c_rows) : 0;
        imsi_chunk *ch = &k->chunks[c];
        *ch = (imsi_chunk){.id = idx->next_chunk + (int64_t)c, .rows = nr, .failures = nf};
        st = gather_table(idx, IMSI_CHUNK_VISUAL, k->src + r0, nr, k->visual, err);
        if (!st && idx->cfg.semantic_dim)
            st = gather_table(idx, IMSI_CHUNK_SEMANTIC, k->src + r0, nr, k->semantic, err);
        if (st)
            break;
        /* the text files come from idx->rows / failures: point them at the new order */
        imsi_row *old_rows = idx->rows;
        imsi_failure *old_failures = idx->failures;
        idx->rows = k->rows;
        idx->failures = k->failures;
        imsi_chunk_data d = {.first_row = r0, .first_failure = f0, .visual = k->visual, .semantic = k->semantic,
                             .raw = 1};
        st = imsi_index_write_chunk(idx, ch, &d, err);
        idx->rows = old_rows;
        idx->failures = old_failures;
        if (!st)
            imsi_index_crash_point((size_t)ch->id, "compact");
    }
    return st;
}

/* The new chunks become the index: the manifest, then the old files go. */
static ims_status commit_new_chunks(compaction *k, ims_error *err)
{
    ims_index *idx = k->idx;
    imsi_chunk *old = idx->chunks;
    size_t old_count = idx->chunk_count;
    int64_t first = idx->next_chunk;
    idx->chunks = k->chunks;
    idx->chunk_count = k->chunk_count;
    idx->next_chunk += (int64_t)k->chunk_count;
    ims_status st = imsi_index_manifest_write(idx, k->chunk_count, err);
    if (st) {
        idx->chunks = old;
        idx->chunk_count = old_count;
        idx->next_chunk = first;
        return st;
    }
    k->chunks = old; /* freed with the compaction */
    imsi_index_crash_point((size_t)first, "compacted");
    for (size_t c = 0; c < old_count; c++) {
        for (int w = 0; w < IMSI_CHUNK_FILES; w++) {
            char *path = imsi_index_file_path(idx, old[c].id, imsi_chunk_suffix(w));
            if (path)
                unlink(path); /* absent files (semantic, tombstones) are fine */
            free(path);
        }
        if (c == 0)
            imsi_index_crash_point((size_t)first, "pruned");
    }
    imsi_sync_dir(idx->dir);
    return IMS_OK;
}

/* After the commit: idx holds the live records as its only ones. */
static void adopt(compaction *k)
{
    ims_index *idx = k->idx;
    for (size_t i = 0; i < idx->row_count; i++)
        if (idx->rows[i].dead || idx->rows[i].doomed)
            free(idx->rows[i].file.path);
    for (size_t i = 0; i < idx->failure_count; i++)
        if (idx->failures[i].dead || idx->failures[i].doomed) {
            free(idx->failures[i].problem.path);
            free(idx->failures[i].problem.reason);
        }
    free(idx->rows);
    free(idx->failures);
    free(idx->paths.keys); /* some pointed at the strings just freed; a compaction looks nothing up */
    free(idx->paths.refs);
    idx->paths = (imsi_path_map){0};
    idx->rows = k->rows;
    idx->failures = k->failures;
    idx->row_count = idx->row_cap = k->row_count;
    idx->failure_count = idx->failure_cap = k->failure_count;
    idx->dead_rows = idx->dead_failures = idx->pending_dead_count = 0;
    k->rows = NULL;
    k->failures = NULL;
}

ims_status ims_index_compact(const char *dir, const ims_index_compact_options *o,
                             ims_index_compact_report *report, ims_error *err)
{
    ims_index_compact_options defaults;
    ims_index_compact_options_init(&defaults);
    if (!o)
        o = &defaults;
    ims_index_compact_report r = {0};
    ims_index *idx = NULL;
    ims_status st = imsi_index_open_writer(dir, o->upgrade, &idx, err);
    if (st)
        return st;
    ims_index_info before;
    ims_index_get_info(idx, &before);
    r.from_version = idx->version;
    r.chunks_before = before.chunks;
    r.bytes_before = before.disk_bytes;
    compaction k = {.idx = idx};
    if (idx->version < IMSI_INDEX_VERSION)
        st = upgrade_paths(idx, o->base, err);
    if (!st)
        st = collect(&k, err);
    if (!st) {
        r.rows = (int64_t)k.row_count;
        r.failures = (int64_t)k.failure_count;
        r.dropped_rows = (int64_t)(idx->row_count - k.row_count);
        r.dropped_failures = (int64_t)(idx->failure_count - k.failure_count);
        st = write_new_chunks(&k, err);
    }
    if (!st)
        st = commit_new_chunks(&k, err);
    if (!st) {
        adopt(&k);
        st = imsi_index_reindex(idx, err);
    }
    if (!st) {
        ims_index_info after;
        ims_index_get_info(idx, &after);
        r.chunks_after = after.chunks;
        r.bytes_after = after.disk_bytes;
    }
    free(k.rows);
    free(k.src);
    free(k.failures);
    free(k.chunks);
    free(k.visual);
    free(k.semantic);
    ims_index_close(idx);
    if (report)
        *report = r;
    return st ? imsi_error_prefix(err, st, "compacting index '%s'", dir) : IMS_OK;
}
