/* test_fid.c: FID statistics, FID, KID, the Inception Score and the .npz
 * statistics file, against references written independently here:
 * - numpy's legacy generator: outputs and permutations numpy printed
 *   (np.random.RandomState(seed).permutation / choice);
 * - statistics: a two-pass mean and covariance in long double, on rows whose
 *   mean (1000) is large against their spread (1), added in uneven pieces;
 * - FID: closed forms (commuting covariances, one of them singular:
 *   sum (sqrt a_i - sqrt b_i)^2; 2 x 2 non-commuting ones:
 *   tr sqrt(S1 S2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)));
 * - KID and IS: the estimators summed term by term in long double;
 * - the .npz: written, read back bit for bit, a flipped byte caught.
 * The CLI test (tests/cli/test_cli_fid.py) compares with numpy, scipy and
 * the reference packages' own code on real features.
 */
#include "imgsearch.h"

#include "models/fid.h"
#include "test.h"

#include <math.h>
#include <stdio.h>

static void test_generator(void)
{
    imsi_mt19937 mt;
    imsi_mt19937_seed(&mt, 5489);
    TEST_CHECK(imsi_mt19937_next32(&mt) == 3499211612u, "MT19937 seed 5489: first output");
    int64_t p[100000];
    static const int64_t want10[10] = {2, 4, 9, 1, 5, 7, 6, 3, 8, 0};
    imsi_mt19937_seed(&mt, 2020);
    imsi_legacy_permutation(&mt, 10, p);
    TEST_CHECK(!memcmp(p, want10, sizeof want10), "RandomState(2020).permutation(10): %lld %lld %lld ...",
               (long long)p[0], (long long)p[1], (long long)p[2]);
    /* choice(50, 5, replace=False) then choice(7, 3, replace=False) */
    static const int64_t want_a[5] = {25, 13, 26, 37, 41}, want_b[3] = {1, 4, 5};
    imsi_mt19937_seed(&mt, 2020);
    imsi_legacy_permutation(&mt, 50, p);
    TEST_CHECK(!memcmp(p, want_a, sizeof want_a), "choice(50, 5): %lld %lld", (long long)p[0], (long long)p[1]);
    imsi_legacy_permutation(&mt, 7, p);
    TEST_CHECK(!memcmp(p, want_b, sizeof want_b), "then choice(7, 3): %lld %lld", (long long)p[0], (long long)p[1]);
    static const int64_t want_big[5] = {43660, 87278, 14317, 81932, 95321};
    imsi_mt19937_seed(&mt, 1);
    imsi_legacy_permutation(&mt, 100000, p);
    TEST_CHECK(!memcmp(p, want_big, sizeof want_big), "RandomState(1).permutation(100000)[:5]: %lld",
               (long long)p[0]);
}

static float *random_rows(int n, int d, float offset, uint64_t seed)
{
    float *x = test_xmalloc((size_t)n * d * sizeof *x);
    for (int i = 0; i < n * d; i++)
        x[i] = offset + test_rand_uniform(&seed, -1.0f, 1.0f) * (1.0f + (float)(i % d) / d);
    return x;
}

static void test_statistics(void)
{
    enum { N = 300, D = 7 };
    float *x = random_rows(N, D, 1000.0f, 11);
    ims_error err = {0};
    ims_fid_stats *s = NULL;
    TEST_OK(ims_fid_stats_create(D, &s, &err), err);
    const double *mu, *sigma;
    TEST_CHECK(ims_fid_stats_get(s, &mu, &sigma, &err) == IMS_ERR_ARGUMENT, "no rows: refused");
    static const int pieces[] = {1, 63, 64, 65, 2, 105};
    int at = 0;
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        TEST_OK(ims_fid_stats_add(s, x + (size_t)at * D, pieces[i], &err), err);
        at += pieces[i];
        if (i == 1) /* a look midway (rows pending in the block) must not disturb the rest */
            TEST_OK(ims_fid_stats_get(s, &mu, &sigma, &err), err);
    }
    TEST_CHECK(at == N && ims_fid_stats_count(s) == N, "rows %d", at);
    TEST_OK(ims_fid_stats_get(s, &mu, &sigma, &err), err);
    long double m[D] = {0};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            m[j] += x[i * D + j];
    double worst = 0;
    for (int j = 0; j < D; j++) {
        m[j] /= N;
        worst = fmax(worst, fabs((double)(mu[j] - m[j])) / 1000.0);
    }
    for (int a = 0; a < D; a++)
        for (int b = 0; b < D; b++) {
            long double c = 0;
            for (int i = 0; i < N; i++)
                c += (x[i * D + a] - m[a]) * (x[i * D + b] - m[b]);
            c /= N - 1;
            worst = fmax(worst, fabs((double)(sigma[a * D + b] - c)) / 0.3);
        }
    /* the spread is 1e-3 of the mean: without the shift the one-pass formula loses ~6 digits */
    TEST_CHECK(worst < 1e-13, "streamed statistics vs two-pass long double: %.3g relative", worst);
    float bad[D] = {1, 2, NAN, 4, 5, 6, 7};
    TEST_CHECK(ims_fid_stats_add(s, bad, 1, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "NaN"), "NaN row: %s",
               err.msg);
    ims_fid_stats_free(s);
    free(x);
}

