/* indexer.c: `imgsearch index`: folders of images -> an index kept in step
 * with them (index/store.c, store_write.c).
 *
 * A run: canonicalize the roots (a missing one is an error before anything is
 * created); take the index's writer lock and read it; settle the settings
 * (given, else the index's, else the defaults; a given one that contradicts
 * the index is refused); list the files (file_walk.c) and compare them with
 * the index's records: new files, files whose size or mtime (or, with
 * verify_content, CRC-32) changed, failed files that changed (or all, with
 * retry_failed) are to do; records of files gone from the roots get
 * tombstones (unless keep_missing). The files to do run through Inception-v3
 * batch by batch (image_encoder_run.c: the loader's threads decode the next
 * batches meanwhile); per image, the visual embedding (pool features,
 * L2-normalized) and, with a text model, the ConSE semantic embedding are
 * appended, a replaced record's tombstone committed with (or before) its new
 * one. The index commits a chunk every chunk_rows rows, and the run commits
 * at least every commit_every_s seconds, so a kill loses about that much.
 */
#define _POSIX_C_SOURCE 200809L
#include "index/store.h"

#include "core/error.h"
#include "core/file_map.h"
#include "io/weights_format.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_COMMIT_EVERY_S 60.0

void ims_index_run_options_init(ims_index_run_options *o)
{
    memset(o, 0, sizeof *o);
    o->precision = -1;
    o->mode = -1;
    o->dtype = IMS_DTYPE_COUNT;
    ims_decode_options_init(&o->decode);
}

/* x (d) scaled to unit length in place, in double; 0 if its norm is 0 or not finite. */
static int normalize_row(float *x, int d)
{
    double s = 0;
    for (int j = 0; j < d; j++)
        s += (double)x[j] * x[j];
    double norm = sqrt(s);
    if (!(norm > 0) || !isfinite(norm))
        return 0;
    for (int j = 0; j < d; j++)
        x[j] = (float)(x[j] / norm);
    return 1;
}

/* Why a file is to do: new to the index, changed since its row, or failed before. */
typedef enum todo_kind { TODO_NEW, TODO_CHANGED, TODO_RETRY } todo_kind;

typedef struct index_run {
    const ims_index_run_options *o;
    ims_index *index;
    int exists;                       /* the index existed before this run */
    ims_weights *owned_image, *owned_text; /* models opened from the index's record */
    const ims_weights *image_weights, *text_weights;
    ims_precision precision;
    int mode, batch, threads;
    double commit_every_s;
    ims_image_encoder *image;
    ims_text_embedder *text; /* NULL without a text model */
    float *class_embeddings; /* (classes, semantic_dim) or NULL */
    int classes, features, semantic_dim;
    float *visual, *semantic; /* (features), (semantic_dim): one row's embeddings */
    char **roots;             /* canonical */
    size_t root_count;
    int shard, shards;        /* the run's shard of the files; shards 0: all (settled in open_index) */
    /* the files to do, in path order; per file why, and the record it replaces (-1: none) */
    ims_file_entry *todo;
    todo_kind *kind;
    int64_t *replaces;
    size_t todo_count;
    int64_t first_chunk;  /* the index's chunk count when the run began */
    size_t seen_chunks;   /* the chunk count at the last commit this run saw */
    double last_commit;
    ims_index_progress progress;
} index_run;

static void report(index_run *r)
{
    if (r->o->progress)
        r->o->progress(r->o->progress_ctx, &r->progress);
}

/* ---- Roots --------------------------------------------------------------------------------------- */

/* A root as an absolute path without symbolic links in its folders: "p",
 * "./p" and "/abs/p" are one root, and results resolve from anywhere. A file
 * keeps its own name (a link to an image is listed under the link's name, as
 * the walk lists those inside folders). */
