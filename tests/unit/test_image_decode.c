/* test_image_decode.c: the decoder against Pillow, and bad input.
 *
 * Every file listed in fixtures/images/expected.txt (the sample photographs
 * and make_fixtures.py's JPEG/PNG edge cases) and expected_formats.txt
 * (make_fixtures_formats.py's WebP, TIFF, GIF and BMP variants) is decoded
 * with EXIF orientation off and on; size and CRC-32 of the RGB bytes must
 * equal what Pillow's convert('RGB') (and ImageOps.exif_transpose) gave, and
 * for the "tv" lines the torchvision Resize + CenterCrop of the decoded
 * image what Pillow gave. Bad inputs must fail with the right status and a
 * one-line message naming the problem.
 *
 * Usage: test_image_decode FIXTURE_DIR (tests/fixtures/images).
 */
#include "test.h"

#include "imgsearch.h"

#include <pthread.h>
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

/* Files Pillow decodes and this build knowingly does not, with a word the
 * refusal must name: Pillow's float and CIELab TIFF modes are not read.
 * (JPEGs with unusual sampling factors decode since the libjpeg API replaced
 * TurboJPEG 2.x's, and match Pillow like any other file.) */
static const struct {
    const char *name, *why;
} known_unsupported[] = {
    {"tif_float32.tif", "floating-point"},
    {"tif_lab.tif", "CIELab"},
};

