/* indexer.c: `imgsearch index`: folders of images -> an index (index/store.c).
 *
 * The pipeline: list the files (file_walk.c), drop those the index already
 * holds, run them through Inception-v3 batch by batch (image_encoder_run.c:
 * the loader's threads decode the next batches meanwhile), then per image: the visual
 * embedding (pool features, L2-normalized) and, with a text model, the ConSE
 * semantic embedding, appended to the index, which commits a chunk every
 * chunk_rows rows. A file that cannot be decoded becomes a failure record with
 * its reason; the run goes on.
 */
#include "imgsearch.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ims_index_run_options_init(ims_index_run_options *o)
{
    memset(o, 0, sizeof *o);
    o->precision = IMS_PRECISION_FP32;
    o->batch_size = 32;
    o->threads = 4;
    o->chunk_rows = 4096;
    o->conse_top = 10;
    o->dtype = IMS_DTYPE_F16;
    o->mode = IMS_PREPROCESS_TORCHVISION;
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

typedef struct index_run {
    const ims_index_run_options *o;
    ims_index *index;
    ims_image_encoder *image;
    ims_text_embedder *text; /* NULL without a text model */
    float *class_embeddings; /* (classes, semantic_dim) or NULL */
    int classes, features, semantic_dim;
    float *visual, *semantic; /* (features), (semantic_dim): one row's embeddings */
    ims_index_progress progress;
} index_run;

static void report(index_run *r)
{
    if (r->o->progress)
        r->o->progress(r->o->progress_ctx, &r->progress);
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
    ims_status st = ims_image_encoder_create(o->backend, o->image_model, o->precision, &r->image, err);
    if (st)
        return st;
    r->classes = ims_image_encoder_num_classes(r->image);
    r->features = ims_image_encoder_feature_dim(r->image);
    if (o->text_model)
        st = ims_text_embedder_create(o->backend, o->text_model, o->precision, &r->text, err);
    if (st)
        return st;
    r->semantic_dim = r->text ? ims_text_embedder_dim(r->text) : 0;
    r->visual = malloc((size_t)r->features * sizeof(float));
    r->semantic = r->semantic_dim ? malloc((size_t)r->semantic_dim * sizeof(float)) : NULL;
    if (!r->visual || (r->semantic_dim && !r->semantic))
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    return st;
}

static ims_status record_failure(index_run *r, const char *path, const char *reason, ims_error *err)
{
    ims_status st = ims_index_add_failure(r->index, path, reason, err);
    r->progress.failed++;
    if (r->o->on_failure)
        r->o->on_failure(r->o->progress_ctx, path, reason);
    return st;
}

/* The embeddings of image i of the batch into r->visual and r->semantic;
 * NULL, or why they cannot be made (the image then becomes a failure record,
 * like an undecodable one). */
static const char *embed_one(index_run *r, const ims_image_encoder_batch *b, int i, ims_error *err)
{
    memcpy(r->visual, b->features + (size_t)i * (size_t)r->features, (size_t)r->features * sizeof(float));
    if (!normalize_row(r->visual, r->features))
        return "the image's features have a zero or non-finite norm";
    if (r->semantic_dim && ims_conse_embed(b->logits + (size_t)i * (size_t)r->classes, 1, r->classes,
                                           r->class_embeddings, r->semantic_dim, r->o->conse_top, r->semantic, err))
        return err->msg;
    return NULL;
}

/* Appends an encoded batch's rows and failures, in input order. */
static ims_status run_batch(index_run *r, const ims_image_encoder_batch *b, const ims_file_entry *files,
                            ims_error *err)
{
    ims_status st = IMS_OK;
    r->progress.model_s += b->model_s;
    r->progress.decode_wait_s = b->wait_s;
    for (int i = 0; !st && i < b->count; i++) {
        const ims_file_entry *f = &files[b->first + (size_t)i];
        double t1 = ims_clock_seconds();
        if (b->items[i].status != IMS_OK) {
            st = record_failure(r, f->path, b->items[i].reason, err);
        } else {
            ims_error why = {0};
            const char *bad = embed_one(r, b, i, &why);
            double t2 = ims_clock_seconds();
            r->progress.model_s += t2 - t1;
            t1 = t2;
            if (bad) {
                st = record_failure(r, f->path, bad, err);
            } else {
                st = ims_index_add(r->index, f, r->visual, r->semantic, err);
                r->progress.indexed++;
                if (!st && b->items[i].warnings && r->o->on_warning)
                    r->o->on_warning(r->o->progress_ctx, f->path, b->items[i].reason);
            }
        }
        r->progress.write_s += ims_clock_seconds() - t1;
        r->progress.done++;
    }
    return st;
}

ims_status ims_index_run(const ims_index_run_options *o, ims_index_progress *out, ims_error *err)
{
    index_run r = {.o = o};
    double start = ims_clock_seconds();
    ims_file_list list = {0};
    ims_image_encoder_run *run = NULL;
    const char **paths = NULL;
    ims_file_entry *todo = NULL;
    size_t todo_count = 0;

    ims_index_config cfg;
    ims_index_config_init(&cfg);
    cfg.mode = o->mode;
    cfg.dtype = o->dtype;
    cfg.chunk_rows = o->chunk_rows;
    cfg.conse_top = o->conse_top;
    cfg.precision = (int)o->precision;
    ims_status st = ims_weights_identify(o->image_model, &cfg.image_model, err);
    if (!st && o->text_model)
        st = ims_weights_identify(o->text_model, &cfg.text_model, err);
    if (!st)
        st = run_setup(&r, err);
    if (!st) {
        cfg.visual_dim = r.features;
        cfg.semantic_dim = r.semantic_dim;
        st = ims_index_open_for_writing(o->index_dir, &cfg, &r.index, err);
    }
    if (!st && o->text_model)
        st = embed_class_names(&r, err);
    if (!st)
        st = ims_file_list_walk(o->roots, o->root_count, &list, err);

    /* What is left to do: problems of the walk are failures too. */
    if (!st) {
        todo = malloc((list.file_count ? list.file_count : 1) * sizeof *todo);
        paths = malloc((list.file_count ? list.file_count : 1) * sizeof *paths);
        if (!todo || !paths)
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for %lld files", (long long)list.file_count);
    }
    for (int64_t i = 0; !st && i < list.file_count; i++) {
        if (ims_index_contains(r.index, list.files[i].path)) {
            r.progress.already++;
            continue;
        }
        paths[todo_count] = list.files[i].path;
        todo[todo_count++] = list.files[i];
    }
    for (int64_t i = 0; !st && i < list.problem_count; i++) {
        if (ims_index_contains(r.index, list.problems[i].path)) {
            r.progress.already++;
            continue;
        }
        st = record_failure(&r, list.problems[i].path, list.problems[i].reason, err);
    }
    r.progress.total = todo_count;
    r.progress.ignored = list.ignored_count;
    r.progress.walk = st ? NULL : &list;
    if (!st) {
        size_t per_row = ((size_t)r.features + (size_t)r.semantic_dim) * ims_dtype_size(o->dtype) + 64;
        r.progress.estimated_disk_bytes = per_row * todo_count;
        r.progress.estimated_host_bytes = (size_t)o->chunk_rows * ((size_t)r.features + (size_t)r.semantic_dim) * 4 +
                                          3 * (size_t)o->batch_size * IMS_IMAGE_INPUT_SIZE * IMS_IMAGE_INPUT_SIZE * 3 * 4;
        r.progress.stage = IMS_INDEX_STAGE_PLANNED;
        report(&r);
    }

    if (!st && todo_count > 0) {
        ims_image_encoder_run_options ro;
        ims_image_encoder_run_options_init(&ro);
        ro.mode = (int)o->mode;
        ro.batch_size = o->batch_size;
        ro.threads = o->threads;
        ro.decode = o->decode;
        st = ims_image_encoder_run_start(r.image, o->backend, paths, todo_count, &ro, &run, err);
        r.progress.stage = IMS_INDEX_STAGE_RUNNING;
        const ims_image_encoder_batch *b;
        while (!st) {
            ims_status next = ims_image_encoder_run_next(run, &b, err);
            if (next == IMS_ERR_NOT_FOUND)
                break;
            if ((st = next))
                break;
            st = run_batch(&r, b, todo, err);
            r.progress.elapsed_s = ims_clock_seconds() - start;
            report(&r);
        }
    }
    if (!st)
        st = ims_index_commit(r.index, err);
    r.progress.elapsed_s = ims_clock_seconds() - start;
    r.progress.stage = IMS_INDEX_STAGE_FINISHED;
    r.progress.walk = NULL; /* freed below; the caller's copy must not point at it */
    if (!st)
        report(&r);
    if (out)
        *out = r.progress;
    ims_image_encoder_run_free(run);
    ims_index_close(r.index); /* after a failure: rows not committed are dropped, the index stays valid */
    ims_image_encoder_free(r.image);
    ims_text_embedder_free(r.text);
    free(r.class_embeddings);
    free(r.visual);
    free(r.semantic);
    free(paths);
    free(todo);
    ims_file_list_free(&list);
    return st;
}