static ims_status canonical_root(const char *root, char **out, ims_error *err)
{
    struct stat sb;
    *out = NULL;
    if (!root[0] || stat(root, &sb) != 0)
        return ims_error_set(err, IMS_ERR_NOT_FOUND, "input '%.400s': %s", root,
                             root[0] ? strerror(errno) : "an empty path");
    if (S_ISDIR(sb.st_mode)) {
        if (!(*out = realpath(root, NULL)))
            return ims_error_set(err, IMS_ERR_IO, "input '%.400s': %s", root, strerror(errno));
        return IMS_OK;
    }
    const char *slash = strrchr(root, '/');
    const char *base = slash ? slash + 1 : root;
    char *dir = slash ? strndup(root, slash == root ? 1 : (size_t)(slash - root)) : strdup(".");
    char *real = dir ? realpath(dir, NULL) : NULL;
    int e = errno;
    free(dir);
    if (!real)
        return ims_error_set(err, IMS_ERR_IO, "input '%.400s': %s", root, strerror(e));
    size_t len = strlen(real) + strlen(base) + 2;
    if ((*out = malloc(len)))
        snprintf(*out, len, "%s%s%s", real, strcmp(real, "/") ? "/" : "", base);
    free(real);
    return *out ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
}

static ims_status canonical_roots(index_run *r, const char *const *roots, size_t count, ims_error *err)
{
    r->roots = calloc(count ? count : 1, sizeof *r->roots);
    if (!r->roots)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < count; i++) {
        ims_status st = canonical_root(roots[i], &r->roots[i], err);
        if (st)
            return st;
        r->root_count = i + 1;
    }
    return IMS_OK;
}

/* path is root itself or lies below it. */
static int path_under(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (strncmp(path, root, n) != 0)
        return 0;
    return path[n] == '\0' || path[n] == '/' || (n > 0 && root[n - 1] == '/');
}

/* The shard a listed path belongs to: its path below its root (a file root:
 * its name), so the partition is the same wherever the folders are mounted. */
static int shard_of(const index_run *r, const char *path)
{
    const char *rel = NULL;
    for (size_t i = 0; i < r->root_count; i++) {
        size_t n = strlen(r->roots[i]);
        if (!path_under(path, r->roots[i]))
            continue;
        const char *below = path + n + (path[n] == '/');
        if (*below == '\0') { /* the root itself: a file */
            const char *slash = strrchr(path, '/');
            below = slash ? slash + 1 : path;
        }
        if (!rel || strlen(below) < strlen(rel)) /* the innermost root */
            rel = below;
    }
    return ims_index_shard_of(rel ? rel : path, r->shards);
}

static int in_shard(const index_run *r, const char *path) { return r->shards <= 1 || shard_of(r, path) == r->shard; }

/* ---- Settings and models --------------------------------------------------------------------------- */

/* The run's settings: given, else the index's, else the defaults (models: the
 * index's recorded files, checked by size and CRC-32). */
static ims_status settle_models(index_run *r, ims_error *err)
{
    const ims_index_run_options *o = r->o;
    const ims_index_config *have = r->exists ? ims_index_get_config(r->index) : NULL;
    r->image_weights = o->image_model;
    r->text_weights = o->text_model;
    ims_status st = IMS_OK;
    if (!r->image_weights && !have)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "no image model: a new index needs one");
    if (!r->image_weights)
        st = imsi_index_open_model(NULL, &have->image_model, "image", &r->owned_image, err);
    if (!st && !r->image_weights)
        r->image_weights = r->owned_image;
    if (!st && !r->text_weights && have && have->semantic_dim > 0) {
        st = imsi_index_open_model(NULL, &have->text_model, "text", &r->owned_text, err);
        r->text_weights = r->owned_text;
    }
    if (st)
        return imsi_error_prefix(err, st, "index '%s'", o->index_dir);
    int cuda = ims_backend_get_info(o->backend)->kind == IMS_BACKEND_CUDA;
    if (o->precision >= 0) {
        if (o->precision > IMS_PRECISION_FP16)
            return ims_error_set(err, IMS_ERR_ARGUMENT, "precision %d: not an ims_precision", o->precision);
        r->precision = (ims_precision)o->precision;
    } else if (have && have->precision >= 0) {
        r->precision = (ims_precision)have->precision;
        if (!cuda && r->precision != IMS_PRECISION_FP32)
            return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                                 "index '%s': its rows were computed with --precision %s, which needs a GPU (the CPU "
                                 "computes in fp32)", o->index_dir, ims_precision_name(r->precision));
    } else {
        r->precision = cuda ? IMS_PRECISION_FP16 : IMS_PRECISION_FP32;
    }
    const imsi_index_settings *s = r->exists ? &r->index->settings : NULL;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    r->batch = o->batch_size > 0 ? o->batch_size : s && s->batch > 0 ? (int)s->batch : cuda ? 64 : 16;
    r->threads = o->threads > 0 ? o->threads : s && s->threads > 0 ? (int)s->threads : cpus < 1 ? 1 : cpus > 16 ? 16 : (int)cpus;
    r->commit_every_s = o->commit_every_s > 0 ? o->commit_every_s
                        : s && s->commit_every_s > 0 ? s->commit_every_s : DEFAULT_COMMIT_EVERY_S;
    return IMS_OK;
}

