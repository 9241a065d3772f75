/* test_image_preprocess.c: the preprocessing against Pillow + torchvision +
 * torch, through expected values that tests/fixtures/preprocess/make_fixtures.py
 * wrote (line formats in its docstring).
 *
 * torchvision mode must match byte for byte (CRC-32 of the crop); fid mode
 * within 1e-6 per value (torch may fuse or reorder the bilinear products,
 * about 1 ulp of values in [-1, 1]); normalize exactly (each step is one
 * correctly rounded float32 operation, as in torch).
 *
 * Usage: test_image_preprocess FIXTURE_DIR (tests/fixtures/preprocess).
 * samples.txt (the 15 full-size sample images) is checked on the
 * images decoded by ims_image_decode_file from tests/fixtures/images, which
 * makes it an end-to-end check of decode + preprocess against Pillow +
 * torchvision; with IMS_PREPROCESS_RAW=DIR (raw RGB dumps from
 * `make_fixtures.py --dump DIR`) on Pillow's own decoded pixels instead.
 */
#include "test.h"

#include "core/error.h"
#include "imgsearch.h"

#include <math.h>
#include <unistd.h>
#include <zlib.h>

#define FID_TOLERANCE 1e-6

static const float IMAGENET_MEAN[3] = {0.485f, 0.456f, 0.406f};
static const float IMAGENET_STD[3] = {0.229f, 0.224f, 0.225f};

static char fixture_dir[1024];

/* splitmix64 outputs as little-endian bytes, as make_fixtures.py's splitmix_bytes. */
static void fill_random(uint64_t seed, uint8_t *p, size_t n)
{
    uint64_t state = seed;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = test_rand_u64(&state);
        for (size_t j = 0; j < 8 && i + j < n; j++)
            p[i + j] = (uint8_t)(v >> (8 * j));
    }
}

/* Builds the image a fixture line names; 0 if it cannot (reason printed). */
static int load_source(const char *src, int w, int h, ims_image *img)
{
    size_t n = (size_t)w * (size_t)h * 3;
    img->width = w;
    img->height = h;
    img->pixels = malloc(n);
    if (!img->pixels)
        return 0;
    char path[2048];
    if (strncmp(src, "rand:", 5) == 0) {
        fill_random(strtoull(src + 5, NULL, 10), img->pixels, n);
        return 1;
    }
    if (strncmp(src, "file:", 5) == 0) {
        snprintf(path, sizeof path, "%s/%s.rgb.z", fixture_dir, src + 5);
        size_t zlen = 0;
        char *z = test_read_file(path, &zlen);
        uLongf got = (uLongf)n;
        int ok = z && uncompress(img->pixels, &got, (const Bytef *)z, (uLong)zlen) == Z_OK && got == n;
        free(z);
        TEST_CHECK(ok, "cannot read %s", path);
        return ok;
    }
    if (strncmp(src, "raw:", 4) == 0 && !getenv("IMS_PREPROCESS_RAW")) {
        /* No raw dumps: decode the sample with our own decoder (EXIF ignored,
         * as Image.open does), which makes this an end-to-end check against
         * Pillow + torchvision; the input CRC check then covers the decoder. */
        static const char *const exts[] = {"png", "jpg"};
        for (int e = 0; e < 2; e++) {
            snprintf(path, sizeof path, "%s/../images/%s.%s", fixture_dir, src + 4, exts[e]);
            if (access(path, R_OK) != 0)
                continue;
            ims_decode_options o;
            ims_decode_options_init(&o);
            o.apply_exif_orientation = 0;
            ims_image decoded = {0};
            ims_error err = {0};
            ims_status st = ims_image_decode_file(path, &o, &decoded, &err);
            int ok = st == IMS_OK && (size_t)decoded.width * (size_t)decoded.height * 3 == n;
            if (ok)
                memcpy(img->pixels, decoded.pixels, n);
            ims_image_free(&decoded);
            TEST_CHECK(ok, "decoding %s: %s", path, st ? err.msg : "wrong size");
            return ok;
        }
        TEST_CHECK(0, "no image for %s", src);
        return 0;
    }
    if (strncmp(src, "raw:", 4) == 0) {
        const char *dir = getenv("IMS_PREPROCESS_RAW");
        snprintf(path, sizeof path, "%s/%s.rgb", dir ? dir : ".", src + 4);
        size_t len = 0;
        char *raw = test_read_file(path, &len);
        int ok = raw && len == n;
        if (ok)
            memcpy(img->pixels, raw, n);
        free(raw);
        TEST_CHECK(ok, "cannot read %s (%zu bytes, want %zu)", path, len, n);
        return ok;
    }
    TEST_CHECK(0, "unknown source %s", src);
    return 0;
}

