/* index/store.c: the image index on disk (docs/FORMAT.md, "The index"), read side.
 *
 * A folder holding, for chunk id c (6 or more digits):
 *   chunk-c.visual.npy      (rows, visual_dim) f16 or f32
 *   chunk-c.semantic.npy    (rows, semantic_dim), when the index has a text model
 *   chunk-c.rows.txt        "size<TAB>mtime_ns<TAB>crc32|-<TAB>path" per row, aligned with the tables
 *   chunk-c.failures.txt    "size<TAB>mtime_ns<TAB>path<TAB>reason" per file that could not be indexed
 *   chunk-c.tombstones.txt  "row<TAB>id" / "failure<TAB>id" per record of an earlier chunk it retires
 * and manifest.json, which lists the committed chunks: the commit point.
 * Version 1 (read only here; compact.c upgrades it): chunk ids are positions,
 * rows.txt has no crc32, failures.txt only "path<TAB>reason", no tombstones.
 *
 * Here: the records in memory, the path map, the manifest (both directions),
 * reading chunks, tables into k-NN tables (live rows only), class embeddings.
 * Writing records and commits: store_write.c.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* timegm */
#include "index/store.h"

#include "core/atomic_file.h"
#include "core/checked.h"
#include "core/error.h"
#include "core/file_map.h"
#include "core/json.h"
#include "io/weights_format.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define INDEX_FORMAT_NAME "imgsearch-index"
#define INDEX_MAX_DIM 65536
#define INDEX_MAX_CHUNK_ROWS (1 << 20)
#define INDEX_MAX_CONSE_TOP 100000
#define INDEX_MAX_CHUNK_ID 999999999999LL /* 12 digits: ids never run out */
/* What indexes made before the manifest recorded conse_top were made with. */
#define INDEX_DEFAULT_CONSE_TOP 10

const char *imsi_chunk_suffix(int which)
{
    static const char *const suffix[IMSI_CHUNK_FILES] = {"visual.npy", "semantic.npy", "rows.txt", "failures.txt",
                                                         "tombstones.txt"};
    return which >= 0 && which < IMSI_CHUNK_FILES ? suffix[which] : "?";
}

/* ---- Escaping paths and reasons into lines ------------------------------------------ */

/* Length of the valid UTF-8 sequence at s[0..n), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80)
        return 1;
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (len == 0 || len > n || s[0] > 0xf4)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if (len == 3 && s[0] == 0xe0 && s[1] < 0xa0)
        return 0; /* overlong */
    if (len == 3 && s[0] == 0xed && s[1] >= 0xa0)
        return 0; /* surrogate */
    if (len == 4 && s[0] == 0xf0 && s[1] < 0x90)
        return 0; /* overlong */
    if (len == 4 && s[0] == 0xf4 && s[1] >= 0x90)
        return 0; /* beyond U+10FFFF */
    return len;
}

