/* test_image_loader.c: the threaded image loader (engine/image/loader.c).
 *
 * Inputs: the sample images in tests/fixtures/images/ (the folder given as
 * argv[1]), repeated to
 * make a list of 11 paths, with a missing file at index 4 and a corrupt file
 * (written to a temporary folder) at index 7. The expected output of every path
 * is computed by calling the decoder and the preprocessing directly; every
 * batch from the loader must match it byte for byte, for 1, 2 and 4 threads and
 * batch sizes 1, 3 and 8 (torchvision uint8, torchvision float NCHW, fid float
 * NCHW; torchvision and fid float NHWC with one setting). Also: batch order and
 * sizes, the failed items' messages, the "all buffers held" error, a second run
 * on the same loader, the CPU and (where a device is present) CUDA backends'
 * host buffers, uploaded and read back, bad options, and freeing mid-run (run
 * under ASan and TSan to check for leaks and races).
 *
 * Files of the folder that do not decode (the decoder's own bad samples) are
 * left out; at least 10 must decode.
 */
#include "backend/backend.h"
#include "test.h"

#include "core/tensor.h"

#include <dirent.h>
#include <unistd.h>

enum { NPATHS = 11, MISSING_AT = 4, CORRUPT_AT = 7, MAX_GOOD = 16 };

