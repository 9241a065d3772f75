/* bench_inception.c: Inception-v3 forward throughput (images/s) per backend,
 * precision and batch size, on the generated full-size model of the tests
 * (or any converted Inception-v3 file).
 *
 * Usage: bench_inception (--model M.isw | --golden GOLDEN_DIR) [--seconds S]
 *                        [--batches 1,8,32] [--cpu-only]
 * One line per run: backend precision batch B images/s X ms/batch Y.
 * Inputs are random bytes, uploaded each call (as the CLI does); the first
 * two calls per configuration (allocation, cuDNN algorithm search, graph
 * capture) are not timed. CUDA runs with and without CUDA graphs.
 */
#include "inception_weights.h"
#include "models/inception_v3.h"

static int bench_run(ims_backend *be, const ims_weights *w, ims_precision p, int batch, double seconds, int graphs)
{
    ims_error err = {0};
    ims_image_encoder *enc = NULL;
    if (ims_image_encoder_create(be, w, p, &enc, &err)) {
        fprintf(stderr, "bench_inception: %s %s: %s\n", ims_backend_get_info(be)->name, ims_precision_name(p),
                err.msg);
        return 1;
    }
    if (graphs && imsi_image_encoder_set_graphs(enc, 1, &err)) {
        fprintf(stderr, "bench_inception: graphs: %s\n", err.msg);
        ims_image_encoder_free(enc);
        return 1;
    }
    size_t n = (size_t)batch * SIZE * SIZE * 3;
    uint8_t *img = malloc(n);
    float *feat = malloc((size_t)batch * ims_image_encoder_feature_dim(enc) * sizeof *feat);
    int rc = !img || !feat;
    uint64_t rng = 42;
    for (size_t i = 0; !rc && i < n; i++)
        img[i] = (uint8_t)(test_rand_u64(&rng) >> 56);
    for (int i = 0; i < 2 && !rc; i++) /* warm-up: the algorithm search, then the graph capture */
        rc = ims_image_encoder_forward(enc, img, batch, feat, NULL, &err) != IMS_OK;
    int iters = 0;
    double t0 = ims_clock_seconds(), t = t0;
    while (!rc && (t - t0 < seconds || iters < 2)) {
        if (ims_image_encoder_forward(enc, img, batch, feat, NULL, &err))
            rc = 1;
        iters++;
        t = ims_clock_seconds();
    }
    if (rc)
        fprintf(stderr, "bench_inception: forward: %s\n", err.msg);
    else
        printf("%-8s %s%s batch %3d images/s %8.2f ms/batch %8.2f\n", ims_backend_get_info(be)->name,
               ims_precision_name(p), graphs ? "+graph" : "", batch, iters * batch / (t - t0), 1e3 * (t - t0) / iters);
    fflush(stdout);
    free(img), free(feat);
    ims_image_encoder_free(enc);
    return rc;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *golden = NULL, *batches = "1,8";
    double seconds = 5.0;
    int cpu_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--golden") && i + 1 < argc)
            golden = argv[++i];
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc)
            batches = argv[++i];
        else if (!strcmp(argv[i], "--cpu-only"))
            cpu_only = 1;
        else {
            fprintf(stderr, "usage: bench_inception (--model M.isw | --golden DIR) [--seconds S] [--batches 1,8] "
                            "[--cpu-only]\n");
            return 2;
        }
    }
    char tmpdir[] = "/tmp/ims_bench_inception_XXXXXX", isw[1024];
    if (!model && golden) {
        if (!mkdtemp(tmpdir) || !inception_make_model(golden, "tv", IMS_CONVERT_ARCH_INCEPTION_V3, tmpdir, isw,
                                                      sizeof isw))
            return 1;
        model = isw;
    }
    if (!model) {
        fprintf(stderr, "bench_inception: --model or --golden is required\n");
        return 2;
    }
    ims_error err = {0};
    ims_weights *w = NULL;
    if (ims_weights_open(model, 0, &w, &err)) {
        fprintf(stderr, "bench_inception: %s\n", err.msg);
        return 1;
    }
    int bs[16], nb = 0;
    for (const char *p = batches; *p && nb < 16; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p))
        if ((bs[nb] = atoi(p)) > 0)
            nb++;
    int rc = 0;
    ims_backend *be = NULL;
    if (!ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err)) {
        printf("cpu: %s, %d threads\n", ims_backend_get_info(be)->device, ims_backend_get_info(be)->threads);
        for (int i = 0; i < nb; i++)
            rc |= bench_run(be, w, IMS_PRECISION_FP32, bs[i], seconds, 0);
        ims_backend_free(be);
    }
    int count = 0;
    if (!cpu_only && ims_cuda_device_count(&count, NULL) == IMS_OK && count > 0 &&
        !ims_backend_create(IMS_BACKEND_CUDA, 0, &be, &err)) {
        printf("cuda: %s\n", ims_backend_get_info(be)->device);
        for (int p = IMS_PRECISION_FP32; p <= IMS_PRECISION_FP16; p++)
            for (int i = 0; i < nb; i++)
                for (int graphs = 0; graphs < 2; graphs++)
                    rc |= bench_run(be, w, (ims_precision)p, bs[i], seconds, graphs);
        ims_backend_free(be);
    } else if (!cpu_only) {
        printf("cuda: none (%s)\n", err.msg[0] ? err.msg : "no device or CPU-only build");
    }
    ims_weights_close(w);
    if (model == isw) {
        unlink(isw);
        rmdir(tmpdir);
    }
    return rc;
}