void imsi_index_escape_write(FILE *f, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < len;) {
        size_t seq = utf8_sequence(s + i, len - i);
        if (seq == 0 || (seq == 1 && (s[i] < 0x20 || s[i] == 0x7f || s[i] == '%'))) {
            fprintf(f, "%%%02X", s[i]);
            i++;
        } else {
            fwrite(s + i, 1, seq, f);
            i += seq;
        }
    }
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int imsi_index_unescape(char *s, size_t *len)
{
    size_t out = 0;
    for (size_t i = 0; i < *len; i++) {
        if (s[i] != '%') {
            s[out++] = s[i];
            continue;
        }
        int hi = i + 2 < *len ? hex_value(s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
        if (lo < 0)
            return -1;
        s[out++] = (char)(hi * 16 + lo);
        i += 2;
    }
    s[out] = '\0';
    *len = out;
    return 0;
}

/* ---- The path map ---------------------------------------------------------------------- */

static uint64_t path_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int path_map_find(const imsi_path_map *m, const char *path, size_t *slot)
{
    if (m->cap == 0)
        return 0;
    size_t i = (size_t)path_hash(path) & (m->cap - 1);
    while (m->keys[i]) {
        if (strcmp(m->keys[i], path) == 0) {
            *slot = i;
            return 1;
        }
        i = (i + 1) & (m->cap - 1);
    }
    *slot = i;
    return 0;
}

/* path -> ref; *had and *old tell what it replaced. */
static ims_status path_map_put(imsi_path_map *m, const char *path, int64_t ref, int *had, int64_t *old,
                               ims_error *err)
{
    if ((m->count + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        imsi_path_map bigger = {calloc(cap, sizeof *bigger.keys), malloc(cap * sizeof *bigger.refs), cap, 0};
        if (!bigger.keys || !bigger.refs) {
            free(bigger.keys);
            free(bigger.refs);
            return ims_error_set(err, IMS_ERR_NOMEM, "out of memory (path map of %zu)", cap);
        }
        for (size_t i = 0; i < m->cap; i++) {
            size_t slot = 0;
            if (m->keys[i] && !path_map_find(&bigger, m->keys[i], &slot)) {
                bigger.keys[slot] = m->keys[i];
                bigger.refs[slot] = m->refs[i];
                bigger.count++;
            }
        }
        free(m->keys);
        free(m->refs);
        *m = bigger;
    }
    size_t slot = 0;
    *had = path_map_find(m, path, &slot);
    if (*had) {
        *old = m->refs[slot];
    } else {
        m->count++;
    }
    m->keys[slot] = path; /* the latest record's own string */
    m->refs[slot] = ref;
    return IMS_OK;
}

/* ---- Small helpers ------------------------------------------------------------------- */

ims_status imsi_index_grow(void **items, size_t *cap, size_t need, size_t item_size, ims_error *err)
{
    if (need <= *cap)
        return IMS_OK;
    size_t new_cap = *cap ? *cap : 64, bytes;
    while (new_cap < need)
        new_cap = new_cap > SIZE_MAX / 2 ? need : new_cap * 2;
    if (!imsi_size_mul(new_cap, item_size, &bytes))
        return ims_error_set(err, IMS_ERR_NOMEM, "%zu index entries do not fit in memory", need);
    void *p = realloc(*items, bytes);
    if (!p)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory (%zu index entries)", need);
    *items = p;
    *cap = new_cap;
    return IMS_OK;
}

char *imsi_index_file_path(const ims_index *idx, int64_t chunk_id, const char *suffix)
{
    size_t len = strlen(idx->dir) + 64;
    char *p = malloc(len);
    if (p) {
        if (suffix)
            snprintf(p, len, "%s/chunk-%06lld.%s", idx->dir, (long long)chunk_id, suffix);
        else
            snprintf(p, len, "%s/manifest.json", idx->dir);
    }
    return p;
}

void ims_index_config_init(ims_index_config *c)
{
    memset(c, 0, sizeof *c);
    c->mode = IMS_PREPROCESS_TORCHVISION;
    c->dtype = IMS_DTYPE_F16;
    c->chunk_rows = 4096;
    c->visual_dim = 2048;
    c->conse_top = INDEX_DEFAULT_CONSE_TOP;
    c->precision = -1;
}

static int chunk_has(const ims_index *idx, const imsi_chunk *ch, int which)
{
    if (which == IMSI_CHUNK_SEMANTIC)
        return idx->cfg.semantic_dim > 0;
    if (which == IMSI_CHUNK_TOMBSTONES)
        return ch->tombstones > 0;
    return 1;
}

/* ---- The manifest: writing ---------------------------------------------------------------- */

/* A JSON string of s as the text files escape it (%XX for '%', controls and
 * invalid UTF-8): any path, and the manifest stays valid UTF-8 JSON. */
void imsi_index_write_json_path(FILE *f, const char *s)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *m = open_memstream(&buf, &size);
    if (m) {
        imsi_index_escape_write(m, s, strlen(s));
        fclose(m);
    }
    fputc('"', f);
    for (const char *p = buf ? buf : ""; *p; p++) {
        if (*p == '"' || *p == '\\')
            fputc('\\', f);
        fputc(*p, f);
    }
    fputc('"', f);
    free(buf);
}

static void write_model(FILE *f, const char *key, const ims_weights_identity *m)
{
    fprintf(f, "  \"%s\": {\"name\": ", key);
    imsi_index_write_json_path(f, m->name);
    fprintf(f, ", \"path\": ");
    imsi_index_write_json_path(f, m->path);
    fprintf(f, ", \"bytes\": %llu, \"crc32\": \"%08x\", \"synthetic\": %s},\n", (unsigned long long)m->bytes,
            (unsigned)m->crc32, m->synthetic ? "true" : "false");
}

static void stamp_now(char *out, size_t size)
{
    time_t now = time(NULL);
    struct tm tm;
    if (!gmtime_r(&now, &tm) || !strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, size, "1970-01-01T00:00:00Z");
}

ims_status imsi_index_manifest_write(ims_index *idx, size_t chunk_count, ims_error *err)
{
    char *path = imsi_index_file_path(idx, 0, NULL);
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    imsi_atomic_file af;
    ims_status st = imsi_atomic_file_open(&af, path, err);
    free(path);
    if (st)
        return st;
    size_t rows = 0, failures = 0, dead_rows = 0, dead_failures = 0;
    for (size_t i = 0; i < chunk_count; i++) {
        rows += idx->chunks[i].rows;
        failures += idx->chunks[i].failures;
        dead_rows += idx->chunks[i].dead_rows;
        dead_failures += idx->chunks[i].dead_failures;
    }
    char committed[32];
    stamp_now(committed, sizeof committed);
    const ims_index_config *c = &idx->cfg;
    FILE *f = af.f;
    fprintf(f, "{\n  \"format\": \"%s\",\n  \"version\": %d,\n", INDEX_FORMAT_NAME, IMSI_INDEX_VERSION);
    fprintf(f, "  \"tool_version\": \"%s\",\n  \"committed\": \"%s\",\n", IMS_VERSION_STRING, committed);
    fprintf(f, "  \"mode\": \"%s\",\n  \"dtype\": \"%s\",\n", ims_preprocess_mode_name(c->mode), ims_dtype_name(c->dtype));
    fprintf(f, "  \"chunk_rows\": %d,\n", c->chunk_rows);
    fprintf(f, "  \"visual_dim\": %d,\n  \"semantic_dim\": %d,\n", c->visual_dim, c->semantic_dim);
    if (c->semantic_dim > 0)
        fprintf(f, "  \"conse_top\": %d,\n", c->conse_top);
    if (c->precision >= 0)
        fprintf(f, "  \"precision\": \"%s\",\n", ims_precision_name((ims_precision)c->precision));
    write_model(f, "image_model", &c->image_model);
    if (c->semantic_dim > 0)
        write_model(f, "text_model", &c->text_model);
    fprintf(f, "  \"roots\": [");
    for (size_t i = 0; i < idx->root_count; i++) {
        fprintf(f, "%s", i ? ", " : "");
        imsi_index_write_json_path(f, idx->roots[i]);
    }
    fprintf(f, "],\n  \"settings\": {");
    const imsi_index_settings *s = &idx->settings;
    int n = 0;
    if (s->commit_every_s > 0)
        fprintf(f, "%s\"commit_every\": %.17g", n++ ? ", " : "", s->commit_every_s);
    if (s->batch > 0)
        fprintf(f, "%s\"batch\": %lld", n++ ? ", " : "", (long long)s->batch);
    if (s->threads > 0)
        fprintf(f, "%s\"threads\": %lld", n++ ? ", " : "", (long long)s->threads);
    if (s->shards > 0)
        fprintf(f, "%s\"shard\": {\"index\": %lld, \"count\": %lld}", n++ ? ", " : "", (long long)s->shard,
                (long long)s->shards);
    fprintf(f, "},\n  \"rows\": %zu,\n  \"failures\": %zu,\n", rows, failures);
    fprintf(f, "  \"tombstones\": {\"rows\": %zu, \"failures\": %zu},\n", dead_rows, dead_failures);
    fprintf(f, "  \"next_chunk\": %lld,\n  \"chunks\": [", (long long)idx->next_chunk);
    for (size_t i = 0; i < chunk_count; i++) {
        const imsi_chunk *ch = &idx->chunks[i];
        fprintf(f, "%s\n    {\"id\": %lld, \"rows\": %zu, \"failures\": %zu, \"tombstones\": %zu, \"files\": {",
                i ? "," : "", (long long)ch->id, ch->rows, ch->failures, ch->tombstones);
        for (int k = 0, m = 0; k < IMSI_CHUNK_FILES; k++)
            if (chunk_has(idx, ch, k))
                fprintf(f, "%s\"%s\": {\"bytes\": %llu, \"crc32\": \"%08x\"}", m++ ? ", " : "", imsi_chunk_suffix(k),
                        (unsigned long long)ch->files[k].bytes, (unsigned)ch->files[k].crc32);
        fprintf(f, "}}");
    }
    fprintf(f, "%s]\n}\n", chunk_count ? "\n  " : "");
    if (ferror(f)) {
        imsi_atomic_file_abort(&af);
        return ims_error_set(err, IMS_ERR_IO, "writing the manifest of '%s' failed", idx->dir);
    }
    st = imsi_atomic_file_commit(&af, err);
    if (!st) {
        memcpy(idx->committed, committed, sizeof committed);
        idx->version = IMSI_INDEX_VERSION;
    }
    return st;
}

/* ---- The manifest: reading ---------------------------------------------------------------- */

static ims_status get_int(const json_value *obj, const char *key, int64_t lo, int64_t hi, int64_t *out,
                          ims_error *err)
{
    const json_value *v = imsi_json_object_get(obj, key);
    if (!v)
        return ims_error_set(err, IMS_ERR_FORMAT, "'%s' is missing", key);
    if (v->kind != JSON_NUMBER || !v->num.is_int || v->num.int_value < lo || v->num.int_value > hi)
        return ims_error_set(err, IMS_ERR_FORMAT, "'%s' at byte %zu: expected an integer in %lld..%lld", key,
                             v->offset, (long long)lo, (long long)hi);
    *out = v->num.int_value;
    return IMS_OK;
}

static ims_status get_string(const json_value *obj, const char *key, const char **out, ims_error *err)
{
    const json_value *v = imsi_json_object_get(obj, key);
    if (!v)
        return ims_error_set(err, IMS_ERR_FORMAT, "'%s' is missing", key);
    if (v->kind != JSON_STRING)
        return ims_error_set(err, IMS_ERR_FORMAT, "'%s' at byte %zu: expected a string", key, v->offset);
    *out = v->str.ptr;
    return IMS_OK;
}

/* A path-valued string: version 2 writes them %XX-escaped. Into out (size bytes). */
static ims_status get_path(const json_value *obj, const char *key, int version, char *out, size_t size,
                           ims_error *err)
{
    const char *s = NULL;
    ims_status st = get_string(obj, key, &s, err);
    if (st)
        return st;
    size_t len = strlen(s);
    if (len >= size)
        return ims_error_set(err, IMS_ERR_FORMAT, "'%s': longer than %zu bytes", key, size - 1);
    memcpy(out, s, len + 1);
    if (version >= 2 && (imsi_index_unescape(out, &len) != 0 || strlen(out) != len))
        return ims_error_set(err, IMS_ERR_FORMAT, "'%s': a malformed %%XX escape", key);
    return IMS_OK;
}

/* "0a0b0c0d" -> 0x0a0b0c0d: exactly 8 hex digits; IMS_ERR_FORMAT otherwise. */
static ims_status parse_crc32(const char *text, uint32_t *out)
{
    if (strlen(text) != 8 || strspn(text, "0123456789abcdefABCDEF") != 8)
        return IMS_ERR_FORMAT;
    *out = (uint32_t)strtoul(text, NULL, 16);
    return IMS_OK;
}

/* A chunk's "files": {"visual.npy": {"bytes": N, "crc32": "..."}, ...}, each file
 * the chunk has; version 2 always has it, version 1 since it was recorded. */
static ims_status read_chunk_files(const ims_index *idx, const json_value *ch, imsi_chunk *out, ims_error *err)
{
    const json_value *files = imsi_json_object_get(ch, "files");
    if (!files && idx->version >= 2)
        return ims_error_set(err, IMS_ERR_FORMAT, "'files' is missing");
    if (!files)
        return IMS_OK;
    if (files->kind != JSON_OBJECT)
        return ims_error_set(err, IMS_ERR_FORMAT, "'files' at byte %zu: expected an object", files->offset);
    for (int k = 0; k < IMSI_CHUNK_FILES; k++) {
        if (!chunk_has(idx, out, k))
            continue;
        const json_value *f = imsi_json_object_get(files, imsi_chunk_suffix(k));
        const char *crc = NULL;
        int64_t bytes = 0;
        ims_status st = f && f->kind == JSON_OBJECT
                            ? IMS_OK
                            : ims_error_set(err, IMS_ERR_FORMAT, "'%s' is missing", imsi_chunk_suffix(k));
        if (!st)
            st = get_int(f, "bytes", 0, INT64_MAX, &bytes, err);
        if (!st)
            st = get_string(f, "crc32", &crc, err);
        if (!st && parse_crc32(crc, &out->files[k].crc32))
            st = ims_error_set(err, IMS_ERR_FORMAT, "crc32 '%.16s' is not 8 hex digits", crc);
        if (st)
            return imsi_error_prefix(err, st, "files: %s", imsi_chunk_suffix(k));
        out->files[k].bytes = (uint64_t)bytes;
    }
    out->recorded = 1;
    return IMS_OK;
}

static ims_status read_model(const ims_index *idx, const json_value *root, const char *key, ims_weights_identity *m,
                             ims_error *err)
{
    const json_value *v = imsi_json_object_get(root, key);
    if (!v || v->kind != JSON_OBJECT)
        return ims_error_set(err, IMS_ERR_FORMAT, "'%s' is missing or not an object", key);
    const char *crc = NULL;
    int64_t bytes = 0;
    ims_status st = get_path(v, "name", idx->version, m->name, sizeof m->name, err);
    if (!st)
        st = get_path(v, "path", idx->version, m->path, sizeof m->path, err);
    if (!st)
        st = get_int(v, "bytes", 0, INT64_MAX, &bytes, err);
    if (!st)
        st = get_string(v, "crc32", &crc, err);
    if (st)
        return imsi_error_prefix(err, st, "%s", key);
    uint32_t value;
    if (parse_crc32(crc, &value))
        return ims_error_set(err, IMS_ERR_FORMAT, "%s: crc32 '%.16s' is not 8 hex digits", key, crc);
    const json_value *synthetic = imsi_json_object_get(v, "synthetic");
    if (synthetic && synthetic->kind != JSON_BOOL)
        return ims_error_set(err, IMS_ERR_FORMAT, "%s: 'synthetic' at byte %zu: expected true or false", key,
                             synthetic->offset);
    m->synthetic = synthetic && synthetic->boolean;
    m->bytes = (uint64_t)bytes;
    m->crc32 = (uint32_t)value;
    return IMS_OK;
}

/* The fields version 1 added over time: conse_top (absent: what the indexer
 * always used, 10) and precision (absent: not recorded, -1). */
static ims_status read_optional(const json_value *root, int64_t *conse_top, int *precision, ims_error *err)
{
    *conse_top = INDEX_DEFAULT_CONSE_TOP;
    *precision = -1;
    ims_status st = IMS_OK;
    if (imsi_json_object_get(root, "conse_top"))
        st = get_int(root, "conse_top", 1, INDEX_MAX_CONSE_TOP, conse_top, err);
    const char *name = NULL;
    if (!st && imsi_json_object_get(root, "precision"))
        st = get_string(root, "precision", &name, err);
    if (!st && name) {
        ims_precision p;
        if (ims_precision_parse(name, &p, NULL) != IMS_OK)
            return ims_error_set(err, IMS_ERR_FORMAT, "precision '%.40s': expected fp32, tf32 or fp16", name);
        *precision = (int)p;
    }
    return st;
}

ims_status imsi_index_insert_root(ims_index *idx, size_t at, const char *root, ims_error *err)
{
    char *copy = strdup(root);
    ims_status st = copy ? imsi_index_grow((void **)&idx->roots, &idx->root_cap, idx->root_count + 1,
                                           sizeof *idx->roots, err)
                         : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    if (st) {
        free(copy);
        return st;
    }
    memmove(idx->roots + at + 1, idx->roots + at, (idx->root_count - at) * sizeof *idx->roots);
    idx->roots[at] = copy;
    idx->root_count++;
    return IMS_OK;
}

/* Version 2's own fields: committed, roots, settings, next_chunk. */
static ims_status read_v2(ims_index *idx, const json_value *root, ims_error *err)
{
    const char *committed = NULL;
    ims_status st = get_string(root, "committed", &committed, err);
    if (!st)
        snprintf(idx->committed, sizeof idx->committed, "%s", committed);
    const json_value *roots = st ? NULL : imsi_json_object_get(root, "roots");
    if (!st && (!roots || roots->kind != JSON_ARRAY))
        st = ims_error_set(err, IMS_ERR_FORMAT, "'roots' is missing or not an array");
    for (size_t i = 0; !st && i < roots->arr.count; i++) {
        const json_value *r = &roots->arr.items[i];
        char path[4096];
        size_t len = r->kind == JSON_STRING ? r->str.len : 0;
        if (len == 0 || len >= sizeof path)
            return ims_error_set(err, IMS_ERR_FORMAT, "roots[%zu]: expected a path", i);
        memcpy(path, r->str.ptr, len + 1);
        if (imsi_index_unescape(path, &len) != 0 || strlen(path) != len || path[0] != '/')
            return ims_error_set(err, IMS_ERR_FORMAT, "roots[%zu]: not an absolute path", i);
        st = imsi_index_insert_root(idx, idx->root_count, path, err);
    }
    const json_value *s = st ? NULL : imsi_json_object_get(root, "settings");
    if (!st && (!s || s->kind != JSON_OBJECT))
        st = ims_error_set(err, IMS_ERR_FORMAT, "'settings' is missing or not an object");
    const json_value *every = st ? NULL : imsi_json_object_get(s, "commit_every");
    if (every && (every->kind != JSON_NUMBER || !(every->num.value > 0) || every->num.value > 1e9))
        st = ims_error_set(err, IMS_ERR_FORMAT, "settings: 'commit_every' at byte %zu: expected seconds > 0",
                           every->offset);
    if (every && !st)
        idx->settings.commit_every_s = every->num.value;
    if (!st && imsi_json_object_get(s, "batch"))
        st = get_int(s, "batch", 1, 1 << 20, &idx->settings.batch, err);
    if (!st && imsi_json_object_get(s, "threads"))
        st = get_int(s, "threads", 1, 1 << 10, &idx->settings.threads, err);
    const json_value *shard = st ? NULL : imsi_json_object_get(s, "shard");
    if (shard)
        st = get_int(shard, "count", 1, 1 << 20, &idx->settings.shards, err);
    if (shard && !st)
        st = get_int(shard, "index", 0, idx->settings.shards - 1, &idx->settings.shard, err);
    if (st && shard)
        imsi_error_prefix(err, st, "settings: shard");
    if (!st)
        st = get_int(root, "next_chunk", 0, INDEX_MAX_CHUNK_ID + 1, &idx->next_chunk, err);
    return st;
}

/* Totals the manifest states, checked against the chunks once they are read. */
typedef struct manifest_totals {
    int64_t rows, failures, dead_rows, dead_failures;
} manifest_totals;

static ims_status read_chunks(ims_index *idx, const json_value *root, manifest_totals *t, ims_error *err)
{
    const json_value *chunks = imsi_json_object_get(root, "chunks");
    if (!chunks || chunks->kind != JSON_ARRAY)
        return ims_error_set(err, IMS_ERR_FORMAT, "'chunks' is missing or not an array");
    ims_status st = imsi_index_grow((void **)&idx->chunks, &idx->chunk_cap, chunks->arr.count, sizeof *idx->chunks,
                                    err);
    int64_t row_sum = 0, failure_sum = 0;
    for (size_t i = 0; !st && i < chunks->arr.count; i++) {
        const json_value *ch = &chunks->arr.items[i];
        int64_t r = 0, fl = 0, id = (int64_t)i, dead = 0;
        if (ch->kind != JSON_OBJECT)
            return ims_error_set(err, IMS_ERR_FORMAT, "chunks[%zu]: not an object", i);
        st = get_int(ch, "rows", 0, idx->cfg.chunk_rows, &r, err);
        if (!st)
            st = get_int(ch, "failures", 0, INT64_MAX, &fl, err);
        if (!st && idx->version >= 2)
            st = get_int(ch, "id", 0, INDEX_MAX_CHUNK_ID, &id, err);
        if (!st && idx->version >= 2)
            st = get_int(ch, "tombstones", 0, INT64_MAX, &dead, err);
        if (!st && i > 0 && id <= idx->chunks[i - 1].id)
            st = ims_error_set(err, IMS_ERR_FORMAT, "'id' %lld: ids must grow (the chunk before has %lld)",
                               (long long)id, (long long)idx->chunks[i - 1].id);
        if (!st && id >= idx->next_chunk)
            st = ims_error_set(err, IMS_ERR_FORMAT, "'id' %lld: not below next_chunk %lld", (long long)id,
                               (long long)idx->next_chunk);
        if (st)
            return imsi_error_prefix(err, st, "chunks[%zu]", i);
        idx->chunks[i] = (imsi_chunk){.id = id, .rows = (size_t)r, .failures = (size_t)fl, .tombstones = (size_t)dead};
        st = read_chunk_files(idx, ch, &idx->chunks[i], err);
        if (st)
            return imsi_error_prefix(err, st, "chunks[%zu]", i);
        if (__builtin_add_overflow(row_sum, r, &row_sum) || __builtin_add_overflow(failure_sum, fl, &failure_sum))
            return ims_error_set(err, IMS_ERR_FORMAT, "chunks[%zu]: the counts overflow", i);
        idx->chunk_count = i + 1;
    }
    if (st)
        return st;
    if (row_sum != t->rows || failure_sum != t->failures)
        return ims_error_set(err, IMS_ERR_FORMAT, "the chunks hold %lld rows and %lld failures, the manifest says %lld and %lld",
                             (long long)row_sum, (long long)failure_sum, (long long)t->rows, (long long)t->failures);
    return IMS_OK;
}

static ims_status manifest_parse(ims_index *idx, const json_value *root, manifest_totals *t, ims_error *err)
{
    ims_index_config *c = &idx->cfg;
    const char *format = NULL, *mode = NULL, *dtype = NULL;
    int64_t version = 0, chunk_rows = 0, vdim = 0, sdim = 0, conse_top = 0;
    int precision = -1;
    ims_status st = get_string(root, "format", &format, err);
    if (!st && strcmp(format, INDEX_FORMAT_NAME) != 0)
        st = ims_error_set(err, IMS_ERR_FORMAT, "format '%.40s': not an imgsearch index", format);
    if (!st)
        st = get_int(root, "version", 1, INT32_MAX, &version, err);
    if (!st && version > IMSI_INDEX_VERSION)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED,
                           "index format version %lld: this build reads versions 1 and %d (a newer imgsearch wrote it)",
                           (long long)version, IMSI_INDEX_VERSION);
    if (st)
        return st;
    idx->version = (int)version;
    st = get_string(root, "mode", &mode, err);
    if (!st && ims_preprocess_mode_from_name(mode) < 0)
        st = ims_error_set(err, IMS_ERR_FORMAT, "mode '%.40s': expected torchvision, fid or clean", mode);
    if (!st)
        st = get_string(root, "dtype", &dtype, err);
    if (!st && strcmp(dtype, "f16") != 0 && strcmp(dtype, "f32") != 0)
        st = ims_error_set(err, IMS_ERR_FORMAT, "dtype '%.40s': expected f16 or f32", dtype);
    if (!st)
        st = get_int(root, "chunk_rows", 1, INDEX_MAX_CHUNK_ROWS, &chunk_rows, err);
    if (!st)
        st = get_int(root, "visual_dim", 1, INDEX_MAX_DIM, &vdim, err);
    if (!st)
        st = get_int(root, "semantic_dim", 0, INDEX_MAX_DIM, &sdim, err);
    if (!st)
        st = read_optional(root, &conse_top, &precision, err);
    if (!st)
        st = read_model(idx, root, "image_model", &c->image_model, err);
    if (!st && sdim > 0)
        st = read_model(idx, root, "text_model", &c->text_model, err);
    if (!st)
        st = get_int(root, "rows", 0, INT64_MAX, &t->rows, err);
    if (!st)
        st = get_int(root, "failures", 0, INT64_MAX, &t->failures, err);
    if (st)
        return st;
    c->mode = (ims_preprocess_mode)ims_preprocess_mode_from_name(mode);
    c->dtype = strcmp(dtype, "f16") == 0 ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
    c->chunk_rows = (int)chunk_rows;
    c->visual_dim = (int)vdim;
    c->semantic_dim = (int)sdim;
    c->conse_top = (int)conse_top;
    c->precision = precision;
    if (idx->version >= 2) {
        const json_value *dead = imsi_json_object_get(root, "tombstones");
        if (!dead || dead->kind != JSON_OBJECT)
            return ims_error_set(err, IMS_ERR_FORMAT, "'tombstones' is missing or not an object");
        st = get_int(dead, "rows", 0, t->rows, &t->dead_rows, err);
        if (!st)
            st = get_int(dead, "failures", 0, t->failures, &t->dead_failures, err);
        if (!st)
            st = read_v2(idx, root, err);
        if (st)
            return imsi_error_prefix(err, st, "version 2");
    } else {
        idx->next_chunk = INDEX_MAX_CHUNK_ID + 1; /* ids are positions, checked below */
    }
    st = read_chunks(idx, root, t, err);
    if (!st && idx->version < 2)
        idx->next_chunk = (int64_t)idx->chunk_count;
    return st;
}