/* Q: a random (d, d) orthogonal matrix (Gram-Schmidt in double). */
static void random_orthogonal(double *q, int d, uint64_t seed)
{
    for (int i = 0; i < d * d; i++)
        q[i] = test_rand_uniform(&seed, -1, 1);
    for (int i = 0; i < d; i++) {
        for (int k = 0; k < i; k++) {
            double dot = 0;
            for (int j = 0; j < d; j++)
                dot += q[i * d + j] * q[k * d + j];
            for (int j = 0; j < d; j++)
                q[i * d + j] -= dot * q[k * d + j];
        }
        double nrm = 0;
        for (int j = 0; j < d; j++)
            nrm += q[i * d + j] * q[i * d + j];
        for (int j = 0; j < d; j++)
            q[i * d + j] /= sqrt(nrm);
    }
}

/* s = Q^T diag(e) Q */
static void compose(const double *q, const double *e, int d, double *s)
{
    for (int a = 0; a < d; a++)
        for (int b = 0; b < d; b++) {
            double v = 0;
            for (int k = 0; k < d; k++)
                v += q[k * d + a] * e[k] * q[k * d + b];
            s[a * d + b] = v;
        }
}

static double fid_of(const double *mu1, const double *s1, const double *mu2, const double *s2, int d)
{
    ims_error err = {0};
    ims_fid_stats *a = NULL, *b = NULL;
    double fid = NAN;
    TEST_OK(ims_fid_stats_from(mu1, s1, d, 0, &a, &err), err);
    TEST_OK(ims_fid_stats_from(mu2, s2, d, 0, &b, &err), err);
    if (a && b)
        TEST_OK(ims_fid_distance(a, b, &fid, &err), err);
    ims_fid_stats_free(a);
    ims_fid_stats_free(b);
    return fid;
}

static void test_fid_closed_forms(void)
{
    enum { D = 6 };
    double q[D * D], s1[D * D], s2[D * D];
    random_orthogonal(q, D, 5);
    double e1[D] = {4.0, 2.5, 1.0, 0.3, 0.01, 0.0}; /* singular, as with fewer images than dims */
    double e2[D] = {1.0, 3.0, 0.2, 0.3, 2.0, 0.5};
    double mu1[D] = {1, 2, 3, 4, 5, 6}, mu2[D] = {1.5, 2, 2, 4, 5.25, 6};
    compose(q, e1, D, s1);
    compose(q, e2, D, s2);
    double want = 0;
    for (int i = 0; i < D; i++)
        want += (mu1[i] - mu2[i]) * (mu1[i] - mu2[i]) + (sqrt(e1[i]) - sqrt(e2[i])) * (sqrt(e1[i]) - sqrt(e2[i]));
    double got = fid_of(mu1, s1, mu2, s2, D);
    /* A zero eigenvalue comes out of S1 as +-1e-16 and its square root as
     * 1e-8: every square-root route (scipy's sqrtm too) is good to about
     * sqrt(eps |S1| |S2|) ~ 1e-7 absolute on singular covariances. */
    TEST_CHECK(fabs(got - want) < 1e-6 * want, "commuting, singular: %.17g, want %.17g", got, want);
    e1[D - 1] = 0.7;
    compose(q, e1, D, s1);
    want += 0.7 - 2 * sqrt(0.7 * 0.5);
    got = fid_of(mu1, s1, mu2, s2, D);
    TEST_CHECK(fabs(got - want) < 1e-12 * want, "commuting, regular: %.17g, want %.17g", got, want);
    double self = fid_of(mu1, s1, mu1, s1, D);
    TEST_CHECK(fabs(self) < 1e-12, "FID of a set with itself: %.3g", self);

    /* 2 x 2, not commuting */
    double a[4] = {2.0, 0.7, 0.7, 1.0}, b[4] = {0.5, -0.2, -0.2, 3.0}, m0[2] = {0, 0}, m1[2] = {0.3, -0.4};
    double ab[4] = {a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3], a[2] * b[0] + a[3] * b[2],
                    a[2] * b[1] + a[3] * b[3]};
    double det_a = a[0] * a[3] - a[1] * a[2], det_b = b[0] * b[3] - b[1] * b[2];
    double tr_sqrt = sqrt(ab[0] + ab[3] + 2 * sqrt(det_a * det_b));
    want = 0.25 + a[0] + a[3] + b[0] + b[3] - 2 * tr_sqrt;
    got = fid_of(m0, a, m1, b, 2);
    TEST_CHECK(fabs(got - want) < 1e-13 * want, "2 x 2 non-commuting: %.17g, want %.17g", got, want);
    double back = fid_of(m1, b, m0, a, 2);
    TEST_CHECK(fabs(back - got) < 1e-13 * want, "FID is symmetric: %.17g and %.17g", got, back);

    double bad[4] = {1, 0.5, -0.5, 1};
    ims_fid_stats *s = NULL;
    ims_error err = {0};
    TEST_CHECK(ims_fid_stats_from(m0, bad, 2, 0, &s, &err) == IMS_ERR_FORMAT && !s, "asymmetric sigma refused");
}

