/* index/index_set.c: an index set, the shards of one collection read as one index
 * (include/imgsearch.h, "Index sets"; docs/FORMAT.md, "The index set").
 *
 * A set is named by one of three things, and every reader opens all three the
 * same way (ims_index_set_open):
 * - an index folder (manifest.json inside): a set of one shard, read exactly
 *   as the index;
 * - a set file (JSON: {"format": "imgsearch-index-set", "version": 1,
 *   "shards": [paths]}), its relative paths taken from the file's folder;
 * - a folder of shard folders (no manifest.json; each subfolder holding one),
 *   the shards in name order.
 * Shards must agree on what makes their scores comparable (models, mode,
 * dtype, dimensions, conse_top, precision); their chunk sizes may differ.
 * A part (rank p of P processes) opens only the shards i with i % P == p and
 * records the others' paths. Hits name a set row: shard << IMS_INDEX_SET_ROW_BITS
 * | the shard's row, so shard 0's rows keep the index's own row ids.
 */
#include "index/store.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/file_map.h"
#include "core/json.h"

#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SET_FORMAT_NAME "imgsearch-index-set"
#define SET_VERSION 1
#define SET_MAX_SHARDS (1 << 20)
#define SET_FILE_MAX ((size_t)64 << 20)

struct ims_index_set {
    int is_set;     /* 0: a single index folder */
    size_t count;   /* shards */
    char **paths;   /* (count) as resolved */
    ims_index **shards; /* (count); NULL where this part does not open it */
    int part, parts;
    int borrowed;           /* shards[0] is the caller's (imsi_index_set_wrap): not closed */
    const ims_index *first; /* the first opened shard, NULL if none */
};

void ims_index_set_close(ims_index_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->count; i++) {
        if (!s->borrowed)
            ims_index_close(s->shards ? s->shards[i] : NULL);
        free(s->paths ? s->paths[i] : NULL);
    }
    free(s->shards);
    free(s->paths);
    free(s);
}

int ims_index_set_is_set(const ims_index_set *s) { return s->is_set; }
int64_t ims_index_set_shard_count(const ims_index_set *s) { return (int64_t)s->count; }

const char *ims_index_set_shard_path(const ims_index_set *s, int64_t i)
{
    return i >= 0 && (size_t)i < s->count ? s->paths[i] : NULL;
}

const ims_index *ims_index_set_shard(const ims_index_set *s, int64_t i)
{
    return i >= 0 && (size_t)i < s->count ? s->shards[i] : NULL;
}

const ims_index_config *ims_index_set_config(const ims_index_set *s)
{
    return s->first ? ims_index_get_config(s->first) : NULL;
}

const ims_file_entry *ims_index_set_live_row(const ims_index_set *s, int64_t row)
{
    const ims_index *idx = row >= 0 ? ims_index_set_shard(s, IMS_INDEX_SET_SHARD(row)) : NULL;
    int64_t r = IMS_INDEX_SET_SHARD_ROW(row);
    return idx && ims_index_row_live(idx, r) ? ims_index_row(idx, r) : NULL;
}

void ims_index_set_get_info(const ims_index_set *s, ims_index_info *out)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < s->count; i++) {
        if (!s->shards[i])
            continue;
        ims_index_info one;
        ims_index_get_info(s->shards[i], &one);
        if (!out->version || one.version < out->version)
            out->version = one.version;
        if (strcmp(one.committed, out->committed) > 0) /* UTC "YYYY-MM-DDTHH:MM:SSZ" sorts as text */
            memcpy(out->committed, one.committed, sizeof out->committed);
        out->rows += one.rows;
        out->live_rows += one.live_rows;
        out->failures += one.failures;
        out->live_failures += one.live_failures;
        out->chunks += one.chunks;
        out->disk_bytes += one.disk_bytes;
        out->root_count += one.root_count;
    }
}

ims_status ims_index_config_compare(const ims_index_config *a, const ims_index_config *b, ims_error *err)
{
    ims_index_config bb = *b;
    bb.chunk_rows = a->chunk_rows; /* a layout choice: scores do not depend on it */
    if (a->precision != b->precision)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "its rows were computed with precision %s, not %s",
                             a->precision >= 0 ? ims_precision_name((ims_precision)a->precision) : "(not recorded)",
                             b->precision >= 0 ? ims_precision_name((ims_precision)b->precision) : "(not recorded)");
    return imsi_index_compare_config(a, &bb, err);
}

int ims_index_shard_of(const char *relative_path, int shards)
{
    /* FNV-1a 64: stable across machines and versions, so a file never moves */
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)relative_path; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return shards > 0 ? (int)(h % (uint64_t)shards) : 0;
}

int ims_index_shard(const ims_index *idx, int *shard)
{
    *shard = (int)idx->settings.shard;
    return (int)idx->settings.shards;
}

/* ---- Naming the shards ------------------------------------------------------------------------ */