/* ---- Chunk files: sizes and CRC-32s ------------------------------------------------- */

ims_status imsi_index_measure(const ims_index *idx, int64_t chunk_id, int which, imsi_chunk_file *out, ims_error *err)
{
    char *path = imsi_index_file_path(idx, chunk_id, imsi_chunk_suffix(which));
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    imsi_file_map map;
    ims_status st = imsi_file_map_open(path, &map, err);
    if (!st) {
        out->bytes = map.size;
        out->crc32 = imsi_isw_crc32(map.data, map.size);
    }
    imsi_file_map_close(&map);
    if (st)
        imsi_error_prefix(err, st, "%s", path);
    free(path);
    return st;
}

/* data (size bytes: the file as read, or NULL to check the size only)
 * against what the manifest recorded for the file at path. */
static ims_status chunk_file_compare(const imsi_chunk *ch, int which, const char *path, const void *data, size_t size,
                                     ims_error *err)
{
    if (!ch->recorded)
        return IMS_OK; /* a version-1 index made before sizes and CRCs were recorded */
    const imsi_chunk_file *want = &ch->files[which];
    if (size != want->bytes)
        return ims_error_set(err, IMS_ERR_CHECKSUM, "%s: %zu bytes, the manifest says %llu: the file was changed or "
                             "replaced", path, size, (unsigned long long)want->bytes);
    if (data && imsi_isw_crc32(data, size) != want->crc32)
        return ims_error_set(err, IMS_ERR_CHECKSUM, "%s: the CRC-32 is not the manifest's %08x: the file was changed "
                             "or replaced", path, (unsigned)want->crc32);
    return IMS_OK;
}

