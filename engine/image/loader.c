/* image/loader.c: decode threads filling batch buffers in order (image/loader.c).
 *
 * Design. One mutex guards all shared state; two condition variables wake the
 * two sides: work_cv (workers: a run started, a buffer was released, stop) and
 * ready_cv (the caller: a batch became complete). Nobody polls.
 *
 * - Work is handed out one image at a time, in path order (next_image), so
 *   batch k fills before batch k+1 and the batch the caller waits for is never
 *   starved by later ones.
 * - Batch k lives in slot k % nslots. A worker may take image i of batch k only
 *   once that slot is free (batch k - nslots was released) or already holds
 *   batch k; otherwise it sleeps on work_cv. With 2 slots, batch k+1 decodes
 *   while the caller uses batch k.
 * - Each worker writes only its image's region of the slot, without the lock;
 *   it then takes the lock to count the item done. The caller reads a batch
 *   only after seeing it complete under the same lock, so the writes are
 *   ordered before its reads. Where an image lands depends only on its index:
 *   the output is the same for any thread count and any timing.
 * - Stop (free) sets a flag and wakes everyone; a worker finishes the image in
 *   hand, then exits; free joins the threads, then releases the buffers.
 *
 * Per image: read the file (timed as read), ims_image_decode (decode), then
 * the mode's preprocessing into the slot (preprocess). A failure at any stage
 * zeroes the image's region and records its status and reason in its item.
 */

#include "backend/backend.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* torchvision.transforms.Normalize for ImageNet-trained Inception v3. */
static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
static const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

/* A larger file is not an image we want to hold in memory (1 GiB). */
#define LOADER_MAX_FILE_BYTES ((uint64_t)1 << 30)

typedef enum slot_state {
    SLOT_FREE = 0, /* may be claimed for a new batch */
    SLOT_FILLING,  /* workers are decoding into it */
    SLOT_READY,    /* complete, not yet returned by next */
    SLOT_HELD,     /* returned by next, not yet released */
} slot_state;

typedef struct loader_slot {
    slot_state state;
    int done;              /* items finished (ok or failed) while FILLING */
    ims_image_batch batch; /* index, first, count, failed, data, items */
    ims_image_item *items; /* (batch_size) */
} loader_slot;

struct ims_image_loader {
    ims_image_loader_options opts;
    ims_backend *backend; /* may be NULL */
    ims_decode_budget *own_budget; /* the threads' shared decode memory, when the options gave none */
    size_t item_bytes;    /* bytes of one image's output */
    size_t slot_bytes;    /* item_bytes * batch_size */

    pthread_mutex_t mutex;
    pthread_cond_t work_cv, ready_cv;
    pthread_t *threads;
    int threads_started;
    int stop;

    /* The run (all guarded by mutex). */
    const char *const *paths;
    size_t count, nbatches;
    int running;
    size_t next_image; /* the next image a worker takes */
    size_t next_batch; /* the next batch next() returns */
    size_t released;   /* batches of this run released by the caller */

    int nslots;
    loader_slot *slots;

    ims_image_loader_stats stats;
};

/* Per-thread scratch, reused from image to image. */
typedef struct worker_scratch {
    uint8_t *file;         /* the file's bytes */
    size_t file_cap;
    uint8_t *crop;         /* (299, 299, 3): torchvision float output goes through it */
} worker_scratch;

void ims_image_loader_options_init(ims_image_loader_options *o)
{
    memset(o, 0, sizeof *o);
    o->mode = IMS_PREPROCESS_TORCHVISION;
    o->output = IMS_LOADER_OUTPUT_F32;
    o->layout = IMS_LAYOUT_NCHW;
    o->batch_size = 32;
    o->threads = 4;
    o->buffers = 2;
    ims_decode_options_init(&o->decode);
    o->decode_memory = IMS_DECODE_MEMORY_DEFAULT;
}

/* ---- Buffers ------------------------------------------------------------------- */

