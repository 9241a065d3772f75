/* index/store.c: the image index on disk (docs/FORMAT.md, "The index").
 *
 * A folder holding, for chunk c (6 digits):
 *   chunk-c.visual.npy     (rows, visual_dim) f16 or f32
 *   chunk-c.semantic.npy   (rows, semantic_dim), when the index has a text model
 *   chunk-c.rows.txt       "size<TAB>mtime_ns<TAB>path" per row, aligned with the tables
 *   chunk-c.failures.txt   "path<TAB>reason" per file that could not be indexed
 * and manifest.json, which lists the committed chunks. A chunk's files are each
 * written to a temporary name, synced and renamed, then the manifest is replaced
 * the same way: the manifest is the commit point. Files of chunks it does not
 * list are leftovers of a crash; the next commit overwrites them.
 */
#define _POSIX_C_SOURCE 200809L
#include "index/store.h"

#include "core/atomic_file.h"
#include "core/checked.h"
#include "core/file_map.h"
#include "io/weights_format.h"
#include "core/error.h"
#include "core/json.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define INDEX_FORMAT_NAME "imgsearch-index"
#define INDEX_FORMAT_VERSION 1
#define INDEX_MAX_DIM 65536
#define INDEX_MAX_CHUNK_ROWS (1 << 20)
#define INDEX_MAX_CONSE_TOP 100000
/* What indexes made before the manifest recorded conse_top were made with. */
#define INDEX_DEFAULT_CONSE_TOP 10

/* The files of a chunk; a manifest records each one's size and CRC-32. */
enum { CHUNK_VISUAL, CHUNK_SEMANTIC, CHUNK_ROWS, CHUNK_FAILURES, CHUNK_FILES };
static const char *const chunk_suffix[CHUNK_FILES] = {"visual.npy", "semantic.npy", "rows.txt", "failures.txt"};

typedef struct chunk_file {
    uint64_t bytes;
    uint32_t crc32;
} chunk_file;

typedef struct index_chunk {
    size_t rows, failures;
    int recorded;                 /* the manifest holds files[] (indexes made before it did not) */
    chunk_file files[CHUNK_FILES]; /* CHUNK_SEMANTIC only with a semantic table */
} index_chunk;

/* An open-addressing set of the paths the index holds (rows and failures). */
typedef struct path_set {
    const char **slots;
    size_t cap, count;
} path_set;

struct ims_index {
    char *dir;
    ims_index_config cfg;
    int writable;

    index_chunk *chunks; /* committed */
    size_t chunk_count, chunk_cap;
    ims_file_entry *rows;
    size_t row_count, row_cap;
    ims_file_problem *failures;
    size_t failure_count, failure_cap;
    path_set paths;

    /* Pending (not yet committed): rows [row_count, row_count + pending_rows)
     * of `rows`, failures likewise, embeddings in f32 until written. */
    size_t pending_rows, pending_failures;
    float *pending_visual;   /* (chunk_rows, visual_dim) */
    float *pending_semantic; /* (chunk_rows, semantic_dim) or NULL */
};

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

/* ---- The path set -------------------------------------------------------------------- */

static uint64_t path_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int path_set_find(const path_set *ps, const char *path, size_t *slot)
{
    if (ps->cap == 0)
        return 0;
    size_t i = (size_t)path_hash(path) & (ps->cap - 1);
    while (ps->slots[i]) {
        if (strcmp(ps->slots[i], path) == 0) {
            *slot = i;
            return 1;
        }
        i = (i + 1) & (ps->cap - 1);
    }
    *slot = i;
    return 0;
}

/* The set points at strings it does not own (the rows' and failures' paths). */
static ims_status path_set_add(path_set *ps, const char *path, ims_error *err)
{
    if ((ps->count + 1) * 2 > ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 1024;
        const char **slots = calloc(cap, sizeof *slots);
        if (!slots)
            return ims_error_set(err, IMS_ERR_NOMEM, "out of memory (path set of %zu)", cap);
        path_set bigger = {slots, cap, 0};
        for (size_t i = 0; i < ps->cap; i++) {
            size_t slot = 0;
            if (ps->slots[i] && !path_set_find(&bigger, ps->slots[i], &slot)) {
                bigger.slots[slot] = ps->slots[i];
                bigger.count++;
            }
        }
        free(ps->slots);
        *ps = bigger;
    }
    size_t slot = 0;
    if (!path_set_find(ps, path, &slot)) {
        ps->slots[slot] = path;
        ps->count++;
    }
    return IMS_OK;
}

/* ---- Small helpers ------------------------------------------------------------------- */

/* The largest rows.txt, failures.txt or manifest read (a bound, not a
 * format limit: a chunk's lines fit with room to spare). */
#define INDEX_TEXT_MAX ((size_t)1 << 31)

static ims_status grow(void **items, size_t *cap, size_t need, size_t item_size, ims_error *err)
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