/* Maps chunk file `which` to compare its size (and its CRC-32 if verify_crc). */
static ims_status chunk_file_verify(const ims_index *idx, const imsi_chunk *ch, int which, int verify_crc,
                                    ims_error *err)
{
    char *path = imsi_index_file_path(idx, ch->id, imsi_chunk_suffix(which));
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    imsi_file_map map;
    ims_status st = imsi_file_map_open(path, &map, err);
    if (st == IMS_ERR_IO && errno == ENOENT)
        st = ims_error_set(err, IMS_ERR_NOT_FOUND, "%s: missing (if a compaction ran since the index was opened, "
                           "open it again)", path);
    else if (st)
        imsi_error_prefix(err, st, "%s", path);
    else
        st = chunk_file_compare(ch, which, path, verify_crc ? map.data : NULL, map.size, err);
    imsi_file_map_close(&map);
    free(path);
    return st;
}

/* ---- Reading chunks -------------------------------------------------------------------- */

/* Splits the next line at its tabs into `fields` (which must be exactly
 * `want`); the line is modified in place. Returns the position after it. */
static char *next_line(char *p, char *end, char **fields, int want, int *got)
{
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *stop = nl ? nl : end;
    *got = 0;
    fields[(*got)++] = p;
    for (char *q = p; q < stop; q++)
        if (*q == '\t') {
            *q = '\0';
            if (*got == want) {
                *got = want + 1; /* too many */
                break;
            }
            fields[(*got)++] = q + 1;
        }
    *stop = '\0';
    return nl ? nl + 1 : end;
}

