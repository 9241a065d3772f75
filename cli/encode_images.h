/* encode_images.h: what `classify` and `embed-image` share: the options for a
 * model and a device, and the run of their images through the Inception-v3
 * encoder (the library's ims_image_encoder_run; encode_images.c). */
#ifndef IMS_CLI_ENCODE_IMAGES_H
#define IMS_CLI_ENCODE_IMAGES_H

#include "cli.h"

typedef struct encode_options {
    const char *model;        /* --image-model M.isw */
    const char **images;      /* (count) paths */
    size_t count;
    cli_device device;        /* --device auto|cpu|cuda, --gpu N */
    int precision;            /* --precision: an ims_precision (default fp32) */
    int mode;                 /* --mode: CLI_MODE_MODEL, else an ims_preprocess_mode */
    int batch;                /* --batch N */
    int threads;              /* decode threads */
    ims_decode_options decode; /* --max-pixels */
} encode_options;

void encode_options_init(encode_options *o);

/* The options both commands take (the images, --image-model, --device/--gpu,
 * --precision, --mode, --batch, --threads, --max-pixels): 1 if a's current argument was
 * one of them (and is consumed), 0 if it is the command's own. */
int encode_options_take(cli_args *a, encode_options *o, cli_list *images);

/* After the loop: the images and the model are given; -1 to go on, or the
 * usage error's exit status. */
int encode_options_finish(cli_args *a, encode_options *o, const cli_list *images);

/* Called once per image that succeeded, in input order: features
 * (feature_dim) and logits (num_classes). Returns 0 to go on. */
typedef int (*encode_sink)(void *ctx, size_t index, const char *path, const float *features, const float *logits,
                           const ims_image_encoder *enc);

/* Runs every image; a failed image is reported on stderr and skipped.
 * *ok: the images that succeeded. Returns CLI_EXIT_OK, CLI_EXIT_SOME_FAILED
 * or CLI_EXIT_FAILURE (nothing usable: model, device or sink failed). The
 * optional `ready` callback runs once the encoder exists, before any image. */
int encode_images(const encode_options *o, int (*ready)(void *ctx, const ims_image_encoder *enc), encode_sink sink,
                  void *ctx, size_t *ok);

/* The two halves of encode_images, for a command that runs several lists
 * through one model (fid's two folders): the backend and encoder o names
 * (0, or the exit status after reporting), then one list's images. */
int encode_model_open(const encode_options *o, ims_backend **be, ims_image_encoder **enc);
int encode_images_with(const encode_options *o, ims_backend *be, ims_image_encoder *enc, encode_sink sink, void *ctx,
                       size_t *ok);

#endif /* IMS_CLI_ENCODE_IMAGES_H */