static int has_manifest(const char *dir)
{
    size_t len = strlen(dir) + 16;
    char *p = malloc(len);
    struct stat sb;
    int yes = 0;
    if (p) {
        snprintf(p, len, "%s/manifest.json", dir);
        yes = stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
    }
    free(p);
    return yes;
}

static ims_status add_path(ims_index_set *s, size_t *cap, const char *a, const char *b, ims_error *err)
{
    if (s->count >= SET_MAX_SHARDS)
        return ims_error_set(err, IMS_ERR_FORMAT, "more than %d shards", SET_MAX_SHARDS);
    if (s->count == *cap) {
        size_t n = *cap ? *cap * 2 : 8;
        char **p = realloc(s->paths, n * sizeof *p);
        if (!p)
            return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
        s->paths = p;
        *cap = n;
    }
    size_t len = strlen(a) + (b ? strlen(b) + 1 : 0) + 1;
    char *path = malloc(len);
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    snprintf(path, len, b ? "%s/%s" : "%s", a, b ? b : "");
    s->paths[s->count++] = path;
    return IMS_OK;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A folder of shard folders: its subfolders holding a manifest, in name order. */
static ims_status list_folder(ims_index_set *s, const char *dir, ims_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ims_error_set(err, IMS_ERR_IO, "cannot read folder '%s': %s", dir, strerror(errno));
    size_t cap = 0;
    ims_status st = IMS_OK;
    struct dirent *e;
    while (!st && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (!p) {
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(p, len, "%s/%s", dir, e->d_name);
        if (has_manifest(p))
            st = add_path(s, &cap, dir, e->d_name, err);
        free(p);
    }
    closedir(d);
    if (!st && s->count == 0)
        st = ims_error_set(err, IMS_ERR_NOT_FOUND,
                           "'%s' is not an index (it has no manifest.json) and holds no index shards", dir);
    if (!st)
        qsort(s->paths, s->count, sizeof *s->paths, by_name);
    return st;
}

/* The folder part of path ("." when none), into a new string. */
static char *folder_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, path, len);
        d[len] = '\0';
    }
    return d;
}

static ims_status parse_set_file(ims_index_set *s, const char *file, const char *text, size_t len, ims_error *err)
{
    json_doc doc = {0};
    ims_status st = imsi_json_parse(text, len, NULL, &doc, err);
    const json_value *root = doc.root;
    const char *format = NULL;
    size_t flen = 0;
    int64_t version = 0;
    if (!st)
        st = imsi_json_member_string(root, "set", "format", &format, &flen, err);
    if (!st && strcmp(format, SET_FORMAT_NAME) != 0)
        st = ims_error_set(err, IMS_ERR_FORMAT, "'format' is not \"%s\"", SET_FORMAT_NAME);
    if (!st)
        st = imsi_json_member_int64(root, "set", "version", 1, INT32_MAX, &version, err);
    if (!st && version > SET_VERSION)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "version %lld: a newer imgsearch wrote it (this one reads %d)",
                           (long long)version, SET_VERSION);
    const json_value *shards = st ? NULL : imsi_json_object_get(root, "shards");
    if (!st && (!shards || shards->kind != JSON_ARRAY || shards->arr.count == 0))
        st = ims_error_set(err, IMS_ERR_FORMAT, "'shards' is missing or not a list of one or more paths");
    char *base = st ? NULL : folder_of(file);
    if (!st && !base)
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    size_t cap = 0;
    for (size_t i = 0; !st && i < shards->arr.count; i++) {
        const json_value *v = &shards->arr.items[i];
        size_t plen = v->kind == JSON_STRING ? v->str.len : 0;
        char *p = plen ? malloc(plen + 1) : NULL;
        if (!plen || plen > 4095) {
            st = ims_error_set(err, IMS_ERR_FORMAT, "shards[%zu] at byte %zu: expected a path", i, v->offset);
            break;
        }
        if (!p) {
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(p, v->str.ptr, plen + 1);
        if (imsi_index_unescape(p, &plen) != 0 || strlen(p) != plen)
            st = ims_error_set(err, IMS_ERR_FORMAT, "shards[%zu] at byte %zu: a malformed %%XX escape", i, v->offset);
        else
            st = add_path(s, &cap, p[0] == '/' ? p : base, p[0] == '/' ? NULL : p, err);
        free(p);
    }
    free(base);
    imsi_json_doc_free(&doc);
    return st;
}

static ims_status read_set_file(ims_index_set *s, const char *file, ims_error *err)
{
    char *text = NULL;
    size_t len = 0;
    ims_status st = imsi_file_read_text(file, SET_FILE_MAX, &text, &len, err);
    if (!st)
        st = parse_set_file(s, file, text, len, err);
    free(text);
    return st;
}

/* ---- Opening ------------------------------------------------------------------------------------ */