static ims_status unescape_field(char *s, const char *file, size_t line, ims_error *err)
{
    size_t len = strlen(s);
    if (imsi_index_unescape(s, &len) != 0 || len == 0 || strlen(s) != len)
        return ims_error_set(err, IMS_ERR_FORMAT, "%s line %zu: a malformed or empty path", file, line);
    return IMS_OK;
}

static ims_status parse_u64(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return IMS_ERR_FORMAT;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return IMS_ERR_FORMAT;
    *out = v;
    return IMS_OK;
}

/* The shortest line each file can hold: "0<TAB>0<TAB>-<TAB>p\n" (version 1:
 * "0<TAB>0<TAB>p\n"), "0<TAB>0<TAB>p<TAB>r\n" (version 1: "p<TAB>r\n"), "row<TAB>0\n". */
enum { ROW_LINE_MIN = 8, ROW_LINE_MIN_V1 = 6, FAILURE_LINE_MIN = 8, FAILURE_LINE_MIN_V1 = 4, TOMBSTONE_LINE_MIN = 6 };

/* A manifest's count is bounded by the file that holds the lines, before it
 * sizes any memory: a hostile count fails here, not in an allocation. */
static ims_status check_line_count(const char *path, size_t expect, size_t len, size_t line_min, const char *what,
                                   ims_error *err)
{
    if (expect > (len + 1) / line_min) /* the last line may lack its newline */
        return ims_error_set(err, IMS_ERR_FORMAT, "%s: the manifest lists %zu %s, more than its %zu bytes can hold",
                             path, expect, what, len);
    return IMS_OK;
}

/* Reads chunk file `which` whole (checked against the manifest) and its line count bound. */
static ims_status read_text_file(const ims_index *idx, const imsi_chunk *ch, int which, size_t expect, size_t line_min,
                                 const char *what, char **path, char **text, size_t *len, ims_error *err)
{
    *text = NULL;
    *len = 0;
    *path = imsi_index_file_path(idx, ch->id, imsi_chunk_suffix(which));
    if (!*path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    ims_status st = imsi_file_read_text(*path, IMSI_INDEX_TEXT_MAX, text, len, err);
    if (!st)
        st = chunk_file_compare(ch, which, *path, *text, *len, err);
    if (!st)
        st = check_line_count(*path, expect, *len, line_min, what, err);
    return st;
}

static ims_status read_rows_file(ims_index *idx, const imsi_chunk *ch, ims_error *err)
{
    int v1 = idx->version < 2;
    size_t expect = ch->rows;
    char *path = NULL, *text = NULL;
    size_t len = 0;
    ims_status st = read_text_file(idx, ch, IMSI_CHUNK_ROWS, expect, v1 ? ROW_LINE_MIN_V1 : ROW_LINE_MIN, "rows",
                                   &path, &text, &len, err);
    if (!st)
        st = imsi_index_grow((void **)&idx->rows, &idx->row_cap, idx->row_count + expect, sizeof *idx->rows, err);
    char *p = text, *end = text ? text + len : NULL; /* no text when a read or check failed */
    size_t line = 0;
    int want = v1 ? 3 : 4;
    while (!st && p < end) {
        char *fields[4] = {NULL, NULL, NULL, NULL};
        int got;
        p = next_line(p, end, fields, want, &got);
        line++;
        uint64_t size = 0, mtime = 0;
        uint32_t crc = 0;
        int has_crc = 0;
        if (line > expect)
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s: more than the %zu rows the manifest lists", path, expect);
        else if (got != want || parse_u64(fields[0], &size) || parse_u64(fields[1], &mtime) || mtime > INT64_MAX)
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s line %zu: expected size<TAB>mtime_ns<TAB>%spath", path, line,
                               v1 ? "" : "crc32<TAB>");
        else if (!v1 && strcmp(fields[2], "-") != 0 && parse_crc32(fields[2], &crc))
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s line %zu: crc32 is not 8 hex digits or '-'", path, line);
        else
            st = unescape_field(fields[want - 1], path, line, err);
        if (st)
            break;
        has_crc = !v1 && strcmp(fields[2], "-") != 0;
        imsi_row *r = &idx->rows[idx->row_count];
        *r = (imsi_row){.file = {.size = size, .mtime_ns = (int64_t)mtime}, .crc32 = crc, .has_crc = (uint8_t)has_crc};
        if (!(r->file.path = strdup(fields[want - 1]))) {
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
            break;
        }
        idx->row_count++;
    }
    if (!st && line != expect)
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: %zu rows, the manifest lists %zu", path, line, expect);
    free(text);
    free(path);
    return st;
}

static ims_status read_failures_file(ims_index *idx, const imsi_chunk *ch, ims_error *err)
{
    int v1 = idx->version < 2;
    size_t expect = ch->failures;
    char *path = NULL, *text = NULL;
    size_t len = 0;
    ims_status st = read_text_file(idx, ch, IMSI_CHUNK_FAILURES, expect, v1 ? FAILURE_LINE_MIN_V1 : FAILURE_LINE_MIN,
                                   "failures", &path, &text, &len, err);
    if (!st)
        st = imsi_index_grow((void **)&idx->failures, &idx->failure_cap, idx->failure_count + expect,
                             sizeof *idx->failures, err);
    char *p = text, *end = text ? text + len : NULL; /* no text when a read or check failed */
    size_t line = 0;
    int want = v1 ? 2 : 4;
    while (!st && p < end) {
        char *fields[4] = {NULL, NULL, NULL, NULL};
        int got;
        p = next_line(p, end, fields, want, &got);
        line++;
        uint64_t size = 0, mtime = 0;
        if (line > expect)
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s: more than the %zu failures the manifest lists", path, expect);
        else if (got != want || (!v1 && (parse_u64(fields[0], &size) || parse_u64(fields[1], &mtime) ||
                                         mtime > INT64_MAX)))
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s line %zu: expected %spath<TAB>reason", path, line,
                               v1 ? "" : "size<TAB>mtime_ns<TAB>");
        if (!st)
            st = unescape_field(fields[want - 2], path, line, err);
        if (!st)
            st = unescape_field(fields[want - 1], path, line, err);
        if (st)
            break;
        imsi_failure *fp = &idx->failures[idx->failure_count];
        *fp = (imsi_failure){.size = size, .mtime_ns = (int64_t)mtime};
        fp->problem.path = strdup(fields[want - 2]);
        fp->problem.reason = strdup(fields[want - 1]);
        if (!fp->problem.path || !fp->problem.reason) {
            free(fp->problem.path);
            free(fp->problem.reason);
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
            break;
        }
        idx->failure_count++;
    }
    if (!st && line != expect)
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: %zu failures, the manifest lists %zu", path, line, expect);
    free(text);
    free(path);
    return st;
}

/* Marks a record dead. A tombstone names a record of an earlier chunk that is
 * not tombstoned yet; one hidden by a later record of its path (shadowed) may
 * be: a writer persists those. */