/* The line after the one p is in. */
static char *next_line(char *p)
{
    char *nl = strchr(p, '\n');
    return nl ? nl + 1 : p + strlen(p);
}

static void check_tv(const char *src, const ims_image *img, int resize, int crop, unsigned long want)
{
    ims_error err = {0};
    uint8_t *out = malloc((size_t)crop * crop * 3);
    TEST_CHECK(out != NULL, "malloc");
    if (!out)
        return;
    TEST_OK(ims_preprocess_torchvision_u8(img, resize, crop, out, &err), err);
    unsigned long got = crc32(0L, out, (uInt)((size_t)crop * crop * 3));
    TEST_CHECK(got == want, "tv %s %dx%d resize %d crop %d: crc %08lx, want %08lx", src, img->width, img->height,
               resize, crop, got, want);
    printf("tv %s %dx%d -> %d/%d: %s\n", src, img->width, img->height, resize, crop,
           got == want ? "identical bytes" : "DIFFERENT");
    free(out);
}

/* Checks n "<index> <value>" lines after p against out; returns the line after them. */
static char *check_values(const char *what, const char *src, char *p, int n, const float *out, size_t count,
                          double tol)
{
    double worst = 0;
    for (int i = 0; i < n; i++) {
        char *end = NULL;
        unsigned long long idx = strtoull(p, &end, 10);
        double want = strtod(end, NULL);
        TEST_CHECK(idx < count, "%s %s: index %llu out of range", what, src, idx);
        if (idx < count) {
            double d = fabs((double)out[idx] - want);
            if (!(d <= worst))
                worst = d;
        }
        p = next_line(p);
    }
    TEST_CHECK(worst <= tol, "%s %s: max abs diff %g > %g", what, src, worst, tol);
    printf("%s %s: %d values, max abs diff %.3g\n", what, src, n, worst);
    return p;
}

static char *check_fid(const char *src, const ims_image *img, int size, int n, double want_sum, char *p)
{
    ims_error err = {0};
    size_t count = (size_t)size * size * 3;
    float *chw = malloc(count * sizeof(float)), *hwc = malloc(count * sizeof(float));
    TEST_CHECK(chw && hwc, "malloc");
    if (!chw || !hwc) {
        free(chw);
        free(hwc);
        return p;
    }
    TEST_OK(ims_preprocess_fid(img, size, IMS_LAYOUT_NCHW, chw, &err), err);
    TEST_OK(ims_preprocess_fid(img, size, IMS_LAYOUT_NHWC, hwc, &err), err);
    p = check_values("fid", src, p, n, chw, count, FID_TOLERANCE);
    double sum = 0;
    int layouts_agree = 1;
    size_t plane = (size_t)size * size;
    for (size_t i = 0; i < count; i++) {
        sum += chw[i];
        if (chw[i] != hwc[(i % plane) * 3 + i / plane])
            layouts_agree = 0;
    }
    /* Each value is within FID_TOLERANCE, so the sum is within count times it. */
    TEST_CHECK(fabs(sum - want_sum) <= (double)count * FID_TOLERANCE, "fid %s: sum %.9g, want %.9g", src, sum,
               want_sum);
    TEST_CHECK(layouts_agree, "fid %s: NCHW and NHWC disagree", src);
    free(chw);
    free(hwc);
    return p;
}

