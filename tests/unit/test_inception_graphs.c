/* test_inception_graphs.c: Inception-v3's handling of graph capture
 * (engine/models/inception_v3.c), on the CPU with a backend whose graph slots
 * are fakes, so that every failure a GPU may give can be made to happen.
 *
 * The fake backend is the CPU backend's op table plus capture slots that
 * record what they are asked: ops "captured" still run (the CPU has no
 * deferred work), and a "graph" launch does nothing, so a replay is only
 * ever checked on the input it was captured with. Failures are injected
 * where a GPU could give them: an op that refuses to run while capturing,
 * capture_begin or capture_end failing, a launch refused (a graph whose
 * scratch moved). In every case the forward must still give the plain
 * encoder's bits, and a failed capture must not be tried again.
 *
 * The model: the converter fixture with torchvision's names and every width
 * / 16 (tests/fixtures/inception/tv_zip.pt), full 299 x 299 input.
 *
 * Usage: test_inception_graphs FIXTURE_DIR (tests/fixtures/inception)
 */
#include "test.h"

#include "backend/backend.h"
#include "models/inception_v3.h"

#include <unistd.h>

static ims_backend *be;
static imsi_backend_ops fake_ops;
static const imsi_backend_ops *cpu_ops;

static struct {
    int capturing;
    int fail_op_in_capture, fail_begin, fail_end, fail_launches;
    int begins, ends, launches, frees, live_graphs;
} fk;

static int token; /* the address every fake graph points to */

static ims_status fake_capture_begin(ims_backend *b, ims_error *err)
{
    if (fk.fail_begin)
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "fake: capture refused");
    fk.begins++;
    fk.capturing = 1;
    return IMS_OK;
}

static ims_status fake_capture_end(ims_backend *b, void **graph, ims_error *err)
{
    TEST_CHECK(fk.capturing, "capture_end without a capture");
    fk.capturing = 0;
    fk.ends++;
    *graph = NULL;
    if (fk.fail_end)
        return ims_error_set(err, IMS_ERR_CUDA, "fake: capture invalidated");
    *graph = &token;
    fk.live_graphs++;
    return IMS_OK;
}

static ims_status fake_graph_launch(ims_backend *b, void *graph, ims_error *err)
{
    TEST_CHECK(graph == &token, "a launch of something not a graph");
    fk.launches++;
    if (fk.fail_launches > 0) {
        fk.fail_launches--;
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "fake: the graph's scratch moved");
    }
    return IMS_OK;
}

static void fake_graph_free(ims_backend *b, void *graph)
{
    if (!graph)
        return;
    fk.frees++;
    fk.live_graphs--;
}

static ims_status fake_conv2d(ims_backend *b, const imsi_conv2d_params *p, const imsi_tensor *x, const imsi_tensor *w,
                              const imsi_tensor *bias, imsi_tensor *y, ims_error *err)
{
    if (fk.capturing && fk.fail_op_in_capture)
        return ims_error_set(err, IMS_ERR_CUDA, "fake: conv2d cannot be captured");
    return cpu_ops->conv2d(b, p, x, w, bias, y, err);
}

static uint8_t *images(int batch, uint64_t seed)
{
    size_t n = (size_t)batch * 299 * 299 * 3;
    uint8_t *img = test_xmalloc(n);
    for (size_t i = 0; i < n; i++)
        img[i] = (uint8_t)(test_rand_u64(&seed) >> 56);
    return img;
}

/* The reference: a plain encoder's logits of the same images. */
static float *plain_logits(ims_image_encoder *plain, const uint8_t *img, int batch, int classes)
{
    ims_error err = {0};
    float *l = test_xmalloc((size_t)batch * classes * sizeof *l);
    TEST_OK(ims_image_encoder_forward(plain, img, batch, NULL, l, &err), err);
    return l;
}

/* `calls` forwards of batch 2 (new images each time unless `same`), each
 * against the plain encoder bit for bit. */
static void forwards(ims_image_encoder *enc, ims_image_encoder *plain, int classes, int calls, int same,
                     const char *what)
{
    ims_error err = {0};
    for (int c = 0; c < calls; c++) {
        uint8_t *img = images(2, same ? 7 : 100 + (uint64_t)c);
        float *want = plain_logits(plain, img, 2, classes);
        float *got = test_xmalloc((size_t)2 * classes * sizeof *got);
        memset(got, 0xff, (size_t)2 * classes * sizeof *got);
        ims_status st = ims_image_encoder_forward(enc, img, 2, NULL, got, &err);
        TEST_CHECK(st == IMS_OK, "%s: forward %d: %s (%s)", what, c, ims_status_name(st), err.msg);
        TEST_CHECK(st != IMS_OK || !memcmp(got, want, (size_t)2 * classes * sizeof *got),
                   "%s: forward %d differs from the plain encoder", what, c);
        free(img), free(want), free(got);
    }
}

static ims_image_encoder *encoder(const ims_weights *w, int graphs)
{
    ims_error err = {0};
    ims_image_encoder *enc = NULL;
    TEST_OK(ims_image_encoder_create(be, w, IMS_PRECISION_FP32, &enc, &err), err);
    if (enc && graphs)
        TEST_OK(imsi_image_encoder_set_graphs(enc, 1, &err), err);
    return enc;
}

