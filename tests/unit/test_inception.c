/* test_inception.c: the Inception-v3 graph on the CPU backend against goldens
 * computed by torchvision / pytorch-fid in float64
 * (tests/fixtures/inception_golden/make_golden.py, which documents the
 * generator).
 *
 * For each variant (tv, fid): the weights of a full-size model are rebuilt
 * here from the same generator (tensors_V.txt lists names, shapes, ranges),
 * written as a torchvision-named safetensors checkpoint, converted with
 * ims_convert (BN folding, transform_input folding), loaded, and run on the
 * same 8 generated images at batch sizes 8, 3 and 1.
 *
 * Tolerances:
 * - logits and features vs the float64 golden: max |a - g| / max |g| over the
 *   batch <= 1e-4 (fp32 through 94 layers with sums of up to ~2000 products:
 *   errors are near 1e-6 of the scale; 1e-4 leaves room for BLAS ordering).
 * - the same image in another batch: <= 1e-6 of the scale (the CPU backend
 *   runs images one at a time, so in practice the results are identical).
 * - block outputs (checked only when the final outputs fail, to name the first
 *   block that went wrong): mean, rms and 16 samples within 1e-4 of the rms.
 */
#include "inception_weights.h"
#include "models/inception_v3.h"

#include "backend/backend.h"

static float *read_f32(const char *path, size_t count)
{
    size_t len = 0;
    char *p = test_read_file(path, &len);
    if (!p || len != count * 4) {
        free(p);
        return NULL;
    }
    return (float *)p;
}

/* max |a - g| / max |g| */
static double rel_error(const float *a, const float *g, size_t n)
{
    double diff = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - g[i]);
        diff = d > diff || isnan(d) ? d : diff;
        scale = fabs(g[i]) > scale ? fabs(g[i]) : scale;
    }
    return isnan(diff) ? INFINITY : diff / (scale > 0.0 ? scale : 1.0);
}

/* On failure: names the first block whose outputs leave the golden's. */
static void diagnose_blocks(ims_image_encoder *enc, const uint8_t *images, const char *blocks_path)
{
    FILE *f = fopen(blocks_path, "r");
    if (!f)
        return;
    ims_error err = {0};
    for (int b = 0; b < IMS_IMAGE_ENCODER_BLOCKS; b++) {
        char name[32];
        long long n, h, w, c;
        double mean, rms;
        if (fscanf(f, "%31s %lld %lld %lld %lld %lf %lf", name, &n, &h, &w, &c, &mean, &rms) != 7)
            break;
        size_t count = (size_t)(n * h * w * c);
        float *out = malloc(count * sizeof *out);
        ims_status st = out ? imsi_image_encoder_forward_block(enc, images, (int)n, b, out, count, &err) : IMS_ERR_NOMEM;
        double s1 = 0.0, s2 = 0.0, worst = 0.0;
        for (size_t i = 0; !st && i < count; i++)
            s1 += out[i], s2 += (double)out[i] * out[i];
        for (int k = 0; k < 16; k++) {
            long long idx;
            double v;
            if (fscanf(f, "%lld %lf", &idx, &v) != 2)
                break;
            if (!st && idx >= 0 && (size_t)idx < count && fabs(out[idx] - v) > worst)
                worst = fabs(out[idx] - v);
        }
        double tol = 1e-4 * rms;
        int bad = st || fabs(s1 / count - mean) > tol || fabs(sqrt(s2 / count) - rms) > tol || worst > tol;
        fprintf(stderr, "  block %-8s mean %.6g (golden %.6g) rms %.6g (golden %.6g) worst sample %.3g%s\n", name,
                s1 / count, mean, sqrt(s2 / count), rms, worst, bad ? "  <- first block that differs" : "");
        free(out);
        if (bad)
            break;
    }
    fclose(f);
}