/* The unbiased MMD^2 of one subset, term by term. */
static long double mmd_reference(const float *x, const float *y, const int64_t *ix, const int64_t *iy, int m, int d)
{
    long double kxx = 0, kyy = 0, kxy = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            long double dxx = 0, dyy = 0, dxy = 0;
            for (int k = 0; k < d; k++) {
                dxx += (long double)x[ix[i] * d + k] * x[ix[j] * d + k];
                dyy += (long double)y[iy[i] * d + k] * y[iy[j] * d + k];
                dxy += (long double)x[ix[i] * d + k] * y[iy[j] * d + k];
            }
            if (i != j) {
                kxx += powl(dxx / d + 1, 3);
                kyy += powl(dyy / d + 1, 3);
            }
            kxy += powl(dxy / d + 1, 3);
        }
    return (kxx + kyy) / ((long double)m * (m - 1)) - 2 * kxy / ((long double)m * m);
}

static void test_kid(void)
{
    enum { NX = 13, NY = 11, D = 5, SUBSETS = 4, M = 6 };
    float *x = random_rows(NX, D, 0.2f, 21), *y = random_rows(NY, D, 0.0f, 22);
    ims_kid_options o;
    ims_kid_options_init(&o);
    TEST_CHECK(o.subsets == 100 && o.subset_size == 1000 && o.degree == 3 && o.seed == 2020, "defaults");
    o.subsets = SUBSETS, o.subset_size = M;
    double mean = 0, sd = 0;
    int used = 0;
    ims_error err = {0};
    TEST_OK(ims_kid(x, NX, y, NY, D, &o, &mean, &sd, &used, &err), err);
    imsi_mt19937 mt;
    imsi_mt19937_seed(&mt, 2020);
    int64_t px[NX], py[NY];
    long double v[SUBSETS], s = 0, q = 0;
    for (int i = 0; i < SUBSETS; i++) {
        imsi_legacy_permutation(&mt, NX, px);
        imsi_legacy_permutation(&mt, NY, py);
        v[i] = mmd_reference(x, y, px, py, M, D);
        s += v[i];
    }
    s /= SUBSETS;
    for (int i = 0; i < SUBSETS; i++)
        q += (v[i] - s) * (v[i] - s);
    double want_sd = (double)sqrtl(q / SUBSETS);
    TEST_CHECK(used == M && fabs(mean - (double)s) < 1e-12 * fabs((double)s) + 1e-15 &&
                   fabs(sd - want_sd) < 1e-10 * want_sd,
               "KID %.17g +- %.6g, want %.17g +- %.6g", mean, sd, (double)s, want_sd);
    o.subset_size = 1000;
    TEST_OK(ims_kid(x, NX, y, NY, D, &o, &mean, &sd, &used, &err), err);
    TEST_CHECK(used == NY, "subset size clamped to the smaller set: %d", used);
    TEST_CHECK(ims_kid(x, 1, y, NY, D, &o, &mean, &sd, &used, &err) == IMS_ERR_ARGUMENT, "one image refused");
    free(x);
    free(y);
}