static ims_status apply_tombstone(ims_index *idx, int64_t ref, size_t rows, size_t failures, const char *what,
                                  ims_error *err)
{
    int64_t i = imsi_ref_index(ref);
    int failure = imsi_ref_is_failure(ref);
    if (i < 0 || (uint64_t)i >= (failure ? failures : rows))
        return ims_error_set(err, IMS_ERR_FORMAT, "%s: %s %lld is not a record of an earlier chunk", what,
                             failure ? "failure" : "row", (long long)i);
    uint8_t *dead = failure ? &idx->failures[i].dead : &idx->rows[i].dead;
    if (*dead == 1)
        return ims_error_set(err, IMS_ERR_FORMAT, "%s: %s %lld is tombstoned twice", what, failure ? "failure" : "row",
                             (long long)i);
    if (*dead == 0) {
        if (failure)
            idx->dead_failures++;
        else
            idx->dead_rows++;
    }
    *dead = 1;
    return IMS_OK;
}

static ims_status read_tombstones_file(ims_index *idx, imsi_chunk *ch, ims_error *err)
{
    if (ch->tombstones == 0)
        return IMS_OK;
    char *path = NULL, *text = NULL;
    size_t len = 0;
    ims_status st = read_text_file(idx, ch, IMSI_CHUNK_TOMBSTONES, ch->tombstones, TOMBSTONE_LINE_MIN, "tombstones",
                                   &path, &text, &len, err);
    char *p = text, *end = text ? text + len : NULL; /* no text when a read or check failed */
    size_t line = 0;
    while (!st && p < end) {
        char *fields[2] = {NULL, NULL};
        int got;
        p = next_line(p, end, fields, 2, &got);
        line++;
        uint64_t id = 0;
        int failure = got == 2 && strcmp(fields[0], "failure") == 0;
        if (line > ch->tombstones)
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s: more than the %zu tombstones the manifest lists", path,
                               ch->tombstones);
        else if (got != 2 || (!failure && strcmp(fields[0], "row") != 0) || parse_u64(fields[1], &id) ||
                 id > INT64_MAX / 2)
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s line %zu: expected row<TAB>ID or failure<TAB>ID", path, line);
        else {
            char what[64];
            snprintf(what, sizeof what, "line %zu", line);
            st = apply_tombstone(idx, failure ? imsi_ref_failure((int64_t)id) : (int64_t)id, idx->row_count,
                                 idx->failure_count, what, err);
            if (st)
                imsi_error_prefix(err, st, "%s", path);
            else if (failure)
                ch->dead_failures++;
            else
                ch->dead_rows++;
        }
    }
    if (!st && line != ch->tombstones)
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: %zu tombstones, the manifest lists %zu", path, line,
                           ch->tombstones);
    free(text);
    free(path);
    return st;
}

ims_status imsi_index_map_records(ims_index *idx, size_t row, size_t failure, ims_error *err)
{
    ims_status st = IMS_OK;
    size_t rows = idx->row_count, failures = idx->failure_count;
    for (size_t i = row; !st && i < rows + failures - failure; i++) {
        int is_failure = i >= rows;
        int64_t ref = is_failure ? imsi_ref_failure((int64_t)(i - rows + failure)) : (int64_t)i;
        const char *path = is_failure ? idx->failures[i - rows + failure].problem.path : idx->rows[i].file.path;
        if (is_failure ? idx->failures[imsi_ref_index(ref)].dead : idx->rows[i].dead)
            continue;
        int had = 0;
        int64_t old = 0;
        st = path_map_put(&idx->paths, path, ref, &had, &old, err);
        if (st || !had)
            continue;
        uint8_t *dead = imsi_ref_is_failure(old) ? &idx->failures[imsi_ref_index(old)].dead
                                                 : &idx->rows[imsi_ref_index(old)].dead;
        if (*dead)
            continue;
        *dead = 2; /* shadowed: dead to readers, tombstoned by the next writer */
        if (imsi_ref_is_failure(old))
            idx->dead_failures++;
        else
            idx->dead_rows++;
        st = imsi_index_grow((void **)&idx->shadowed, &idx->shadowed_cap, idx->shadowed_count + 1,
                             sizeof *idx->shadowed, err);
        if (!st)
            idx->shadowed[idx->shadowed_count++] = old;
    }
    return st;
}

ims_status imsi_index_reindex(ims_index *idx, ims_error *err)
{
    size_t live = idx->row_count - idx->dead_rows;
    int64_t *ids = malloc((live ? live : 1) * sizeof *ids);
    int64_t *first = malloc((idx->chunk_count + 1) * sizeof *first);
    if (!ids || !first) {
        free(ids);
        free(first);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %zu rows", idx->row_count);
    }
    size_t n = 0;
    for (size_t i = 0; i < idx->row_count; i++)
        if (!idx->rows[i].dead && n < live)
            ids[n++] = (int64_t)i;
    int64_t at = 0;
    for (size_t c = 0; c < idx->chunk_count; c++) {
        first[c] = at;
        at += (int64_t)idx->chunks[c].rows;
    }
    first[idx->chunk_count] = at;
    free(idx->live);
    free(idx->row_chunk);
    idx->live = ids;
    idx->live_count = n;
    idx->row_chunk = first;
    return IMS_OK;
}

ims_status imsi_index_load(ims_index *idx, ims_error *err)
{
    char *path = imsi_index_file_path(idx, 0, NULL);
    char *text = NULL;
    size_t len = 0;
    ims_status st = path ? imsi_file_read_text(path, IMSI_INDEX_TEXT_MAX, &text, &len, err)
                         : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    if (st == IMS_ERR_NOT_FOUND)
        st = ims_error_set(err, IMS_ERR_NOT_FOUND, "not an index: it has no manifest.json");
    json_doc doc = {0};
    manifest_totals totals = {0};
    if (!st) {
        st = imsi_json_parse(text, len, NULL, &doc, err);
        if (!st && doc.root->kind != JSON_OBJECT)
            st = ims_error_set(err, IMS_ERR_FORMAT, "not a JSON object");
        if (!st)
            st = manifest_parse(idx, doc.root, &totals, err);
        if (st)
            imsi_error_prefix(err, st, "%s", path);
    }
    imsi_json_doc_free(&doc);
    free(text);
    free(path);
    /* Per chunk: its tombstones (they name earlier records), its records, their paths. */
    for (size_t c = 0; !st && c < idx->chunk_count; c++) {
        imsi_chunk *ch = &idx->chunks[c];
        size_t row = idx->row_count, failure = idx->failure_count;
        st = read_tombstones_file(idx, ch, err);
        if (!st)
            st = read_rows_file(idx, ch, err);
        if (!st)
            st = read_failures_file(idx, ch, err);
        if (!st)
            st = imsi_index_map_records(idx, row, failure, err);
        for (int k = IMSI_CHUNK_VISUAL; !st && k <= IMSI_CHUNK_SEMANTIC; k++)
            if (chunk_has(idx, ch, k))
                st = chunk_file_verify(idx, ch, k, 0, err); /* sizes now; CRCs when a table is loaded */
    }
    if (!st && idx->version >= 2) {
        size_t dead_rows = 0, dead_failures = 0;
        for (size_t c = 0; c < idx->chunk_count; c++) {
            dead_rows += idx->chunks[c].dead_rows;
            dead_failures += idx->chunks[c].dead_failures;
        }
        if ((int64_t)dead_rows != totals.dead_rows || (int64_t)dead_failures != totals.dead_failures)
            st = ims_error_set(err, IMS_ERR_FORMAT, "the chunks' tombstones retire %zu rows and %zu failures, the "
                               "manifest says %lld and %lld", dead_rows, dead_failures, (long long)totals.dead_rows,
                               (long long)totals.dead_failures);
    }
    if (!st)
        st = imsi_index_reindex(idx, err);
    return st;
}

