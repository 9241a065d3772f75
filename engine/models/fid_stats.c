/* fid_stats.c: the statistics FID compares: the mean and covariance of
 * Inception-v3 features, streamed in float64, and their .npz file.
 *
 * Rows are widened to double minus a shift (the first row), then summed
 * (dim) and their scatter accumulated (dim, dim; upper triangle, row-major)
 * by cblas_dsyrk, BLOCK rows at a time (rows wait in a block until it is
 * full, so adding one image at a time costs no rank-1 updates). Shifting keeps the one-pass formula
 * cov = (S - s s^T / n) / (n - 1) free of the cancellation it would suffer
 * on features whose mean is large against their spread.
 */
#include "imgsearch.h"

#include "core/error.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 64           /* rows per rank-k update */
#define MAX_DIM (1 << 14)  /* 2 GiB of covariance, and LAPACK's int workspace (2 dim^2) still fits */
#define MODE_KEY "imgsearch_mode"
#define COUNT_KEY "imgsearch_count"

struct ims_fid_stats {
    int dim;
    int64_t count;
    int loaded;      /* from a file or ims_fid_stats_from: mu and sigma are final */
    int stale;       /* rows were added since mu and sigma were computed */
    double *shift;   /* (dim) the first row */
    double *sum;     /* (dim) of rows - shift */
    double *scatter; /* (dim, dim) of (rows - shift)^T (rows - shift), upper triangle */
    double *block;   /* (BLOCK, dim) widened rows, the first `pending` not yet in scatter */
    int pending;
    double *mu;      /* (dim) */
    double *sigma;   /* (dim, dim) */
};

static ims_status stats_alloc(int dim, int accumulate, ims_fid_stats **out, ims_error *err)
{
    *out = NULL;
    if (dim < 1 || dim > MAX_DIM)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "fid statistics: dimension %d is not in 1..%d", dim, MAX_DIM);
    ims_fid_stats *s = calloc(1, sizeof *s);
    size_t d = (size_t)dim;
    if (s) {
        s->dim = dim;
        s->mu = calloc(d, sizeof *s->mu);
        s->sigma = calloc(d * d, sizeof *s->sigma);
        if (accumulate) {
            s->shift = calloc(d, sizeof *s->shift);
            s->sum = calloc(d, sizeof *s->sum);
            s->scatter = calloc(d * d, sizeof *s->scatter);
            s->block = calloc(BLOCK * d, sizeof *s->block);
        }
    }
    if (!s || !s->mu || !s->sigma || (accumulate && (!s->shift || !s->sum || !s->scatter || !s->block))) {
        ims_fid_stats_free(s);
        return ims_error_set(err, IMS_ERR_NOMEM, "fid statistics: out of memory for dimension %d", dim);
    }
    *out = s;
    return IMS_OK;
}

ims_status ims_fid_stats_create(int dim, ims_fid_stats **out, ims_error *err)
{
    return stats_alloc(dim, 1, out, err);
}

void ims_fid_stats_free(ims_fid_stats *s)
{
    if (!s)
        return;
    free(s->shift);
    free(s->sum);
    free(s->scatter);
    free(s->block);
    free(s->mu);
    free(s->sigma);
    free(s);
}

int ims_fid_stats_dim(const ims_fid_stats *s) { return s->dim; }
int64_t ims_fid_stats_count(const ims_fid_stats *s) { return s->count; }

/* The pending rows of the block into the scatter: one rank-k update. */
static void stats_flush(ims_fid_stats *s)
{
    if (!s->pending)
        return;
    /* scatter (d, d) += block^T (d, k) block (k, d) */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, s->dim, s->pending, 1.0, s->block, s->dim, 1.0, s->scatter,
                s->dim);
    s->pending = 0;
}

ims_status ims_fid_stats_add(ims_fid_stats *s, const float *rows, int64_t n, ims_error *err)
{
    if (s->loaded)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "fid statistics: cannot add rows to loaded statistics");
    if (n < 0 || (n > 0 && !rows))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "fid statistics: bad rows (%lld)", (long long)n);
    size_t d = (size_t)s->dim;
    for (int64_t i = 0; i < (int64_t)n * (int64_t)d; i++)
        if (!isfinite(rows[i]))
            return ims_error_set(err, IMS_ERR_ARGUMENT, "fid statistics: feature row %lld has a NaN or Inf",
                                 (long long)(i / (int64_t)d));
    if (s->count == 0 && n > 0)
        for (size_t j = 0; j < d; j++)
            s->shift[j] = rows[j];
    /* rows wait in the block (images often come one at a time) until BLOCK fill it */
    for (int64_t r = 0; r < n; r++) {
        const float *x = rows + (size_t)r * d;
        double *y = s->block + (size_t)s->pending * d;
        for (size_t j = 0; j < d; j++) {
            y[j] = (double)x[j] - s->shift[j];
            s->sum[j] += y[j];
        }
        if (++s->pending == BLOCK)
            stats_flush(s);
    }
    s->count += n;
    s->stale = n > 0 || s->stale;
    return IMS_OK;
}