static void test_inception_score(void)
{
    enum { N = 31, C = 10, SPLITS = 3 };
    ims_error err = {0};
    double mean, sd;
    /* every image sure of its own class, classes spread evenly: IS = classes */
    float sure[20 * C] = {0};
    for (int i = 0; i < 20; i++)
        sure[i * C + i % C] = 60.0f;
    TEST_OK(ims_inception_score(sure, 20, C, 1, 2020, &mean, &sd, &err), err);
    TEST_CHECK(fabs(mean - C) < 1e-9 && sd == 0, "confident, even: IS %.12g, want %d", mean, C);
    /* random logits against the definition term by term */
    float *l = random_rows(N, C, 0.0f, 31);
    for (int i = 0; i < N * C; i++)
        l[i] *= 4;
    TEST_OK(ims_inception_score(l, N, C, SPLITS, 7, &mean, &sd, &err), err);
    imsi_mt19937 mt;
    imsi_mt19937_seed(&mt, 7);
    int64_t order[N];
    imsi_legacy_permutation(&mt, N, order);
    long double sc[SPLITS], sum = 0, q = 0;
    for (int s = 0; s < SPLITS; s++) {
        int lo = s * N / SPLITS, hi = (s + 1) * N / SPLITS;
        long double p[N][C], qm[C] = {0}, kl = 0;
        for (int i = lo; i < hi; i++) {
            long double z = 0;
            for (int j = 0; j < C; j++)
                z += expl(l[order[i] * C + j]);
            for (int j = 0; j < C; j++) {
                p[i][j] = expl(l[order[i] * C + j]) / z;
                qm[j] += p[i][j] / (hi - lo);
            }
        }
        for (int i = lo; i < hi; i++)
            for (int j = 0; j < C; j++)
                kl += p[i][j] * logl(p[i][j] / qm[j]);
        sc[s] = expl(kl / (hi - lo));
        sum += sc[s];
    }
    sum /= SPLITS;
    for (int s = 0; s < SPLITS; s++)
        q += (sc[s] - sum) * (sc[s] - sum);
    TEST_CHECK(fabs(mean - (double)sum) < 1e-12 * (double)sum && fabs(sd - (double)sqrtl(q / SPLITS)) < 1e-10,
               "IS %.17g +- %.6g, want %.17g +- %.6g", mean, sd, (double)sum, (double)sqrtl(q / SPLITS));
    TEST_CHECK(ims_inception_score(l, 2, C, SPLITS, 7, &mean, &sd, &err) == IMS_ERR_ARGUMENT,
               "fewer images than splits refused");
    free(l);
}

static void test_stats_file(const char *dir)
{
    enum { N = 40, D = 9 };
    float *x = random_rows(N, D, 3.0f, 41);
    ims_error err = {0};
    ims_fid_stats *s = NULL, *back = NULL;
    TEST_OK(ims_fid_stats_create(D, &s, &err), err);
    TEST_OK(ims_fid_stats_add(s, x, N, &err), err);
    char path[4096];
    snprintf(path, sizeof path, "%s/stats.npz", dir);
    TEST_OK(ims_fid_stats_save(s, path, "fid", &err), err);
    char mode[32];
    TEST_OK(ims_fid_stats_load(path, &back, mode, sizeof mode, &err), err);
    const double *mu, *sigma, *mu2, *sigma2;
    if (back) {
        TEST_OK(ims_fid_stats_get(s, &mu, &sigma, &err), err);
        TEST_OK(ims_fid_stats_get(back, &mu2, &sigma2, &err), err);
        TEST_CHECK(!memcmp(mu, mu2, D * sizeof *mu) && !memcmp(sigma, sigma2, D * D * sizeof *sigma),
                   "the file gives back the same bits");
        TEST_CHECK(!strcmp(mode, "fid") && ims_fid_stats_count(back) == N, "mode '%s', count %lld", mode,
                   (long long)ims_fid_stats_count(back));
        TEST_CHECK(ims_fid_stats_add(back, x, 1, &err) == IMS_ERR_ARGUMENT, "loaded statistics take no rows");
    }
    ims_fid_stats_free(back);
    back = NULL;
    /* a flipped byte in sigma's data: the CRC names it */
    size_t len = 0;
    char *bytes = test_read_file(path, &len);
    bytes[len / 2] ^= 0x40;
    ims_npz *z = NULL;
    ims_npy *a = NULL;
    TEST_OK(ims_npz_parse(bytes, len, &z, &err), err);
    if (z) {
        TEST_CHECK(ims_npz_count(z) == 4 && !strcmp(ims_npz_name(z, 0), "mu"), "members");
        TEST_CHECK(ims_npz_get(z, "sigma", &a, &err) == IMS_ERR_CHECKSUM && !a, "flipped byte: %s", err.msg);
        TEST_CHECK(ims_npz_get(z, "nope", &a, &err) == IMS_ERR_NOT_FOUND, "missing member");
    }
    ims_npz_close(z);
    for (size_t cut = 0; cut < len; cut += len / 17 + 1) {
        z = NULL;
        ims_status st = ims_npz_parse(bytes, cut, &z, &err);
        TEST_CHECK(st != IMS_OK && !z && err.msg[0], "cut at %zu accepted", cut);
    }
    free(bytes);
    ims_fid_stats_free(s);
    free(x);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_fid SCRATCH_DIR\n");
        return 2;
    }
    test_generator();
    test_statistics();
    test_fid_closed_forms();
    test_kid();
    test_inception_score();
    test_stats_file(argv[1]);
    return test_finish();
}
