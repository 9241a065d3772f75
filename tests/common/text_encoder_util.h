/* text_encoder_util.h: helpers shared by the text encoder tests.
 *
 * Reading ids.txt (one sequence of space-separated token ids per line) into a
 * padded (N, T) batch, converting a Hugging Face model folder to a temporary
 * weights file, and cosine similarity in double.
 */
#ifndef IMS_TEXT_ENCODER_UTIL_H
#define IMS_TEXT_ENCODER_UTIL_H

#include "test.h"

#include <math.h>
#include <unistd.h>

typedef struct test_ids {
    int n, t;         /* sequences, longest length */
    int32_t *ids;     /* (n, t), zero padded */
    int32_t *lengths; /* (n) */
} test_ids;

static inline void test_ids_free(test_ids *s)
{
    free(s->ids);
    free(s->lengths);
    memset(s, 0, sizeof *s);
}

/* Reads an ids.txt; 0 on failure (a message on stderr). */
static inline int test_ids_read(const char *path, test_ids *s)
{
    memset(s, 0, sizeof *s);
    char *text = test_read_file(path, NULL);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", path);
        return 0;
    }
    for (int pass = 0; pass < 2; pass++) {
        int row = 0;
        for (char *p = text; *p;) {
            char *end = strchr(p, '\n');
            char *stop = end ? end : p + strlen(p);
            int len = 0;
            for (char *q = p; q < stop;) {
                char *next;
                long v = strtol(q, &next, 10);
                if (next == q)
                    break;
                if (pass)
                    s->ids[(size_t)row * s->t + len] = (int32_t)v;
                len++;
                q = next;
            }
            if (pass)
                s->lengths[row] = len;
            else if (len > s->t)
                s->t = len;
            row++;
            p = end ? end + 1 : stop;
        }
        if (!pass) {
            s->n = row;
            s->ids = calloc((size_t)row * s->t + 1, sizeof *s->ids);
            s->lengths = calloc((size_t)row + 1, sizeof *s->lengths);
            if (!s->ids || !s->lengths)
                abort();
        }
    }
    free(text);
    return s->n > 0;
}

/* Converts a model folder to a temporary .isw and opens it; NULL on failure. */
static inline ims_weights *test_convert_open(const char *dir, ims_dtype dtype, const char *tag)
{
    ims_error err = {0};
    ims_convert_options o;
    ims_convert_options_init(&o);
    o.dtype = dtype;
    char out[128];
    snprintf(out, sizeof out, "test_%s_%d.isw", tag, (int)getpid());
    ims_convert_report report;
    ims_weights *w = NULL;
    ims_status st = ims_convert(dir, out, &o, &report, &err);
    if (!st)
        st = ims_weights_open(out, 0, &w, &err);
    unlink(out); /* the mapping stays valid */
    if (st)
        fprintf(stderr, "converting %s: %s\n", dir, err.msg);
    return w;
}

static inline double test_cosine(const float *a, const float *b, int d)
{
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (int i = 0; i < d; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return aa > 0.0 && bb > 0.0 ? ab / sqrt(aa * bb) : 0.0;
}

static inline double test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) /* NaN counts as the largest */
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

#endif /* IMS_TEXT_ENCODER_UTIL_H */