/* clean mode: bit for bit (crc32 of the NCHW floats), both layouts. */
static char *check_clean(const char *src, const ims_image *img, int size, unsigned long want_crc, int n, char *p)
{
    ims_error err = {0};
    size_t count = (size_t)size * size * 3;
    float *chw = malloc(count * sizeof(float)), *hwc = malloc(count * sizeof(float));
    TEST_CHECK(chw && hwc, "malloc");
    if (!chw || !hwc) {
        free(chw);
        free(hwc);
        return p;
    }
    for (size_t i = 0; i < count; i++)
        chw[i] = hwc[i] = NAN; /* poison: every value must be written */
    TEST_OK(ims_preprocess_clean(img, size, IMS_LAYOUT_NCHW, chw, &err), err);
    TEST_OK(ims_preprocess_clean(img, size, IMS_LAYOUT_NHWC, hwc, &err), err);
    p = check_values("clean", src, p, n, chw, count, 0.0);
    unsigned long got = crc32(0L, (const Bytef *)chw, (uInt)(count * sizeof(float)));
    TEST_CHECK(got == want_crc, "clean %s %dx%d -> %d: crc %08lx, want %08lx", src, img->width, img->height, size,
               got, want_crc);
    size_t plane = (size_t)size * size;
    int layouts_agree = 1;
    for (size_t i = 0; i < count; i++)
        layouts_agree &= chw[i] == hwc[(i % plane) * 3 + i / plane];
    TEST_CHECK(layouts_agree, "clean %s: NCHW and NHWC disagree", src);
    printf("clean %s %dx%d -> %d: %s\n", src, img->width, img->height, size,
           got == want_crc ? "identical floats" : "DIFFERENT");
    free(chw);
    free(hwc);
    return p;
}

static char *check_norm(const char *src, const ims_image *img, int n, char *p)
{
    size_t count = (size_t)img->width * img->height * 3;
    float *out = malloc(count * sizeof(float)), *hwc = malloc(count * sizeof(float));
    TEST_CHECK(out && hwc, "malloc");
    if (!out || !hwc) {
        free(out);
        free(hwc);
        return p;
    }
    ims_preprocess_normalize(img->pixels, img->height, img->width, IMAGENET_MEAN, IMAGENET_STD, IMS_LAYOUT_NCHW,
                             out);
    ims_preprocess_normalize(img->pixels, img->height, img->width, IMAGENET_MEAN, IMAGENET_STD, IMS_LAYOUT_NHWC,
                             hwc);
    p = check_values("norm", src, p, n, out, count, 0.0);
    size_t plane = (size_t)img->width * img->height;
    int agree = 1;
    for (size_t i = 0; i < count; i++)
        agree &= out[i] == hwc[(i % plane) * 3 + i / plane];
    TEST_CHECK(agree, "norm %s: NCHW and NHWC disagree", src);
    free(out);
    free(hwc);
    return p;
}

/* Runs every line of one fixture file; returns how many cases ran. */
static int run_file(const char *path)
{
    char *text = test_read_file(path, NULL);
    TEST_CHECK(text != NULL, "cannot read %s", path);
    if (!text)
        return 0;
    int cases = 0;
    unsigned long input_crc = 0;
    char input_src[256] = "";
    for (char *p = text; *p;) {
        char kind[16], src[256];
        int w = 0, h = 0, a = 0, b = 0, consumed = 0;
        if (*p == '#' || sscanf(p, "%15s %255s %d %d%n", kind, src, &w, &h, &consumed) != 4) {
            p = next_line(p);
            continue;
        }
        char *rest = p + consumed;
        p = next_line(p);
        if (strcmp(kind, "input") == 0) {
            input_crc = strtoul(rest, NULL, 16);
            snprintf(input_src, sizeof input_src, "%s", src);
            continue;
        }
        ims_image img = {0};
        if (!load_source(src, w, h, &img)) {
            free(img.pixels);
            continue;
        }
        if (strcmp(src, input_src) == 0) {
            unsigned long got = crc32(0L, img.pixels, (uInt)((size_t)w * h * 3));
            TEST_CHECK(got == input_crc, "%s: the raw dump's crc %08lx is not %08lx", src, got, input_crc);
        }
        if (strcmp(kind, "tv") == 0) {
            unsigned long want = 0;
            sscanf(rest, "%d %d %lx", &a, &b, &want);
            check_tv(src, &img, a, b, want);
        } else if (strcmp(kind, "fid") == 0) {
            double sum = 0;
            sscanf(rest, "%d %d %lf", &a, &b, &sum);
            p = check_fid(src, &img, a, b, sum, p);
        } else if (strcmp(kind, "clean") == 0) {
            unsigned long want = 0;
            sscanf(rest, "%d %lx %d", &a, &want, &b);
            p = check_clean(src, &img, a, want, b, p);
        } else if (strcmp(kind, "norm") == 0) {
            sscanf(rest, "%d", &a);
            p = check_norm(src, &img, a, p);
        } else {
            TEST_CHECK(0, "%s: unknown line kind %s", path, kind);
        }
        cases++;
        free(img.pixels);
    }
    free(text);
    return cases;
}