static ims_status settle_config(index_run *r, ims_index_config *cfg, ims_error *err)
{
    const ims_index_run_options *o = r->o;
    const ims_index_config *have = r->exists ? ims_index_get_config(r->index) : NULL;
    ims_index_config_init(cfg);
    cfg->mode = o->mode >= 0 ? (ims_preprocess_mode)o->mode : have ? have->mode : ims_image_encoder_mode(r->image);
    cfg->dtype = o->dtype != IMS_DTYPE_COUNT ? o->dtype : have ? have->dtype : IMS_DTYPE_F16;
    cfg->chunk_rows = o->chunk_rows > 0 ? o->chunk_rows : have ? have->chunk_rows : 4096;
    cfg->conse_top = o->conse_top > 0 ? o->conse_top : have ? have->conse_top : 10;
    cfg->precision = (int)r->precision;
    cfg->visual_dim = r->features;
    cfg->semantic_dim = r->semantic_dim;
    r->mode = (int)cfg->mode;
    ims_status st = ims_weights_identify(r->image_weights, &cfg->image_model, err);
    if (!st && r->text_weights)
        st = ims_weights_identify(r->text_weights, &cfg->text_model, err);
    r->progress.synthetic = cfg->image_model.synthetic;
    return st;
}

/* The text embeddings of the image model's class labels (ConSE's vocabulary),
 * computed once per index and kept in it (search needs them for image queries
 * on the semantic table). */
