/* image_loader.h: a pool of decode threads that turns a list of image files
 * into batches of network input, in order, while the caller uses the previous
 * batch.
 *
 * Batch k holds paths [k*B, k*B + B) (the last one may be shorter). Its data is
 * (count, 3, 299, 299) float (NCHW), (count, 299, 299, 3) float (NHWC), or
 * (count, 299, 299, 3) uint8 (torchvision mode only: the resized and cropped
 * pixels, before normalization). An image that cannot be read or decoded gets
 * a status and a one-line error ("path: reason") in its item, and zeroed
 * pixels; it never stops its batch.
 *
 * Usage (one caller thread; the loader's own threads do the decoding):
 *
 *     ims_image_loader_create(&opts, backend_or_NULL, &ld, &err);
 *     ims_image_loader_start(ld, paths, n, &err);
 *     const ims_image_batch *b;
 *     while (ims_image_loader_next(ld, &b, &err) == IMS_OK) {
 *         ... use b->data, b->items[i].status ...
 *         ims_image_loader_release(ld, b);    (its buffer may be refilled)
 *     }                                        (IMS_ERR_NOT_FOUND: no more batches)
 *     ims_image_loader_free(ld);               (also fine mid-run)
 *
 * The output depends only on the files and the options, never on the thread
 * count or timing. The path strings must stay valid until the run ends (the
 * last batch was returned) or the loader is freed.
 */
#ifndef IMS_IMAGE_LOADER_H
#define IMS_IMAGE_LOADER_H

#include "backend.h"
#include "image.h"

/* The network input: torchvision resizes the short side to 342, then crops 299. */
enum {
    IMS_IMAGE_INPUT_SIZE = 299,
    IMS_IMAGE_RESIZE_SIZE = 342,
};

typedef enum ims_loader_output {
    IMS_LOADER_OUTPUT_F32 = 0, /* float in options.layout: torchvision mode normalized with the
                                  ImageNet mean and std; fid mode in [-1, 1] */
    IMS_LOADER_OUTPUT_U8,      /* torchvision mode only: (299, 299, 3) bytes per image */
} ims_loader_output;

typedef struct ims_image_loader_options {
    ims_preprocess_mode mode;   /* default IMS_PREPROCESS_TORCHVISION */
    ims_loader_output output;   /* default IMS_LOADER_OUTPUT_F32 */
    ims_layout layout;          /* float output only; default IMS_LAYOUT_NCHW */
    int batch_size;             /* default 32 */
    int threads;                /* decode threads; default 4 */
    int buffers;                /* batch buffers, at least 2 (double buffering); default 2 */
    ims_decode_options decode;  /* ims_decode_options_init's defaults */
} ims_image_loader_options;

void ims_image_loader_options_init(ims_image_loader_options *o);

typedef struct ims_image_item {
    ims_status status;             /* IMS_OK, or why the image failed (its pixels are zero) */
    char error[IMS_ERROR_MSG_MAX]; /* "path: reason"; empty when ok */
} ims_image_item;

typedef struct ims_image_batch {
    size_t index;                /* k */
    size_t first;                /* the first image's index in the path list: k * batch_size */
    int count;                   /* images in this batch (batch_size, or fewer in the last) */
    int failed;                  /* items whose status is not IMS_OK */
    size_t item_bytes;           /* bytes per image in data */
    void *data;                  /* (count, ...) as described above; host memory (pinned with CUDA) */
    const ims_image_item *items; /* (count) */
} ims_image_batch;

/* Totals since the loader was created, for progress summaries. Stage times are
 * summed over the decode threads (so they can exceed the wall time). */
typedef struct ims_image_loader_stats {
    uint64_t images, failed, bytes_read;
    double read_s, decode_s, preprocess_s;
    double wait_s; /* time the caller spent blocked in ims_image_loader_next */
} ims_image_loader_stats;

typedef struct ims_image_loader ims_image_loader;

/* backend may be NULL (plain 64-byte aligned host memory); otherwise the batch
 * buffers come from its host_alloc (pinned memory for CUDA) and the backend
 * must outlive the loader. Starts the decode threads, which wait for work. */
ims_status ims_image_loader_create(const ims_image_loader_options *o, ims_backend *backend,
                                   ims_image_loader **out, ims_error *err);

/* Begins a run over paths[0..count). Only when no run is in progress (every
 * batch of the previous run was returned and released). */
ims_status ims_image_loader_start(ims_image_loader *ld, const char *const *paths, size_t count, ims_error *err);

/* Blocks until the next batch is complete and returns it; IMS_ERR_NOT_FOUND
 * once every batch of the run was returned. IMS_ERR_ARGUMENT if every buffer
 * is held by the caller (release one first) or no run was started. */
ims_status ims_image_loader_next(ims_image_loader *ld, const ims_image_batch **batch, ims_error *err);

/* Gives a batch returned by next back to the loader, which may refill it. */
void ims_image_loader_release(ims_image_loader *ld, const ims_image_batch *batch);

void ims_image_loader_get_stats(ims_image_loader *ld, ims_image_loader_stats *out);

/* Stops the threads (each finishes the image in hand) and frees everything,
 * batches still held by the caller included. NULL is fine. */
void ims_image_loader_free(ims_image_loader *ld);

#endif /* IMS_IMAGE_LOADER_H */
