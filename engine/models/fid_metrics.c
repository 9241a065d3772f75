/* fid_metrics.c: FID from two sets of statistics, KID and the Inception
 * Score from features and logits, all in float64 (matrices row-major).
 *
 * FID's matrix square root: pytorch-fid takes scipy's sqrtm of S1 S2 (a
 * Schur method on a non-symmetric product, which goes complex and loses
 * digits when the covariances are singular, as they are with fewer images
 * than dimensions). Only its trace matters, and
 *   tr sqrt(S1 S2) = tr sqrt(sqrt(S1) S2 sqrt(S1)),
 * the right side symmetric positive semi-definite. With S1 = V diag(w) V^T
 * and B = V diag(sqrt w), sqrt(S1) S2 sqrt(S1) = V (B^T S2 B) V^T, so the
 * trace is the sum of the square roots of the eigenvalues of B^T S2 B: two
 * symmetric eigen-problems (LAPACK dsyevd, from OpenBLAS) and two products.
 * Eigenvalues below zero are rounding (both matrices are PSD) and count as 0.
 *
 * KID and IS pick subsets and splits with numpy's legacy generator (MT19937,
 * RandomState's permutation), so that a seed gives torch-fidelity's subsets.
 */
#include "imgsearch.h"

#include "models/fid.h"

#include "core/error.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK from OpenBLAS (Fortran calling convention: everything by pointer,
 * the lengths of the character arguments last). */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                    double *work, const int *lwork, int *iwork, const int *liwork, int *info, size_t jobz_len,
                    size_t uplo_len);

/* ---- numpy's legacy generator ----------------------------------------------------- */

#define MT_N 624
#define MT_M 397

void imsi_mt19937_seed(imsi_mt19937 *mt, uint32_t seed)
{
    mt->key[0] = seed;
    for (int i = 1; i < MT_N; i++)
        mt->key[i] = 1812433253u * (mt->key[i - 1] ^ (mt->key[i - 1] >> 30)) + (uint32_t)i;
    mt->pos = MT_N;
}

static void mt_refill(imsi_mt19937 *mt)
{
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (mt->key[i] & 0x80000000u) | (mt->key[(i + 1) % MT_N] & 0x7fffffffu);
        mt->key[i] = mt->key[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    mt->pos = 0;
}

uint32_t imsi_mt19937_next32(imsi_mt19937 *mt)
{
    if (mt->pos == MT_N)
        mt_refill(mt);
    uint32_t y = mt->key[mt->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

/* A uniform integer in [0, max]: numpy's random_interval (mask, reject above max). */
static uint64_t mt_interval(imsi_mt19937 *mt, uint64_t max)
{
    uint64_t mask = max, v;
    for (int s = 1; s < 64; s *= 2)
        mask |= mask >> s;
    if (max <= 0xffffffffu) {
        while ((v = imsi_mt19937_next32(mt) & mask) > max) {
        }
    } else {
        do {
            uint64_t hi = imsi_mt19937_next32(mt);
            v = (hi << 32 | imsi_mt19937_next32(mt)) & mask;
        } while (v > max);
    }
    return v;
}

void imsi_legacy_permutation(imsi_mt19937 *mt, int64_t n, int64_t *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = i;
    for (int64_t i = n - 1; i >= 1; i--) {
        int64_t j = (int64_t)mt_interval(mt, (uint64_t)i), t = out[i];
        out[i] = out[j], out[j] = t;
    }
}

/* ---- FID ------------------------------------------------------------------------------ */

ims_status imsi_sym_eigen(double *a, int n, double *w, int vectors, ims_error *err)
{
    /* row-major upper = column-major lower; column-major eigenvectors = our rows */
    const char jobz = vectors ? 'V' : 'N', uplo = 'L';
    int info = 0, lwork = -1, liwork = -1, iwq = 0;
    double wq = 0;
    dsyevd_(&jobz, &uplo, &n, a, &n, w, &wq, &lwork, &iwq, &liwork, &info, 1, 1);
    if (info)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "eigen-decomposition: workspace query failed (info %d)", info);
    if (!(wq >= 1 && wq < 2147483647.0) || iwq < 1)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "eigen-decomposition: n %d is too large for LAPACK's workspace", n);
    lwork = (int)wq, liwork = iwq;
    double *work = malloc((size_t)lwork * sizeof *work);
    int *iwork = malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        free(work), free(iwork);
        return ims_error_set(err, IMS_ERR_NOMEM, "eigen-decomposition: out of memory for its workspace (n %d)", n);
    }
    dsyevd_(&jobz, &uplo, &n, a, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    free(work), free(iwork);
    if (info)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "eigen-decomposition did not converge (info %d, n %d)", info, n);
    return IMS_OK;
}