static char *index_file_path(const ims_index *idx, size_t chunk, const char *suffix)
{
    size_t len = strlen(idx->dir) + 64;
    char *p = malloc(len);
    if (p) {
        if (suffix)
            snprintf(p, len, "%s/chunk-%06zu.%s", idx->dir, chunk, suffix);
        else
            snprintf(p, len, "%s/manifest.json", idx->dir);
    }
    return p;
}

static const char *mode_name(ims_preprocess_mode mode)
{
    return mode == IMS_PREPROCESS_FID ? "fid" : "torchvision";
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

/* ---- The manifest ---------------------------------------------------------------------- */

static void write_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void write_model(FILE *f, const char *key, const ims_weights_identity *m)
{
    fprintf(f, "  \"%s\": {\"name\": ", key);
    write_json_string(f, m->name);
    fprintf(f, ", \"path\": ");
    write_json_string(f, m->path);
    fprintf(f, ", \"bytes\": %llu, \"crc32\": \"%08x\", \"synthetic\": %s},\n", (unsigned long long)m->bytes,
            (unsigned)m->crc32, m->synthetic ? "true" : "false");
}

static ims_status manifest_write(const ims_index *idx, size_t chunk_count, size_t rows, size_t failures,
                                 ims_error *err)
{
    char *path = index_file_path(idx, 0, NULL);
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    imsi_atomic_file af;
    ims_status st = imsi_atomic_file_open(&af, path, err);
    free(path);
    if (st)
        return st;
    const ims_index_config *c = &idx->cfg;
    FILE *f = af.f;
    fprintf(f, "{\n  \"format\": \"%s\",\n  \"version\": %d,\n", INDEX_FORMAT_NAME, INDEX_FORMAT_VERSION);
    fprintf(f, "  \"tool_version\": \"%s\",\n", IMS_VERSION_STRING);
    fprintf(f, "  \"mode\": \"%s\",\n  \"dtype\": \"%s\",\n", mode_name(c->mode), ims_dtype_name(c->dtype));
    fprintf(f, "  \"chunk_rows\": %d,\n", c->chunk_rows);
    fprintf(f, "  \"visual_dim\": %d,\n  \"semantic_dim\": %d,\n", c->visual_dim, c->semantic_dim);
    if (c->semantic_dim > 0)
        fprintf(f, "  \"conse_top\": %d,\n", c->conse_top);
    if (c->precision >= 0)
        fprintf(f, "  \"precision\": \"%s\",\n", ims_precision_name((ims_precision)c->precision));
    write_model(f, "image_model", &c->image_model);
    if (c->semantic_dim > 0)
        write_model(f, "text_model", &c->text_model);
    fprintf(f, "  \"rows\": %zu,\n  \"failures\": %zu,\n  \"chunks\": [", rows, failures);
    for (size_t i = 0; i < chunk_count; i++) {
        const index_chunk *ch = &idx->chunks[i];
        fprintf(f, "%s\n    {\"rows\": %zu, \"failures\": %zu, \"files\": {", i ? "," : "", ch->rows, ch->failures);
        for (int k = 0, n = 0; k < CHUNK_FILES; k++)
            if (k != CHUNK_SEMANTIC || c->semantic_dim > 0)
                fprintf(f, "%s\"%s\": {\"bytes\": %llu, \"crc32\": \"%08x\"}", n++ ? ", " : "", chunk_suffix[k],
                        (unsigned long long)ch->files[k].bytes, (unsigned)ch->files[k].crc32);
        fprintf(f, "}}");
    }
    fprintf(f, "%s]\n}\n", chunk_count ? "\n  " : "");
    if (ferror(f)) {
        imsi_atomic_file_abort(&af);
        return ims_error_set(err, IMS_ERR_IO, "writing the manifest of '%s' failed", idx->dir);
    }
    return imsi_atomic_file_commit(&af, err);
}

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

/* "0a0b0c0d" -> 0x0a0b0c0d: exactly 8 hex digits; IMS_ERR_FORMAT otherwise. */
static ims_status parse_crc32(const char *text, uint32_t *out)
{
    if (strlen(text) != 8 || strspn(text, "0123456789abcdefABCDEF") != 8)
        return IMS_ERR_FORMAT;
    *out = (uint32_t)strtoul(text, NULL, 16);
    return IMS_OK;
}

/* A chunk's "files": {"visual.npy": {"bytes": N, "crc32": "..."}, ...}, each file
 * the index has; absent in indexes made before it was recorded. */
static ims_status read_chunk_files(const json_value *ch, int semantic, index_chunk *out, ims_error *err)
{
    const json_value *files = imsi_json_object_get(ch, "files");
    if (!files)
        return IMS_OK;
    if (files->kind != JSON_OBJECT)
        return ims_error_set(err, IMS_ERR_FORMAT, "'files' at byte %zu: expected an object", files->offset);
    for (int k = 0; k < CHUNK_FILES; k++) {
        if (k == CHUNK_SEMANTIC && !semantic)
            continue;
        const json_value *f = imsi_json_object_get(files, chunk_suffix[k]);
        const char *crc = NULL;
        int64_t bytes = 0;
        ims_status st = f && f->kind == JSON_OBJECT ? IMS_OK
                                                    : ims_error_set(err, IMS_ERR_FORMAT, "'%s' is missing", chunk_suffix[k]);
        if (!st)
            st = get_int(f, "bytes", 0, INT64_MAX, &bytes, err);
        if (!st)
            st = get_string(f, "crc32", &crc, err);
        if (!st && parse_crc32(crc, &out->files[k].crc32))
            st = ims_error_set(err, IMS_ERR_FORMAT, "crc32 '%.16s' is not 8 hex digits", crc);
        if (st)
            return imsi_error_prefix(err, st, "files: %s", chunk_suffix[k]);
        out->files[k].bytes = (uint64_t)bytes;
    }
    out->recorded = 1;
    return IMS_OK;
}

static ims_status read_model(const json_value *root, const char *key, ims_weights_identity *m, ims_error *err)
{
    const json_value *v = imsi_json_object_get(root, key);
    if (!v || v->kind != JSON_OBJECT)
        return ims_error_set(err, IMS_ERR_FORMAT, "'%s' is missing or not an object", key);
    const char *name = NULL, *path = NULL, *crc = NULL;
    int64_t bytes = 0;
    ims_status st = get_string(v, "name", &name, err);
    if (!st)
        st = get_string(v, "path", &path, err);
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
    snprintf(m->name, sizeof m->name, "%s", name);
    snprintf(m->path, sizeof m->path, "%s", path);
    m->bytes = (uint64_t)bytes;
    m->crc32 = (uint32_t)value;
    return IMS_OK;
}

/* The fields later versions of the manifest added: conse_top (absent: what
 * the indexer always used, 10) and precision (absent: not recorded, -1). */
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

static ims_status manifest_parse(ims_index *idx, const json_value *root, int64_t *rows, int64_t *failures,
                                 ims_error *err)
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
    if (!st && version != INDEX_FORMAT_VERSION)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "index format version %lld: this build reads version %d",
                           (long long)version, INDEX_FORMAT_VERSION);
    if (!st)
        st = get_string(root, "mode", &mode, err);
    if (!st && strcmp(mode, "torchvision") != 0 && strcmp(mode, "fid") != 0)
        st = ims_error_set(err, IMS_ERR_FORMAT, "mode '%.40s': expected torchvision or fid", mode);
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
        st = read_model(root, "image_model", &c->image_model, err);
    if (!st && sdim > 0)
        st = read_model(root, "text_model", &c->text_model, err);
    if (!st)
        st = get_int(root, "rows", 0, INT64_MAX, rows, err);
    if (!st)
        st = get_int(root, "failures", 0, INT64_MAX, failures, err);
    if (st)
        return st;
    c->mode = strcmp(mode, "fid") == 0 ? IMS_PREPROCESS_FID : IMS_PREPROCESS_TORCHVISION;
    c->dtype = strcmp(dtype, "f16") == 0 ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
    c->chunk_rows = (int)chunk_rows;
    c->visual_dim = (int)vdim;
    c->semantic_dim = (int)sdim;
    c->conse_top = (int)conse_top;
    c->precision = precision;

    const json_value *chunks = imsi_json_object_get(root, "chunks");
    if (!chunks || chunks->kind != JSON_ARRAY)
        return ims_error_set(err, IMS_ERR_FORMAT, "'chunks' is missing or not an array");
    st = grow((void **)&idx->chunks, &idx->chunk_cap, chunks->arr.count, sizeof *idx->chunks, err);
    int64_t row_sum = 0, failure_sum = 0;
    for (size_t i = 0; !st && i < chunks->arr.count; i++) {
        const json_value *ch = &chunks->arr.items[i];
        int64_t r, fl;
        if (ch->kind != JSON_OBJECT)
            return ims_error_set(err, IMS_ERR_FORMAT, "chunks[%zu]: not an object", i);
        st = get_int(ch, "rows", 0, chunk_rows, &r, err);
        if (!st)
            st = get_int(ch, "failures", 0, INT64_MAX, &fl, err);
        if (st)
            return imsi_error_prefix(err, st, "chunks[%zu]", i);
        idx->chunks[i] = (index_chunk){.rows = (size_t)r, .failures = (size_t)fl};
        st = read_chunk_files(ch, c->semantic_dim > 0, &idx->chunks[i], err);
        if (st)
            return imsi_error_prefix(err, st, "chunks[%zu]", i);
        if (__builtin_add_overflow(row_sum, r, &row_sum) || __builtin_add_overflow(failure_sum, fl, &failure_sum))
            return ims_error_set(err, IMS_ERR_FORMAT, "chunks[%zu]: the counts overflow", i);
    }
    if (st)
        return st;
    idx->chunk_count = chunks->arr.count;
    if (row_sum != *rows || failure_sum != *failures)
        return ims_error_set(err, IMS_ERR_FORMAT, "the chunks hold %lld rows and %lld failures, the manifest says %lld and %lld",
                             (long long)row_sum, (long long)failure_sum, (long long)*rows, (long long)*failures);
    return IMS_OK;
}