static ims_status buffer_alloc(ims_image_loader *ld, size_t nbytes, void **out, ims_error *err)
{
    if (ld->backend)
        return imsi_backend_host_alloc(ld->backend, nbytes, out, err);
    size_t rounded = (nbytes + 63) & ~(size_t)63;
    if (rounded < nbytes || !(*out = aligned_alloc(64, rounded)))
        return ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate %zu bytes for a batch buffer", nbytes);
    return IMS_OK;
}

static void buffer_free(ims_image_loader *ld, void *ptr)
{
    if (!ptr)
        return;
    if (ld->backend)
        imsi_backend_host_free(ld->backend, ptr);
    else
        free(ptr);
}

/* ---- One image -------------------------------------------------------------------- */

/* Reads the whole file into scratch->file; *size gets its length. */
static ims_status read_file(const char *path, worker_scratch *s, size_t *size, ims_error *err)
{
    *size = 0;
    /* O_NONBLOCK: a FIFO named like an image must not block the thread; it is refused below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return ims_error_set(err, IMS_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat sb;
    ims_status st = IMS_OK;
    if (fstat(fd, &sb) != 0)
        st = ims_error_set(err, IMS_ERR_IO, "cannot stat: %s", strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        st = ims_error_set(err, IMS_ERR_IO, "not a regular file");
    else if ((uint64_t)sb.st_size > LOADER_MAX_FILE_BYTES)
        st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "file of %lld bytes exceeds the %llu-byte limit",
                           (long long)sb.st_size, (unsigned long long)LOADER_MAX_FILE_BYTES);
    size_t n = st ? 0 : (size_t)sb.st_size;
    if (!st && n + 1 > s->file_cap) {
        uint8_t *p = realloc(s->file, n + 1);
        if (!p)
            st = ims_error_set(err, IMS_ERR_NOMEM, "cannot allocate %zu bytes to read the file", n + 1);
        else
            s->file = p, s->file_cap = n + 1;
    }
    size_t got = 0; /* at most the size it had when opened: a growing file is read no further */
    while (!st && got < n) {
        ssize_t r = read(fd, s->file + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            st = ims_error_set(err, IMS_ERR_IO, "read failed: %s", r < 0 ? strerror(errno) : "file shrank while read");
        else
            got += (size_t)r;
    }
    close(fd);
    if (!st)
        *size = n;
    return st;
}

/* Preprocesses a decoded image into out, per the loader's mode and output. */
static ims_status preprocess(const ims_image_loader *ld, const ims_image *img, worker_scratch *s, void *out,
                             ims_error *err)
{
    const ims_image_loader_options *o = &ld->opts;
    const int size = IMS_IMAGE_INPUT_SIZE;
    if (o->mode == IMS_PREPROCESS_FID)
        return ims_preprocess_fid(img, size, o->layout, out, err);
    if (o->mode == IMS_PREPROCESS_CLEAN)
        return ims_preprocess_clean(img, size, o->layout, out, err);
    if (o->output == IMS_LOADER_OUTPUT_U8)
        return ims_preprocess_torchvision_u8(img, IMS_IMAGE_RESIZE_SIZE, size, out, err);
    ims_status st = ims_preprocess_torchvision_u8(img, IMS_IMAGE_RESIZE_SIZE, size, s->crop, err);
    if (!st)
        ims_preprocess_normalize(s->crop, size, size, imagenet_mean, imagenet_std, o->layout, out);
    return st;
}

typedef struct image_times {
    double read_s, decode_s, preprocess_s;
    size_t bytes;
} image_times;

/* Decodes paths[index] into out (item_bytes); on failure zeroes out and fills item. */
static void load_one(const ims_image_loader *ld, const char *path, worker_scratch *s, void *out,
                     ims_image_item *item, image_times *t)
{
    ims_error err = {0};
    ims_image img = {0};
    size_t size = 0;
    double t0 = ims_clock_seconds();
    ims_status st = read_file(path, s, &size, &err);
    double t1 = ims_clock_seconds();
    if (!st)
        st = ims_image_decode(s->file, size, &ld->opts.decode, &img, &err);
    double t2 = ims_clock_seconds();
    if (!st)
        st = preprocess(ld, &img, s, out, &err);
    double t3 = ims_clock_seconds();
    t->read_s = t1 - t0, t->decode_s = t2 - t1, t->preprocess_s = t3 - t2, t->bytes = size;
    item->status = st;
    item->path = path;
    item->reason[0] = '\0';
    item->warnings = st ? 0 : img.warnings;
    if (st) {
        memset(out, 0, ld->item_bytes);
        snprintf(item->reason, sizeof item->reason, "%s", err.msg[0] ? err.msg : ims_status_name(st));
    } else if (img.warnings & IMS_IMAGE_WARNING_LARGE) {
        const ims_decode_options *o = &ld->opts.decode;
        snprintf(item->reason, sizeof item->reason,
                 "%d x %d = %llu pixels, over %llu: a possible decompression bomb (refused above %llu, --max-pixels)",
                 img.width, img.height, (unsigned long long)img.width * (unsigned long long)img.height,
                 (unsigned long long)o->warn_pixels, (unsigned long long)o->max_pixels);
    }
    ims_image_free(&img);
}

/* ---- Workers -------------------------------------------------------------------------- */

/* Under the mutex: the slot for image i's batch, claimed if free; NULL if that
 * slot still holds an earlier batch. */
static loader_slot *slot_for_image(ims_image_loader *ld, size_t i)
{
    size_t b = (size_t)ld->opts.batch_size;
    size_t k = i / b;
    loader_slot *slot = &ld->slots[k % (size_t)ld->nslots];
    if (slot->state == SLOT_FILLING && slot->batch.index == (int64_t)k)
        return slot;
    if (slot->state != SLOT_FREE)
        return NULL;
    size_t first = k * b;
    slot->state = SLOT_FILLING;
    slot->done = 0;
    slot->batch.index = (int64_t)k;
    slot->batch.first = (int64_t)first;
    slot->batch.count = (int64_t)(ld->count - first < b ? ld->count - first : b);
    slot->batch.failed = 0;
    return slot;
}

static void *worker_main(void *arg)
{
    ims_image_loader *ld = arg;
    worker_scratch s = {0};
    s.crop = malloc((size_t)IMS_IMAGE_INPUT_SIZE * IMS_IMAGE_INPUT_SIZE * 3);
    pthread_mutex_lock(&ld->mutex);
    for (;;) {
        loader_slot *slot = NULL;
        while (!ld->stop) {
            if (ld->running && ld->next_image < ld->count && (slot = slot_for_image(ld, ld->next_image)))
                break;
            pthread_cond_wait(&ld->work_cv, &ld->mutex);
        }
        if (ld->stop)
            break;
        size_t i = ld->next_image++;
        const char *path = ld->paths[i];
        int j = (int)(i - slot->batch.first);
        pthread_mutex_unlock(&ld->mutex);

        ims_image_item *item = &slot->items[j];
        void *out = (uint8_t *)slot->batch.data + (size_t)j * ld->item_bytes;
        image_times t = {0};
        if (s.crop)
            load_one(ld, path, &s, out, item, &t);
        else {
            memset(out, 0, ld->item_bytes);
            item->status = IMS_ERR_NOMEM;
            item->path = path;
            snprintf(item->reason, sizeof item->reason, "cannot allocate the decode thread's buffer");
        }

        pthread_mutex_lock(&ld->mutex);
        ld->stats.images++;
        ld->stats.read_s += t.read_s;
        ld->stats.decode_s += t.decode_s;
        ld->stats.preprocess_s += t.preprocess_s;
        ld->stats.bytes_read += t.bytes;
        if (item->status) {
            ld->stats.failed++;
            slot->batch.failed++;
        }
        if (++slot->done == slot->batch.count) {
            slot->state = SLOT_READY;
            pthread_cond_broadcast(&ld->ready_cv);
        }
    }
    pthread_mutex_unlock(&ld->mutex);
    free(s.file);
    free(s.crop);
    return NULL;
}

/* ---- The API ---------------------------------------------------------------------------- */

static ims_status check_options(const ims_image_loader_options *o, ims_error *err)
{
    if (!ims_preprocess_mode_name(o->mode))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image loader: unknown preprocess mode %d", (int)o->mode);
    if (o->output != IMS_LOADER_OUTPUT_F32 && o->output != IMS_LOADER_OUTPUT_U8)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image loader: unknown output %d", (int)o->output);
    if (o->output == IMS_LOADER_OUTPUT_U8 && o->mode != IMS_PREPROCESS_TORCHVISION)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image loader: uint8 output exists in torchvision mode only");
    if (o->layout != IMS_LAYOUT_NCHW && o->layout != IMS_LAYOUT_NHWC)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image loader: unknown layout %d", (int)o->layout);
    if (o->batch_size < 1 || o->batch_size > 65536)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image loader: batch size %d is not in 1..65536", o->batch_size);
    if (o->threads < 1 || o->threads > 1024)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image loader: %d threads is not in 1..1024", o->threads);
    if (o->buffers < 2 || o->buffers > 64)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image loader: %d buffers is not in 2..64", o->buffers);
    return IMS_OK;
}

static ims_status loader_alloc_slots(ims_image_loader *ld, ims_error *err)
{
    ld->slots = calloc((size_t)ld->nslots, sizeof *ld->slots);
    if (!ld->slots)
        return ims_error_set(err, IMS_ERR_NOMEM, "image loader: cannot allocate its buffer table");
    for (int s = 0; s < ld->nslots; s++) {
        loader_slot *slot = &ld->slots[s];
        slot->items = calloc((size_t)ld->opts.batch_size, sizeof *slot->items);
        if (!slot->items)
            return ims_error_set(err, IMS_ERR_NOMEM, "image loader: cannot allocate %d item records", ld->opts.batch_size);
        slot->batch.items = slot->items;
        slot->batch.item_bytes = ld->item_bytes;
        ims_status st = buffer_alloc(ld, ld->slot_bytes, &slot->batch.data, err);
        if (st)
            return imsi_error_prefix(err, st, "image loader");
    }
    return IMS_OK;
}

ims_status ims_image_loader_create(const ims_image_loader_options *o, ims_backend *backend,
                                   ims_image_loader **out, ims_error *err)
{
    *out = NULL;
    ims_status st = check_options(o, err);
    if (st)
        return st;
    ims_image_loader *ld = calloc(1, sizeof *ld);
    if (!ld)
        return ims_error_set(err, IMS_ERR_NOMEM, "image loader: cannot allocate its state");
    ld->opts = *o;
    ld->backend = backend;
    ld->nslots = o->buffers;
    size_t pixels = (size_t)IMS_IMAGE_INPUT_SIZE * IMS_IMAGE_INPUT_SIZE * 3;
    ld->item_bytes = o->output == IMS_LOADER_OUTPUT_U8 ? pixels : pixels * sizeof(float);
    ld->slot_bytes = ld->item_bytes * (size_t)o->batch_size; /* at most 65536 * 1 MiB: no overflow */
    if (pthread_mutex_init(&ld->mutex, NULL) || pthread_cond_init(&ld->work_cv, NULL) ||
        pthread_cond_init(&ld->ready_cv, NULL)) {
        free(ld);
        return ims_error_set(err, IMS_ERR_NOMEM, "image loader: cannot create its mutex and condition variables");
    }
    *out = ld; /* from here, ims_image_loader_free undoes a partial setup */
    if (!ld->opts.decode.budget) {
        st = ims_decode_budget_create(o->decode_memory, &ld->own_budget, err);
        ld->opts.decode.budget = ld->own_budget;
    }
    if (!st)
        st = loader_alloc_slots(ld, err);
    if (!st && !(ld->threads = calloc((size_t)o->threads, sizeof *ld->threads)))
        st = ims_error_set(err, IMS_ERR_NOMEM, "image loader: cannot allocate its thread table");
    for (int t = 0; !st && t < o->threads; t++) {
        int e = pthread_create(&ld->threads[t], NULL, worker_main, ld);
        if (e)
            st = ims_error_set(err, IMS_ERR_NOMEM, "image loader: cannot start decode thread %d: %s", t, strerror(e));
        else
            ld->threads_started++;
    }
    if (st) {
        ims_image_loader_free(ld);
        *out = NULL;
    }
    return st;
}

ims_status ims_image_loader_start(ims_image_loader *ld, const char *const *paths, int64_t count, ims_error *err)
{
    if (count < 0 || (count && !paths))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "image loader: %lld images at %p", (long long)count,
                             (const void *)paths);
    pthread_mutex_lock(&ld->mutex);
    ims_status st = IMS_OK;
    if (ld->running && (ld->next_batch < ld->nbatches || ld->released < ld->nbatches))
        st = ims_error_set(err, IMS_ERR_ARGUMENT,
                           "image loader: a run is in progress (every batch must be returned and released first)");
    if (!st) {
        ld->paths = paths;
        ld->count = (size_t)count;
        ld->nbatches = ((size_t)count + (size_t)ld->opts.batch_size - 1) / (size_t)ld->opts.batch_size;
        ld->next_image = ld->next_batch = ld->released = 0;
        ld->running = 1;
        for (int s = 0; s < ld->nslots; s++)
            ld->slots[s].state = SLOT_FREE;
        pthread_cond_broadcast(&ld->work_cv);
    }
    pthread_mutex_unlock(&ld->mutex);
    return st;
}

