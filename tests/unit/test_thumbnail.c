/* test_thumbnail.c: ims_image_resize, ims_image_thumbnail and the JPEG
 * encoder (image/thumbnail.c).
 *
 * - resize against the peer path that is byte-identical to Pillow
 *   (ims_preprocess_torchvision_u8 of a square image, cropped to its whole
 *   resized size, is the same resample), on random smooth images;
 * - thumbnail sizes: wide, tall, a sliver (short side at least 1), a small
 *   image never enlarged;
 * - encode + our decoder: a whole JPEG of the same size, close to its input
 *   (mean error under 2 levels at quality 95 on a smooth image);
 * - bad arguments and a missing file: errors with reasons, never a crash.
 */
#include "test.h"

#include <math.h>

/* A smooth random image (h, w, 3): gradients and a few waves, plus noise. */
static ims_image make_image(int w, int h, uint64_t seed)
{
    ims_image img = {.width = w, .height = h, .pixels = malloc((size_t)w * h * 3)};
    float fx = test_rand_uniform(&seed, 0.01f, 0.05f), fy = test_rand_uniform(&seed, 0.01f, 0.05f);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float v = 128 + 60 * sinf(fx * x * (c + 1)) + 50 * cosf(fy * y + c) + test_rand_uniform(&seed, -8, 8);
                img.pixels[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    return img;
}

static void check_resize_matches_pillow_path(void)
{
    ims_error err = {0};
    for (int n = 0; n < 3; n++) {
        int side = 300 + 97 * n, to = 64 + 50 * n;
        ims_image img = make_image(side, side, 7 + (uint64_t)n);
        uint8_t *a = malloc((size_t)to * to * 3), *b = malloc((size_t)to * to * 3);
        TEST_OK(ims_image_resize(&img, to, to, a, &err), err);
        TEST_OK(ims_preprocess_torchvision_u8(&img, to, to, b, &err), err);
        TEST_CHECK(!memcmp(a, b, (size_t)to * to * 3), "%d -> %d: resize differs from the torchvision path", side, to);
        free(a);
        free(b);
        ims_image_free(&img);
    }
}

static void check_sizes(void)
{
    static const int cases[][4] = {/* w, h -> w, h at long side 256 */
                                   {640, 480, 256, 192}, {100, 1000, 26, 256}, {3, 2000, 1, 256},
                                   {50, 40, 50, 40},     {257, 257, 256, 256}, {1000, 999, 256, 256}};
    ims_error err = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ims_image img = make_image(cases[i][0], cases[i][1], 11 + i), th = {0};
        TEST_OK(ims_image_thumbnail(&img, 256, &th, &err), err);
        TEST_CHECK(th.width == cases[i][2] && th.height == cases[i][3], "%d x %d -> %d x %d, expected %d x %d",
                   cases[i][0], cases[i][1], th.width, th.height, cases[i][2], cases[i][3]);
        ims_image_free(&th);
        ims_image_free(&img);
    }
}

static void check_jpeg_round_trip(void)
{
    ims_error err = {0};
    ims_image img = make_image(500, 360, 3), th = {0}, back = {0};
    uint8_t *jpeg = NULL;
    size_t size = 0;
    TEST_OK(ims_image_thumbnail(&img, 256, &th, &err), err);
    TEST_OK(ims_image_encode_jpeg(&th, 95, &jpeg, &size, &err), err);
    TEST_CHECK(jpeg && size > 100 && ims_image_sniff(jpeg, size) == IMS_IMAGE_FORMAT_JPEG, "not a JPEG (%zu bytes)",
               size);
    TEST_OK(ims_image_decode(jpeg, size, NULL, &back, &err), err);
    TEST_CHECK(back.width == th.width && back.height == th.height, "decoded %d x %d", back.width, back.height);
    if (back.pixels && back.width == th.width && back.height == th.height) {
        double sum = 0;
        size_t n = (size_t)th.width * th.height * 3;
        for (size_t i = 0; i < n; i++)
            sum += fabs((double)back.pixels[i] - th.pixels[i]);
        TEST_CHECK(sum / n < 2.0, "mean error %.2f levels", sum / n);
    }
    ims_free(jpeg);
    ims_image_free(&back);
    ims_image_free(&th);
    ims_image_free(&img);
}

static void check_errors(void)
{
    ims_error err = {0};
    ims_image img = make_image(20, 10, 5), th = {0};
    uint8_t *jpeg = NULL, px[16 * 3];
    size_t size = 0;
    TEST_CHECK(ims_image_thumbnail(&img, 0, &th, &err) == IMS_ERR_ARGUMENT, "long side 0");
    TEST_CHECK(ims_image_thumbnail(&img, 100000, &th, &err) == IMS_ERR_ARGUMENT, "long side 100000");
    TEST_CHECK(ims_image_thumbnail(NULL, 256, &th, &err) == IMS_ERR_ARGUMENT, "NULL image");
    TEST_CHECK(ims_image_encode_jpeg(&img, 0, &jpeg, &size, &err) == IMS_ERR_ARGUMENT && !jpeg, "quality 0");
    TEST_CHECK(ims_image_encode_jpeg(&img, 101, &jpeg, &size, &err) == IMS_ERR_ARGUMENT, "quality 101");
    TEST_CHECK(ims_image_resize(&img, 0, 4, px, &err) == IMS_ERR_ARGUMENT, "width 0");
    ims_status st = ims_image_thumbnail_file("/nonexistent/dir/x.jpg", NULL, 256, 85, &jpeg, &size, &err);
    TEST_CHECK(st != IMS_OK && strstr(err.msg, "/nonexistent/dir/x.jpg") && !jpeg, "missing file: %s", err.msg);
    ims_image_free(&img);
}

int main(void)
{
    check_resize_matches_pillow_path();
    check_sizes();
    check_jpeg_round_trip();
    check_errors();
    return test_finish();
}