/* mu and sigma from the sums (both triangles of sigma filled). */
static void stats_finish(ims_fid_stats *s)
{
    stats_flush(s);
    size_t d = (size_t)s->dim;
    double n = (double)s->count;
    for (size_t i = 0; i < d; i++)
        s->mu[i] = s->shift[i] + s->sum[i] / n;
    for (size_t i = 0; i < d; i++)
        for (size_t j = i; j < d; j++) {
            double v = (s->scatter[i * d + j] - s->sum[i] * s->sum[j] / n) / (n - 1.0);
            s->sigma[i * d + j] = v;
            s->sigma[j * d + i] = v;
        }
    s->stale = 0;
}

ims_status ims_fid_stats_get(ims_fid_stats *s, const double **mu, const double **sigma, ims_error *err)
{
    if (!s->loaded) {
        if (s->count < 2)
            return ims_error_set(err, IMS_ERR_ARGUMENT,
                                 "fid statistics: %lld image(s): a covariance needs at least 2", (long long)s->count);
        if (s->stale)
            stats_finish(s);
    }
    *mu = s->mu;
    *sigma = s->sigma;
    return IMS_OK;
}

/* Checks that sigma is finite and symmetric to rounding (a file could hold anything). */
static ims_status check_moments(const double *mu, const double *sigma, int dim, ims_error *err)
{
    size_t d = (size_t)dim;
    for (size_t i = 0; i < d; i++)
        if (!isfinite(mu[i]))
            return ims_error_set(err, IMS_ERR_FORMAT, "fid statistics: mu[%zu] is not finite", i);
    for (size_t i = 0; i < d; i++)
        for (size_t j = i; j < d; j++) {
            double a = sigma[i * d + j], b = sigma[j * d + i];
            if (!isfinite(a) || !isfinite(b))
                return ims_error_set(err, IMS_ERR_FORMAT, "fid statistics: sigma[%zu, %zu] is not finite", i, j);
            /* float32 files round each half on its own: 1e-5 relative is well above that */
            if (fabs(a - b) > 1e-5 * (fabs(a) + fabs(b)) + 1e-300)
                return ims_error_set(err, IMS_ERR_FORMAT, "fid statistics: sigma is not symmetric at [%zu, %zu] "
                                     "(%.9g against %.9g)", i, j, a, b);
        }
    return IMS_OK;
}

ims_status ims_fid_stats_from(const double *mu, const double *sigma, int dim, int64_t count, ims_fid_stats **out,
                              ims_error *err)
{
    *out = NULL;
    ims_status st = check_moments(mu, sigma, dim, err);
    if (!st)
        st = stats_alloc(dim, 0, out, err);
    if (st)
        return st;
    size_t d = (size_t)dim;
    memcpy((*out)->mu, mu, d * sizeof *mu);
    memcpy((*out)->sigma, sigma, d * d * sizeof *sigma);
    (*out)->loaded = 1;
    (*out)->count = count > 0 ? count : 0;
    return IMS_OK;
}

ims_status ims_fid_stats_save(ims_fid_stats *s, const char *path, const char *mode, ims_error *err)
{
    const double *mu, *sigma;
    ims_status st = ims_fid_stats_get(s, &mu, &sigma, err);
    if (st)
        return st;
    int64_t d = s->dim, mode_len = mode ? (int64_t)strlen(mode) : 0, count = s->count;
    int64_t mu_shape[1] = {d}, sigma_shape[2] = {d, d}, mode_shape[1] = {mode_len}, count_shape[1] = {1};
    ims_npz_member m[4] = {
        {"mu", IMS_DTYPE_F64, 1, mu_shape, mu},
        {"sigma", IMS_DTYPE_F64, 2, sigma_shape, sigma},
        {MODE_KEY, IMS_DTYPE_U8, 1, mode_shape, mode ? mode : ""},
        {COUNT_KEY, IMS_DTYPE_I64, 1, count_shape, &count},
    };
    return ims_npz_write(path, m, 4, err);
}