static void check_one(const char *name, int exif, int w, int h, uint32_t crc)
{
    for (size_t i = 0; i < sizeof known_unsupported / sizeof *known_unsupported; i++) {
        if (strcmp(name, known_unsupported[i].name) == 0) {
            ims_image img;
            ims_error err = {0};
            ims_status st = ims_image_decode_file(fixture(name), NULL, &img, &err);
            TEST_CHECK(st == IMS_ERR_UNSUPPORTED && strstr(err.msg, known_unsupported[i].why), "%s: %s", name,
                       err.msg);
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

/* torchvision's Resize(resize) + CenterCrop(crop) of the decoded file (EXIF
 * ignored, as torchvision's loader) against Pillow's CRC-32. */
static void check_tv(const char *name, int resize, int crop, uint32_t want)
{
    ims_decode_options o;
    ims_decode_options_init(&o);
    o.apply_exif_orientation = 0;
    ims_image img;
    ims_error err = {0};
    ims_status st = ims_image_decode_file(fixture(name), &o, &img, &err);
    TEST_CHECK(st == IMS_OK, "%s: %s", name, err.msg);
    if (st)
        return;
    uint8_t *out = malloc((size_t)crop * crop * 3);
    st = out ? ims_preprocess_torchvision_u8(&img, resize, crop, out, &err) : IMS_ERR_NOMEM;
    TEST_CHECK(st == IMS_OK, "%s: preprocess: %s", name, err.msg);
    if (!st) {
        uint32_t got = (uint32_t)crc32(0L, out, (uInt)((size_t)crop * crop * 3));
        TEST_CHECK(got == want, "%s: resize %d crop %d: crc %08x, Pillow %08x", name, resize, crop, got, want);
    }
    free(out);
    ims_image_free(&img);
}

static int test_expected(const char *list)
{
    size_t len;
    char *text = test_read_file(fixture(list), &len);
    TEST_CHECK(text != NULL, "cannot read %s", fixture(list));
    if (!text)
        return 0;
    int files = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        char name[256], word[16];
        int w, h, we, he;
        unsigned crc, crce;
        int resize, crop;
        if (sscanf(line, "tv %255s %d %d %x", name, &resize, &crop, &crc) == 4) {
            check_tv(name, resize, crop, crc);
            continue;
        }
        if (sscanf(line, "%255s %15s", name, word) == 2 && strcmp(word, "refused") == 0) {
            check_refused(name);
            files++;
            continue;
        }
        if (sscanf(line, "%255s %d %d %x %d %d %x", name, &w, &h, &crc, &we, &he, &crce) != 7) {
            TEST_CHECK(0, "bad line in %s: %s", list, line);
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
    ims_image img = {.width = 1, .height = 1, .pixels = (uint8_t *)&img}; /* garbage the decoder must reset */
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
    check_bad_file("bad_random.bin", IMS_ERR_FORMAT, "unknown signature");
    /* bad.gif, bad.bmp and bad.webp decode now: expected_formats.txt */
    check_bad_file("bad_webp_truncated.webp", IMS_ERR_FORMAT, "WebP");
    check_bad_file("bad_tif_truncated.tif", IMS_ERR_FORMAT, "TIFF");
    check_bad_file("bad_gif_truncated.gif", IMS_ERR_FORMAT, "GIF");
    check_bad_file("bad_bmp_truncated.bmp", IMS_ERR_FORMAT, "BMP file is truncated");
    check_bad_file("bmp_rle8_short.bmp", IMS_ERR_FORMAT, "RLE");
    check_bad_file("bmp_jpeg_inside.bmp", IMS_ERR_UNSUPPORTED, "compression");
    check_bad_file("bad_crc.png", IMS_ERR_FORMAT, "CRC");
    check_bad_file("bad_crc_text.png", IMS_ERR_FORMAT, "CRC");
    check_bad_file("bad_truncated.png", IMS_ERR_FORMAT, "bad PNG");
    check_bad_file("bad_huge.png", IMS_ERR_FORMAT,
                   "image is 100000 x 100000 = 1e10 pixels, over the limit of 1.79e8 (--max-pixels)");
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
    /* A progressive JPEG cut anywhere is refused, between its scans too
     * (TurboJPEG 2.x kept only its last warning and let 228 of 439 such cuts
     * of a camera file decode a partial image). */
    char *prog = test_read_file(fixture("jpg_progressive.jpg"), &len);
    if (prog) {
        int accepted = 0;
        for (size_t n = 0; n < len; n++) {
            ims_image img;
            ims_error err = {0};
            if (ims_image_decode(prog, n, NULL, &img, &err) == IMS_OK) {
                accepted++;
                ims_image_free(&img);
            }
        }
        TEST_CHECK(accepted == 0, "%d prefixes of a progressive JPEG decoded", accepted);
        /* The same file with its last scan repeated 1,200 times: libjpeg would
         * decode it (warning of a bogus progression) scan by scan; it is
         * refused as a decode-time bomb instead. */
        size_t last_sos = 0;
        for (size_t i = 2; i + 1 < len; i++)
            if ((unsigned char)prog[i] == 0xff && (unsigned char)prog[i + 1] == 0xda)
                last_sos = i;
        size_t scan = len - 2 - last_sos; /* the last SOS up to the EOI */
        int copies = 1200;
        char *bomb = last_sos ? malloc(last_sos + (size_t)copies * scan + 2) : NULL;
        if (bomb) {
            memcpy(bomb, prog, last_sos);
            for (int c = 0; c < copies; c++)
                memcpy(bomb + last_sos + (size_t)c * scan, prog + last_sos, scan);
            memcpy(bomb + last_sos + (size_t)copies * scan, "\xff\xd9", 2);
            check_bad_bytes("1,200 scans", bomb, last_sos + (size_t)copies * scan + 2, 0, IMS_ERR_FORMAT,
                            "more than 1000 scans");
            free(bomb);
        }
        /* Its tables without a frame: not an image (it used to say "73 x 0"). */
        size_t sof = 0;
        for (size_t i = 2; i + 1 < len && !sof; i++)
            if ((unsigned char)prog[i] == 0xff && ((unsigned char)prog[i + 1] & 0xf0) == 0xc0 &&
                (unsigned char)prog[i + 1] != 0xc4 && (unsigned char)prog[i + 1] != 0xc8 &&
                (unsigned char)prog[i + 1] != 0xcc)
                sof = i;
        char *tables = sof ? malloc(sof + 2) : NULL;
        if (tables) {
            memcpy(tables, prog, sof);
            memcpy(tables + sof, "\xff\xd9", 2);
            check_bad_bytes("tables only", tables, sof + 2, 0, IMS_ERR_FORMAT, "only tables");
            free(tables);
        }
        free(prog);
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

/* Over warn_pixels: decoded, with the warning bit; at it: no warning. */
static void test_warn_limit(void)
{
    static const char *const names[] = {"webp_lossy.webp", "tif_rgb_lzw.tif", "gif_palette.gif", "bmp_rgb24.bmp"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        ims_decode_options o;
        ims_decode_options_init(&o);
        ims_image img;
        ims_error err = {0};
        TEST_OK(ims_image_decode_file(fixture(names[i]), &o, &img, &err), err);
        uint64_t n = (uint64_t)img.width * (uint64_t)img.height;
        TEST_CHECK(img.warnings == 0, "%s: warnings %u at the defaults", names[i], img.warnings);
        ims_image_free(&img);
        o.warn_pixels = n - 1;
        TEST_OK(ims_image_decode_file(fixture(names[i]), &o, &img, &err), err);
        TEST_CHECK(img.warnings == IMS_IMAGE_WARNING_LARGE, "%s: warnings %u over the limit", names[i], img.warnings);
        ims_image_free(&img);
        o.max_pixels = n - 1; /* refused before decoding */
        ims_status st = ims_image_decode_file(fixture(names[i]), &o, &img, &err);
        TEST_CHECK(st == IMS_ERR_FORMAT && strstr(err.msg, "--max-pixels") && img.pixels == NULL, "%s: %s", names[i],
                   err.msg);
    }
}

/* Every prefix of a small file of each new format fails cleanly (or, for
 * formats whose tail is optional, decodes). */
static void test_prefixes(void)
{
    static const char *const names[] = {"webp_lossless_alpha.webp", "webp_anim.webp", "tif_rgb_lzw.tif",
                                        "tif_rgb_tiled_lzw.tif", "gif_local_palette.gif", "bmp_rle8.bmp",
                                        "bmp_pal4.bmp"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        size_t len;
        char *data = test_read_file(fixture(names[i]), &len);
        TEST_CHECK(data != NULL, "cannot read %s", names[i]);
        for (size_t n = 0; data && n < len; n++) {
            ims_image img;
            ims_error err = {0};
            ims_status st = ims_image_decode(data, n, NULL, &img, &err);
            TEST_CHECK(st == IMS_OK || (img.pixels == NULL && err.msg[0] && !strchr(err.msg, '\n')),
                       "%s prefix %zu: %s '%s'", names[i], n, ims_status_name(st), err.msg);
            if (st == IMS_OK)
                ims_image_free(&img);
        }
        free(data);
    }
}

static void test_sniff(void)
{
    TEST_CHECK(ims_image_sniff("\xff\xd8\xff", 3) == IMS_IMAGE_FORMAT_JPEG, "jpeg");
    TEST_CHECK(ims_image_sniff("\xff\xd8", 2) == IMS_IMAGE_FORMAT_UNKNOWN, "short jpeg");
    TEST_CHECK(ims_image_sniff("\x89PNG\r\n\x1a\n", 8) == IMS_IMAGE_FORMAT_PNG, "png");
    TEST_CHECK(ims_image_sniff("\x89PNG\r\n\x1a", 7) == IMS_IMAGE_FORMAT_UNKNOWN, "short png");
    TEST_CHECK(ims_image_sniff("GIF89a", 6) == IMS_IMAGE_FORMAT_GIF, "gif");
    TEST_CHECK(ims_image_sniff("GIF87", 5) == IMS_IMAGE_FORMAT_UNKNOWN, "short gif");
    TEST_CHECK(ims_image_sniff("RIFF\0\0\0\0WEBP", 12) == IMS_IMAGE_FORMAT_WEBP, "webp");
    TEST_CHECK(ims_image_sniff("RIFF\0\0\0\0WAVE", 12) == IMS_IMAGE_FORMAT_UNKNOWN, "wav");
    TEST_CHECK(ims_image_sniff("II*\0", 4) == IMS_IMAGE_FORMAT_TIFF && ims_image_sniff("MM\0*", 4) == IMS_IMAGE_FORMAT_TIFF &&
                   ims_image_sniff("II+\0", 4) == IMS_IMAGE_FORMAT_TIFF, "tiff");
    TEST_CHECK(ims_image_sniff("BM", 2) == IMS_IMAGE_FORMAT_BMP, "bmp");
    TEST_CHECK(strcmp(ims_image_format_name(IMS_IMAGE_FORMAT_WEBP), "WebP") == 0 &&
                   strcmp(ims_image_format_name((ims_image_format)99), "unknown") == 0, "format names");
    TEST_CHECK(ims_image_sniff(NULL, 0) == IMS_IMAGE_FORMAT_UNKNOWN, "empty");
    ims_decode_options o;
    ims_decode_options_init(&o);
    /* Pillow's decompression-bomb limits: warn over MAX_IMAGE_PIXELS, refuse over twice it */
    TEST_CHECK(o.max_pixels == 178956970 && o.warn_pixels == 89478485 && o.apply_exif_orientation == 1, "defaults");

    ims_image img;
    ims_error err = {0};
    ims_status st = ims_image_decode_file("/nonexistent/x.jpg", NULL, &img, &err);
    TEST_CHECK(st == IMS_ERR_IO && strncmp(err.msg, "/nonexistent/x.jpg: ", 20) == 0, "missing file: %s", err.msg);
    TEST_CHECK(ims_image_decode(NULL, 10, NULL, &img, &err) == IMS_ERR_ARGUMENT, "NULL data");
    TEST_CHECK(ims_image_decode("x", 1, NULL, NULL, &err) == IMS_ERR_ARGUMENT, "NULL out");
    ims_image_free(NULL);
}

/* A PNG chunk: length, type, data, CRC. */
static size_t png_chunk(unsigned char *p, const char *type, const unsigned char *data, uint32_t n)
{
    p[0] = (unsigned char)(n >> 24), p[1] = (unsigned char)(n >> 16), p[2] = (unsigned char)(n >> 8),
    p[3] = (unsigned char)n;
    memcpy(p + 4, type, 4);
    if (n)
        memcpy(p + 8, data, n);
    uint32_t crc = (uint32_t)crc32(crc32(0L, (const Bytef *)type, 4), data ? data : (const Bytef *)"", n);
    p[8 + n] = (unsigned char)(crc >> 24), p[9 + n] = (unsigned char)(crc >> 16), p[10 + n] = (unsigned char)(crc >> 8),
    p[11 + n] = (unsigned char)crc;
    return 12 + n;
}

typedef struct budget_job {
    const unsigned char *png;
    size_t len;
    ims_decode_budget *budget;
    ims_status st;
} budget_job;

static void *budget_decode(void *arg)
{
    budget_job *j = arg;
    ims_decode_options o;
    ims_decode_options_init(&o);
    o.budget = j->budget;
    ims_image img;
    ims_error err = {0};
    j->st = ims_image_decode(j->png, j->len, &o, &img, &err);
    if (j->st == IMS_OK)
        ims_image_free(&img);
    return NULL;
}

/* The shared decode budget: a 16-bit RGBA PNG of 10000 x 10000 (a few hundred
 * bytes of header, 800 MB of rows once decoded: 777 KB files of this kind made
 * indexing take 13 GB over 16 threads) is refused from its header when it
 * needs more than the budget; images that each fit but not together decode
 * one after the other instead of failing. */
static void test_decode_budget(void)
{
    unsigned char bomb[128];
    unsigned char ihdr[13] = {0, 0, 0x27, 0x10, 0, 0, 0x27, 0x10, 16, 6, 0, 0, 0}; /* 10000 x 10000, 16-bit RGBA */
    size_t n = 0;
    memcpy(bomb, "\x89PNG\r\n\x1a\n", 8);
    n = 8;
    n += png_chunk(bomb + n, "IHDR", ihdr, 13);
    n += png_chunk(bomb + n, "IDAT", (const unsigned char *)"\x78\x9c\x03\x00\x00\x00\x00\x01", 8);
    n += png_chunk(bomb + n, "IEND", NULL, 0);
    ims_decode_budget *budget = NULL;
    ims_error err = {0};
    TEST_OK(ims_decode_budget_create((uint64_t)256 << 20, &budget, &err), err);
    ims_decode_options o;
    ims_decode_options_init(&o);
    o.budget = budget;
    ims_image img;
    ims_status st = ims_image_decode(bomb, n, &o, &img, &err);
    TEST_CHECK(st == IMS_ERR_NOMEM && strstr(err.msg, "decode memory budget of 256 MiB") && strstr(err.msg, "763 MiB"),
               "a 10000 x 10000 16-bit RGBA PNG within a 256 MiB budget: %s '%s'", ims_status_name(st), err.msg);
    ims_decode_budget_free(budget);

    /* Two decodes of a 512 x 512 PNG (3 bytes a pixel: 768 KiB each) in a budget
     * for one and a half: both succeed, the second after the first returns. */
    size_t len;
    char *png = test_read_file(fixture("astronaut.png"), &len);
    budget = NULL;
    TEST_OK(ims_decode_budget_create((uint64_t)512 * 512 * 3 * 3 / 2, &budget, &err), err);
    if (png && budget) {
        budget_job jobs[4];
        pthread_t threads[4];
        for (int i = 0; i < 4; i++) {
            jobs[i] = (budget_job){(const unsigned char *)png, len, budget, IMS_ERR_ARGUMENT};
            pthread_create(&threads[i], NULL, budget_decode, &jobs[i]);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(threads[i], NULL);
            TEST_CHECK(jobs[i].st == IMS_OK, "decode %d within a budget for one at a time: %s", i,
                       ims_status_name(jobs[i].st));
        }
    }
    free(png);
    ims_decode_budget_free(budget);
}

int main(int argc, char **argv)
{
    fixture_dir = test_fixture_dir(argc, argv);
    test_sniff();
    int files = test_expected("expected.txt");
    TEST_CHECK(files >= 60, "only %d files in expected.txt", files);
    files = test_expected("expected_formats.txt");
    TEST_CHECK(files >= 80, "only %d files in expected_formats.txt", files);
    test_warn_limit();
    test_prefixes();
    test_bad_inputs();
    test_decode_budget();
    return test_finish();
}