ims_status ims_index_set_open_part(const char *path, int part, int parts, ims_index_set **out, ims_error *err)
{
    *out = NULL;
    if (!path || parts < 1 || part < 0 || part >= parts)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index set: part %d of %d", part, parts);
    ims_index_set *s = calloc(1, sizeof *s);
    if (!s)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    s->part = part;
    s->parts = parts;
    struct stat sb;
    ims_status st = IMS_OK;
    size_t cap = 0;
    if (stat(path, &sb) != 0 || (S_ISDIR(sb.st_mode) && has_manifest(path)))
        st = add_path(s, &cap, path, NULL, err); /* an index; opening it says what is wrong */
    else if (S_ISDIR(sb.st_mode))
        s->is_set = 1, st = list_folder(s, path, err);
    else if (S_ISREG(sb.st_mode)) {
        s->is_set = 1;
        st = read_set_file(s, path, err);
        if (st)
            imsi_error_prefix(err, st, "index set '%s'", path);
    } else
        st = ims_error_set(err, IMS_ERR_FORMAT, "'%s' is not an index folder, a set file or a folder of shards", path);
    if (!st && !(s->shards = calloc(s->count, sizeof *s->shards)))
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; !st && i < s->count; i++) {
        if ((int)(i % (size_t)parts) != part)
            continue;
        st = ims_index_open(s->paths[i], &s->shards[i], err);
        if (!st && s->first)
            st = ims_index_config_compare(ims_index_get_config(s->first), ims_index_get_config(s->shards[i]), err);
        if (!s->first)
            s->first = s->shards[i];
        if (st && s->is_set)
            imsi_error_prefix(err, st, "shard %zu ('%s')", i, s->paths[i]);
    }
    if (st) {
        ims_index_set_close(s);
        return st;
    }
    *out = s;
    return IMS_OK;
}

ims_status ims_index_set_open(const char *path, ims_index_set **out, ims_error *err)
{
    return ims_index_set_open_part(path, 0, 1, out, err);
}

ims_status imsi_index_set_wrap(const ims_index *idx, ims_index_set **out, ims_error *err)
{
    ims_index_set *s = calloc(1, sizeof *s);
    size_t cap = 0;
    ims_status st = s ? add_path(s, &cap, idx->dir, NULL, err) : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    if (!st && !(s->shards = calloc(1, sizeof *s->shards)))
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    if (st) {
        ims_index_set_close(s);
        return st;
    }
    s->parts = 1;
    s->borrowed = 1;
    s->shards[0] = (ims_index *)idx; /* never written through: readers take const */
    s->first = idx;
    *out = s;
    return IMS_OK;
}

/* ---- Writing a set file --------------------------------------------------------------------------- */

ims_status ims_index_set_create(const char *set_path, const char *const *shards, size_t count, ims_error *err)
{
    if (!set_path || !shards || count == 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index set: a file name and one or more shards are required");
    if (count > SET_MAX_SHARDS)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index set: %zu shards (at most %d)", count, SET_MAX_SHARDS);
    /* every shard must open and agree with the first: a set that cannot be searched is never written */
    ims_index *first = NULL;
    ims_status st = IMS_OK;
    for (size_t i = 0; !st && i < count; i++) {
        ims_index *idx = NULL;
        if (!has_manifest(shards[i]))
            st = ims_error_set(err, IMS_ERR_NOT_FOUND, "shard %zu: '%s' is not an index folder (no manifest.json)", i,
                               shards[i]);
        if (!st)
            st = ims_index_open(shards[i], &idx, err);
        if (!st && first)
            st = ims_index_config_compare(ims_index_get_config(first), ims_index_get_config(idx), err);
        if (st)
            imsi_error_prefix(err, st, "shard %zu ('%s')", i, shards[i]);
        if (!first)
            first = idx;
        else
            ims_index_close(idx);
    }
    ims_index_close(first);
    imsi_atomic_file af;
    if (!st)
        st = imsi_atomic_file_open(&af, set_path, err);
    if (st)
        return st;
    /* absolute, or relative to the set file's folder when below it (the set and its shards move together) */
    char *folder = folder_of(set_path), base[PATH_MAX], shard[PATH_MAX];
    if (!folder || !realpath(folder, base))
        snprintf(base, sizeof base, "%s", "");
    free(folder);
    size_t blen = strlen(base);
    fprintf(af.f, "{\n  \"format\": \"%s\",\n  \"version\": %d,\n  \"shards\": [", SET_FORMAT_NAME, SET_VERSION);
    for (size_t i = 0; i < count; i++) {
        fputs(i ? ",\n    " : "\n    ", af.f);
        const char *p = realpath(shards[i], shard) ? shard : shards[i];
        if (blen > 1 && p == shard && !strncmp(shard, base, blen) && shard[blen] == '/')
            p = shard + blen + 1;
        imsi_index_write_json_path(af.f, p);
    }
    fputs("\n  ]\n}\n", af.f);
    return imsi_atomic_file_commit(&af, err);
}