/* ---- Chunk files: sizes and CRC-32s ------------------------------------------------- */

static int chunk_has(const ims_index *idx, int which) { return which != CHUNK_SEMANTIC || idx->cfg.semantic_dim > 0; }

/* Size and CRC-32 of chunk file `which` as it is on disk (after its commit). */
static ims_status chunk_file_measure(const ims_index *idx, size_t chunk, int which, chunk_file *out, ims_error *err)
{
    char *path = index_file_path(idx, chunk, chunk_suffix[which]);
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
static ims_status chunk_file_compare(const ims_index *idx, size_t chunk, int which, const char *path,
                                     const void *data, size_t size, ims_error *err)
{
    const index_chunk *ch = &idx->chunks[chunk];
    if (!ch->recorded)
        return IMS_OK; /* an index made before sizes and CRCs were recorded */
    const chunk_file *want = &ch->files[which];
    if (size != want->bytes)
        return ims_error_set(err, IMS_ERR_CHECKSUM, "%s: %zu bytes, the manifest says %llu: the file was changed or "
                             "replaced", path, size, (unsigned long long)want->bytes);
    if (data && imsi_isw_crc32(data, size) != want->crc32)
        return ims_error_set(err, IMS_ERR_CHECKSUM, "%s: the CRC-32 is not the manifest's %08x: the file was changed "
                             "or replaced", path, (unsigned)want->crc32);
    return IMS_OK;
}

/* Maps chunk file `which` to compare its size (and its CRC-32 if verify_crc). */
static ims_status chunk_file_verify(const ims_index *idx, size_t chunk, int which, int verify_crc, ims_error *err)
{
    char *path = index_file_path(idx, chunk, chunk_suffix[which]);
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    imsi_file_map map;
    ims_status st = imsi_file_map_open(path, &map, err);
    if (st)
        imsi_error_prefix(err, st, "%s", path);
    else
        st = chunk_file_compare(idx, chunk, which, path, verify_crc ? map.data : NULL, map.size, err);
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

/* The shortest line each file can hold: "0<TAB>0<TAB>p\n" and "p<TAB>r\n". */
enum { ROW_LINE_MIN = 6, FAILURE_LINE_MIN = 4 };

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

static ims_status read_rows_file(ims_index *idx, size_t chunk, size_t expect, ims_error *err)
{
    char *path = index_file_path(idx, chunk, "rows.txt");
    char *text = NULL;
    size_t len = 0;
    ims_status st = path ? imsi_file_read_text(path, INDEX_TEXT_MAX, &text, &len, err) : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    if (!st)
        st = chunk_file_compare(idx, chunk, CHUNK_ROWS, path, text, len, err);
    if (!st)
        st = check_line_count(path, expect, len, ROW_LINE_MIN, "rows", err);
    if (!st)
        st = grow((void **)&idx->rows, &idx->row_cap, idx->row_count + expect, sizeof *idx->rows, err);
    char *p = text, *end = text + len;
    size_t line = 0;
    while (!st && p < end) {
        char *fields[3] = {NULL, NULL, NULL};
        int got;
        p = next_line(p, end, fields, 3, &got);
        line++;
        uint64_t size = 0, mtime = 0;
        if (line > expect)
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s: more than the %zu rows the manifest lists", path, expect);
        else if (got != 3 || parse_u64(fields[0], &size) || parse_u64(fields[1], &mtime))
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s line %zu: expected size<TAB>mtime_ns<TAB>path", path, line);
        else
            st = unescape_field(fields[2], path, line, err);
        if (st)
            break;
        ims_file_entry *e = &idx->rows[idx->row_count];
        if (!(e->path = strdup(fields[2]))) {
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
            break;
        }
        e->size = size;
        e->mtime_ns = (int64_t)mtime;
        idx->row_count++;
        st = path_set_add(&idx->paths, e->path, err);
    }
    if (!st && line != expect)
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: %zu rows, the manifest lists %zu", path, line, expect);
    free(text);
    free(path);
    return st;
}

static ims_status read_failures_file(ims_index *idx, size_t chunk, size_t expect, ims_error *err)
{
    char *path = index_file_path(idx, chunk, "failures.txt");
    char *text = NULL;
    size_t len = 0;
    ims_status st = path ? imsi_file_read_text(path, INDEX_TEXT_MAX, &text, &len, err) : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    if (!st)
        st = chunk_file_compare(idx, chunk, CHUNK_FAILURES, path, text, len, err);
    if (!st)
        st = check_line_count(path, expect, len, FAILURE_LINE_MIN, "failures", err);
    if (!st)
        st = grow((void **)&idx->failures, &idx->failure_cap, idx->failure_count + expect, sizeof *idx->failures,
                  err);
    char *p = text, *end = text + len;
    size_t line = 0;
    while (!st && p < end) {
        char *fields[2] = {NULL, NULL};
        int got;
        p = next_line(p, end, fields, 2, &got);
        line++;
        if (line > expect)
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s: more than the %zu failures the manifest lists", path, expect);
        else if (got != 2)
            st = ims_error_set(err, IMS_ERR_FORMAT, "%s line %zu: expected path<TAB>reason", path, line);
        if (!st)
            st = unescape_field(fields[0], path, line, err);
        if (!st)
            st = unescape_field(fields[1], path, line, err);
        if (st)
            break;
        ims_file_problem *fp = &idx->failures[idx->failure_count];
        fp->path = strdup(fields[0]);
        fp->reason = strdup(fields[1]);
        if (!fp->path || !fp->reason) {
            free(fp->path);
            free(fp->reason);
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
            break;
        }
        idx->failure_count++;
        st = path_set_add(&idx->paths, fp->path, err);
    }
    if (!st && line != expect)
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: %zu failures, the manifest lists %zu", path, line, expect);
    free(text);
    free(path);
    return st;
}

static ims_status index_load(ims_index *idx, ims_error *err)
{
    char *path = index_file_path(idx, 0, NULL);
    char *text = NULL;
    size_t len = 0;
    ims_status st = path ? imsi_file_read_text(path, INDEX_TEXT_MAX, &text, &len, err)
                         : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    if (st == IMS_ERR_NOT_FOUND)
        st = ims_error_set(err, IMS_ERR_NOT_FOUND, "not an index: it has no manifest.json");
    json_doc doc = {0};
    int64_t rows = 0, failures = 0;
    if (!st) {
        st = imsi_json_parse(text, len, NULL, &doc, err);
        if (!st && doc.root->kind != JSON_OBJECT)
            st = ims_error_set(err, IMS_ERR_FORMAT, "not a JSON object");
        if (!st)
            st = manifest_parse(idx, doc.root, &rows, &failures, err);
        if (st)
            imsi_error_prefix(err, st, "%s", path);
    }
    imsi_json_doc_free(&doc);
    free(text);
    free(path);
    for (size_t c = 0; !st && c < idx->chunk_count; c++) {
        st = read_rows_file(idx, c, idx->chunks[c].rows, err);
        if (!st)
            st = read_failures_file(idx, c, idx->chunks[c].failures, err);
        for (int k = CHUNK_VISUAL; !st && k <= CHUNK_SEMANTIC; k++)
            if (chunk_has(idx, k))
                st = chunk_file_verify(idx, c, k, 0, err); /* sizes now; CRCs when a table is loaded */
    }
    return st;
}

static ims_index *index_new(const char *dir, ims_error *err)
{
    ims_index *idx = calloc(1, sizeof *idx);
    if (idx && !(idx->dir = strdup(dir))) {
        free(idx);
        idx = NULL;
    }
    if (!idx)
        ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    return idx;
}

ims_status ims_index_open(const char *dir, ims_index **out, ims_error *err)
{
    *out = NULL;
    ims_index *idx = index_new(dir, err);
    if (!idx)
        return IMS_ERR_NOMEM;
    ims_status st = index_load(idx, err);
    if (st) {
        ims_index_close(idx);
        return imsi_error_prefix(err, st, "index '%s'", dir);
    }
    *out = idx;
    return IMS_OK;
}

static int model_equal(const ims_weights_identity *a, const ims_weights_identity *b)
{
    return a->bytes == b->bytes && a->crc32 == b->crc32;
}

/* The first difference between the index's configuration and the run's. */
static ims_status compare_config(const ims_index_config *have, const ims_index_config *want, ims_error *err)
{
    if (!model_equal(&have->image_model, &want->image_model))
        return ims_error_set(err, IMS_ERR_ARGUMENT,
                             "it was built with image model '%s' (crc32 %08x), not '%s' (crc32 %08x)",
                             have->image_model.name, (unsigned)have->image_model.crc32, want->image_model.name,
                             (unsigned)want->image_model.crc32);
    if (have->semantic_dim != want->semantic_dim)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "it was built %s a text model; this run has %s",
                             have->semantic_dim ? "with" : "without", want->semantic_dim ? "one" : "none");
    if (have->semantic_dim && !model_equal(&have->text_model, &want->text_model))
        return ims_error_set(err, IMS_ERR_ARGUMENT,
                             "it was built with text model '%s' (crc32 %08x), not '%s' (crc32 %08x)",
                             have->text_model.name, (unsigned)have->text_model.crc32, want->text_model.name,
                             (unsigned)want->text_model.crc32);
    if (have->mode != want->mode)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "it was built with --mode %s, not %s", mode_name(have->mode),
                             mode_name(want->mode));
    if (have->dtype != want->dtype)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "it stores %s, not %s", ims_dtype_name(have->dtype),
                             ims_dtype_name(want->dtype));
    if (have->visual_dim != want->visual_dim || have->semantic_dim != want->semantic_dim)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "its tables have %d and %d columns, not %d and %d",
                             have->visual_dim, have->semantic_dim, want->visual_dim, want->semantic_dim);
    if (have->chunk_rows != want->chunk_rows)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "its chunks hold %d rows, not %d", have->chunk_rows,
                             want->chunk_rows);
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
 * a folder of photos, where its files would mix with others. Only a
 * temporary manifest left by a crash before the first commit may be there. */