/* Bad arguments get IMS_ERR_ARGUMENT, never a crash. */
static void test_errors(void)
{
    ims_error err = {0};
    uint8_t px[3] = {1, 2, 3}, out[3 * 4];
    float f[12];
    ims_image img = {.width = 1, .height = 1, .pixels = px};
    ims_image empty = {.width = 0, .height = 1, .pixels = px};
    TEST_CHECK(ims_preprocess_torchvision_u8(&empty, 2, 2, out, &err) == IMS_ERR_ARGUMENT, "empty image");
    TEST_CHECK(ims_preprocess_torchvision_u8(&img, 0, 2, out, &err) == IMS_ERR_ARGUMENT, "resize 0");
    TEST_CHECK(ims_preprocess_torchvision_u8(&img, 2, -1, out, &err) == IMS_ERR_ARGUMENT, "crop -1");
    TEST_CHECK(ims_preprocess_fid(NULL, 2, IMS_LAYOUT_NCHW, f, &err) == IMS_ERR_ARGUMENT, "no image");
    TEST_CHECK(ims_preprocess_fid(&img, 0, IMS_LAYOUT_NCHW, f, &err) == IMS_ERR_ARGUMENT, "size 0");
    TEST_CHECK(ims_preprocess_clean(NULL, 2, IMS_LAYOUT_NCHW, f, &err) == IMS_ERR_ARGUMENT, "clean: no image");
    TEST_CHECK(ims_preprocess_clean(&img, 0, IMS_LAYOUT_NCHW, f, &err) == IMS_ERR_ARGUMENT, "clean: size 0");
    TEST_CHECK(ims_preprocess_clean(&empty, 2, IMS_LAYOUT_NCHW, f, &err) == IMS_ERR_ARGUMENT, "clean: empty image");
    /* 100 x 1 resized to short side 1e9 has a long side of 1e11: refused
     * before anything is allocated. With short side 1e6 (long side 1e8) only
     * the 2 x 2 crop is computed: it works, and the image is constant. */
    ims_image wide = {.width = 100, .height = 1, .pixels = malloc(300)};
    if (wide.pixels) {
        memset(wide.pixels, 7, 300);
        TEST_CHECK(ims_preprocess_torchvision_u8(&wide, 1000000000, 2, out, &err) == IMS_ERR_ARGUMENT,
                   "long side overflow");
        TEST_CHECK(strlen(err.msg) > 0, "a reason");
        TEST_OK(ims_preprocess_torchvision_u8(&wide, 1000000, 2, out, &err), err);
        TEST_CHECK(out[0] == 7 && out[11] == 7, "long thin image: %d %d", out[0], out[11]);
        free(wide.pixels);
    }
    /* 1 x 1 -> 2 x 2 crop 2: Pillow's bilinear of a constant is the constant. */
    TEST_OK(ims_preprocess_torchvision_u8(&img, 2, 2, out, &err), err);
    for (int i = 0; i < 12; i++)
        TEST_CHECK(out[i] == px[i % 3], "constant image: byte %d is %d", i, out[i]);
}

int main(int argc, char **argv)
{
    snprintf(fixture_dir, sizeof fixture_dir, "%s", test_fixture_dir(argc, argv));
    test_errors();
    char path[2048];
    snprintf(path, sizeof path, "%s/expected.txt", fixture_dir);
    int cases = run_file(path);
    TEST_CHECK(cases >= 40, "only %d cases ran from %s", cases, path);
    /* The 15 sample images, full size: from raw dumps if given, else decoded here. */
    snprintf(path, sizeof path, "%s/samples.txt", fixture_dir);
    int samples = run_file(path);
    TEST_CHECK(samples >= 15, "only %d sample cases ran", samples);
    printf("samples: %d cases (%s)\n", samples,
           getenv("IMS_PREPROCESS_RAW") ? "from raw dumps" : "decoded by ims_image_decode_file");
    return test_finish();
}