ims_status ims_image_loader_next(ims_image_loader *ld, const ims_image_batch **batch, ims_error *err)
{
    *batch = NULL;
    double t0 = ims_clock_seconds();
    pthread_mutex_lock(&ld->mutex);
    ims_status st = IMS_OK;
    size_t k = ld->next_batch;
    loader_slot *slot = ld->running ? &ld->slots[k % (size_t)ld->nslots] : NULL;
    if (!ld->running)
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "image loader: next before start");
    else if (k >= ld->nbatches)
        st = ims_error_set(err, IMS_ERR_NOT_FOUND, "image loader: no more batches (%zu returned)", ld->nbatches);
    else if (slot->state == SLOT_HELD)
        st = ims_error_set(err, IMS_ERR_ARGUMENT, "image loader: all %d buffers are held; release a batch first",
                           ld->nslots);
    else {
        /* The slot is FREE (not yet claimed), FILLING batch k, or READY with batch k. */
        while (!(slot->state == SLOT_READY && slot->batch.index == (int64_t)k))
            pthread_cond_wait(&ld->ready_cv, &ld->mutex);
        slot->state = SLOT_HELD;
        ld->next_batch++;
        *batch = &slot->batch;
    }
    ld->stats.wait_s += ims_clock_seconds() - t0;
    pthread_mutex_unlock(&ld->mutex);
    return st;
}