static ims_status embed_class_names(index_run *r, ims_error *err)
{
    int n = r->classes;
    int stored = 0;
    ims_status st = ims_index_load_class_embeddings(r->index, &r->class_embeddings, &stored, err);
    if (st != IMS_ERR_NOT_FOUND) {
        if (!st && stored != n)
            st = ims_error_set(err, IMS_ERR_FORMAT, "the index holds %d class embeddings, the model has %d classes", stored, n);
        return st;
    }
    char **texts = calloc((size_t)n, sizeof *texts);
    st = texts ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < n; i++) {
        ims_str label = ims_image_encoder_label(r->image, i);
        if (!label.ptr) {
            st = ims_error_set(err, IMS_ERR_FORMAT, "semantic embeddings need the image model's class names: class %d has none", i);
            break;
        }
        if (!(texts[i] = malloc(label.len + 1))) {
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(texts[i], label.ptr, label.len);
        texts[i][label.len] = '\0';
    }
    if (!st) {
        r->class_embeddings = malloc((size_t)n * (size_t)r->semantic_dim * sizeof(float));
        st = r->class_embeddings ? ims_text_embed(r->text, (const char *const *)texts, (size_t)n, r->class_embeddings, err)
                                 : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    if (!st)
        st = ims_index_save_class_embeddings(r->index, r->class_embeddings, n, err);
    for (int i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    return st;
}

static ims_status run_setup(index_run *r, ims_error *err)
{
    const ims_index_run_options *o = r->o;
    ims_status st = ims_image_encoder_create(o->backend, r->image_weights, r->precision, &r->image, err);
    if (st)
        return st;
    r->classes = ims_image_encoder_num_classes(r->image);
    r->features = ims_image_encoder_feature_dim(r->image);
    if (r->text_weights)
        st = ims_text_embedder_create(o->backend, r->text_weights, r->precision, &r->text, err);
    if (st)
        return st;
    r->semantic_dim = r->text ? ims_text_embedder_dim(r->text) : 0;
    r->visual = malloc((size_t)r->features * sizeof(float));
    r->semantic = r->semantic_dim ? malloc((size_t)r->semantic_dim * sizeof(float)) : NULL;
    if (!r->visual || (r->semantic_dim && !r->semantic))
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    return st;
}

/* ---- Records -------------------------------------------------------------------------------------- */

static ims_status record_failure(index_run *r, const ims_file_entry *file, const char *reason, ims_error *err)
{
    ims_status st = imsi_index_add_failure_file(r->index, file, reason, err);
    r->progress.failed++;
    if (r->o->on_failure)
        r->o->on_failure(r->o->progress_ctx, file->path, reason);
    return st;
}

static ims_status retire(index_run *r, int64_t ref, ims_error *err)
{
    return imsi_ref_is_failure(ref) ? ims_index_remove_failure(r->index, imsi_ref_index(ref), err)
                                    : ims_index_remove(r->index, ref, err);
}

/* The CRC-32 of a file's bytes; 0 if it cannot be read. */
static int file_crc(const char *path, uint32_t *crc)
{
    imsi_file_map map;
    ims_error ignored;
    if (imsi_file_map_open(path, &map, &ignored) != IMS_OK)
        return 0;
    *crc = imsi_isw_crc32(map.data, map.size);
    imsi_file_map_close(&map);
    return 1;
}

/* A file indexed as a row, by why it was to do. */
static void count_kind(index_run *r, todo_kind kind)
{
    if (kind == TODO_NEW)
        r->progress.added++;
    else if (kind == TODO_CHANGED)
        r->progress.updated++;
    else
        r->progress.retried++;
}

/* ---- Comparing the walk with the index --------------------------------------------------------------- */

static ims_status add_todo(index_run *r, const ims_file_entry *f, todo_kind kind, int64_t replaces)
{
    r->todo[r->todo_count] = *f;
    r->kind[r->todo_count] = kind;
    r->replaces[r->todo_count++] = replaces; /* a ref; unused for TODO_NEW */
    return IMS_OK;
}

/* Decides, per listed file and problem, what to do; marks the records seen. */
static ims_status plan(index_run *r, const ims_file_list *list, uint8_t *seen_rows, uint8_t *seen_failures,
                       ims_error *err)
{
    const ims_index *idx = r->index;
    size_t n = (size_t)list->file_count;
    r->todo = malloc((n ? n : 1) * sizeof *r->todo);
    r->kind = malloc((n ? n : 1) * sizeof *r->kind);
    r->replaces = malloc((n ? n : 1) * sizeof *r->replaces);
    if (!r->todo || !r->kind || !r->replaces)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %zu files", n);
    ims_status st = IMS_OK;
    for (size_t i = 0; !st && i < n; i++) {
        const ims_file_entry *f = &list->files[i];
        int64_t ref;
        if (!in_shard(r, f->path))
            continue;
        if (!imsi_index_lookup(idx, f->path, &ref)) {
            st = add_todo(r, f, TODO_NEW, -1);
            continue;
        }
        int64_t at = imsi_ref_index(ref);
        if (imsi_ref_is_failure(ref)) {
            seen_failures[at] = 1;
            const imsi_failure *fl = &idx->failures[at];
            if (!r->o->retry_failed && fl->size == f->size && fl->mtime_ns == f->mtime_ns)
                r->progress.already++;
            else
                st = add_todo(r, f, TODO_RETRY, ref);
            continue;
        }
        seen_rows[at] = 1;
        const imsi_row *row = &idx->rows[at];
        int same = row->file.size == f->size && row->file.mtime_ns == f->mtime_ns;
        if (same && r->o->verify_content) {
            uint32_t crc = 0;
            same = row->has_crc && file_crc(f->path, &crc) && crc == row->crc32;
        }
        if (same)
            r->progress.already++;
        else
            st = add_todo(r, f, TODO_CHANGED, ref);
    }
    /* What the walk could not list (a dangling link, an unreadable folder) is a failure too. */
    for (int64_t i = 0; !st && i < list->problem_count; i++) {
        const ims_file_problem *p = &list->problems[i];
        ims_file_entry f = {p->path, 0, 0};
        int64_t ref;
        if (!in_shard(r, p->path))
            continue;
        int known = imsi_index_lookup(idx, p->path, &ref);
        if (known && imsi_ref_is_failure(ref))
            seen_failures[imsi_ref_index(ref)] = 1;
        else if (known)
            seen_rows[ref] = 1;
        if (known && imsi_ref_is_failure(ref) && !r->o->retry_failed) {
            r->progress.already++;
            continue;
        }
        if (known)
            st = retire(r, ref, err);
        if (!st)
            st = record_failure(r, &f, p->reason, err);
    }
    return st;
}

/* A record not seen in this walk whose file lies under one of its roots is
 * gone: unless it lies under something the walk could not read (a folder
 * without permission is not a deletion). */
static int gone(const index_run *r, const ims_file_list *list, const char *path)
{
    int under = 0;
    for (size_t i = 0; !under && i < r->root_count; i++)
        under = path_under(path, r->roots[i]);
    for (int64_t i = 0; under && i < list->problem_count; i++)
        if (path_under(path, list->problems[i].path))
            return 0;
    return under;
}

static ims_status prune(index_run *r, const ims_file_list *list, const uint8_t *seen_rows,
                        const uint8_t *seen_failures, ims_error *err)
{
    ims_index *idx = r->index;
    ims_status st = IMS_OK;
    for (size_t i = 0; !st && i < idx->row_count; i++)
        if (!seen_rows[i] && ims_index_row_live(idx, (int64_t)i) && !idx->rows[i].doomed &&
            gone(r, list, idx->rows[i].file.path)) {
            st = ims_index_remove(idx, (int64_t)i, err);
            r->progress.removed++;
        }
    for (size_t i = 0; !st && i < idx->failure_count; i++)
        if (!seen_failures[i] && ims_index_failure_live(idx, (int64_t)i) && !idx->failures[i].doomed &&
            gone(r, list, idx->failures[i].problem.path)) {
            st = ims_index_remove_failure(idx, (int64_t)i, err);
            r->progress.removed++;
        }
    return st;
}

/* ---- Embedding ------------------------------------------------------------------------------------ */

/* The embeddings of image i of the batch into r->visual and r->semantic;
 * NULL, or why they cannot be made (the image then becomes a failure record,
 * like an undecodable one). */
static const char *embed_one(index_run *r, const ims_image_encoder_batch *b, int i, ims_error *err)
{
    memcpy(r->visual, b->features + (size_t)i * (size_t)r->features, (size_t)r->features * sizeof(float));
    if (!normalize_row(r->visual, r->features))
        return "the image's features have a zero or non-finite norm";
    if (r->semantic_dim && ims_conse_embed(b->logits + (size_t)i * (size_t)r->classes, 1, r->classes,
                                           r->class_embeddings, r->semantic_dim, r->index->cfg.conse_top,
                                           r->semantic, err))
        return err->msg;
    return NULL;
}

/* Appends an encoded batch's rows and failures, in input order; a replaced
 * record's tombstone goes first (the same commit as the new one, or before). */
static ims_status run_batch(index_run *r, const ims_image_encoder_batch *b, ims_error *err)
{
    ims_status st = IMS_OK;
    r->progress.model_s += b->model_s;
    r->progress.decode_wait_s = b->wait_s;
    for (int i = 0; !st && i < b->count; i++) {
        size_t t = (size_t)b->first + (size_t)i;
        const ims_file_entry *f = &r->todo[t];
        double t1 = ims_clock_seconds();
        if (r->kind[t] != TODO_NEW)
            st = retire(r, r->replaces[t], err);
        if (st) {
            /* nothing */
        } else if (b->items[i].status != IMS_OK) {
            st = record_failure(r, f, b->items[i].reason, err);
        } else {
            ims_error why = {0};
            const char *bad = embed_one(r, b, i, &why);
            double t2 = ims_clock_seconds();
            r->progress.model_s += t2 - t1;
            t1 = t2;
            uint32_t crc = 0;
            int has_crc = !bad && r->o->verify_content && file_crc(f->path, &crc);
            if (bad) {
                st = record_failure(r, f, bad, err);
            } else {
                st = imsi_index_add_row(r->index, f, has_crc, crc, r->visual, r->semantic, err);
                r->progress.indexed++;
                count_kind(r, r->kind[t]);
                if (!st && b->items[i].warnings && r->o->on_warning)
                    r->o->on_warning(r->o->progress_ctx, f->path, b->items[i].reason);
            }
        }
        r->progress.write_s += ims_clock_seconds() - t1;
        r->progress.done++;
    }
    return st;
}

/* Commits when commit_every_s passed since the last commit (a chunk the
 * index committed itself, when full, counts). */
static ims_status commit_when_due(index_run *r, ims_error *err)
{
    double now = ims_clock_seconds();
    if (r->index->chunk_count != r->seen_chunks) {
        r->seen_chunks = r->index->chunk_count;
        r->last_commit = now;
    }
    if (now - r->last_commit < r->commit_every_s)
        return IMS_OK;
    ims_status st = ims_index_commit(r->index, err);
    r->seen_chunks = r->index->chunk_count;
    r->last_commit = now;
    return st;
}

static ims_status run_files(index_run *r, ims_error *err)
{
    const char **paths = malloc((r->todo_count ? r->todo_count : 1) * sizeof *paths);
    if (!paths)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %zu files", r->todo_count);
    for (size_t i = 0; i < r->todo_count; i++)
        paths[i] = r->todo[i].path;
    ims_image_encoder_run_options ro;
    ims_image_encoder_run_options_init(&ro);
    ro.mode = r->mode;
    ro.batch_size = r->batch;
    ro.threads = r->threads;
    ro.decode = r->o->decode;
    ims_image_encoder_run *run = NULL;
    ims_status st = ims_image_encoder_run_start(r->image, r->o->backend, paths, r->todo_count, &ro, &run, err);
    r->progress.stage = IMS_INDEX_STAGE_RUNNING;
    double start = ims_clock_seconds() - r->progress.elapsed_s;
    const ims_image_encoder_batch *b;
    while (!st) {
        ims_status next = ims_image_encoder_run_next(run, &b, err);
        if (next == IMS_ERR_NOT_FOUND)
            break;
        if ((st = next))
            break;
        st = run_batch(r, b, err);
        if (!st)
            st = commit_when_due(r, err);
        r->progress.elapsed_s = ims_clock_seconds() - start;
        report(r);
    }
    ims_image_encoder_run_free(run);
    free(paths);
    return st;
}

/* ---- The run ---------------------------------------------------------------------------------------- */

/* Opens (or creates) the index and settles everything before any file is read. */
static ims_status open_index(index_run *r, ims_error *err)
{
    const ims_index_run_options *o = r->o;
    if (!o->index_dir || !o->backend)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "index run: an index folder and a backend are required");
    ims_status st = canonical_roots(r, o->roots, o->root_count, err);
    r->exists = !st && imsi_index_has_manifest(o->index_dir);
    if (!st && r->exists)
        st = imsi_index_open_writer(o->index_dir, 0, &r->index, err);
    if (!st && o->root_count == 0 && (!r->exists || r->index->root_count == 0))
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "nothing to index: give folders or files%s",
                           r->exists ? " (the index records none)" : "");
    if (!st && o->root_count == 0) { /* the index's own roots: bring it up to date */
        free(r->roots);
        st = canonical_roots(r, (const char *const *)r->index->roots, r->index->root_count, err);
    }
    if (!st)
        st = settle_models(r, err);
    if (!st)
        st = run_setup(r, err);
    ims_index_config cfg;
    if (!st)
        st = settle_config(r, &cfg, err);
    if (!st && r->exists) {
        st = imsi_index_compare_config(&r->index->cfg, &cfg, err);
        if (st)
            imsi_error_prefix(err, st, "index '%s'", o->index_dir);
    } else if (!st) {
        st = ims_index_open_for_writing(o->index_dir, &cfg, &r->index, err);
    }
    if (st)
        return st;
    imsi_index_settings s = r->index->settings;
    if (o->commit_every_s > 0)
        s.commit_every_s = o->commit_every_s;
    if (o->batch_size > 0)
        s.batch = o->batch_size;
    if (o->threads > 0)
        s.threads = o->threads;
    if (r->shards > 0 && r->exists && (s.shards != (r->shards > 1 ? r->shards : 0) || (s.shards && s.shard != r->shard))) {
        if (s.shards)
            ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s': it holds shard %lld/%lld of the files, not %d/%d",
                          o->index_dir, (long long)s.shard, (long long)s.shards, r->shard, r->shards);
        else
            ims_error_set(err, IMS_ERR_ARGUMENT, "index '%s': it holds all the files (no shard), not shard %d/%d",
                          o->index_dir, r->shard, r->shards);
        return IMS_ERR_ARGUMENT;
    }
    if (r->shards > 1)
        s.shard = r->shard, s.shards = r->shards;
    r->shard = (int)s.shard; /* given, or the index's */
    r->shards = (int)s.shards;
    imsi_index_set_settings(r->index, &s);
    st = imsi_index_add_roots(r->index, (const char *const *)r->roots, r->root_count, err);
    r->first_chunk = (int64_t)r->index->chunk_count;
    r->seen_chunks = r->index->chunk_count;
    return st;
}