static void run_variant(const char *dir, const char *variant, ims_convert_arch arch, int classes,
                        const uint8_t *images, const char *tmpdir)
{
    char path[1024], isw[1024];
    ims_error err = {0};
    int built = inception_make_model(dir, variant, arch, tmpdir, isw, sizeof isw);
    TEST_CHECK(built, "%s: cannot build the model from the manifest", variant);
    if (!built)
        return;
    ims_weights *w = NULL;
    ims_backend *be = NULL;
    ims_image_encoder *enc = NULL;
    TEST_OK(ims_weights_open(isw, 0, &w, &err), err);
    TEST_OK(ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err), err);
    if (w && be)
        TEST_OK(ims_image_encoder_create(be, w, IMS_PRECISION_FP32, &enc, &err), err);
    if (!enc) {
        ims_weights_close(w);
        ims_backend_free(be);
        return;
    }
    TEST_CHECK(ims_image_encoder_num_classes(enc) == classes, "%s: %d classes", variant,
               ims_image_encoder_num_classes(enc));
    TEST_CHECK(ims_image_encoder_feature_dim(enc) == FEATURES, "%s: %d features", variant,
               ims_image_encoder_feature_dim(enc));
    TEST_CHECK(ims_image_encoder_mode(enc) == (arch == IMS_CONVERT_ARCH_INCEPTION_V3_FID ? IMS_PREPROCESS_FID
                                                                                         : IMS_PREPROCESS_TORCHVISION),
               "%s: preprocess mode", variant);

    snprintf(path, sizeof path, "%s/logits_%s.f32", dir, variant);
    float *g_logits = read_f32(path, (size_t)IMAGES * classes);
    snprintf(path, sizeof path, "%s/features_%s.f32", dir, variant);
    float *g_feat = read_f32(path, (size_t)IMAGES * FEATURES);
    TEST_CHECK(g_logits && g_feat, "%s: cannot read the goldens in %s", variant, dir);
    float *logits = calloc((size_t)IMAGES * classes, sizeof *logits);
    float *feat = calloc((size_t)IMAGES * FEATURES, sizeof *feat);
    if (!g_logits || !g_feat || !logits || !feat)
        goto done;

    /* batch 8 against the goldens */
    memset(logits, 0xff, (size_t)IMAGES * classes * sizeof *logits); /* NaN: unwritten outputs fail */
    memset(feat, 0xff, (size_t)IMAGES * FEATURES * sizeof *feat);
    TEST_OK(ims_image_encoder_forward(enc, images, IMAGES, feat, logits, &err), err);
    double el = rel_error(logits, g_logits, (size_t)IMAGES * classes);
    double ef = rel_error(feat, g_feat, (size_t)IMAGES * FEATURES);
    printf("%s batch 8: logits rel error %.3g, features rel error %.3g\n", variant, el, ef);
    TEST_CHECK(el <= 1e-4, "%s: logits relative error %.3g > 1e-4", variant, el);
    TEST_CHECK(ef <= 1e-4, "%s: features relative error %.3g > 1e-4", variant, ef);
    if (el > 1e-4 || ef > 1e-4) {
        snprintf(path, sizeof path, "%s/blocks_%s.txt", dir, variant);
        diagnose_blocks(enc, images, path);
    }

    /* batches 3 and 1: the goldens, and the batch-8 results for the same images */
    static const int firsts[2] = {2, 7}, sizes[2] = {3, 1};
    for (int r = 0; r < 2; r++) {
        int first = firsts[r], bs = sizes[r];
        float *l2 = malloc((size_t)bs * classes * sizeof *l2), *f2 = malloc((size_t)bs * FEATURES * sizeof *f2);
        if (!l2 || !f2) {
            free(l2), free(f2);
            break;
        }
        memset(l2, 0xff, (size_t)bs * classes * sizeof *l2);
        memset(f2, 0xff, (size_t)bs * FEATURES * sizeof *f2);
        TEST_OK(ims_image_encoder_forward(enc, images + (size_t)first * SIZE * SIZE * 3, bs, f2, l2, &err), err);
        double gl = rel_error(l2, g_logits + (size_t)first * classes, (size_t)bs * classes);
        double gf = rel_error(f2, g_feat + (size_t)first * FEATURES, (size_t)bs * FEATURES);
        double sl = rel_error(l2, logits + (size_t)first * classes, (size_t)bs * classes);
        double sf = rel_error(f2, feat + (size_t)first * FEATURES, (size_t)bs * FEATURES);
        printf("%s batch %d: logits %.3g, features %.3g vs golden; %.3g, %.3g vs batch 8\n", variant, bs, gl, gf, sl,
               sf);
        TEST_CHECK(gl <= 1e-4 && gf <= 1e-4, "%s batch %d: relative errors %.3g, %.3g > 1e-4", variant, bs, gl, gf);
        TEST_CHECK(sl <= 1e-6 && sf <= 1e-6, "%s batch %d: differs from batch 8 by %.3g, %.3g > 1e-6", variant, bs,
                   sl, sf);
        free(l2), free(f2);
    }

    /* the stem's output through the block API, against its golden statistics */
    {
        snprintf(path, sizeof path, "%s/blocks_%s.txt", dir, variant);
        FILE *f = fopen(path, "r");
        char name[32];
        long long n0, h, w0, c;
        double mean, rms;
        int ok = f && fscanf(f, "%31s %lld %lld %lld %lld %lf %lf", name, &n0, &h, &w0, &c, &mean, &rms) == 7;
        TEST_CHECK(ok && !strcmp(name, "stem"), "%s: cannot read %s", variant, path);
        int64_t shape[3] = {0};
        TEST_OK(imsi_image_encoder_block_shape(enc, 0, shape, &err), err);
        TEST_CHECK(ok && shape[0] == h && shape[1] == w0 && shape[2] == c, "%s: stem shape (%lld, %lld, %lld)",
                   variant, (long long)shape[0], (long long)shape[1], (long long)shape[2]);
        size_t count = (size_t)(IMAGES * h * w0 * c);
        float *out = ok ? malloc(count * sizeof *out) : NULL;
        if (out) {
            TEST_OK(imsi_image_encoder_forward_block(enc, images, IMAGES, 0, out, count, &err), err);
            double s1 = 0, s2 = 0;
            for (size_t i = 0; i < count; i++)
                s1 += out[i], s2 += (double)out[i] * out[i];
            TEST_CHECK(fabs(s1 / count - mean) <= 1e-5 * rms && fabs(sqrt(s2 / count) - rms) <= 1e-5 * rms,
                       "%s: stem mean %.8g rms %.8g, golden %.8g %.8g", variant, s1 / count, sqrt(s2 / count), mean,
                       rms);
        }
        free(out);
        if (f)
            fclose(f);
    }