static ims_status check_new_folder(const char *dir, ims_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return ims_error_set(err, IMS_ERR_IO, "cannot read folder '%s': %s", dir, strerror(errno));
    struct dirent *e;
    const char *other = NULL;
    while (!other && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strncmp(e->d_name, "manifest.json.tmp.", 18))
            other = e->d_name;
    ims_status st = other ? ims_error_set(err, IMS_ERR_ARGUMENT,
                                          "'%s' is not an index and not empty (it holds '%.200s'): give a new or "
                                          "empty folder", dir, other)
                          : IMS_OK;
    closedir(d);
    return st;
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
    ims_index *idx = index_new(dir, err);
    if (!idx)
        return IMS_ERR_NOMEM;
    char *manifest = index_file_path(idx, 0, NULL);
    struct stat sb;
    int exists = manifest && stat(manifest, &sb) == 0;
    free(manifest);
    if (exists) {
        st = index_load(idx, err);
        if (!st)
            st = compare_config(&idx->cfg, cfg, err);
    } else {
        idx->cfg = *cfg;
        st = check_new_folder(dir, err);
        if (!st)
            st = manifest_write(idx, 0, 0, 0, err); /* an empty index is a valid index */
    }
    idx->writable = 1;
    size_t vd = (size_t)cfg->visual_dim, sd = (size_t)cfg->semantic_dim, n = (size_t)cfg->chunk_rows;
    if (!st) {
        idx->pending_visual = malloc(n * vd * sizeof(float));
        idx->pending_semantic = sd ? malloc(n * sd * sizeof(float)) : NULL;
        if (!idx->pending_visual || (sd && !idx->pending_semantic))
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for a chunk of %zu rows", n);
    }
    if (st) {
        ims_index_close(idx);
        return imsi_error_prefix(err, st, "index '%s'", dir);
    }
    *out = idx;
    return IMS_OK;
}