ims_index *imsi_index_new(const char *dir, ims_error *err)
{
    ims_index *idx = calloc(1, sizeof *idx);
    if (idx && !(idx->dir = strdup(dir))) {
        free(idx);
        idx = NULL;
    }
    if (!idx) {
        ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    idx->lock_fd = -1;
    idx->version = IMSI_INDEX_VERSION;
    return idx;
}

ims_status ims_index_open(const char *dir, ims_index **out, ims_error *err)
{
    *out = NULL;
    ims_index *idx = imsi_index_new(dir, err);
    if (!idx)
        return IMS_ERR_NOMEM;
    ims_status st = imsi_index_load(idx, err);
    if (st) {
        ims_index_close(idx);
        return imsi_error_prefix(err, st, "index '%s'", dir);
    }
    *out = idx;
    return IMS_OK;
}

void imsi_index_free_records(ims_index *idx)
{
    size_t rows = idx->row_count + idx->pending_rows, failures = idx->failure_count + idx->pending_failures;
    for (size_t i = 0; i < rows; i++)
        free(idx->rows[i].file.path);
    for (size_t i = 0; i < failures; i++) {
        free(idx->failures[i].problem.path);
        free(idx->failures[i].problem.reason);
    }
    free(idx->rows);
    free(idx->failures);
    free(idx->chunks);
    free(idx->paths.keys);
    free(idx->paths.refs);
    free(idx->live);
    free(idx->row_chunk);
    free(idx->shadowed);
    free(idx->pending_dead);
    idx->rows = NULL;
    idx->failures = NULL;
    idx->chunks = NULL;
    idx->paths = (imsi_path_map){0};
    idx->live = idx->row_chunk = idx->shadowed = idx->pending_dead = NULL;
    idx->row_count = idx->row_cap = idx->failure_count = idx->failure_cap = idx->chunk_count = idx->chunk_cap = 0;
    idx->pending_rows = idx->pending_failures = idx->pending_dead_count = idx->pending_dead_cap = 0;
    idx->live_count = idx->shadowed_count = idx->shadowed_cap = idx->dead_rows = idx->dead_failures = 0;
}

void ims_index_close(ims_index *idx)
{
    if (!idx)
        return;
    imsi_index_free_records(idx);
    for (size_t i = 0; i < idx->root_count; i++)
        free(idx->roots[i]);
    free(idx->roots);
    free(idx->pending_visual);
    free(idx->pending_semantic);
    if (idx->lock_fd >= 0)
        close(idx->lock_fd); /* the writer lock goes with it (imsi_index_unlock, without the link back) */
    free(idx->dir);
    free(idx);
}

/* ---- Accessors ---------------------------------------------------------------------------- */

const ims_index_config *ims_index_get_config(const ims_index *idx) { return &idx->cfg; }
int64_t ims_index_row_count(const ims_index *idx) { return (int64_t)idx->row_count; }
int64_t ims_index_failure_count(const ims_index *idx) { return (int64_t)idx->failure_count; }
int64_t ims_index_chunk_count(const ims_index *idx) { return (int64_t)idx->chunk_count; }
int64_t ims_index_live_row_count(const ims_index *idx) { return (int64_t)idx->live_count; }

int64_t ims_index_live_row(const ims_index *idx, int64_t i)
{
    return i >= 0 && (uint64_t)i < idx->live_count ? idx->live[i] : -1;
}

int64_t ims_index_live_rows(const ims_index *idx, int64_t *out, int64_t cap)
{
    int64_t n = (int64_t)idx->live_count;
    if (out && cap > 0)
        memcpy(out, idx->live, (size_t)(cap < n ? cap : n) * sizeof *out);
    return n;
}

ims_status ims_index_chunk(const ims_index *idx, int64_t c, int64_t *id, int64_t *first_row, int64_t *rows,
                           ims_error *err)
{
    if (c < 0 || (uint64_t)c >= idx->chunk_count || !idx->row_chunk)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s': chunk %lld is out of range (%zu chunks)", idx->dir,
                             (long long)c, idx->chunk_count);
    *id = idx->chunks[c].id;
    *first_row = idx->row_chunk[c];
    *rows = idx->row_chunk[c + 1] - idx->row_chunk[c];
    return IMS_OK;
}

int imsi_index_lookup(const ims_index *idx, const char *path, int64_t *ref)
{
    size_t slot;
    if (!path_map_find(&idx->paths, path, &slot))
        return 0;
    int64_t r = idx->paths.refs[slot];
    int dead = imsi_ref_is_failure(r) ? idx->failures[imsi_ref_index(r)].dead : idx->rows[r].dead;
    if (dead)
        return 0;
    *ref = r;
    return 1;
}

int ims_index_contains(const ims_index *idx, const char *path)
{
    int64_t ref;
    return imsi_index_lookup(idx, path, &ref);
}

const ims_file_entry *ims_index_row(const ims_index *idx, int64_t row)
{
    return row >= 0 && (uint64_t)row < idx->row_count ? &idx->rows[row].file : NULL;
}

const ims_file_problem *ims_index_failure(const ims_index *idx, int64_t i)
{
    return i >= 0 && (uint64_t)i < idx->failure_count ? &idx->failures[i].problem : NULL;
}

int ims_index_row_live(const ims_index *idx, int64_t row)
{
    return row >= 0 && (uint64_t)row < idx->row_count && !idx->rows[row].dead;
}

int ims_index_failure_live(const ims_index *idx, int64_t i)
{
    return i >= 0 && (uint64_t)i < idx->failure_count && !idx->failures[i].dead;
}

/* The position in idx->chunks of the chunk holding row `row` (committed). */
static size_t chunk_of_row(const ims_index *idx, int64_t row)
{
    size_t lo = 0, hi = idx->chunk_count; /* row_chunk[lo] <= row < row_chunk[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (idx->row_chunk[mid] <= row)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

ims_status ims_index_row_location(const ims_index *idx, int64_t row, int64_t *chunk, int64_t *offset,
                                  ims_error *err)
{
    if (row < 0 || (uint64_t)row >= idx->row_count || !idx->row_chunk)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s': row %lld is out of range (%zu rows)", idx->dir,
                             (long long)row, idx->row_count);
    size_t c = chunk_of_row(idx, row);
    *chunk = idx->chunks[c].id;
    *offset = row - idx->row_chunk[c];
    return IMS_OK;
}

static uint64_t file_bytes(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : 0;
}

void ims_index_get_info(const ims_index *idx, ims_index_info *out)
{
    memset(out, 0, sizeof *out);
    out->version = idx->version;
    out->rows = (int64_t)idx->row_count;
    out->live_rows = (int64_t)idx->live_count;
    out->failures = (int64_t)idx->failure_count;
    out->live_failures = (int64_t)(idx->failure_count - idx->dead_failures);
    out->chunks = (int64_t)idx->chunk_count;
    out->root_count = (int64_t)idx->root_count;
    snprintf(out->committed, sizeof out->committed, "%s", idx->committed);
    char *path = imsi_index_file_path(idx, 0, NULL);
    out->disk_bytes = file_bytes(path);
    free(path);
    size_t len = strlen(idx->dir) + 32;
    if ((path = malloc(len))) {
        snprintf(path, len, "%s/classes.npy", idx->dir);
        out->disk_bytes += file_bytes(path);
        free(path);
    }
    for (size_t c = 0; c < idx->chunk_count; c++)
        for (int k = 0; k < IMSI_CHUNK_FILES; k++) {
            const imsi_chunk *ch = &idx->chunks[c];
            if (!chunk_has(idx, ch, k))
                continue;
            if (ch->recorded) {
                out->disk_bytes += ch->files[k].bytes;
            } else if (k != IMSI_CHUNK_TOMBSTONES) {
                path = imsi_index_file_path(idx, ch->id, imsi_chunk_suffix(k));
                out->disk_bytes += file_bytes(path);
                free(path);
            }
        }
}

const char *ims_index_root(const ims_index *idx, int64_t i)
{
    return i >= 0 && (uint64_t)i < idx->root_count ? idx->roots[i] : NULL;
}

/* ---- Loading tables ------------------------------------------------------------------ */

ims_status imsi_index_map_table(const ims_index *idx, size_t c, int which, int verify_crc, ims_npy **npy,
                                ims_error *err)
{
    *npy = NULL;
    const imsi_chunk *ch = &idx->chunks[c];
    int dim = which == IMSI_CHUNK_SEMANTIC ? idx->cfg.semantic_dim : idx->cfg.visual_dim;
    char *path = imsi_index_file_path(idx, ch->id, imsi_chunk_suffix(which));
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    ims_dtype want = idx->cfg.dtype;
    ims_status st = chunk_file_verify(idx, ch, which, verify_crc, err);
    if (!st)
        st = ims_npy_open(path, npy, err);
    const int64_t *shape = st ? NULL : ims_npy_shape(*npy);
    if (!st && ims_npy_dtype(*npy) != want)
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: dtype %s, the manifest says %s", path,
                           ims_npy_dtype_descr(ims_npy_dtype(*npy)), ims_npy_dtype_descr(want));
    else if (!st && (ims_npy_ndim(*npy) != 2 || shape[0] != (int64_t)ch->rows || shape[1] != dim))
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: shape is not (%zu, %d) as the manifest says", path, ch->rows, dim);
    if (st) {
        ims_npy_close(*npy);
        *npy = NULL;
    }
    free(path);
    return st;
}