done:
    free(g_logits), free(g_feat), free(logits), free(feat);
    ims_image_encoder_free(enc);
    ims_backend_free(be);
    ims_weights_close(w);
    unlink(isw);
}

/* `imgsearch convert --synthetic` builds the same model as the torchvision
 * golden: its tensor list (names, shapes, generator ranges) equals
 * tensors_tv.txt, entry for entry (in any order). */
static void check_synthetic_equals_golden(const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tensors_tv.txt", dir);
    synth_tensor *golden = calloc(600, sizeof *golden), *mine = calloc(SYNTH_INCEPTION_V3_TENSORS, sizeof *mine);
    int n = golden ? read_manifest(path, golden, 600) : 0;
    int m = mine ? imsi_synth_inception_v3_tensors(mine) : 0;
    TEST_CHECK(n == m && n == SYNTH_INCEPTION_V3_TENSORS, "%d golden tensors, %d synthetic", n, m);
    for (int i = 0; i < n; i++) {
        const synth_tensor *g = &golden[i], *t = NULL;
        for (int j = 0; j < m && !t; j++)
            if (!strcmp(mine[j].name, g->name))
                t = &mine[j];
        TEST_CHECK(t != NULL, "golden tensor %s is not in the synthetic model", g->name);
        if (!t)
            continue;
        int same = t->ndim == g->ndim && t->lo == g->lo && t->hi == g->hi;
        for (int d = 0; same && d < g->ndim; d++)
            same = t->shape[d] == g->shape[d];
        TEST_CHECK(same, "synthetic %s differs from the golden's shape or range", g->name);
    }
    free(golden);
    free(mine);
}

int main(int argc, char **argv)
{
    const char *dir = test_fixture_dir(argc, argv);
    check_synthetic_equals_golden(dir);
    char tmpdir[] = "/tmp/ims_test_inception_XXXXXX";
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "cannot create a temporary folder\n");
        return 1;
    }
    uint8_t *images = make_images();
    TEST_CHECK(images != NULL, "out of memory");
    if (images) {
        run_variant(dir, "tv", IMS_CONVERT_ARCH_INCEPTION_V3, 1000, images, tmpdir);
        run_variant(dir, "fid", IMS_CONVERT_ARCH_INCEPTION_V3_FID, 1008, images, tmpdir);
    }
    free(images);
    rmdir(tmpdir);
    return test_finish();
}