void ims_index_close(ims_index *idx)
{
    if (!idx)
        return;
    size_t rows = idx->row_count + idx->pending_rows, failures = idx->failure_count + idx->pending_failures;
    for (size_t i = 0; i < rows; i++)
        free(idx->rows[i].path);
    for (size_t i = 0; i < failures; i++) {
        free(idx->failures[i].path);
        free(idx->failures[i].reason);
    }
    free(idx->rows);
    free(idx->failures);
    free(idx->chunks);
    free(idx->paths.slots);
    free(idx->pending_visual);
    free(idx->pending_semantic);
    free(idx->dir);
    free(idx);
}

const ims_index_config *ims_index_get_config(const ims_index *idx) { return &idx->cfg; }
int64_t ims_index_row_count(const ims_index *idx) { return (int64_t)idx->row_count; }
int64_t ims_index_failure_count(const ims_index *idx) { return (int64_t)idx->failure_count; }
int64_t ims_index_chunk_count(const ims_index *idx) { return (int64_t)idx->chunk_count; }

int ims_index_contains(const ims_index *idx, const char *path)
{
    size_t slot;
    return path_set_find(&idx->paths, path, &slot);
}

const ims_file_entry *ims_index_row(const ims_index *idx, int64_t row)
{
    return row >= 0 && (uint64_t)row < idx->row_count ? &idx->rows[row] : NULL;
}

