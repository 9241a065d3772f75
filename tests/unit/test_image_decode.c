/* test_image_decode.c: the decoder against Pillow, and bad input.
 *
 * Every file listed in fixtures/images/expected.txt (the sample photographs
 * and make_fixtures.py's edge cases) is decoded with EXIF orientation off and
 * on; size and CRC-32 of the RGB bytes must equal what Pillow's
 * convert('RGB') (and ImageOps.exif_transpose) gave. Bad inputs must fail
 * with the right status and a one-line message naming the problem.
 *
 * Usage: test_image_decode FIXTURE_DIR (tests/fixtures/images).
 */
#include "test.h"

#include "imgsearch.h"

#include <zlib.h>

static const char *fixture_dir;

static const char *fixture(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, name);
    return path;
}

static uint32_t image_crc(const ims_image *img)
{
    return (uint32_t)crc32(0L, img->pixels, (uInt)((size_t)img->width * img->height * 3));
}

/* Files Pillow decodes and this build knowingly does not: TurboJPEG 2.x
 * cannot decode sampling factors outside its TJSAMP list. */
static const char *const known_unsupported[] = {"jpg_samp_21_12.jpg"};

static void check_one(const char *name, int exif, int w, int h, uint32_t crc)
{
    for (size_t i = 0; i < sizeof known_unsupported / sizeof *known_unsupported; i++) {
        if (strcmp(name, known_unsupported[i]) == 0) {
            ims_image img;
            ims_error err = {0};
            ims_status st = ims_image_decode_file(fixture(name), NULL, &img, &err);
            TEST_CHECK(st == IMS_ERR_UNSUPPORTED && strstr(err.msg, "sampling"), "%s: %s", name, err.msg);
            if (st == IMS_OK)
                ims_image_free(&img);
            return;
        }
    }
    ims_decode_options o;
    ims_decode_options_init(&o);
    o.apply_exif_orientation = exif;
    ims_image img;
    ims_error err = {0};
    ims_status st = ims_image_decode_file(fixture(name), &o, &img, &err);
    TEST_CHECK(st == IMS_OK, "%s: %s", name, err.msg);
    if (st != IMS_OK)
        return;
    TEST_CHECK(img.width == w && img.height == h, "%s (exif %d): %d x %d, Pillow %d x %d", name, exif, img.width,
               img.height, w, h);
    if (img.width == w && img.height == h)
        TEST_CHECK(image_crc(&img) == crc, "%s (exif %d): crc %08x, Pillow %08x", name, exif, image_crc(&img), crc);
    ims_image_free(&img);
}

/* A file Pillow could not decode: the decoder refuses it too, in one line. */
static void check_refused(const char *name)
{
    ims_image img;
    ims_error err = {0};
    ims_status st = ims_image_decode_file(fixture(name), NULL, &img, &err);
    TEST_CHECK((st == IMS_ERR_FORMAT || st == IMS_ERR_UNSUPPORTED) && img.pixels == NULL, "%s: Pillow refuses it, got %s", name, ims_status_name(st));
    TEST_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "%s: message '%s'", name, err.msg);
    if (st == IMS_OK)
        ims_image_free(&img);
}

static int test_expected(void)
{
    size_t len;
    char *text = test_read_file(fixture("expected.txt"), &len);
    TEST_CHECK(text != NULL, "cannot read %s", fixture("expected.txt"));
    if (!text)
        return 0;
    int files = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char name[256], word[16];
        int w, h, we, he;
        unsigned crc, crce;
        if (sscanf(line, "%255s %15s", name, word) == 2 && strcmp(word, "refused") == 0) {
            check_refused(name);
            files++;
            continue;
        }
        if (sscanf(line, "%255s %d %d %x %d %d %x", name, &w, &h, &crc, &we, &he, &crce) != 7) {
            TEST_CHECK(0, "bad line in expected.txt: %s", line);
            continue;
        }
        check_one(name, 0, w, h, crc);
        check_one(name, 1, we, he, crce);
        files++;
    }
    free(text);
    return files;
}