typedef struct expected {
    size_t item_bytes;
    uint8_t *data[NPATHS]; /* (item_bytes) each; zeros for the failed paths */
    int ok[NPATHS];
} expected;

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The image files of dir that decode, sorted by name; returns their count. */
static int find_good_images(const char *dir, char **good, ims_status *first_status, char *first_msg, size_t msg_size)
{
    *first_status = IMS_OK;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        if (e->d_name[0] == '.')
            continue;
        names[n] = malloc(strlen(dir) + strlen(e->d_name) + 2);
        sprintf(names[n], "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, compare_names);
    ims_decode_options dopt;
    ims_decode_options_init(&dopt);
    int ngood = 0;
    for (int i = 0; i < n; i++) {
        ims_image img = {0};
        ims_error err = {0};
        ims_status st = ims_image_decode_file(names[i], &dopt, &img, &err);
        if (st && *first_status == IMS_OK)
            *first_status = st, snprintf(first_msg, msg_size, "%s", err.msg);
        /* Small images only: the test runs each path many times. */
        if (!st && ngood < MAX_GOOD && (uint64_t)img.width * (uint64_t)img.height <= 1024 * 1024)
            good[ngood++] = names[i];
        else
            free(names[i]);
        ims_image_free(&img);
    }
    return ngood;
}

static const float mean[3] = {0.485f, 0.456f, 0.406f}, stdev[3] = {0.229f, 0.224f, 0.225f};

/* The loader's output for one path, computed directly. */
static int expected_one(const char *path, const ims_image_loader_options *o, uint8_t *out, size_t item_bytes)
{
    ims_image img = {0};
    ims_error err = {0};
    memset(out, 0, item_bytes);
    if (ims_image_decode_file(path, &o->decode, &img, &err))
        return 0;
    const int n = IMS_IMAGE_INPUT_SIZE;
    ims_status st;
    if (o->mode == IMS_PREPROCESS_FID) {
        st = ims_preprocess_fid(&img, n, o->layout, (float *)out, &err);
    } else if (o->output == IMS_LOADER_OUTPUT_U8) {
        st = ims_preprocess_torchvision_u8(&img, IMS_IMAGE_RESIZE_SIZE, n, out, &err);
    } else {
        uint8_t *crop = malloc((size_t)n * n * 3);
        st = ims_preprocess_torchvision_u8(&img, IMS_IMAGE_RESIZE_SIZE, n, crop, &err);
        if (!st)
            ims_preprocess_normalize(crop, n, n, mean, stdev, o->layout, (float *)out);
        free(crop);
    }
    ims_image_free(&img);
    TEST_CHECK(st == IMS_OK, "direct preprocessing of %s: %s", path, err.msg);
    return st == IMS_OK;
}

static void expected_init(expected *x, const char *const *paths, const ims_image_loader_options *o)
{
    size_t pixels = (size_t)IMS_IMAGE_INPUT_SIZE * IMS_IMAGE_INPUT_SIZE * 3;
    x->item_bytes = o->output == IMS_LOADER_OUTPUT_U8 ? pixels : pixels * sizeof(float);
    for (int i = 0; i < NPATHS; i++) {
        x->data[i] = malloc(x->item_bytes);
        x->ok[i] = expected_one(paths[i], o, x->data[i], x->item_bytes);
    }
}

static void expected_free(expected *x)
{
    for (int i = 0; i < NPATHS; i++)
        free(x->data[i]);
}

/* One whole run, checked batch by batch against x. */
static void check_run(ims_image_loader *ld, const char *const *paths, const expected *x, int batch_size,
                      const char *what)
{
    ims_error err = {0};
    TEST_OK(ims_image_loader_start(ld, paths, NPATHS, &err), err);
    int64_t k = 0, seen = 0;
    const ims_image_batch *b;
    ims_status st;
    while ((st = ims_image_loader_next(ld, &b, &err)) == IMS_OK) {
        int64_t first = k * batch_size;
        int64_t count = NPATHS - first < batch_size ? NPATHS - first : batch_size;
        TEST_CHECK(b->index == k && b->first == first && b->count == count,
                   "%s: batch %lld: index %lld, first %lld, count %lld", what, (long long)k, (long long)b->index,
                   (long long)b->first, (long long)b->count);
        TEST_CHECK(b->item_bytes == x->item_bytes, "%s: item_bytes %zu", what, b->item_bytes);
        int failed = 0;
        for (int j = 0; j < b->count && first + j < NPATHS; j++) {
            size_t i = (size_t)(first + j);
            const ims_image_item *it = &b->items[j];
            const uint8_t *got = (const uint8_t *)b->data + (size_t)j * b->item_bytes;
            failed += it->status != IMS_OK;
            TEST_CHECK((it->status == IMS_OK) == x->ok[i], "%s: image %zu status %s (%s)", what, i,
                       ims_status_name(it->status), it->reason);
            TEST_CHECK(memcmp(got, x->data[i], x->item_bytes) == 0, "%s: image %zu differs", what, i);
            TEST_CHECK(it->path == paths[i], "%s: image %zu's path is not the one given", what, i);
            if (it->status) {
                /* the reason says why, without the path (a field of its own) */
                TEST_CHECK(strlen(it->reason) > 2 && !strstr(it->reason, paths[i]),
                           "%s: image %zu reason '%s' should say why, without the path", what, i, it->reason);
                TEST_CHECK(!strchr(it->reason, '\n'), "%s: reason is not one line", what);
            } else {
                TEST_CHECK(it->reason[0] == '\0', "%s: ok image %zu has a reason '%s'", what, i, it->reason);
            }
        }
        TEST_CHECK(b->failed == failed, "%s: batch %lld failed %lld, items say %d", what, (long long)k,
                   (long long)b->failed, failed);
        seen += b->count;
        ims_image_loader_release(ld, b);
        k++;
    }
    TEST_CHECK(st == IMS_ERR_NOT_FOUND, "%s: run ended with %s: %s", what, ims_status_name(st), err.msg);
    TEST_CHECK(seen == NPATHS, "%s: %lld images in all", what, (long long)seen);
    TEST_CHECK(ims_image_loader_next(ld, &b, &err) == IMS_ERR_NOT_FOUND, "%s: next after the end", what);
}

static void test_outputs(const char *const *paths)
{
    static const struct {
        ims_preprocess_mode mode;
        ims_loader_output output;
        ims_layout layout;
        int full; /* every thread count and batch size, or one of each */
    } kinds[] = {
        {IMS_PREPROCESS_TORCHVISION, IMS_LOADER_OUTPUT_U8, IMS_LAYOUT_NHWC, 1},
        {IMS_PREPROCESS_TORCHVISION, IMS_LOADER_OUTPUT_F32, IMS_LAYOUT_NCHW, 1},
        {IMS_PREPROCESS_TORCHVISION, IMS_LOADER_OUTPUT_F32, IMS_LAYOUT_NHWC, 0},
        {IMS_PREPROCESS_FID, IMS_LOADER_OUTPUT_F32, IMS_LAYOUT_NHWC, 0},
        {IMS_PREPROCESS_FID, IMS_LOADER_OUTPUT_F32, IMS_LAYOUT_NCHW, 1},
    };
    static const int thread_counts[] = {1, 2, 4}, batch_sizes[] = {1, 3, 8};
    for (size_t m = 0; m < sizeof kinds / sizeof kinds[0]; m++) {
        ims_image_loader_options o;
        ims_image_loader_options_init(&o);
        o.mode = kinds[m].mode, o.output = kinds[m].output, o.layout = kinds[m].layout;
        expected x;
        expected_init(&x, paths, &o);
        TEST_CHECK(!x.ok[MISSING_AT] && !x.ok[CORRUPT_AT], "the missing and corrupt files decode");
        for (int t = 0; t < 3; t++) {
            for (int s = 0; s < 3; s++) {
                if (!kinds[m].full && (t != 1 || s != 1))
                    continue;
                o.threads = thread_counts[t], o.batch_size = batch_sizes[s];
                char what[96];
                snprintf(what, sizeof what, "kind %zu, %d threads, batch %d", m, o.threads, o.batch_size);
                ims_error err = {0};
                ims_image_loader *ld = NULL;
                TEST_OK(ims_image_loader_create(&o, NULL, &ld, &err), err);
                if (!ld)
                    continue;
                check_run(ld, paths, &x, o.batch_size, what);
                ims_image_loader_stats stats;
                ims_image_loader_get_stats(ld, &stats);
                TEST_CHECK(stats.images == NPATHS && stats.failed == 2, "%s: stats %llu images, %llu failed", what,
                           (unsigned long long)stats.images, (unsigned long long)stats.failed);
                TEST_CHECK(stats.read_s >= 0 && stats.decode_s >= 0 && stats.preprocess_s >= 0 && stats.bytes_read > 0,
                           "%s: stage times", what);
                if (t == 2 && s == 1) /* a second run on the same loader */
                    check_run(ld, paths, &x, o.batch_size, "second run");
                ims_image_loader_free(ld);
            }
        }
        expected_free(&x);
    }
}

/* Every batch of a run through the backend and back: upload, download, compare. */
static void check_round_trip(ims_backend *be, ims_image_loader *ld, const char *const *paths, const char *what)
{
    ims_error err = {0};
    TEST_OK(ims_image_loader_start(ld, paths, NPATHS, &err), err);
    const ims_image_batch *b;
    while (ims_image_loader_next(ld, &b, &err) == IMS_OK) {
        size_t n = (size_t)b->count * b->item_bytes;
        imsi_tensor t;
        uint8_t *back = malloc(n);
        TEST_OK(imsi_tensor_alloc(be, IMS_DTYPE_U8, 1, (int64_t[]){(int64_t)n}, &t, &err), err);
        TEST_OK(imsi_backend_upload(be, &t, b->data, n, &err), err);
        TEST_OK(imsi_backend_download(be, back, n, &t, &err), err);
        TEST_CHECK(memcmp(back, b->data, n) == 0, "%s: batch %lld changed in the round trip", what, (long long)b->index);
        imsi_tensor_free(&t);
        free(back);
        ims_image_loader_release(ld, b);
    }
}

/* A backend's host_alloc provides the buffers (pinned on CUDA); same output,
 * and the buffers upload. CUDA only where a device is present. */
static void test_backend_buffers(const char *const *paths, ims_backend_kind kind)
{
    ims_error err = {0};
    ims_backend *be = NULL;
    ims_status st = ims_backend_create(kind, 0, &be, &err);
    if (kind == IMS_BACKEND_CUDA && (st == IMS_ERR_UNSUPPORTED || st == IMS_ERR_NO_DEVICE)) {
        printf("cuda buffers not tested: %s\n", err.msg);
        return;
    }
    TEST_OK(st, err);
    if (!be)
        return;
    const char *what = ims_backend_get_info(be)->name;
    void *p = NULL;
    TEST_OK(imsi_backend_host_alloc(be, 1000, &p, &err), err);
    TEST_CHECK(p && ((uintptr_t)p & 63) == 0, "%s: host_alloc: 64-byte aligned", what);
    if (p)
        memset(p, 0xab, 1000);
    imsi_backend_host_free(be, p);
    imsi_backend_host_free(be, NULL);
    TEST_CHECK(imsi_backend_host_alloc(be, 0, &p, &err) == IMS_ERR_ARGUMENT, "%s: host_alloc of 0 bytes", what);

    ims_image_loader_options o;
    ims_image_loader_options_init(&o);
    o.output = IMS_LOADER_OUTPUT_U8, o.batch_size = 4, o.threads = 3, o.buffers = 3;
    expected x;
    expected_init(&x, paths, &o);
    ims_image_loader *ld = NULL;
    TEST_OK(ims_image_loader_create(&o, be, &ld, &err), err);
    if (ld) {
        check_run(ld, paths, &x, o.batch_size, what);
        check_round_trip(be, ld, paths, what);
    }
    ims_image_loader_free(ld);
    expected_free(&x);
    ims_backend_free(be);
}

/* Holding every buffer, then freeing mid-run (batches still held, threads busy). */
static void test_hold_and_early_free(const char *const *paths)
{
    ims_image_loader_options o;
    ims_image_loader_options_init(&o);
    o.output = IMS_LOADER_OUTPUT_U8, o.batch_size = 2, o.threads = 2;
    ims_error err = {0};
    ims_image_loader *ld = NULL;
    TEST_OK(ims_image_loader_create(&o, NULL, &ld, &err), err);
    if (!ld)
        return;
    const ims_image_batch *b0 = NULL, *b1 = NULL, *b2 = NULL;
    TEST_CHECK(ims_image_loader_next(ld, &b0, &err) == IMS_ERR_ARGUMENT, "next before start");
    TEST_OK(ims_image_loader_start(ld, paths, NPATHS, &err), err);
    TEST_CHECK(ims_image_loader_start(ld, paths, NPATHS, &err) == IMS_ERR_ARGUMENT, "start during a run");
    TEST_OK(ims_image_loader_next(ld, &b0, &err), err);
    TEST_OK(ims_image_loader_next(ld, &b1, &err), err);
    TEST_CHECK(ims_image_loader_next(ld, &b2, &err) == IMS_ERR_ARGUMENT && !b2, "next with both buffers held");
    TEST_CHECK(strstr(err.msg, "release") != NULL, "message says to release: %s", err.msg);
    ims_image_loader_release(ld, b0);
    TEST_OK(ims_image_loader_next(ld, &b2, &err), err);
    TEST_CHECK(b2 && b2->index == 2, "batch 2 after a release");
    ims_image_loader_release(ld, b1);
    /* b2 is held, batch 3 is being decoded: free now. */
    ims_image_loader_free(ld);

    /* Freed right after start, nothing returned yet; and freed without a run. */
    for (int threads = 1; threads <= 4; threads *= 2) {
        o.threads = threads;
        TEST_OK(ims_image_loader_create(&o, NULL, &ld, &err), err);
        if (ld && threads != 4)
            TEST_OK(ims_image_loader_start(ld, paths, NPATHS, &err), err);
        ims_image_loader_free(ld);
    }
    ims_image_loader_free(NULL);

    /* An empty run ends at once. */
    TEST_OK(ims_image_loader_create(&o, NULL, &ld, &err), err);
    if (ld) {
        TEST_OK(ims_image_loader_start(ld, paths, 0, &err), err);
        TEST_CHECK(ims_image_loader_next(ld, &b0, &err) == IMS_ERR_NOT_FOUND, "empty run");
        TEST_OK(ims_image_loader_start(ld, paths, 1, &err), err);
        TEST_OK(ims_image_loader_next(ld, &b0, &err), err);
        TEST_CHECK(b0 && b0->count == 1, "a run of one image");
        ims_image_loader_release(ld, b0);
        ims_image_loader_free(ld);
    }
}

static void test_bad_options(void)
{
    ims_image_loader_options o;
    ims_error err = {0};
    ims_image_loader *ld = (ims_image_loader *)&o;
    ims_image_loader_options_init(&o);
    o.mode = IMS_PREPROCESS_FID, o.output = IMS_LOADER_OUTPUT_U8;
    TEST_CHECK(ims_image_loader_create(&o, NULL, &ld, &err) == IMS_ERR_ARGUMENT && !ld, "uint8 in fid mode");
    TEST_CHECK(strstr(err.msg, "torchvision") != NULL, "message: %s", err.msg);
    ims_image_loader_options_init(&o);
    o.buffers = 1;
    TEST_CHECK(ims_image_loader_create(&o, NULL, &ld, &err) == IMS_ERR_ARGUMENT, "one buffer");
    ims_image_loader_options_init(&o);
    o.batch_size = 0;
    TEST_CHECK(ims_image_loader_create(&o, NULL, &ld, &err) == IMS_ERR_ARGUMENT, "batch size 0");
    ims_image_loader_options_init(&o);
    o.threads = 0;
    TEST_CHECK(ims_image_loader_create(&o, NULL, &ld, &err) == IMS_ERR_ARGUMENT, "0 threads");
}

int main(int argc, char **argv)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_fixture_dir(argc, argv));

    test_bad_options();

    char *good[MAX_GOOD];
    ims_status first_status;
    char first_msg[IMS_ERROR_MSG_MAX] = "";
    int ngood = find_good_images(dir, good, &first_status, first_msg, sizeof first_msg);
    TEST_CHECK(ngood >= 10, "only %d images in %s decode (first failure: %s: %s)", ngood, dir,
               ims_status_name(first_status), first_msg);
    if (ngood == 0)
        return test_finish();

    char tmpdir[] = "/tmp/test_image_loader.XXXXXX";
    TEST_CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
    char missing[64], corrupt[64];
    snprintf(missing, sizeof missing, "%s/missing.jpg", tmpdir);
    snprintf(corrupt, sizeof corrupt, "%s/corrupt.png", tmpdir);
    FILE *f = fopen(corrupt, "wb");
    if (f) {
        /* a PNG signature, then garbage */
        fputs("\x89PNG\r\n\x1a\n this is not the rest of a PNG file", f);
        fclose(f);
    }
    const char *paths[NPATHS];
    for (int i = 0; i < NPATHS; i++)
        paths[i] = good[i % ngood];
    paths[MISSING_AT] = missing;
    paths[CORRUPT_AT] = corrupt;

    test_outputs(paths);
    test_backend_buffers(paths, IMS_BACKEND_CPU);
    test_backend_buffers(paths, IMS_BACKEND_CUDA);
    test_hold_and_early_free(paths);

    unlink(corrupt);
    rmdir(tmpdir);
    for (int i = 0; i < ngood; i++)
        free(good[i]);
    return test_finish();
}