const ims_file_problem *ims_index_failure(const ims_index *idx, int64_t i)
{
    return i >= 0 && (uint64_t)i < idx->failure_count ? &idx->failures[i] : NULL;
}

/* ---- Writing chunks -------------------------------------------------------------------- */

static ims_status write_table(const ims_index *idx, size_t chunk, const char *suffix, const float *rows,
                              size_t n, int dim, ims_error *err)
{
    char *path = index_file_path(idx, chunk, suffix);
    size_t count = n * (size_t)dim;
    uint16_t *half = idx->cfg.dtype == IMS_DTYPE_F16 && count ? malloc(count * sizeof *half) : NULL;
    if (!path || (idx->cfg.dtype == IMS_DTYPE_F16 && count && !half)) {
        free(path);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; half && i < count; i++)
        half[i] = ims_f32_to_f16(rows[i]);
    int64_t shape[2] = {(int64_t)n, dim};
    ims_status st = half ? ims_npy_write(path, IMS_DTYPE_F16, 2, shape, half, err)
                         : ims_npy_write(path, idx->cfg.dtype, 2, shape, rows, err);
    free(half);
    free(path);
    return st;
}

/* Maps chunk c's table, checking its dtype and shape against the manifest:
 * (rows, dim) in the index's dtype; a chunk of failures only has no data
 * (no data). Close with ims_npy_close (*npy is NULL after a failure). */