void ims_image_loader_release(ims_image_loader *ld, const ims_image_batch *batch)
{
    if (!batch)
        return;
    pthread_mutex_lock(&ld->mutex);
    for (int s = 0; s < ld->nslots; s++) {
        loader_slot *slot = &ld->slots[s];
        if (&slot->batch == batch && slot->state == SLOT_HELD) {
            slot->state = SLOT_FREE;
            ld->released++;
            pthread_cond_broadcast(&ld->work_cv);
        }
    }
    pthread_mutex_unlock(&ld->mutex);
}

void ims_image_loader_get_stats(ims_image_loader *ld, ims_image_loader_stats *out)
{
    pthread_mutex_lock(&ld->mutex);
    *out = ld->stats;
    pthread_mutex_unlock(&ld->mutex);
}

void ims_image_loader_free(ims_image_loader *ld)
{
    if (!ld)
        return;
    pthread_mutex_lock(&ld->mutex);
    ld->stop = 1;
    pthread_cond_broadcast(&ld->work_cv);
    pthread_mutex_unlock(&ld->mutex);
    for (int t = 0; t < ld->threads_started; t++)
        pthread_join(ld->threads[t], NULL);
    free(ld->threads);
    if (ld->slots) {
        for (int s = 0; s < ld->nslots; s++) {
            buffer_free(ld, ld->slots[s].batch.data);
            free(ld->slots[s].items);
        }
        free(ld->slots);
    }
    ims_decode_budget_free(ld->own_budget);
    pthread_cond_destroy(&ld->ready_cv);
    pthread_cond_destroy(&ld->work_cv);
    pthread_mutex_destroy(&ld->mutex);
    free(ld);
}