/* tr sqrt(S1 S2) for symmetric PSD (d, d) S1 and S2, as described above. */
static ims_status trace_sqrt_product(const double *s1, const double *s2, int d, double *out, ims_error *err)
{
    size_t dd = (size_t)d * (size_t)d;
    double *v = malloc(dd * sizeof *v), *t = malloc(dd * sizeof *t), *m = malloc(dd * sizeof *m);
    double *w = malloc((size_t)d * sizeof *w);
    ims_status st = v && t && m && w ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "fid: out of memory (dim %d)", d);
    if (!st) {
        memcpy(v, s1, dd * sizeof *v);
        st = imsi_sym_eigen(v, d, w, 1, err); /* row i of v: eigenvector i */
    }
    if (!st) {
        /* v row i *= sqrt(w_i): v is now B^T (d, d) */
        for (int i = 0; i < d; i++) {
            double r = w[i] > 0 ? sqrt(w[i]) : 0.0;
            cblas_dscal(d, r, v + (size_t)i * d, 1);
        }
        /* t (d, d) = S2 (d, d) B (d, d); m = B^T t */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, d, 1.0, s2, d, v, d, 0.0, t, d);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, v, d, t, d, 0.0, m, d);
        st = imsi_sym_eigen(m, d, w, 0, err);
    }
    if (!st) {
        double tr = 0;
        for (int i = 0; i < d; i++)
            tr += w[i] > 0 ? sqrt(w[i]) : 0.0;
        *out = tr;
    }
    free(v), free(t), free(m), free(w);
    return st;
}

ims_status ims_fid_distance(ims_fid_stats *a, ims_fid_stats *b, double *fid, ims_error *err)
{
    int d = ims_fid_stats_dim(a);
    if (ims_fid_stats_dim(b) != d)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "fid: the statistics have dimensions %d and %d", d,
                             ims_fid_stats_dim(b));
    const double *mu1, *s1, *mu2, *s2;
    ims_status st = ims_fid_stats_get(a, &mu1, &s1, err);
    if (!st)
        st = ims_fid_stats_get(b, &mu2, &s2, err);
    double tr_covmean = 0;
    if (!st)
        st = trace_sqrt_product(s1, s2, d, &tr_covmean, err);
    if (st)
        return st;
    double diff = 0, tr = 0;
    for (int i = 0; i < d; i++) {
        double x = mu1[i] - mu2[i];
        diff += x * x;
        tr += s1[(size_t)i * d + i] + s2[(size_t)i * d + i];
    }
    *fid = diff + tr - 2.0 * tr_covmean;
    return IMS_OK;
}

/* ---- KID -------------------------------------------------------------------------------- */

void ims_kid_options_init(ims_kid_options *o)
{
    o->subsets = 100;
    o->subset_size = 1000;
    o->degree = 3;
    o->gamma = 0;
    o->coef0 = 1;
    o->seed = 2020;
}

static double ipow(double x, int k)
{
    double r = 1;
    for (int i = 0; i < k; i++)
        r *= x;
    return r;
}

/* Sum of the kernel over (m, m) Gram g, leaving out its diagonal if asked. */
static double kernel_sum(const double *g, int m, double gamma, double coef0, int degree, int skip_diagonal)
{
    double s = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++)
            if (!skip_diagonal || i != j)
                s += ipow(g[(size_t)i * m + j] * gamma + coef0, degree);
    return s;
}

/* out (m, d) = rows idx[0..m) of f (n, d), widened */
static void gather(const float *f, int d, const int64_t *idx, int m, double *out)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < d; j++)
            out[(size_t)i * d + j] = f[(size_t)idx[i] * d + j];
}

/* One subset's unbiased MMD^2 from the gathered x and y (m, d); g is (m, m) scratch. */
static double subset_mmd(const double *x, const double *y, int m, int d, const ims_kid_options *o, double gamma,
                         double *g)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, d, 1.0, x, d, x, d, 0.0, g, m);
    double kxx = kernel_sum(g, m, gamma, o->coef0, o->degree, 1);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, d, 1.0, y, d, y, d, 0.0, g, m);
    double kyy = kernel_sum(g, m, gamma, o->coef0, o->degree, 1);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, d, 1.0, x, d, y, d, 0.0, g, m);
    double kxy = kernel_sum(g, m, gamma, o->coef0, o->degree, 0);
    return (kxx + kyy) / ((double)m * (m - 1)) - 2.0 * kxy / ((double)m * m);
}

static void mean_std(const double *v, int n, double *mean, double *std)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    s /= n;
    for (int i = 0; i < n; i++)
        q += (v[i] - s) * (v[i] - s);
    *mean = s;
    *std = sqrt(q / n);
}