/* An npz member as float64, widened from float32 if need be, of the given shape. */
static ims_status load_f64(const ims_npz *z, const char *name, int ndim, int64_t dim, double **out, ims_error *err)
{
    *out = NULL;
    ims_npy *a = NULL;
    ims_status st = ims_npz_get(z, name, &a, err);
    if (st)
        return st;
    const int64_t *shape = ims_npy_shape(a);
    ims_dtype dt = ims_npy_dtype(a);
    if (ims_npy_ndim(a) != ndim || shape[0] != dim || (ndim == 2 && shape[1] != dim))
        st = ims_error_set(err, IMS_ERR_FORMAT, "'%s' has shape %s(%lld%s%lld), want (%lld%s%lld)", name,
                           ims_npy_ndim(a) > 2 ? "more than 2 dims " : "", (long long)shape[0],
                           ims_npy_ndim(a) == 2 ? ", " : "", ims_npy_ndim(a) == 2 ? (long long)shape[1] : 0LL,
                           (long long)dim, ndim == 2 ? ", " : "", ndim == 2 ? (long long)dim : 0LL);
    else if (dt != IMS_DTYPE_F64 && dt != IMS_DTYPE_F32)
        st = ims_error_set(err, IMS_ERR_FORMAT, "'%s' is %s, not float64 or float32", name, ims_dtype_name(dt));
    size_t n = (size_t)ims_npy_count(a);
    double *v = st ? NULL : malloc(n ? n * sizeof *v : 1);
    if (!st && !v)
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for '%s'", name);
    if (!st) {
        const void *data = ims_npy_data(a);
        if (dt == IMS_DTYPE_F64)
            memcpy(v, data, n * sizeof *v);
        else
            for (size_t i = 0; i < n; i++)
                v[i] = ((const float *)data)[i];
    }
    ims_npy_close(a);
    *out = v;
    return st;
}

/* The mode text and image count, when the file has them (ours do). */
static ims_status load_extras(const ims_npz *z, char *mode, size_t mode_size, int64_t *count, ims_error *err)
{
    if (mode_size)
        mode[0] = '\0';
    *count = 0;
    ims_npy *a = NULL;
    ims_status st = ims_npz_get(z, MODE_KEY, &a, err);
    if (st == IMS_OK) {
        size_t n = ims_npy_nbytes(a);
        if (ims_npy_dtype(a) != IMS_DTYPE_U8 || ims_npy_ndim(a) != 1 || n >= mode_size ||
            memchr(ims_npy_data(a), '\0', n))
            st = ims_error_set(err, IMS_ERR_FORMAT, "'%s' is not a short text", MODE_KEY);
        else if (n)
            memcpy(mode, ims_npy_data(a), n), mode[n] = '\0';
        ims_npy_close(a);
    }
    if (st && st != IMS_ERR_NOT_FOUND)
        return st;
    st = ims_npz_get(z, COUNT_KEY, &a, err);
    if (st == IMS_OK) {
        if (ims_npy_dtype(a) != IMS_DTYPE_I64 || ims_npy_count(a) != 1 || *(const int64_t *)ims_npy_data(a) < 0)
            st = ims_error_set(err, IMS_ERR_FORMAT, "'%s' is not one count", COUNT_KEY);
        else
            *count = *(const int64_t *)ims_npy_data(a);
        ims_npy_close(a);
    }
    return st == IMS_ERR_NOT_FOUND ? IMS_OK : st;
}

static ims_status load_from(const ims_npz *z, ims_fid_stats **out, char *mode, size_t mode_size, ims_error *err)
{
    ims_npy *m = NULL;
    ims_status st = ims_npz_get(z, "mu", &m, err);
    if (st)
        return st == IMS_ERR_NOT_FOUND ? ims_error_set(err, IMS_ERR_FORMAT, "no 'mu' (not FID statistics)") : st;
    int64_t dim = ims_npy_shape(m)[0];
    int ndim = ims_npy_ndim(m);
    ims_npy_close(m);
    if (ndim != 1 || dim < 1 || dim > MAX_DIM)
        return ims_error_set(err, IMS_ERR_FORMAT, "'mu' is not a vector of 1..%d values", MAX_DIM);
    double *mu = NULL, *sigma = NULL;
    int64_t count = 0;
    st = load_f64(z, "mu", 1, dim, &mu, err);
    if (!st)
        st = load_f64(z, "sigma", 2, dim, &sigma, err);
    if (st == IMS_ERR_NOT_FOUND)
        st = ims_error_set(err, IMS_ERR_FORMAT, "no 'sigma' (not FID statistics)");
    if (!st)
        st = load_extras(z, mode, mode_size, &count, err);
    if (!st)
        st = ims_fid_stats_from(mu, sigma, (int)dim, count, out, err);
    free(mu);
    free(sigma);
    return st;
}

ims_status ims_fid_stats_load(const char *path, ims_fid_stats **out, char *mode, size_t mode_size, ims_error *err)
{
    *out = NULL;
    ims_npz *z = NULL;
    ims_status st = ims_npz_open(path, &z, err);
    if (st)
        return st;
    st = load_from(z, out, mode, mode_size, err);
    ims_npz_close(z);
    return st ? imsi_error_prefix(err, st, "%s", path) : IMS_OK;
}