/* Decoding must fail with `code` and a one-line message containing `want`. */
static void check_bad_bytes(const char *what, const void *data, size_t size, uint64_t max_pixels, ims_status code,
                            const char *want)
{
    ims_decode_options o;
    ims_decode_options_init(&o);
    if (max_pixels)
        o.max_pixels = max_pixels;
    ims_image img = {1, 1, (uint8_t *)&img}; /* garbage the decoder must reset */
    ims_error err = {0};
    ims_status st = ims_image_decode(data, size, &o, &img, &err);
    TEST_CHECK(st == code, "%s: status %s, want %s (%s)", what, ims_status_name(st), ims_status_name(code), err.msg);
    TEST_CHECK(strstr(err.msg, want) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, want);
    TEST_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "%s: message must be one non-empty line: '%s'", what, err.msg);
    TEST_CHECK(img.pixels == NULL && img.width == 0, "%s: failed decode left an image", what);
    if (st == IMS_OK)
        ims_image_free(&img);
}

static void check_bad_file(const char *name, ims_status code, const char *want)
{
    size_t len;
    char *data = test_read_file(fixture(name), &len);
    TEST_CHECK(data != NULL, "cannot read %s", name);
    if (!data)
        return;
    check_bad_bytes(name, data, len, 0, code, want);
    /* Through the file entry point, the message starts with the path. */
    ims_image img;
    ims_error err = {0};
    ims_status st = ims_image_decode_file(fixture(name), NULL, &img, &err);
    TEST_CHECK(st == code && strncmp(err.msg, fixture(name), strlen(fixture(name))) == 0 && strstr(err.msg, want),
               "%s via file: %s", name, err.msg);
    free(data);
}

static void test_bad_inputs(void)
{
    check_bad_file("bad_empty.bin", IMS_ERR_FORMAT, "empty file");
    check_bad_file("bad_random.bin", IMS_ERR_FORMAT, "not a JPEG or PNG");
    check_bad_file("bad.gif", IMS_ERR_UNSUPPORTED, "GIF");
    check_bad_file("bad.bmp", IMS_ERR_UNSUPPORTED, "BMP");
    check_bad_file("bad.webp", IMS_ERR_UNSUPPORTED, "WebP");
    check_bad_file("bad_crc.png", IMS_ERR_FORMAT, "CRC");
    check_bad_file("bad_crc_text.png", IMS_ERR_FORMAT, "CRC");
    check_bad_file("bad_truncated.png", IMS_ERR_FORMAT, "bad PNG");
    check_bad_file("bad_huge.png", IMS_ERR_FORMAT,
                   "image is 100000 x 100000 = 1e10 pixels, over the limit of 1e8 (--max-pixels)");
    /* Policy: truncated JPEGs are refused, as Pillow refuses them by default. */
    check_bad_file("truncated.jpg", IMS_ERR_FORMAT, "truncated");
    check_bad_file("bad_truncated_mid.jpg", IMS_ERR_FORMAT, "truncated");
    check_bad_file("bad_no_eoi.jpg", IMS_ERR_FORMAT, "truncated");

    /* A valid file over a small limit; exactly at the limit it decodes. */
    size_t len;
    char *png = test_read_file(fixture("png_rgb8.png"), &len); /* 13 x 11 */
    if (png) {
        check_bad_bytes("13x11 over 142", png, len, 142, IMS_ERR_FORMAT, "13 x 11 = 143 pixels, over the limit of 142");
        ims_decode_options o;
        ims_decode_options_init(&o);
        o.max_pixels = 143;
        ims_image img;
        ims_error err = {0};
        TEST_OK(ims_image_decode(png, len, &o, &img, &err), err);
        ims_image_free(&img);
        /* Every prefix of a PNG fails cleanly. */
        for (size_t n = 0; n < len; n++) {
            ims_status st = ims_image_decode(png, n, NULL, &img, &err);
            TEST_CHECK(st != IMS_OK && img.pixels == NULL, "PNG prefix of %zu bytes: %s", n, ims_status_name(st));
        }
        free(png);
    }
    char *jpg = test_read_file(fixture("jpg_420.jpg"), &len);
    if (jpg) {
        check_bad_bytes("37x23 jpeg over 850", jpg, len, 850, IMS_ERR_FORMAT, "37 x 23 = 851 pixels");
        for (size_t n = 0; n < len; n++) {
            ims_image img;
            ims_error err = {0};
            ims_status st = ims_image_decode(jpg, n, NULL, &img, &err);
            TEST_CHECK(st != IMS_OK && img.pixels == NULL, "JPEG prefix of %zu bytes: %s", n, ims_status_name(st));
            TEST_CHECK(st == IMS_OK || (err.msg[0] && !strchr(err.msg, '\n')), "JPEG prefix %zu: '%s'", n, err.msg);
        }
        free(jpg);
    }
    /* Random bytes behind each signature. */
    uint64_t rng = 42;
    for (int i = 0; i < 200; i++) {
        unsigned char buf[512];
        for (size_t k = 0; k < sizeof buf; k++)
            buf[k] = (unsigned char)test_rand_u64(&rng);
        static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        if (i % 2)
            memcpy(buf, png_sig, 8);
        else
            buf[0] = 0xff, buf[1] = 0xd8, buf[2] = 0xff;
        ims_image img;
        ims_error err = {0};
        if (ims_image_decode(buf, sizeof buf, NULL, &img, &err) == IMS_OK)
            ims_image_free(&img);
    }
}

