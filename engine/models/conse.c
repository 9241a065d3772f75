/* conse.c: ConSE semantic embeddings (Norouzi et al., ICLR 2014, "Zero-Shot
 * Learning by Convex Combination of Semantic Embeddings").
 *
 * An image's semantic embedding is the mix of the text embeddings of its T most
 * probable classes, weighted by their softmax probabilities, then L2-normalized
 * (the paper divides by the sum of the T probabilities; normalizing makes that
 * factor irrelevant). It places images in the text encoder's space with no
 * training, so a text query can be compared with them by cosine similarity.
 * B x T x D multiply-adds: tiny next to the networks, so it runs on the host in
 * double precision.
 */
#include "imgsearch.h"

#include "core/error.h"

#include <math.h>
#include <stdlib.h>

/* The `top` largest of p[0..classes): indices in decreasing order of p, a tie
 * going to the lower class index (so the result never depends on sort order). */
static void top_classes(const double *p, int classes, int top, int *out)
{
    int n = 0;
    for (int c = 0; c < classes; c++) {
        if (n == top && p[c] <= p[out[n - 1]])
            continue; /* not better than the current last (ties keep the lower index) */
        int i = n < top ? n++ : n - 1;
        while (i > 0 && p[c] > p[out[i - 1]]) {
            out[i] = out[i - 1];
            i--;
        }
        out[i] = c;
    }
}

ims_status ims_conse_embed(const float *logits, int64_t batch, int classes, const float *class_embeddings, int dim,
                           int top, float *out, ims_error *err)
{
    if (batch < 1 || classes < 1 || dim < 1 || top < 1)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "ConSE: batch %lld, classes %d, dim %d, top %d must be >= 1",
                             (long long)batch, classes, dim, top);
    if (top > classes)
        top = classes;
    double *p = malloc((size_t)classes * sizeof *p);
    double *mix = malloc((size_t)dim * sizeof *mix);
    int *best = malloc((size_t)top * sizeof *best);
    ims_status st = p && mix && best ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (int64_t b = 0; !st && b < batch; b++) {
        const float *z = logits + (size_t)b * (size_t)classes;
        double zmax = -INFINITY, sum = 0;
        for (int c = 0; c < classes; c++) {
            if (!isfinite(z[c])) {
                st = ims_error_set(err, IMS_ERR_ARGUMENT, "ConSE: image %lld has a non-finite logit (class %d)",
                                   (long long)b, c);
                break;
            }
            zmax = z[c] > zmax ? z[c] : zmax;
        }
        if (st)
            break;
        for (int c = 0; c < classes; c++)
            sum += p[c] = exp((double)z[c] - zmax);
        for (int c = 0; c < classes; c++)
            p[c] /= sum;
        top_classes(p, classes, top, best);
        for (int d = 0; d < dim; d++)
            mix[d] = 0;
        for (int t = 0; t < top; t++) {
            const float *e = class_embeddings + (size_t)best[t] * (size_t)dim;
            for (int d = 0; d < dim; d++)
                mix[d] += p[best[t]] * e[d];
        }
        double norm = 0;
        for (int d = 0; d < dim; d++)
            norm += mix[d] * mix[d];
        norm = sqrt(norm);
        if (!(norm > 0) || !isfinite(norm)) {
            st = ims_error_set(err, IMS_ERR_ARGUMENT, "ConSE: image %lld mixes to a zero vector", (long long)b);
            break;
        }
        float *o = out + (size_t)b * (size_t)dim;
        for (int d = 0; d < dim; d++)
            o[d] = (float)(mix[d] / norm);
    }
    free(p);
    free(mix);
    free(best);
    return st;
}