ims_status ims_index_run(const ims_index_run_options *o, ims_index_progress *out, ims_error *err)
{
    return ims_index_run_shard(o, 0, 0, out, err);
}

ims_status ims_index_run_shard(const ims_index_run_options *o, int shard, int shards, ims_index_progress *out,
                               ims_error *err)
{
    if (shards < 0 || shards > (1 << 20) || (shards > 0 && (shard < 0 || shard >= shards)))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "shard %d of %d: expected 0 <= shard < shards <= %d", shard,
                             shards, 1 << 20);
    index_run r = {.o = o, .shard = shard, .shards = shards};
    double start = ims_clock_seconds();
    ims_file_list list = {0};
    uint8_t *seen_rows = NULL, *seen_failures = NULL;

    ims_status st = open_index(&r, err);
    if (!st && r.text)
        st = embed_class_names(&r, err);
    if (!st)
        st = ims_file_list_walk((const char *const *)r.roots, r.root_count, &list, err);
    if (!st) {
        seen_rows = calloc(r.index->row_count + 1, 1);
        seen_failures = calloc(r.index->failure_count + 1, 1);
        if (!seen_rows || !seen_failures)
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    if (!st)
        st = plan(&r, &list, seen_rows, seen_failures, err);
    if (!st && !o->keep_missing)
        st = prune(&r, &list, seen_rows, seen_failures, err);
    r.progress.total = (int64_t)r.todo_count;
    r.progress.ignored = list.ignored_count;
    r.progress.walk = st ? NULL : &list;
    if (!st) {
        size_t per_row = ((size_t)r.features + (size_t)r.semantic_dim) * ims_dtype_size(r.index->cfg.dtype) + 64;
        r.progress.estimated_disk_bytes = per_row * r.todo_count;
        r.progress.estimated_host_bytes =
            (size_t)r.index->cfg.chunk_rows * ((size_t)r.features + (size_t)r.semantic_dim) * 4 +
            3 * (size_t)r.batch * IMS_IMAGE_INPUT_SIZE * IMS_IMAGE_INPUT_SIZE * 3 * 4;
        r.progress.stage = IMS_INDEX_STAGE_PLANNED;
        r.progress.elapsed_s = ims_clock_seconds() - start;
        report(&r);
    }
    r.last_commit = ims_clock_seconds();
    if (!st && r.todo_count > 0)
        st = run_files(&r, err);
    if (!st)
        st = ims_index_commit(r.index, err);
    if (r.index)
        r.progress.commits = (int64_t)r.index->chunk_count - r.first_chunk;
    r.progress.elapsed_s = ims_clock_seconds() - start;
    r.progress.stage = IMS_INDEX_STAGE_FINISHED;
    r.progress.walk = NULL; /* freed below; the caller's copy must not point at it */
    if (!st)
        report(&r);
    if (out)
        *out = r.progress;
    if (st && err && r.index && r.index->writable && st != IMS_ERR_ARGUMENT) {
        /* a full disk, a GPU error: say what is kept */
        size_t len = strlen(err->msg);
        snprintf(err->msg + len, sizeof err->msg - len, " (the index keeps its last commit: run again to resume)");
    }
    ims_index_close(r.index); /* after a failure: records not committed are dropped, the index stays valid */
    ims_image_encoder_free(r.image);
    ims_text_embedder_free(r.text);
    ims_weights_close(r.owned_image);
    ims_weights_close(r.owned_text);
    free(r.class_embeddings);
    free(r.visual);
    free(r.semantic);
    for (size_t i = 0; i < r.root_count; i++)
        free(r.roots[i]);
    free(r.roots);
    free(r.todo);
    free(r.kind);
    free(r.replaces);
    free(seen_rows);
    free(seen_failures);
    ims_file_list_free(&list);
    return st;
}