static void test_sniff(void)
{
    TEST_CHECK(ims_image_sniff("\xff\xd8\xff", 3) == IMS_IMAGE_FORMAT_JPEG, "jpeg");
    TEST_CHECK(ims_image_sniff("\xff\xd8", 2) == IMS_IMAGE_FORMAT_UNKNOWN, "short jpeg");
    TEST_CHECK(ims_image_sniff("\x89PNG\r\n\x1a\n", 8) == IMS_IMAGE_FORMAT_PNG, "png");
    TEST_CHECK(ims_image_sniff("\x89PNG\r\n\x1a", 7) == IMS_IMAGE_FORMAT_UNKNOWN, "short png");
    TEST_CHECK(ims_image_sniff("GIF89a", 6) == IMS_IMAGE_FORMAT_UNKNOWN, "gif");
    TEST_CHECK(ims_image_sniff(NULL, 0) == IMS_IMAGE_FORMAT_UNKNOWN, "empty");
    ims_decode_options o;
    ims_decode_options_init(&o);
    TEST_CHECK(o.max_pixels == 100000000 && o.apply_exif_orientation == 1, "defaults");

    ims_image img;
    ims_error err = {0};
    ims_status st = ims_image_decode_file("/nonexistent/x.jpg", NULL, &img, &err);
    TEST_CHECK(st == IMS_ERR_IO && strncmp(err.msg, "/nonexistent/x.jpg: ", 20) == 0, "missing file: %s", err.msg);
    TEST_CHECK(ims_image_decode(NULL, 10, NULL, &img, &err) == IMS_ERR_ARGUMENT, "NULL data");
    TEST_CHECK(ims_image_decode("x", 1, NULL, NULL, &err) == IMS_ERR_ARGUMENT, "NULL out");
    ims_image_free(NULL);
}

int main(int argc, char **argv)
{
    fixture_dir = test_fixture_dir(argc, argv);
    test_sniff();
    int files = test_expected();
    TEST_CHECK(files >= 60, "only %d files in expected.txt", files);
    test_bad_inputs();
    return test_finish();
}