/* Runs of live rows of chunk c: [*start, *end) relative to the chunk, from
 * *end on; 0 when there are no more. */
static int next_live_run(const ims_index *idx, size_t c, size_t *start, size_t *end)
{
    const imsi_row *rows = idx->rows + idx->row_chunk[c];
    size_t n = idx->chunks[c].rows, i = *end;
    while (i < n && rows[i].dead)
        i++;
    if (i >= n)
        return 0;
    *start = i;
    while (i < n && !rows[i].dead)
        i++;
    *end = i;
    return 1;
}

ims_status ims_index_load_table(const ims_index *idx, ims_index_table table, float **rows, int *dim,
                                ims_error *err)
{
    *rows = NULL;
    int d = table == IMS_INDEX_TABLE_SEMANTIC ? idx->cfg.semantic_dim : idx->cfg.visual_dim;
    if (d == 0)
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "index '%s' has no semantic table (it was built without a text model)",
                             idx->dir);
    *dim = d;
    size_t n = idx->live_count, bytes;
    if (!imsi_size_mul(n ? n : 1, (size_t)d * sizeof(float), &bytes))
        return ims_error_set(err, IMS_ERR_NOMEM, "a table of %zu x %d does not fit in memory", n, d);
    float *out = malloc(bytes);
    if (!out)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for a table of %zu x %d", n, d);
    int which = table == IMS_INDEX_TABLE_SEMANTIC ? IMSI_CHUNK_SEMANTIC : IMSI_CHUNK_VISUAL;
    size_t at = 0;
    ims_status st = IMS_OK;
    for (size_t c = 0; !st && c < idx->chunk_count; c++) {
        ims_npy *npy;
        st = imsi_index_map_table(idx, c, which, 1, &npy, err);
        size_t start = 0, end = 0;
        while (!st && next_live_run(idx, c, &start, &end)) {
            const void *data = ims_npy_data(npy);
            for (size_t i = start * (size_t)d; i < end * (size_t)d; i++)
                out[at++] = ims_npy_dtype(npy) == IMS_DTYPE_F32 ? ((const float *)data)[i]
                                                                : ims_f16_to_f32(((const uint16_t *)data)[i]);
        }
        ims_npy_close(npy);
    }
    if (st) {
        free(out);
        return imsi_error_prefix(err, st, "index '%s'", idx->dir);
    }
    *rows = out;
    return IMS_OK;
}

ims_status ims_index_load_knn(const ims_index *idx, ims_index_table table, int verify, ims_knn_table *knn,
                              ims_error *err)
{
    int d = table == IMS_INDEX_TABLE_SEMANTIC ? idx->cfg.semantic_dim : idx->cfg.visual_dim;
    if (d == 0)
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "index '%s' has no semantic table (it was built without a text model)",
                             idx->dir);
    if (ims_knn_dim(knn) != d)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s': its %s table has %d columns, the k-NN table %lld",
                             idx->dir, table == IMS_INDEX_TABLE_SEMANTIC ? "semantic" : "visual", d,
                             (long long)ims_knn_dim(knn));
    int which = table == IMS_INDEX_TABLE_SEMANTIC ? IMSI_CHUNK_SEMANTIC : IMSI_CHUNK_VISUAL;
    ims_status st = ims_knn_reserve(knn, ims_knn_rows(knn) + (int64_t)idx->live_count, err);
    for (size_t c = 0; !st && c < idx->chunk_count; c++) {
        ims_npy *npy;
        st = imsi_index_map_table(idx, c, which, verify, &npy, err);
        size_t start = 0, end = 0, row_bytes = (size_t)d * ims_dtype_size(idx->cfg.dtype);
        while (!st && next_live_run(idx, c, &start, &end))
            st = ims_knn_append(knn, (const char *)ims_npy_data(npy) + start * row_bytes, ims_npy_dtype(npy),
                                (int64_t)(end - start), err);
        ims_npy_close(npy);
        if (st)
            imsi_error_prefix(err, st, "chunk %lld", (long long)idx->chunks[c].id);
    }
    return st ? imsi_error_prefix(err, st, "index '%s'", idx->dir) : IMS_OK;
}

/* ---- Class embeddings ------------------------------------------------------------------ */

static char *classes_path(const ims_index *idx)
{
    size_t len = strlen(idx->dir) + 32;
    char *p = malloc(len);
    if (p)
        snprintf(p, len, "%s/classes.npy", idx->dir);
    return p;
}

ims_status ims_index_save_class_embeddings(ims_index *idx, const float *emb, int classes, ims_error *err)
{
    if (!idx->writable)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s' was opened read-only", idx->dir);
    if (idx->cfg.semantic_dim == 0 || classes < 1)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s': class embeddings need a semantic table", idx->dir);
    char *path = classes_path(idx);
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    int64_t shape[2] = {classes, idx->cfg.semantic_dim};
    ims_status st = ims_npy_write(path, IMS_DTYPE_F32, 2, shape, emb, err);
    free(path);
    return st;
}

ims_status ims_index_load_class_embeddings(const ims_index *idx, float **emb, int *classes, ims_error *err)
{
    *emb = NULL;
    *classes = 0;
    char *path = classes_path(idx);
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    struct stat sb;
    if (stat(path, &sb) != 0) {
        ims_status st = ims_error_set(err, IMS_ERR_NOT_FOUND, "index '%s' holds no class embeddings", idx->dir);
        free(path);
        return st;
    }
    ims_npy *npy = NULL;
    ims_status st = ims_npy_open(path, &npy, err);
    const int64_t *shape = st ? NULL : ims_npy_shape(npy);
    if (!st && (ims_npy_dtype(npy) != IMS_DTYPE_F32 || ims_npy_ndim(npy) != 2 || shape[1] != idx->cfg.semantic_dim ||
                shape[0] < 1 || shape[0] > INDEX_MAX_DIM))
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: expected float32 of shape (classes, %d)", path, idx->cfg.semantic_dim);
    if (!st && !(*emb = malloc(ims_npy_nbytes(npy))))
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    if (!st) {
        memcpy(*emb, ims_npy_data(npy), ims_npy_nbytes(npy));
        *classes = (int)shape[0];
    }
    ims_npy_close(npy);
    free(path);
    return st;
}

/* ---- The models an index was built with ------------------------------------------------ */

ims_status imsi_index_open_model(const char *given, const ims_weights_identity *recorded, const char *what,
                                 ims_weights **out, ims_error *err)
{
    const char *path = given ? given : recorded->path;
    ims_weights_identity now;
    *out = NULL;
    if (!path[0])
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "the index does not record where its %s model is: give it",
                             what);
    ims_status st = ims_weights_open(path, 0, out, err);
    if (st)
        imsi_error_prefix(err, st, "%s model%s", what, given ? "" : " (the path the index recorded)");
    if (!st)
        st = ims_weights_identify(*out, &now, err);
    if (!st && (now.bytes != recorded->bytes || now.crc32 != recorded->crc32))
        st = ims_error_set(err, IMS_ERR_ARGUMENT,
                           "%s model '%.200s' (crc32 %08x) is not the one the index was built with ('%.200s', crc32 %08x)",
                           what, path, (unsigned)now.crc32, recorded->name, (unsigned)recorded->crc32);
    if (st) {
        ims_weights_close(*out);
        *out = NULL;
    }
    return st;
}
