/* fid.h: internals of the FID, KID and Inception Score code shared between
 * its files and with its tests: numpy's legacy random generator (MT19937 and
 * RandomState's permutation), through which KID and IS pick their subsets
 * exactly as torch-fidelity does, and the LAPACK eigen-solver call. */
#ifndef IMS_MODELS_FID_H
#define IMS_MODELS_FID_H

#include "imgsearch.h"

/* MT19937 seeded as numpy's RandomState(seed) seeds it (init_genrand). */
typedef struct imsi_mt19937 {
    uint32_t key[624];
    int pos;
} imsi_mt19937;

void imsi_mt19937_seed(imsi_mt19937 *mt, uint32_t seed);
uint32_t imsi_mt19937_next32(imsi_mt19937 *mt);

/* RandomState.permutation(n) into out (n): 0..n-1 shuffled from the last
 * position down, each swap partner drawn by numpy's masked rejection. */
void imsi_legacy_permutation(imsi_mt19937 *mt, int64_t n, int64_t *out);

/* Eigenvalues (ascending, into w) and, with vectors, the eigenvectors (into
 * a's rows: row i of a is eigenvector i) of the symmetric (n, n) matrix a,
 * whose upper triangle is read (row-major), by LAPACK's dsyevd. */
ims_status imsi_sym_eigen(double *a, int n, double *w, int vectors, ims_error *err);

#endif /* IMS_MODELS_FID_H */
