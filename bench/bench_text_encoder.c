/* bench_text_encoder.c: sentences per second of the BERT sentence encoder.
 *
 * Usage: bench_text_encoder [--backend cpu|cuda] [--precision fp32|fp16]
 *                           [--batch 1,32,256] [--min-seconds S] MODEL IDS_FILE
 * MODEL: a weights file (.isw) or a Hugging Face / sentence-transformers model
 * folder (converted to a temporary file first). IDS_FILE: one sentence per
 * line as space-separated token ids (bench/compare_sentence_transformers.py
 * writes them with the model's tokenizer). For each batch size the sentences
 * are encoded in file order, in batches padded to their longest sentence, as
 * a caller would; the whole file is repeated until S seconds (default 1) have
 * passed, after one untimed warm-up batch. One output line per batch size:
 *   batch B sentences N seconds S sentences_per_s R
 */
#include "imgsearch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct bench_ids {
    int n, t;
    int32_t *ids, *lengths; /* (n, t), (n) */
} bench_ids;

/* Reads the ids file; 0 on failure. */
static int read_ids(const char *path, bench_ids *s)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int cap = 0;
    static char line[1 << 16];
    int32_t row[4096];
    memset(s, 0, sizeof *s);
    while (fgets(line, sizeof line, f)) {
        int len = 0;
        for (char *p = line, *end; len < 4096; p = end) {
            long v = strtol(p, &end, 10);
            if (end == p)
                break;
            row[len++] = (int32_t)v;
        }
        if (len == 0)
            continue;
        if (s->n == cap || len > s->t) {
            int ncap = s->n == cap ? (cap ? cap * 2 : 256) : cap, nt = len > s->t ? len : s->t;
            int32_t *ids = calloc((size_t)ncap * nt, sizeof *ids), *lens = realloc(s->lengths, (size_t)ncap * sizeof *lens);
            if (!ids || !lens) {
                fclose(f);
                return 0;
            }
            for (int i = 0; i < s->n; i++)
                memcpy(ids + (size_t)i * nt, s->ids + (size_t)i * s->t, (size_t)s->t * sizeof *ids);
            free(s->ids);
            s->ids = ids, s->lengths = lens, cap = ncap, s->t = nt;
        }
        memcpy(s->ids + (size_t)s->n * s->t, row, (size_t)len * sizeof *row);
        s->lengths[s->n++] = len;
    }
    fclose(f);
    return s->n > 0;
}

/* Encodes sentences [first, first + rows) as one batch padded to its longest. */
static ims_status encode_range(ims_text_encoder *enc, const bench_ids *s, int first, int rows, int32_t *buf,
                               float *out, ims_error *err)
{
    int t = 1;
    for (int r = 0; r < rows; r++)
        t = s->lengths[first + r] > t ? s->lengths[first + r] : t;
    for (int r = 0; r < rows; r++)
        memcpy(buf + (size_t)r * t, s->ids + (size_t)(first + r) * s->t, (size_t)t * sizeof *buf);
    return ims_text_encoder_encode(enc, buf, s->lengths + first, rows, t, out, err);
}

static int fail(const char *what, const ims_error *err)
{
    fprintf(stderr, "bench_text_encoder: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    const char *backend = "cpu", *precision = "fp32", *batches = "1,32,256";
    double min_seconds = 1.0;
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (!strcmp(argv[i], "--backend"))
            backend = argv[i + 1];
        else if (!strcmp(argv[i], "--precision"))
            precision = argv[i + 1];
        else if (!strcmp(argv[i], "--batch"))
            batches = argv[i + 1];
        else if (!strcmp(argv[i], "--min-seconds"))
            min_seconds = atof(argv[i + 1]);
        else
            break;
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: bench_text_encoder [--backend cpu|cuda] [--precision fp32|fp16] [--batch 1,32,256] "
                        "[--min-seconds S] MODEL IDS_FILE\n");
        return 2;
    }
    const char *model = argv[i], *ids_path = argv[i + 1];
    ims_error err = {0};
    bench_ids s;
    if (!read_ids(ids_path, &s)) {
        fprintf(stderr, "bench_text_encoder: cannot read %s\n", ids_path);
        return 1;
    }
    struct stat sb;
    char tmp[64] = "";
    if (stat(model, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        ims_convert_options o;
        ims_convert_options_init(&o);
        snprintf(tmp, sizeof tmp, "bench_text_encoder_%d.isw", (int)getpid());
        ims_convert_report report;
        if (ims_convert(model, tmp, &o, &report, &err))
            return fail(model, &err);
        model = tmp;
    }
    ims_weights *w = NULL;
    ims_status st = ims_weights_open(model, 0, &w, &err);
    if (tmp[0])
        unlink(tmp);
    if (st)
        return fail(model, &err);
    ims_backend *be = NULL;
    if (ims_backend_create(strcmp(backend, "cuda") ? IMS_BACKEND_CPU : IMS_BACKEND_CUDA, 0, &be, &err))
        return fail(backend, &err);
    ims_text_encoder *enc = NULL;
    if (ims_text_encoder_create(be, w, strcmp(precision, "fp16") ? IMS_PRECISION_FP32 : IMS_PRECISION_FP16, &enc, &err))
        return fail("encoder", &err);
    int d = ims_text_encoder_dim(enc);
    printf("backend %s device %s threads %d precision %s sentences %d\n", backend, ims_backend_get_info(be)->device,
           ims_backend_get_info(be)->threads, precision, s.n);
    for (const char *p = batches; *p;) {
        int batch = atoi(p);
        if (batch < 1)
            batch = 1;
        int32_t *buf = malloc((size_t)batch * s.t * sizeof *buf);
        float *out = malloc((size_t)batch * d * sizeof *out);
        if (!buf || !out)
            return 1;
        int warm = batch < s.n ? batch : s.n;
        if (encode_range(enc, &s, 0, warm, buf, out, &err))
            return fail("warm-up", &err);
        long done = 0;
        double t0 = ims_clock_seconds(), t = t0;
        do {
            for (int first = 0; first < s.n; first += batch) {
                int rows = s.n - first < batch ? s.n - first : batch;
                if (encode_range(enc, &s, first, rows, buf, out, &err))
                    return fail("encode", &err);
                done += rows;
            }
            t = ims_clock_seconds();
        } while (t - t0 < min_seconds);
        printf("batch %d sentences %ld seconds %.3f sentences_per_s %.1f\n", batch, done, t - t0,
               (double)done / (t - t0));
        fflush(stdout);
        free(buf), free(out);
        p = strchr(p, ',');
        p = p ? p + 1 : "";
    }
    ims_text_encoder_free(enc);
    ims_backend_free(be);
    ims_weights_close(w);
    free(s.ids), free(s.lengths);
    return 0;
}