ims_status ims_kid(const float *x, int64_t nx, const float *y, int64_t ny, int dim, const ims_kid_options *o,
                   double *mean, double *std, int *size_used, ims_error *err)
{
    if (dim < 1 || o->subsets < 1 || o->subset_size < 2 || o->degree < 1 || o->degree > 16 || !(o->gamma >= 0))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "kid: bad options (dim %d, subsets %d, size %d, degree %d)", dim,
                             o->subsets, o->subset_size, o->degree);
    int64_t m64 = o->subset_size;
    m64 = nx < m64 ? nx : m64;
    m64 = ny < m64 ? ny : m64;
    if (m64 < 2)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "kid: needs at least 2 images on each side (have %lld and %lld)",
                             (long long)nx, (long long)ny);
    int m = (int)m64, d = dim;
    double gamma = o->gamma > 0 ? o->gamma : 1.0 / dim;
    int64_t nmax = nx > ny ? nx : ny;
    int64_t *perm = malloc((size_t)nmax * sizeof *perm);
    double *gx = malloc((size_t)m * d * sizeof *gx), *gy = malloc((size_t)m * d * sizeof *gy);
    double *g = malloc((size_t)m * m * sizeof *g), *mmd = malloc((size_t)o->subsets * sizeof *mmd);
    ims_status st = perm && gx && gy && g && mmd ? IMS_OK
                                                 : ims_error_set(err, IMS_ERR_NOMEM, "kid: out of memory (subset %d)", m);
    imsi_mt19937 mt;
    imsi_mt19937_seed(&mt, o->seed);
    for (int s = 0; !st && s < o->subsets; s++) {
        /* torch-fidelity's order: choice over x, then over y */
        imsi_legacy_permutation(&mt, nx, perm);
        gather(x, d, perm, m, gx);
        imsi_legacy_permutation(&mt, ny, perm);
        gather(y, d, perm, m, gy);
        mmd[s] = subset_mmd(gx, gy, m, d, o, gamma, g);
    }
    if (!st) {
        mean_std(mmd, o->subsets, mean, std);
        *size_used = m;
    }
    free(perm), free(gx), free(gy), free(g), free(mmd);
    return st;
}

/* ---- Inception Score ---------------------------------------------------------------------- */

/* Row i of logits -> p (softmax) and logp (log-softmax), float64. */
static void log_softmax(const float *row, int c, double *p, double *logp)
{
    double mx = row[0], s = 0;
    for (int j = 1; j < c; j++)
        mx = row[j] > mx ? row[j] : mx;
    for (int j = 0; j < c; j++)
        s += exp((double)row[j] - mx);
    double lse = mx + log(s);
    for (int j = 0; j < c; j++) {
        logp[j] = (double)row[j] - lse;
        p[j] = exp(logp[j]);
    }
}

/* exp(mean over rows order[lo..hi) of KL(p_i || q)), q the rows' mean p. */
static double split_score(const float *logits, int c, const int64_t *order, int64_t lo, int64_t hi, double *p,
                          double *logp, double *q)
{
    memset(q, 0, (size_t)c * sizeof *q);
    for (int64_t i = lo; i < hi; i++) {
        log_softmax(logits + (size_t)order[i] * c, c, p, logp);
        for (int j = 0; j < c; j++)
            q[j] += p[j];
    }
    for (int j = 0; j < c; j++)
        q[j] /= (double)(hi - lo);
    double kl = 0;
    for (int64_t i = lo; i < hi; i++) {
        log_softmax(logits + (size_t)order[i] * c, c, p, logp);
        double k = 0;
        for (int j = 0; j < c; j++)
            if (p[j] > 0)
                k += p[j] * (logp[j] - log(q[j]));
        kl += k;
    }
    return exp(kl / (double)(hi - lo));
}

ims_status ims_inception_score(const float *logits, int64_t n, int classes, int splits, uint32_t seed, double *mean,
                               double *std, ims_error *err)
{
    if (classes < 2 || splits < 1)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "inception score: bad classes %d or splits %d", classes, splits);
    if (n < splits)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "inception score: %lld image(s) for %d splits", (long long)n,
                             splits);
    for (int64_t i = 0; i < n * classes; i++)
        if (!isfinite(logits[i]))
            return ims_error_set(err, IMS_ERR_ARGUMENT, "inception score: logits of image %lld are not finite",
                                 (long long)(i / classes));
    int64_t *order = malloc((size_t)n * sizeof *order);
    double *buf = malloc((size_t)3 * classes * sizeof *buf), *score = malloc((size_t)splits * sizeof *score);
    if (!order || !buf || !score) {
        free(order), free(buf), free(score);
        return ims_error_set(err, IMS_ERR_NOMEM, "inception score: out of memory (%lld images)", (long long)n);
    }
    imsi_mt19937 mt;
    imsi_mt19937_seed(&mt, seed);
    imsi_legacy_permutation(&mt, n, order);
    for (int s = 0; s < splits; s++)
        score[s] = split_score(logits, classes, order, s * n / splits, (s + 1) * n / splits, buf, buf + classes,
                               buf + 2 * classes);
    mean_std(score, splits, mean, std);
    free(order), free(buf), free(score);
    return IMS_OK;
}
