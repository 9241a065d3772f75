/* test_conse.c: ConSE embeddings (engine/models/conse.c) against a direct reference
 * that sorts every class, on random logits with ties, plus the error cases. */
#include "test.h"

#include <math.h>

static const double *sort_p;

static int by_p_then_index(const void *a, const void *b)
{
    int i = *(const int *)a, j = *(const int *)b;
    if (sort_p[i] != sort_p[j])
        return sort_p[i] > sort_p[j] ? -1 : 1;
    return i - j;
}

static void reference(const float *z, int classes, const float *emb, int dim, int top, double *out)
{
    double *p = malloc((size_t)classes * sizeof *p), zmax = -INFINITY, sum = 0;
    int *order = malloc((size_t)classes * sizeof *order);
    for (int c = 0; c < classes; c++)
        zmax = fmax(zmax, z[c]);
    for (int c = 0; c < classes; c++)
        sum += p[c] = exp(z[c] - zmax);
    for (int c = 0; c < classes; c++) {
        p[c] /= sum;
        order[c] = c;
    }
    sort_p = p;
    qsort(order, (size_t)classes, sizeof *order, by_p_then_index);
    double norm = 0;
    for (int d = 0; d < dim; d++) {
        out[d] = 0;
        for (int t = 0; t < top && t < classes; t++)
            out[d] += p[order[t]] * emb[(size_t)order[t] * dim + d];
        norm += out[d] * out[d];
    }
    for (int d = 0; d < dim; d++)
        out[d] /= sqrt(norm);
    free(p);
    free(order);
}

int main(void)
{
    uint64_t rng = 42;
    ims_error err = {0};
    for (int round = 0; round < 200; round++) {
        int classes = 1 + (int)(test_rand_u64(&rng) % 1100), dim = 1 + (int)(test_rand_u64(&rng) % 64);
        int batch = 1 + (int)(test_rand_u64(&rng) % 4), top = 1 + (int)(test_rand_u64(&rng) % 20);
        float *z = malloc((size_t)batch * classes * sizeof *z), *emb = malloc((size_t)classes * dim * sizeof *emb);
        float *out = malloc((size_t)batch * dim * sizeof *out);
        double *want = malloc((size_t)dim * sizeof *want);
        for (int i = 0; i < batch * classes; i++) /* few distinct values: many ties */
            z[i] = round % 2 ? (float)(test_rand_u64(&rng) % 5) : test_rand_uniform(&rng, -8, 8);
        for (int i = 0; i < classes * dim; i++)
            emb[i] = test_rand_uniform(&rng, -1, 1);
        TEST_OK(ims_conse_embed(z, batch, classes, emb, dim, top, out, &err), err);
        for (int b = 0; b < batch; b++) {
            reference(z + (size_t)b * classes, classes, emb, dim, top, want);
            for (int d = 0; d < dim; d++)
                TEST_CHECK(fabs(out[b * dim + d] - want[d]) <= 1e-6, "round %d image %d [%d]: %g, want %g", round, b,
                           d, out[b * dim + d], want[d]);
        }
        free(z);
        free(emb);
        free(out);
        free(want);
    }
    float z[3] = {1, NAN, 2}, emb[3] = {1, 1, 1}, out[1];
    TEST_CHECK(ims_conse_embed(z, 1, 3, emb, 1, 2, out, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "class 1"),
               "a NaN logit: %s", err.msg);
    float z2[2] = {0, 0}, emb2[4] = {1, 0, -1, 0};
    TEST_CHECK(ims_conse_embed(z2, 1, 2, emb2, 2, 2, out, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "zero"),
               "embeddings that cancel: %s", err.msg);
    TEST_CHECK(ims_conse_embed(z2, 1, 2, emb2, 2, 0, out, &err) == IMS_ERR_ARGUMENT, "top 0");
    return test_finish();
}