int main(int argc, char **argv)
{
    const char *dir = test_fixture_dir(argc, argv);
    char ckpt[1024], isw[256];
    snprintf(ckpt, sizeof ckpt, "%s/tv_zip.pt", dir);
    snprintf(isw, sizeof isw, "test_inception_graphs_%d.isw", (int)getpid());
    ims_error err = {0};
    ims_convert_options o;
    ims_convert_options_init(&o);
    ims_convert_report rep;
    ims_weights *w = NULL;
    if (ims_convert(ckpt, isw, &o, &rep, &err) || ims_weights_open(isw, 0, &w, &err)) {
        fprintf(stderr, "%s: %s\n", ckpt, err.msg);
        unlink(isw);
        return 1;
    }
    unlink(isw);
    if (ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    cpu_ops = be->ops;
    fake_ops = *be->ops;
    fake_ops.capture_begin = fake_capture_begin;
    fake_ops.capture_end = fake_capture_end;
    fake_ops.graph_launch = fake_graph_launch;
    fake_ops.graph_free = fake_graph_free;
    fake_ops.conv2d = fake_conv2d;
    be->ops = &fake_ops;
    TEST_CHECK(imsi_backend_has_graphs(be), "the fake backend has graph slots");
    ims_image_encoder *plain = encoder(w, 0);
    int classes = plain ? ims_image_encoder_num_classes(plain) : 0;

    /* Working graphs: run 1 plain, run 2 captures and launches, later runs replay. */
    memset(&fk, 0, sizeof fk);
    ims_image_encoder *enc = encoder(w, 1);
    if (enc && plain) {
        forwards(enc, plain, classes, 4, 1, "working graphs");
        TEST_CHECK(fk.begins == 1 && fk.ends == 1 && fk.launches == 3, "working graphs: %d captures, %d launches",
                   fk.begins, fk.launches);
    }
    ims_image_encoder_free(enc);
    TEST_CHECK(fk.live_graphs == 0, "the encoder left %d graphs", fk.live_graphs);

    /* An op fails during capture: the capture is ended, the forward runs
     * plainly, and this batch size is never captured again. */
    memset(&fk, 0, sizeof fk);
    fk.fail_op_in_capture = 1;
    enc = encoder(w, 1);
    if (enc && plain) {
        forwards(enc, plain, classes, 5, 0, "op fails in capture");
        TEST_CHECK(fk.begins == 1 && fk.ends == 1 && fk.launches == 0 && fk.live_graphs == 0,
                   "op fails in capture: %d captures begun, %d ended, %d launches, %d graphs kept", fk.begins, fk.ends,
                   fk.launches, fk.live_graphs);
    }
    ims_image_encoder_free(enc);

    /* capture_begin or capture_end fails: the same */
    memset(&fk, 0, sizeof fk);
    fk.fail_begin = 1;
    enc = encoder(w, 1);
    if (enc && plain) {
        forwards(enc, plain, classes, 4, 0, "capture_begin fails");
        TEST_CHECK(fk.begins == 0 && fk.launches == 0, "capture_begin fails: %d launches", fk.launches);
    }
    ims_image_encoder_free(enc);
    memset(&fk, 0, sizeof fk);
    fk.fail_end = 1;
    enc = encoder(w, 1);
    if (enc && plain) {
        forwards(enc, plain, classes, 4, 0, "capture_end fails");
        TEST_CHECK(fk.begins == 1 && fk.ends == 1 && fk.launches == 0, "capture_end fails: %d captures, %d launches",
                   fk.begins, fk.launches);
    }
    ims_image_encoder_free(enc);

    /* A launch refused (the backend's scratch moved): the graph is dropped,
     * the forward runs plainly, the batch size is captured again after its
     * next plain run; after a second refusal it stays plain. */
    memset(&fk, 0, sizeof fk);
    enc = encoder(w, 1);
    if (enc && plain) {
        forwards(enc, plain, classes, 2, 1, "relaunch: capture"); /* plain, capture + launch */
        fk.fail_launches = 1;
        forwards(enc, plain, classes, 3, 1, "relaunch: refused once"); /* refused -> plain; capture + launch; replay */
        TEST_CHECK(fk.begins == 2 && fk.frees == 1 && fk.launches == 4, "refused once: %d captures, %d frees, %d "
                   "launches", fk.begins, fk.frees, fk.launches);
        fk.fail_launches = 1;
        forwards(enc, plain, classes, 4, 1, "relaunch: refused twice");
        TEST_CHECK(fk.begins == 2 && fk.launches == 5 && fk.live_graphs == 0,
                   "refused twice: %d captures, %d launches, %d graphs kept", fk.begins, fk.launches, fk.live_graphs);
    }
    ims_image_encoder_free(enc);
    TEST_CHECK(fk.live_graphs == 0, "graphs left: %d", fk.live_graphs);
    printf("graph capture: working, op failure, begin failure, end failure, refused launches: checked\n");

    ims_image_encoder_free(plain);
    ims_weights_close(w);
    be->ops = cpu_ops;
    ims_backend_free(be);
    return test_finish();
}