static ims_status map_table(const ims_index *idx, size_t chunk, int which, int dim, int verify_crc, ims_npy **npy,
                            ims_error *err)
{
    *npy = NULL;
    char *path = index_file_path(idx, chunk, chunk_suffix[which]);
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    ims_dtype want = idx->cfg.dtype;
    size_t rows = idx->chunks[chunk].rows;
    ims_status st = chunk_file_verify(idx, chunk, which, verify_crc, err);
    if (!st)
        st = ims_npy_open(path, npy, err);
    const int64_t *shape = st ? NULL : ims_npy_shape(*npy);
    if (!st && ims_npy_dtype(*npy) != want)
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: dtype %s, the manifest says %s", path,
                           ims_npy_dtype_descr(ims_npy_dtype(*npy)), ims_npy_dtype_descr(want));
    else if (!st && (ims_npy_ndim(*npy) != 2 || shape[0] != (int64_t)rows || shape[1] != dim))
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: shape is not (%zu, %d) as the manifest says", path, rows, dim);
    if (st) {
        ims_npy_close(*npy);
        *npy = NULL;
    }
    free(path);
    return st;
}

/* Reads chunk c's table into out (rows, dim) f32. */
static ims_status read_table(const ims_index *idx, size_t chunk, int which, int dim, float *out, ims_error *err)
{
    ims_npy *npy;
    ims_status st = map_table(idx, chunk, which, dim, 1, &npy, err);
    size_t count = idx->chunks[chunk].rows * (size_t)dim;
    if (!st && count > 0) {
        const void *data = ims_npy_data(npy);
        if (ims_npy_dtype(npy) == IMS_DTYPE_F32)
            memcpy(out, data, count * sizeof *out);
        else
            for (size_t i = 0; i < count; i++)
                out[i] = ims_f16_to_f32(((const uint16_t *)data)[i]);
    }
    ims_npy_close(npy);
    return st;
}

/* Writes a text file line by line: the rows (escaped paths) or the failures. */
static ims_status write_lines(const ims_index *idx, size_t chunk, int failures, ims_error *err)
{
    char *path = index_file_path(idx, chunk, failures ? "failures.txt" : "rows.txt");
    if (!path)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    imsi_atomic_file af;
    ims_status st = imsi_atomic_file_open(&af, path, err);
    free(path);
    if (st)
        return st;
    if (failures) {
        for (size_t i = idx->failure_count; i < idx->failure_count + idx->pending_failures; i++) {
            const ims_file_problem *p = &idx->failures[i];
            imsi_index_escape_write(af.f, p->path, strlen(p->path));
            fputc('\t', af.f);
            imsi_index_escape_write(af.f, p->reason, strlen(p->reason));
            fputc('\n', af.f);
        }
    } else {
        for (size_t i = idx->row_count; i < idx->row_count + idx->pending_rows; i++) {
            const ims_file_entry *e = &idx->rows[i];
            fprintf(af.f, "%llu\t%lld\t", (unsigned long long)e->size, (long long)e->mtime_ns);
            imsi_index_escape_write(af.f, e->path, strlen(e->path));
            fputc('\n', af.f);
        }
    }
    if (ferror(af.f)) {
        imsi_atomic_file_abort(&af);
        return ims_error_set(err, IMS_ERR_IO, "writing chunk %zu of '%s' failed", chunk, idx->dir);
    }
    return imsi_atomic_file_commit(&af, err);
}

ims_status ims_index_commit(ims_index *idx, ims_error *err)
{
    if (!idx->writable)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s' was opened read-only", idx->dir);
    if (idx->pending_rows == 0 && idx->pending_failures == 0)
        return IMS_OK;
    size_t c = idx->chunk_count;
    ims_status st = grow((void **)&idx->chunks, &idx->chunk_cap, c + 1, sizeof *idx->chunks, err);
    if (!st)
        st = write_table(idx, c, "visual.npy", idx->pending_visual, idx->pending_rows, idx->cfg.visual_dim, err);
    if (!st)
        imsi_index_crash_point(c, "visual");
    if (!st && idx->cfg.semantic_dim)
        st = write_table(idx, c, "semantic.npy", idx->pending_semantic, idx->pending_rows,
                         idx->cfg.semantic_dim, err);
    if (!st)
        imsi_index_crash_point(c, "semantic");
    if (!st)
        st = write_lines(idx, c, 0, err);
    if (!st)
        imsi_index_crash_point(c, "rows");
    if (!st)
        st = write_lines(idx, c, 1, err);
    if (!st)
        imsi_index_crash_point(c, "failures");
    if (st)
        return imsi_error_prefix(err, st, "index '%s'", idx->dir);
    idx->chunks[c] = (index_chunk){.rows = idx->pending_rows, .failures = idx->pending_failures, .recorded = 1};
    for (int k = 0; !st && k < CHUNK_FILES; k++)
        if (chunk_has(idx, k))
            st = chunk_file_measure(idx, c, k, &idx->chunks[c].files[k], err);
    if (!st)
        st = manifest_write(idx, c + 1, idx->row_count + idx->pending_rows,
                        idx->failure_count + idx->pending_failures, err);
    if (st)
        return imsi_error_prefix(err, st, "index '%s'", idx->dir);
    /* Committed: the pending entries join the index. */
    idx->chunk_count = c + 1;
    for (size_t i = 0; !st && i < idx->pending_rows; i++)
        st = path_set_add(&idx->paths, idx->rows[idx->row_count + i].path, err);
    for (size_t i = 0; !st && i < idx->pending_failures; i++)
        st = path_set_add(&idx->paths, idx->failures[idx->failure_count + i].path, err);
    idx->row_count += idx->pending_rows;
    idx->failure_count += idx->pending_failures;
    idx->pending_rows = idx->pending_failures = 0;
    return st;
}

ims_status ims_index_add(ims_index *idx, const ims_file_entry *file, const float *visual, const float *semantic,
                         ims_error *err)
{
    if (!idx->writable)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s' was opened read-only", idx->dir);
    if (idx->cfg.semantic_dim && !semantic)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s' needs a semantic embedding for each row", idx->dir);
    size_t at = idx->row_count + idx->pending_rows;
    ims_status st = grow((void **)&idx->rows, &idx->row_cap, at + 1, sizeof *idx->rows, err);
    if (st)
        return st;
    ims_file_entry *e = &idx->rows[at];
    *e = *file;
    if (!(e->path = strdup(file->path)))
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

ims_status ims_index_add_failure(ims_index *idx, const char *path, const char *reason, ims_error *err)
{
    if (!idx->writable)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s' was opened read-only", idx->dir);
    size_t at = idx->failure_count + idx->pending_failures;
    ims_status st = grow((void **)&idx->failures, &idx->failure_cap, at + 1, sizeof *idx->failures, err);
    if (st)
        return st;
    ims_file_problem *p = &idx->failures[at];
    p->path = strdup(path);
    p->reason = strdup(reason && *reason ? reason : "unknown error");
    if (!p->path || !p->reason) {
        free(p->path);
        free(p->reason);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    idx->pending_failures++;
    return IMS_OK;
}

/* ---- Loading tables ------------------------------------------------------------------ */

ims_status ims_index_load_table(const ims_index *idx, ims_index_table table, float **rows, int *dim,
                                ims_error *err)
{
    *rows = NULL;
    int d = table == IMS_INDEX_TABLE_SEMANTIC ? idx->cfg.semantic_dim : idx->cfg.visual_dim;
    if (d == 0)
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "index '%s' has no semantic table (it was built without a text model)",
                             idx->dir);
    *dim = d;
    size_t n = idx->row_count;
    float *out = malloc((n ? n : 1) * (size_t)d * sizeof(float));
    if (!out)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for a table of %zu x %d", n, d);
    int which = table == IMS_INDEX_TABLE_SEMANTIC ? CHUNK_SEMANTIC : CHUNK_VISUAL;
    size_t row = 0;
    ims_status st = IMS_OK;
    for (size_t c = 0; !st && c < idx->chunk_count; c++) {
        st = read_table(idx, c, which, d, out + row * (size_t)d, err);
        row += idx->chunks[c].rows;
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
    int which = table == IMS_INDEX_TABLE_SEMANTIC ? CHUNK_SEMANTIC : CHUNK_VISUAL;
    ims_status st = ims_knn_reserve(knn, ims_knn_rows(knn) + (int64_t)idx->row_count, err);
    for (size_t c = 0; !st && c < idx->chunk_count; c++) {
        ims_npy *npy;
        st = map_table(idx, c, which, d, verify, &npy, err);
        if (!st && idx->chunks[c].rows > 0)
            st = ims_knn_append(knn, ims_npy_data(npy), ims_npy_dtype(npy), (int64_t)idx->chunks[c].rows, err);
        ims_npy_close(npy);
        if (st)
            imsi_error_prefix(err, st, "chunk %zu", c);
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
