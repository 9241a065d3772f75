/* test_backend_ops.c: every compute op of engine/backend/backend.h, from one
 * table of cases (the pattern of llama.cpp's test-backend-ops).
 *
 * A case is {op, sizes, dtypes, flags, tolerances}. Its builder fills the
 * inputs from a seeded generator (splitmix64; never zeros, ties where they
 * matter) and computes the expected outputs with plain double-precision
 * loops written here from the contracts in backend.h. Then:
 *   1. the CPU backend runs the op on outputs poisoned with 0xff bytes (NaN in
 *      f32 and f16, -1 in i32), and every output element is compared with the
 *      reference: |got - want| / mag <= tol, mag being the element's scale
 *      (set by the builder: the sum of magnitudes for a product, |want| for a
 *      rounding, 1 for an absolute error); tol 0 means exactly equal (the sign
 *      of zero included); an expected NaN (a NaN result, or a channel outside
 *      an output slice that must keep its poison) must be NaN;
 *   2. every other backend (CUDA, where a device exists; that part is SKIPPED
 *      with a message otherwise) runs the same case and is compared with the
 *      CPU backend's output the same way, with tol_backend.
 * Tolerances are explained in the table. Precision modes only the GPU has
 * (tf32, f16 image ops, forced k-NN paths) stay in tests/gpu.
 *
 * Usage: test_backend_ops [quick]  (quick: the small cases only)
 */
#include "test.h"

#include "backend/backend.h"
#include "kernels/cpu/fast_math.h"
#include "kernels/cpu/ops_cpu.h"

#include <math.h>

typedef enum op_kind {
    OP_CONVERT,
    OP_L2,
    OP_LINEAR,
    OP_CONV2D,
    OP_POOL2D,
    OP_GAP,
    OP_INPUT_U8,
    OP_KNN,
    OP_EMBED,
    OP_BIAS_ACT,
    OP_ADD_LN,
    OP_ATTENTION,
    OP_POOL_NORM,
} op_kind;

enum {
    F_BIAS = 1,      /* linear, add_layernorm: with a bias */
    F_RELU = 2,      /* conv2d */
    F_INPLACE = 4,   /* bias_act: y = x; add_layernorm: y = residual */
    F_GELU = 8,      /* bias_act */
    F_MAX = 16,      /* pool2d: max (else average) */
    F_INCL = 32,     /* pool2d: count_include_pad */
    F_CLS = 64,      /* pool_normalize: CLS (else mean) */
    F_NORM = 128,    /* pool_normalize: L2-normalize */
    F_SPECIAL = 256, /* convert, l2: edge values first */
    F_INT = 512,     /* knn: small integers (exact scores, many ties) */
    F_BIG = 1024,    /* not in quick mode */
};

typedef struct op_case {
    op_kind op;
    int s[12];         /* sizes: see the builder of each op */
    ims_dtype dt, dt2; /* activations (convert: source, dt2 the destination; l2: dt2 = y) */
    int flags;
    double tol;         /* CPU vs the double reference */
    double tol_backend; /* another backend vs the CPU */
} op_case;

#define F32 IMS_DTYPE_F32
#define F16 IMS_DTYPE_F16

/* Tolerances, by kind of error (the builders set mag accordingly):
 *   exact ops (convert, integer k-NN): 0;
 *   one f32 rounding of a double result: 2^-24 relative, tol 2e-7..1e-6;
 *   fp32 sums of K products, relative to the sum of magnitudes: K 2^-24 at
 *   worst, ~sqrt(K) 2^-24 typically: 1e-5 up to K = 2048;
 *   one f16 rounding: 2^-11 = 4.9e-4 of the value (tol 1e-3), and two
 *   backends that round slightly different f32 values may differ by one f16
 *   ulp, 2^-10 = 9.8e-4 of the value (tol_backend 1.1e-3 to 2e-3). */
static const op_case cases[] = {
    /* convert: s = {n}. Exact: the CPU against an independent round-to-nearest-
     * even written here, other backends bit for bit (NaN payloads aside). */
    {OP_CONVERT, {1}, F32, F16, F_SPECIAL, 0, 0},
    {OP_CONVERT, {7}, F32, F16, F_SPECIAL, 0, 0},
    {OP_CONVERT, {300}, F32, F16, F_SPECIAL, 0, 0},
    {OP_CONVERT, {65537}, F32, F16, F_SPECIAL, 0, 0},
    {OP_CONVERT, {3000001}, F32, F16, F_SPECIAL | F_BIG, 0, 0},
    {OP_CONVERT, {1}, F16, F32, 0, 0, 0},
    {OP_CONVERT, {65536 + 1001}, F16, F32, 0, 0, 0}, /* every half, then random ones */
    {OP_CONVERT, {3000001}, F16, F32, F_BIG, 0, 0},
    {OP_CONVERT, {1001}, F32, F32, 0, 0, 0},
    {OP_CONVERT, {3000001}, F32, F32, F_BIG, 0, 0},
    /* l2_normalize_rows: s = {n, d}; y (dt2) relative to |y|: one rounding
     * (f32 2e-7; f16 6e-4 with a floor at the smallest normal half); norms
     * (f32, set by the builder) 2e-7. Other backends sum the same squares in
     * double in another order: y 2e-6, f16 y one ulp, norms 1e-6. */
    {OP_L2, {1, 1}, F32, F32, 0, 2e-7, 2e-6},
    {OP_L2, {1, 1}, F32, F16, 0, 6e-4, 1.1e-3},
    {OP_L2, {7, 300}, F32, F32, F_SPECIAL, 2e-7, 2e-6},
    {OP_L2, {7, 300}, F32, F16, F_SPECIAL, 6e-4, 1.1e-3},
    {OP_L2, {3, 33}, F32, F32, 0, 2e-7, 2e-6},
    {OP_L2, {3, 33}, F32, F16, 0, 6e-4, 1.1e-3},
    {OP_L2, {5, 256}, F32, F32, 0, 2e-7, 2e-6},
    {OP_L2, {5, 256}, F32, F16, 0, 6e-4, 1.1e-3},
    {OP_L2, {9, 4099}, F32, F32, F_SPECIAL, 2e-7, 2e-6},
    {OP_L2, {9, 4099}, F32, F16, F_SPECIAL, 6e-4, 1.1e-3},
    {OP_L2, {1000, 2048}, F32, F32, F_SPECIAL | F_BIG, 2e-7, 2e-6},
    {OP_L2, {1000, 2048}, F32, F16, F_SPECIAL | F_BIG, 6e-4, 1.1e-3},
    {OP_L2, {70000, 16}, F32, F32, F_SPECIAL | F_BIG, 2e-7, 2e-6},
    {OP_L2, {70000, 16}, F32, F16, F_SPECIAL | F_BIG, 6e-4, 1.1e-3},
    /* linear: s = {m, n, k}; relative to sum |x w| + |bias|. f32: fp32 sums
     * (1e-5), and other backends must be strict fp32 too: TF32 (10-bit
     * mantissas) errs by ~1e-5 typical, 5e-5 worst on these shapes, so
     * tol_backend 1e-5 catches it. f16: one f16 rounding of y after fp32 sums,
     * 1e-3; two backends one f16 ulp apart, 2e-3. The last f32 shapes make a
     * GPU's bias prefill loop over rows (M > 65535) and columns (N > 1024
     * blocks of 256). */
    {OP_LINEAR, {1, 1, 1}, F32, 0, 0, 1e-5, 1e-5},
    {OP_LINEAR, {1, 1, 1}, F32, 0, F_BIAS, 1e-5, 1e-5},
    {OP_LINEAR, {3, 17, 33}, F32, 0, 0, 1e-5, 1e-5},
    {OP_LINEAR, {3, 17, 33}, F32, 0, F_BIAS, 1e-5, 1e-5},
    {OP_LINEAR, {64, 1000, 2048}, F32, 0, F_BIG, 1e-5, 1e-5},
    {OP_LINEAR, {64, 1000, 2048}, F32, 0, F_BIAS | F_BIG, 1e-5, 1e-5},
    {OP_LINEAR, {70000, 3, 5}, F32, 0, 0, 1e-5, 1e-5},
    {OP_LINEAR, {70000, 3, 5}, F32, 0, F_BIAS, 1e-5, 1e-5},
    {OP_LINEAR, {2, 300001, 3}, F32, 0, 0, 1e-5, 1e-5},
    {OP_LINEAR, {2, 300001, 3}, F32, 0, F_BIAS, 1e-5, 1e-5},
    {OP_LINEAR, {67, 45, 100}, F16, 0, 0, 1e-3, 2e-3},
    {OP_LINEAR, {67, 45, 100}, F16, 0, F_BIAS, 1e-3, 2e-3},
    {OP_LINEAR, {300, 1536, 384}, F16, 0, F_BIG, 1e-3, 2e-3},
    /* conv2d: s = {n, h, w, c, o, kh, kw, stride, pad_h, pad_w}, every filter
     * Inception uses, into channels [3, 3 + o) of an (o + 8)-channel output.
     * Relative to the largest sum |x w| + |b| of the output: fp32 sums of up to
     * 1200 products (1e-5); cuDNN may use FFT or Winograd transforms, ~1e-5 of
     * the output's scale (1e-4). */
    {OP_CONV2D, {2, 9, 7, 13, 11, 1, 1, 1, 0, 0}, F32, 0, F_RELU, 1e-5, 1e-4},
    {OP_CONV2D, {2, 11, 10, 3, 9, 3, 3, 2, 0, 0}, F32, 0, 0, 1e-5, 1e-4},
    {OP_CONV2D, {1, 9, 9, 7, 5, 3, 3, 1, 1, 1}, F32, 0, F_RELU, 1e-5, 1e-4},
    {OP_CONV2D, {2, 8, 9, 6, 7, 1, 7, 1, 0, 3}, F32, 0, F_RELU, 1e-5, 1e-4},
    {OP_CONV2D, {2, 9, 8, 7, 6, 7, 1, 1, 3, 0}, F32, 0, 0, 1e-5, 1e-4},
    {OP_CONV2D, {1, 8, 8, 5, 9, 5, 5, 1, 2, 2}, F32, 0, F_RELU, 1e-5, 1e-4},
    {OP_CONV2D, {2, 5, 6, 9, 4, 1, 3, 1, 0, 1}, F32, 0, F_RELU, 1e-5, 1e-4},
    {OP_CONV2D, {2, 6, 5, 4, 9, 3, 1, 1, 1, 0}, F32, 0, 0, 1e-5, 1e-4},
    {OP_CONV2D, {1, 10, 11, 8, 5, 3, 3, 2, 0, 0}, F32, 0, F_RELU, 1e-5, 1e-4},
    {OP_CONV2D, {2, 17, 13, 35, 19, 1, 1, 1, 0, 0}, F32, 0, F_RELU | F_BIG, 1e-5, 1e-4},
    {OP_CONV2D, {3, 19, 23, 3, 32, 3, 3, 2, 0, 0}, F32, 0, F_RELU | F_BIG, 1e-5, 1e-4},
    {OP_CONV2D, {2, 15, 15, 29, 37, 3, 3, 1, 1, 1}, F32, 0, F_RELU | F_BIG, 1e-5, 1e-4},
    {OP_CONV2D, {2, 15, 15, 29, 37, 3, 3, 1, 1, 1}, F32, 0, F_BIG, 1e-5, 1e-4}, /* cuDNN's IDENTITY path */
    {OP_CONV2D, {2, 17, 17, 33, 21, 1, 7, 1, 0, 3}, F32, 0, F_RELU | F_BIG, 1e-5, 1e-4},
    {OP_CONV2D, {2, 17, 17, 21, 33, 7, 1, 1, 3, 0}, F32, 0, F_RELU | F_BIG, 1e-5, 1e-4},
    {OP_CONV2D, {1, 35, 35, 48, 64, 5, 5, 1, 2, 2}, F32, 0, F_RELU | F_BIG, 1e-5, 1e-4},
    {OP_CONV2D, {2, 8, 8, 65, 47, 1, 3, 1, 0, 1}, F32, 0, F_RELU | F_BIG, 1e-5, 1e-4},
    {OP_CONV2D, {2, 8, 8, 47, 65, 3, 1, 1, 1, 0}, F32, 0, F_RELU | F_BIG, 1e-5, 1e-4},
    {OP_CONV2D, {2, 17, 17, 40, 24, 3, 3, 2, 0, 0}, F32, 0, F_RELU | F_BIG, 1e-5, 1e-4},
    /* pool2d: s = {n, h, w, c, k, stride, pad}, into channels [2, 2 + c) of a
     * (c + 5)-channel output; inputs in [-2, 2], absolute: the CPU sums in
     * double (one f32 rounding, 1e-6); a GPU may sum 9 terms in f32 (2e-6). */
    {OP_POOL2D, {2, 7, 6, 5, 3, 1, 1}, F32, 0, F_INCL, 1e-6, 2e-6},
    {OP_POOL2D, {2, 7, 6, 5, 3, 1, 1}, F32, 0, 0, 1e-6, 2e-6},
    {OP_POOL2D, {2, 7, 6, 5, 3, 1, 1}, F32, 0, F_MAX | F_INCL, 1e-6, 2e-6},
    {OP_POOL2D, {2, 9, 8, 4, 3, 2, 0}, F32, 0, F_MAX, 1e-6, 2e-6},
    {OP_POOL2D, {1, 10, 11, 3, 3, 2, 0}, F32, 0, F_INCL, 1e-6, 2e-6},
    {OP_POOL2D, {2, 35, 33, 37, 3, 1, 1}, F32, 0, F_INCL | F_BIG, 1e-6, 2e-6},
    {OP_POOL2D, {2, 35, 33, 37, 3, 1, 1}, F32, 0, F_BIG, 1e-6, 2e-6},
    {OP_POOL2D, {2, 17, 17, 41, 3, 1, 1}, F32, 0, F_MAX | F_INCL | F_BIG, 1e-6, 2e-6},
    {OP_POOL2D, {3, 147, 147, 5, 3, 2, 0}, F32, 0, F_MAX | F_BIG, 1e-6, 2e-6},
    {OP_POOL2D, {2, 17, 19, 29, 3, 2, 0}, F32, 0, F_MAX | F_BIG, 1e-6, 2e-6},
    /* global_avg_pool: s = {n, h, w, c}; inputs in [-1, 3], absolute; both sum
     * in double: one f32 rounding. */
    {OP_GAP, {2, 5, 3, 37}, F32, 0, 0, 1e-6, 1e-6},
    {OP_GAP, {3, 8, 7, 2051}, F32, 0, 0, 1e-6, 1e-6},
    /* input_u8: s = {n, h, w}, torchvision's normalization; absolute (values
     * within +-3): two f32 roundings against the double reference; other
     * backends bit for bit (the contract fixes the two f32 operations). */
    {OP_INPUT_U8, {2, 37, 41}, F32, 0, 0, 1e-6, 0},
    /* knn_select: s = {n, d, b, k}. Integers: exact scores, many ties (equal
     * scores by lower row), exact. Random floats: scores within the rounding
     * bound of an fp32 dot product (the builder's mag, tol 1; another backend
     * 2), ids equal but for scores within that bound (near ties). */
    {OP_KNN, {1, 1, 1, 1}, F32, 0, F_INT, 0, 0},
    {OP_KNN, {100, 8, 3, 150}, F32, 0, F_INT, 0, 0}, /* k > n */
    {OP_KNN, {777, 24, 5, 777}, F16, 0, F_INT, 0, 0}, /* k = n */
    {OP_KNN, {5000, 13, 5, 300}, F16, 0, F_INT, 0, 0},
    {OP_KNN, {3001, 7, 33, 64}, F32, 0, F_INT, 0, 0},
    {OP_KNN, {1000, 33, 1, 10}, F32, 0, 0, 1, 2},
    {OP_KNN, {2000, 40, 20, 100}, F16, 0, 0, 1, 2},
    /* embed_layernorm: s = {b, t, h, vocab, positions}; relative to max(1,
     * |y|): statistics in double, one rounding (f32 1e-6, f16 1e-3); another
     * backend's double sums in another order (f32 1e-5, f16 one ulp). */
    {OP_EMBED, {3, 37, 100, 50, 40}, F32, 0, 0, 1e-6, 1e-5},
    {OP_EMBED, {3, 37, 100, 50, 40}, F16, 0, 0, 1e-3, 1.1e-3},
    /* bias_act: s = {m, n}; relative to 1e-2 + |y| (GELU of a negative input
     * is tiny): the CPU in double, one rounding; a GPU's erff is within 2 f32
     * ulps (1e-5), or one f16 ulp. */
    {OP_BIAS_ACT, {77, 131}, F32, 0, 0, 1e-6, 1e-5},
    {OP_BIAS_ACT, {77, 131}, F32, 0, F_INPLACE, 1e-6, 1e-5},
    {OP_BIAS_ACT, {77, 131}, F32, 0, F_GELU, 1e-6, 1e-5},
    {OP_BIAS_ACT, {77, 131}, F32, 0, F_GELU | F_INPLACE, 1e-6, 1e-5},
    {OP_BIAS_ACT, {77, 131}, F16, 0, 0, 1e-3, 1.1e-3},
    {OP_BIAS_ACT, {77, 131}, F16, 0, F_INPLACE, 1e-3, 1.1e-3},
    {OP_BIAS_ACT, {77, 131}, F16, 0, F_GELU, 1e-3, 1.1e-3},
    {OP_BIAS_ACT, {77, 131}, F16, 0, F_GELU | F_INPLACE, 1e-3, 1.1e-3},
    /* add_layernorm: s = {m, h}; as embed_layernorm. */
    {OP_ADD_LN, {45, 300}, F32, 0, F_BIAS, 1e-6, 1e-5},
    {OP_ADD_LN, {45, 300}, F32, 0, F_INPLACE, 1e-6, 1e-5},
    {OP_ADD_LN, {45, 300}, F16, 0, F_BIAS, 1e-3, 1.1e-3},
    {OP_ADD_LN, {45, 300}, F16, 0, F_INPLACE, 1e-3, 1.1e-3},
    {OP_ADD_LN, {45, 300}, F16, 0, F_BIAS | F_INPLACE, 1e-3, 1.1e-3},
    /* attention: s = {b, t, h, heads, lengths...}; relative to 1e-2 + |ctx|:
     * fp32 dots and P . V (the softmax sums in double) against double, 2e-5
     * (the CPU measures 8.5e-6); another backend's fp32 GEMMs err as much the
     * other way: 3e-5. f16: q, k, v exact halves, ctx rounded once (1e-3); a
     * GPU also rounds scores and probabilities to f16, a few ulps (5e-3). */
    {OP_ATTENTION, {3, 45, 96, 3, 45, 17, 1}, F32, 0, 0, 2e-5, 3e-5},
    {OP_ATTENTION, {3, 45, 96, 3, 45, 17, 1}, F16, 0, 0, 1e-3, 5e-3},
    {OP_ATTENTION, {3, 9, 16, 2, 0, 9, 12}, F32, 0, 0, 2e-5, 3e-5}, /* lengths 0 and > T */
    {OP_ATTENTION, {2, 130, 384, 12, 130, 77}, F32, 0, F_BIG, 2e-5, 3e-5},
    {OP_ATTENTION, {2, 130, 384, 12, 130, 77}, F16, 0, F_BIG, 1e-3, 5e-3},
    /* pool_normalize: s = {b, t, h, lengths...}; relative to 1e-3 + |y|: sums
     * in double on both, one rounding. Lengths 0 and > T are clamped. */
    {OP_POOL_NORM, {5, 33, 130, 33, 1, 17, 2, 30}, F32, 0, F_NORM, 1e-6, 1e-6},
    {OP_POOL_NORM, {5, 33, 130, 33, 1, 17, 2, 30}, F32, 0, 0, 1e-6, 1e-6},
    {OP_POOL_NORM, {5, 33, 130, 33, 1, 17, 2, 30}, F32, 0, F_CLS | F_NORM, 1e-6, 1e-6},
    {OP_POOL_NORM, {5, 33, 130, 33, 1, 17, 2, 30}, F16, 0, F_NORM, 1e-6, 1e-6},
    {OP_POOL_NORM, {5, 33, 130, 33, 1, 17, 2, 30}, F16, 0, 0, 1e-6, 1e-6},
    {OP_POOL_NORM, {5, 33, 130, 33, 1, 17, 2, 30}, F16, 0, F_CLS | F_NORM, 1e-6, 1e-6},
    {OP_POOL_NORM, {4, 6, 20, 0, 6, 40, 3}, F16, 0, F_NORM, 1e-6, 1e-6},
};

#define NCASES (sizeof cases / sizeof cases[0])

/* ---- Tensors of a case -------------------------------------------------------------- */

enum { IN, OUT, INOUT, SCRATCH };

typedef struct spec {
    const char *name;
    ims_dtype dt;
    int ndim;
    int64_t shape[4];
    int role;
    size_t n;            /* elements */
    void *host;          /* IN, INOUT: the input values, in dt */
    double *want;        /* OUT, INOUT: the reference; NaN: must be NaN */
    double *mag;         /* OUT, INOUT: each element's scale (NULL: 1) */
    double tol, tol_bk;  /* >= 0: this output's own tolerances */
    const double *score; /* knn ids on float data: the exact scores (b, n_rows) */
    int64_t score_n;
} spec;

#define MAX_SPECS 8

typedef struct graph {
    int n;
    spec t[MAX_SPECS];
    double *scores; /* knn: the exact scores, owned */
} graph;

static uint64_t rng = 0x0b5e55edba5eull;

static spec *add(graph *g, const char *name, ims_dtype dt, int role, int ndim, int64_t d0, int64_t d1, int64_t d2,
                 int64_t d3)
{
    spec *t = &g->t[g->n++];
    memset(t, 0, sizeof *t);
    t->name = name, t->dt = dt, t->role = role, t->ndim = ndim;
    t->shape[0] = d0, t->shape[1] = d1, t->shape[2] = d2, t->shape[3] = d3;
    t->n = 1;
    for (int i = 0; i < ndim; i++)
        t->n *= (size_t)t->shape[i];
    t->tol = t->tol_bk = -1;
    if (role == IN || role == INOUT)
        t->host = test_xmalloc(t->n * ims_dtype_size(dt));
    if (role == OUT || role == INOUT)
        t->want = test_xmalloc(t->n * sizeof(double));
    return t;
}

static double *mags(spec *t)
{
    if (!t->mag)
        t->mag = test_xmalloc(t->n * sizeof(double));
    return t->mag;
}

static void graph_free(graph *g)
{
    for (int i = 0; i < g->n; i++)
        free(g->t[i].host), free(g->t[i].want), free(g->t[i].mag);
    free(g->scores);
    memset(g, 0, sizeof *g);
}

/* Element i of a buffer of dtype dt, as a double. */
static double value(ims_dtype dt, const void *p, size_t i)
{
    switch (dt) {
    case IMS_DTYPE_F32: return ((const float *)p)[i];
    case IMS_DTYPE_F16: return ims_f16_to_f32(((const uint16_t *)p)[i]);
    case IMS_DTYPE_I32: return ((const int32_t *)p)[i];
    case IMS_DTYPE_U8: return ((const uint8_t *)p)[i];
    default: return NAN;
    }
}

static double in(const spec *t, size_t i) { return value(t->dt, t->host, i); }

/* Stores v into input element i, rounded to the dtype; returns what was stored. */
static double put(spec *t, size_t i, double v)
{
    switch (t->dt) {
    case IMS_DTYPE_F32: ((float *)t->host)[i] = (float)v; break;
    case IMS_DTYPE_F16: ((uint16_t *)t->host)[i] = ims_f32_to_f16((float)v); break;
    case IMS_DTYPE_I32: ((int32_t *)t->host)[i] = (int32_t)v; break;
    case IMS_DTYPE_U8: ((uint8_t *)t->host)[i] = (uint8_t)v; break;
    default: break;
    }
    return in(t, i);
}

/* Uniform values in [lo, hi), never zero (a zero would hide a missing term). */
static void fill(spec *t, double lo, double hi)
{
    for (size_t i = 0; i < t->n; i++) {
        double v = test_rand_uniform(&rng, (float)lo, (float)hi);
        if (put(t, i, v) == 0.0)
            put(t, i, hi / 2);
    }
}

static double gelu(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }

/* LayerNorm of row (h) into want (h), statistics in double. */
static void layernorm_ref(const double *row, int h, double eps, const spec *gamma, const spec *beta, double *want,
                          double *mag)
{
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < h; i++)
        mean += row[i];
    mean /= h;
    for (int i = 0; i < h; i++)
        var += (row[i] - mean) * (row[i] - mean);
    double inv = 1.0 / sqrt(var / h + eps);
    for (int i = 0; i < h; i++) {
        want[i] = (row[i] - mean) * inv * in(gamma, (size_t)i) + in(beta, (size_t)i);
        mag[i] = fmax(1.0, fabs(want[i]));
    }
}

/* ---- Builders: inputs and references ------------------------------------------------- */

/* Round to the nearest half, ties to even, written from IEEE 754 (not the
 * engine's converter): the quantum of |v|'s binade, 2^(e - 10), at least the
 * subnormal quantum 2^-24; 65520 and beyond round to infinity. */
static double ref_round_half(double v)
{
    if (isnan(v))
        return NAN;
    double a = fabs(v);
    if (a >= 65520.0)
        return copysign(INFINITY, v);
    int e;
    frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
    int exp = e - 1 < -14 ? -14 : e - 1;
    double q = ldexp(1.0, exp - 10);
    return copysign(nearbyint(a / q) * q, v); /* nearbyint: ties to even in the default mode */
}

/* A half's value, decoded from its bits. */
static double ref_half_value(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 31 ? (m ? NAN : INFINITY) : e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return (h & 0x8000u) ? -v : v;
}

/* f32 -> f16 edge values: signed zeros, f32 and f16 subnormals, exact ties
 * (to even both ways), the largest half and the overflow threshold 65520, Inf,
 * NaN. */
static const float convert_specials[] = {
    0.0f, -0.0f, 1e-45f, -1e-45f, 1e-40f, 1.17549435e-38f,
    5.9604644775390625e-8f,    /* 2^-24: the smallest f16 subnormal */
    2.98023223876953125e-8f,   /* 2^-25: a tie, rounds to even 0 */
    2.98023259404089e-8f,      /* just above 2^-25: rounds up to 2^-24 */
    8.94069671630859375e-8f,   /* 3 * 2^-25: a tie, rounds to even 2 * 2^-24 */
    6.103515625e-5f,           /* 2^-14: the smallest f16 normal */
    6.0975551605224609375e-5f, /* the largest f16 subnormal */
    1.00048828125f,            /* 1 + 2^-11: a tie, rounds to even 1 */
    1.00146484375f,            /* 1 + 3 * 2^-11: a tie, rounds to even 1 + 2^-9 */
    -1.00048828125f, 2049.0f, 2051.0f, -2051.0f,
    65504.0f, -65504.0f, 65519.99609375f, 65520.0f, -65520.0f, 65536.0f, 3.4028235e38f, -3.4028235e38f,
    INFINITY, -INFINITY, NAN, -NAN,
};

/* The midpoint between a random finite half and its successor: only the
 * tie-to-even rule decides its rounding. */
static float random_tie(void)
{
    uint16_t mag = (uint16_t)(test_rand_u64(&rng) % 0x7bffu);
    uint16_t sign = (test_rand_u64(&rng) & 1u) ? 0x8000u : 0;
    double lo = ims_f16_to_f32((uint16_t)(sign | mag)), hi = ims_f16_to_f32((uint16_t)(sign | (mag + 1)));
    return (float)((lo + hi) / 2);
}

static void build_convert(const op_case *c, graph *g)
{
    size_t n = (size_t)c->s[0];
    spec *src = add(g, "src", c->dt, IN, 1, (int64_t)n, 1, 1, 1);
    spec *dst = add(g, "dst", c->dt2, OUT, 1, (int64_t)n, 1, 1, 1);
    size_t nspecial = sizeof convert_specials / sizeof convert_specials[0];
    for (size_t i = 0; i < n; i++) {
        if (c->dt == F16) {
            ((uint16_t *)src->host)[i] = i < 65536 ? (uint16_t)i : (uint16_t)test_rand_u64(&rng);
            dst->want[i] = ref_half_value(((uint16_t *)src->host)[i]);
            continue;
        }
        float v;
        if ((c->flags & F_SPECIAL) && i < nspecial)
            v = convert_specials[i];
        else if (c->dt2 == F32)
            v = test_rand_uniform(&rng, -100.0f, 100.0f) + 0.5f;
        else {
            switch (test_rand_u64(&rng) % 4) {
            case 0: v = test_f32_from_bits((uint32_t)test_rand_u64(&rng)); break; /* every class, NaNs too */
            case 1: v = test_rand_uniform(&rng, -70000.0f, 70000.0f); break;
            case 2: v = test_rand_uniform(&rng, -1.0f, 1.0f) * 1e-4f; break;
            default: v = random_tie(); break;
            }
        }
        ((float *)src->host)[i] = v;
        dst->want[i] = c->dt2 == F16 ? ref_round_half(v) : v;
    }
}

/* Rows of values in [-1, 1] scaled by 10^k, k in -3..3. With F_SPECIAL rows
 * 0..6 are: zeros, one NaN, one +Inf, tiny (x^2 underflows f32), huge (x^2
 * overflows f32), a single nonzero, one -Inf. */
static void build_l2(const op_case *c, graph *g)
{
    int n = c->s[0], d = c->s[1];
    spec *x = add(g, "x", F32, IN, 2, n, d, 1, 1);
    spec *y = add(g, "y", c->dt2, OUT, 2, n, d, 1, 1);
    spec *norms = add(g, "norms", F32, OUT, 1, n, 1, 1, 1);
    norms->tol = 2e-7, norms->tol_bk = 1e-6; /* one rounding; another order of a double sum */
    float *xs = x->host;
    for (int r = 0; r < n; r++) {
        float scale = powf(10.0f, (float)(int)(test_rand_u64(&rng) % 7) - 3.0f);
        for (int i = 0; i < d; i++)
            xs[(size_t)r * d + i] = (test_rand_uniform(&rng, 0.05f, 1.0f) * (i % 2 ? 1 : -1)) * scale;
    }
    if ((c->flags & F_SPECIAL) && n >= 7) {
        for (int i = 0; i < d; i++) {
            xs[i] = 0.0f;
            xs[3 * (size_t)d + i] = test_rand_uniform(&rng, 0.5f, 1.0f) * 1e-25f;
            xs[4 * (size_t)d + i] = test_rand_uniform(&rng, 0.5f, 1.0f) * 1e25f;
            xs[5 * (size_t)d + i] = 0.0f;
        }
        xs[1 * (size_t)d + d / 2] = NAN;
        xs[2 * (size_t)d + d - 1] = INFINITY;
        xs[5 * (size_t)d + d / 3] = -3.5f;
        xs[6 * (size_t)d] = -INFINITY;
    }
    double *ym = mags(y), *nm = mags(norms);
    for (int r = 0; r < n; r++) {
        double ss = 0.0;
        for (int i = 0; i < d; i++)
            ss += (double)xs[(size_t)r * d + i] * xs[(size_t)r * d + i];
        double norm = sqrt(ss);
        norms->want[r] = norm;
        nm[r] = fmax(fabs(norm), 1e-300);
        int direction = norm > 0.0 && isfinite(norm);
        for (int i = 0; i < d; i++) {
            size_t at = (size_t)r * d + i;
            y->want[at] = direction ? xs[at] / norm : 0.0;
            /* relative to the element; an f16 below the smallest normal half
             * has a fixed quantum 2^-24, so its floor is 2^-14 */
            ym[at] = fmax(fabs(y->want[at]), c->dt2 == F16 ? ldexp(1.0, -14) : 1e-300);
        }
    }
}

static void build_linear(const op_case *c, graph *g)
{
    int m = c->s[0], n = c->s[1], k = c->s[2];
    spec *x = add(g, "x", c->dt, IN, 2, m, k, 1, 1);
    spec *w = add(g, "w", c->dt, IN, 2, n, k, 1, 1);
    spec *b = (c->flags & F_BIAS) ? add(g, "bias", F32, IN, 1, n, 1, 1, 1) : NULL;
    spec *y = add(g, "y", c->dt, OUT, 2, m, n, 1, 1);
    fill(x, -1, 1);
    fill(w, -1, 1);
    if (b)
        fill(b, -1, 1);
    double *xd = test_xmalloc((size_t)m * k * sizeof *xd), *wd = test_xmalloc((size_t)n * k * sizeof *wd);
    for (size_t i = 0; i < (size_t)m * k; i++)
        xd[i] = in(x, i);
    for (size_t i = 0; i < (size_t)n * k; i++)
        wd[i] = in(w, i);
    double *ym = mags(y);
    for (int r = 0; r < m; r++)
        for (int col = 0; col < n; col++) {
            const double *xr = xd + (size_t)r * k, *wr = wd + (size_t)col * k;
            double s = b ? in(b, (size_t)col) : 0.0, a = fabs(s);
            for (int i = 0; i < k; i++) {
                s += xr[i] * wr[i];
                a += fabs(xr[i] * wr[i]);
            }
            y->want[(size_t)r * n + col] = s;
            ym[(size_t)r * n + col] = a;
        }
    free(xd), free(wd);
}

#define CONV_OFF 3
#define POOL_OFF 2

static void build_conv2d(const op_case *c, graph *g)
{
    const int *s = c->s;
    int n = s[0], h = s[1], w = s[2], ch = s[3], o = s[4], kh = s[5], kw = s[6], st = s[7], ph = s[8], pw = s[9];
    int oh = (int)imsi_conv_out_size(h, kh, st, ph), ow = (int)imsi_conv_out_size(w, kw, st, pw), ct = o + 8;
    spec *x = add(g, "x", F32, IN, 4, n, h, w, ch);
    spec *wt = add(g, "w", F32, IN, 4, o, kh, kw, ch);
    spec *b = add(g, "bias", F32, IN, 1, o, 1, 1, 1);
    spec *y = add(g, "y", F32, OUT, 4, n, oh, ow, ct);
    double a = sqrt(6.0 / (kh * kw * ch)); /* He-like, so outputs stay near 1 */
    fill(x, -1, 1);
    fill(wt, -a, a);
    fill(b, -0.5, 0.5);
    double *ym = mags(y), scale = 0.0;
    for (int bi = 0; bi < n; bi++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int k = 0; k < ct; k++) {
                    size_t at = (((size_t)bi * oh + oy) * ow + ox) * ct + k;
                    if (k < CONV_OFF || k >= CONV_OFF + o) {
                        y->want[at] = NAN; /* outside the slice: the poison stays */
                        continue;
                    }
                    int oc = k - CONV_OFF;
                    double acc = in(b, (size_t)oc), sum_abs = fabs(acc);
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            int iy = oy * st - ph + ky, ix = ox * st - pw + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                continue;
                            for (int ic = 0; ic < ch; ic++) {
                                double p = in(x, (((size_t)bi * h + iy) * w + ix) * ch + ic) *
                                           in(wt, (((size_t)oc * kh + ky) * kw + kx) * ch + ic);
                                acc += p;
                                sum_abs += fabs(p);
                            }
                        }
                    y->want[at] = (c->flags & F_RELU) && acc < 0 ? 0.0 : acc;
                    scale = fmax(scale, sum_abs);
                }
    for (size_t i = 0; i < y->n; i++)
        ym[i] = scale; /* the output's scale: FFT and Winograd errors follow it, not each sum */
}

static void build_pool2d(const op_case *c, graph *g)
{
    const int *s = c->s;
    int n = s[0], h = s[1], w = s[2], ch = s[3], k = s[4], st = s[5], pad = s[6];
    int oh = (int)imsi_conv_out_size(h, k, st, pad), ow = (int)imsi_conv_out_size(w, k, st, pad), ct = ch + 5;
    int max = (c->flags & F_MAX) != 0, incl = (c->flags & F_INCL) != 0;
    spec *x = add(g, "x", F32, IN, 4, n, h, w, ch);
    spec *y = add(g, "y", F32, OUT, 4, n, oh, ow, ct);
    fill(x, -2, 2);
    for (int bi = 0; bi < n; bi++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                for (int kc = 0; kc < ct; kc++) {
                    size_t at = (((size_t)bi * oh + oy) * ow + ox) * ct + kc;
                    if (kc < POOL_OFF || kc >= POOL_OFF + ch) {
                        y->want[at] = NAN;
                        continue;
                    }
                    double acc = max ? -INFINITY : 0.0;
                    int cnt = 0;
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            int iy = oy * st - pad + ky, ix = ox * st - pad + kx;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= w)
                                continue;
                            double v = in(x, (((size_t)bi * h + iy) * w + ix) * ch + kc - POOL_OFF);
                            acc = max ? fmax(acc, v) : acc + v;
                            cnt++;
                        }
                    y->want[at] = max ? acc : acc / (incl ? k * k : cnt);
                }
}

static void build_gap(const op_case *c, graph *g)
{
    int n = c->s[0], h = c->s[1], w = c->s[2], ch = c->s[3];
    spec *x = add(g, "x", F32, IN, 4, n, h, w, ch);
    spec *y = add(g, "y", F32, OUT, 2, n, ch, 1, 1);
    fill(x, -1, 3);
    for (int b = 0; b < n; b++)
        for (int k = 0; k < ch; k++) {
            double acc = 0.0;
            for (int p = 0; p < h * w; p++)
                acc += in(x, ((size_t)b * h * w + p) * ch + k);
            y->want[(size_t)b * ch + k] = acc / (h * w);
        }
}

static const float u8_scale[3] = {1.0f / (255.0f * 0.229f), 1.0f / (255.0f * 0.224f), 1.0f / (255.0f * 0.225f)};
static const float u8_shift[3] = {-0.485f / 0.229f, -0.456f / 0.224f, -0.406f / 0.225f};

static void build_input_u8(const op_case *c, graph *g)
{
    int n = c->s[0], h = c->s[1], w = c->s[2];
    spec *x = add(g, "x", IMS_DTYPE_U8, IN, 4, n, h, w, 3);
    spec *y = add(g, "y", F32, OUT, 4, n, h, w, 3);
    for (size_t i = 0; i < x->n; i++) {
        put(x, i, (double)(test_rand_u64(&rng) >> 56));
        y->want[i] = in(x, i) * u8_scale[i % 3] + u8_shift[i % 3];
    }
}

static const double *sort_scores; /* qsort's context: one query's exact scores */

static int by_score(const void *a, const void *b)
{
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    if (sort_scores[i] != sort_scores[j])
        return sort_scores[i] > sort_scores[j] ? -1 : 1;
    return i < j ? -1 : i > j; /* equal scores: lower row first */
}

static void build_knn(const op_case *c, graph *g)
{
    int64_t n = c->s[0];
    int d = c->s[1], b = c->s[2], k = c->s[3], kk = k < n ? k : (int)n;
    int integers = (c->flags & F_INT) != 0;
    spec *table = add(g, "table", c->dt, IN, 2, n, d, 1, 1);
    spec *q = add(g, "queries", F32, IN, 2, b, d, 1, 1);
    spec *ids = add(g, "ids", IMS_DTYPE_I32, OUT, 2, b, kk, 1, 1);
    spec *scores = add(g, "scores", F32, OUT, 2, b, kk, 1, 1);
    static const double small[4] = {-2, -1, 1, 2}; /* integer dot products: exact, and often equal */
    spec *both[2] = {table, q};
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < both[s]->n; i++)
            put(both[s], i, integers ? small[test_rand_u64(&rng) % 4] : test_rand_uniform(&rng, -1.0f, 1.0f));
    g->scores = test_xmalloc((size_t)b * n * sizeof *g->scores);
    int64_t *order = test_xmalloc((size_t)n * sizeof *order);
    double max_row = 0.0;
    for (int64_t r = 0; r < n; r++) {
        double ss = 0.0;
        for (int i = 0; i < d; i++)
            ss += in(table, (size_t)r * d + i) * in(table, (size_t)r * d + i);
        max_row = fmax(max_row, sqrt(ss));
    }
    double *im = mags(ids), *sm = mags(scores);
    for (int qi = 0; qi < b; qi++) {
        double *row = g->scores + (size_t)qi * n, qn = 0.0;
        for (int i = 0; i < d; i++)
            qn += in(q, (size_t)qi * d + i) * in(q, (size_t)qi * d + i);
        for (int64_t r = 0; r < n; r++) {
            double s = 0.0;
            for (int i = 0; i < d; i++)
                s += in(q, (size_t)qi * d + i) * in(table, (size_t)r * d + i);
            row[r] = s;
            order[r] = r;
        }
        sort_scores = row;
        qsort(order, (size_t)n, sizeof *order, by_score);
        /* the rounding bound of an fp32 dot product of length d in any order,
         * Cauchy-Schwarz bounding sum |q_i r_i| */
        double bound = (d + 3) * ldexp(1.0, -23) * sqrt(qn) * max_row;
        for (int j = 0; j < kk; j++) {
            size_t at = (size_t)qi * kk + j;
            ids->want[at] = (double)order[j];
            scores->want[at] = row[order[j]];
            im[at] = sm[at] = integers ? 1.0 : bound;
        }
    }
    if (!integers) { /* ids compared by the scores they stand for */
        ids->score = g->scores;
        ids->score_n = n;
    }
    free(order);
}

static void build_embed(const op_case *c, graph *g)
{
    int b = c->s[0], t = c->s[1], h = c->s[2], vocab = c->s[3], npos = c->s[4];
    spec *ids = add(g, "ids", IMS_DTYPE_I32, IN, 2, b, t, 1, 1);
    spec *word = add(g, "word", F32, IN, 2, vocab, h, 1, 1);
    spec *pos = add(g, "pos", F32, IN, 2, npos, h, 1, 1);
    spec *type = add(g, "type", F32, IN, 2, 2, h, 1, 1);
    spec *gamma = add(g, "gamma", F32, IN, 1, h, 1, 1, 1);
    spec *beta = add(g, "beta", F32, IN, 1, h, 1, 1, 1);
    spec *y = add(g, "y", c->dt, OUT, 3, b, t, h, 1);
    for (size_t i = 0; i < ids->n; i++) /* both ends of the vocabulary, then random ids */
        put(ids, i, i == 0 ? 0 : i == 1 ? vocab - 1 : (double)(test_rand_u64(&rng) % (uint64_t)vocab));
    fill(word, -1, 1), fill(pos, -0.5, 0.5), fill(type, -0.2, 0.2), fill(gamma, 0.5, 1.5), fill(beta, -0.3, 0.3);
    double *row = test_xmalloc((size_t)h * sizeof *row), *ym = mags(y);
    for (size_t r = 0; r < (size_t)b * t; r++) {
        size_t id = (size_t)in(ids, r), p = r % (size_t)t;
        for (int i = 0; i < h; i++)
            row[i] = in(word, id * h + i) + in(pos, p * h + i) + in(type, (size_t)i);
        layernorm_ref(row, h, 1e-12, gamma, beta, y->want + r * h, ym + r * h);
    }
    free(row);
}

static void build_bias_act(const op_case *c, graph *g)
{
    int m = c->s[0], n = c->s[1], inplace = (c->flags & F_INPLACE) != 0;
    spec *x = add(g, "x", c->dt, inplace ? INOUT : IN, 2, m, n, 1, 1);
    spec *b = add(g, "bias", F32, IN, 1, n, 1, 1, 1);
    spec *y = inplace ? x : add(g, "y", c->dt, OUT, 2, m, n, 1, 1);
    fill(x, -4, 4), fill(b, -1, 1);
    double *ym = mags(y);
    for (size_t i = 0; i < x->n; i++) {
        double v = in(x, i) + in(b, i % (size_t)n);
        y->want[i] = (c->flags & F_GELU) ? gelu(v) : v;
        ym[i] = 1e-2 + fabs(y->want[i]);
    }
}

static void build_add_ln(const op_case *c, graph *g)
{
    int m = c->s[0], h = c->s[1], inplace = (c->flags & F_INPLACE) != 0;
    spec *x = add(g, "x", c->dt, IN, 2, m, h, 1, 1);
    spec *b = (c->flags & F_BIAS) ? add(g, "bias", F32, IN, 1, h, 1, 1, 1) : NULL;
    spec *r = add(g, "residual", c->dt, inplace ? INOUT : IN, 2, m, h, 1, 1);
    spec *gamma = add(g, "gamma", F32, IN, 1, h, 1, 1, 1);
    spec *beta = add(g, "beta", F32, IN, 1, h, 1, 1, 1);
    spec *y = inplace ? r : add(g, "y", c->dt, OUT, 2, m, h, 1, 1);
    fill(x, -2, 2), fill(r, -3, 3), fill(gamma, 0.5, 1.5), fill(beta, -0.5, 0.5);
    if (b)
        fill(b, -1, 1);
    double *row = test_xmalloc((size_t)h * sizeof *row), *ym = mags(y);
    for (size_t i = 0; i < (size_t)m; i++) {
        for (int j = 0; j < h; j++)
            row[j] = in(x, i * h + j) + (b ? in(b, (size_t)j) : 0.0) + in(r, i * h + j);
        layernorm_ref(row, h, 1e-12, gamma, beta, y->want + i * h, ym + i * h);
    }
    free(row);
}

static void build_attention(const op_case *c, graph *g)
{
    int b = c->s[0], t = c->s[1], h = c->s[2], heads = c->s[3], d = h / heads;
    spec *qkv = add(g, "qkv", c->dt, IN, 3, b, t, 3 * h, 1);
    spec *len = add(g, "lengths", IMS_DTYPE_I32, IN, 1, b, 1, 1, 1);
    add(g, "scores", c->dt, SCRATCH, 4, b, heads, t, t);
    spec *ctx = add(g, "ctx", c->dt, OUT, 3, b, t, h, 1);
    fill(qkv, -1.5, 1.5);
    for (int i = 0; i < b; i++)
        put(len, (size_t)i, c->s[4 + i]);
    double *p = test_xmalloc((size_t)t * sizeof *p), *cm = mags(ctx), scale = 1.0 / sqrt((double)d);
    for (int bi = 0; bi < b; bi++) {
        int L = c->s[4 + bi] < 0 ? 0 : c->s[4 + bi] > t ? t : c->s[4 + bi];
        for (int hi = 0; hi < heads; hi++)
            for (int qi = 0; qi < t; qi++) {
                size_t qrow = ((size_t)bi * t + qi) * 3 * h;
                double mx = -INFINITY, sum = 0.0;
                for (int s = 0; s < L; s++) {
                    size_t krow = ((size_t)bi * t + s) * 3 * h;
                    double dot = 0.0;
                    for (int j = 0; j < d; j++)
                        dot += in(qkv, qrow + hi * d + j) * in(qkv, krow + h + hi * d + j);
                    p[s] = dot * scale;
                    mx = fmax(mx, p[s]);
                }
                for (int s = 0; s < L; s++)
                    sum += (p[s] = exp(p[s] - mx));
                for (int j = 0; j < d; j++) {
                    double acc = 0.0;
                    for (int s = 0; s < L; s++)
                        acc += p[s] * in(qkv, ((size_t)bi * t + s) * 3 * h + 2 * h + hi * d + j);
                    size_t at = ((size_t)bi * t + qi) * h + hi * d + j;
                    ctx->want[at] = L ? acc / sum : 0.0; /* no real keys: ctx 0 */
                    cm[at] = 1e-2 + fabs(ctx->want[at]);
                }
            }
    }
    free(p);
}

static void build_pool_norm(const op_case *c, graph *g)
{
    int b = c->s[0], t = c->s[1], h = c->s[2];
    spec *x = add(g, "x", c->dt, IN, 3, b, t, h, 1);
    spec *len = add(g, "lengths", IMS_DTYPE_I32, IN, 1, b, 1, 1, 1);
    spec *y = add(g, "y", F32, OUT, 2, b, h, 1, 1);
    fill(x, -2, 2);
    double *ym = mags(y);
    for (int bi = 0; bi < b; bi++) {
        put(len, (size_t)bi, c->s[3 + bi]);
        int L = c->s[3 + bi] < 1 ? 1 : c->s[3 + bi] > t ? t : c->s[3 + bi], cnt = (c->flags & F_CLS) ? 1 : L;
        double ss = 0.0, *out = y->want + (size_t)bi * h;
        for (int i = 0; i < h; i++) {
            double acc = 0.0;
            for (int s = 0; s < cnt; s++)
                acc += in(x, ((size_t)bi * t + s) * h + i);
            out[i] = acc / cnt;
            ss += out[i] * out[i];
        }
        double scale = (c->flags & F_NORM) ? (ss > 0.0 ? 1.0 / sqrt(ss) : 0.0) : 1.0;
        for (int i = 0; i < h; i++) {
            out[i] *= scale;
            ym[(size_t)bi * h + i] = 1e-3 + fabs(out[i]);
        }
    }
}

static void build(const op_case *c, graph *g)
{
    memset(g, 0, sizeof *g);
    switch (c->op) {
    case OP_CONVERT: build_convert(c, g); break;
    case OP_L2: build_l2(c, g); break;
    case OP_LINEAR: build_linear(c, g); break;
    case OP_CONV2D: build_conv2d(c, g); break;
    case OP_POOL2D: build_pool2d(c, g); break;
    case OP_GAP: build_gap(c, g); break;
    case OP_INPUT_U8: build_input_u8(c, g); break;
    case OP_KNN: build_knn(c, g); break;
    case OP_EMBED: build_embed(c, g); break;
    case OP_BIAS_ACT: build_bias_act(c, g); break;
    case OP_ADD_LN: build_add_ln(c, g); break;
    case OP_ATTENTION: build_attention(c, g); break;
    case OP_POOL_NORM: build_pool_norm(c, g); break;
    }
}

/* ---- Running a case on a backend ----------------------------------------------------- */

/* The op on the case's tensors, in the builder's order. */
static ims_status run_op(ims_backend *be, const op_case *c, imsi_tensor *t, ims_error *err)
{
    const int *s = c->s;
    switch (c->op) {
    case OP_CONVERT: return imsi_op_convert(be, &t[0], &t[1], err);
    case OP_L2: return imsi_op_l2_normalize_rows(be, &t[0], &t[1], &t[2], err);
    case OP_LINEAR:
        return (c->flags & F_BIAS) ? imsi_op_linear(be, &t[0], &t[1], &t[2], &t[3], err)
                                   : imsi_op_linear(be, &t[0], &t[1], NULL, &t[2], err);
    case OP_CONV2D: {
        imsi_conv2d_params p = {s[7], s[7], s[8], s[9], (c->flags & F_RELU) != 0, CONV_OFF, IMS_PRECISION_FP32};
        return imsi_op_conv2d(be, &p, &t[0], &t[1], &t[2], &t[3], err);
    }
    case OP_POOL2D: {
        imsi_pool2d_params p = {(c->flags & F_MAX) ? IMS_POOL_MAX : IMS_POOL_AVG, s[4], s[5], s[6],
                                (c->flags & F_INCL) != 0, POOL_OFF};
        return imsi_op_pool2d(be, &p, &t[0], &t[1], err);
    }
    case OP_GAP: return imsi_op_global_avg_pool(be, &t[0], &t[1], err);
    case OP_INPUT_U8: return imsi_op_input_u8(be, &t[0], u8_scale, u8_shift, &t[1], err);
    case OP_KNN: return imsi_op_knn_select(be, &t[0], &t[1], s[3], IMS_KNN_PATH_AUTO, &t[2], &t[3], err);
    case OP_EMBED: return imsi_op_embed_layernorm(be, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], 1e-12, &t[6], err);
    case OP_BIAS_ACT: {
        imsi_act act = (c->flags & F_GELU) ? IMS_ACT_GELU : IMS_ACT_NONE;
        return imsi_op_bias_act(be, &t[0], &t[1], act, (c->flags & F_INPLACE) ? &t[0] : &t[2], err);
    }
    case OP_ADD_LN: {
        int bias = (c->flags & F_BIAS) != 0, r = bias ? 2 : 1; /* x, [bias], residual, gamma, beta, [y] */
        imsi_tensor *y = (c->flags & F_INPLACE) ? &t[r] : &t[r + 3];
        return imsi_op_add_layernorm(be, &t[0], bias ? &t[1] : NULL, &t[r], &t[r + 1], &t[r + 2], 1e-12, y, err);
    }
    case OP_ATTENTION: return imsi_op_attention(be, &t[0], &t[1], s[3], &t[2], &t[3], err);
    case OP_POOL_NORM:
        return imsi_op_pool_normalize(be, &t[0], &t[1], (c->flags & F_CLS) ? IMS_POOLING_CLS : IMS_POOLING_MEAN,
                                      (c->flags & F_NORM) != 0, &t[2], err);
    }
    return IMS_ERR_ARGUMENT;
}

/* Runs the case on be: inputs uploaded, outputs and scratch poisoned (0xff),
 * the op, then every output downloaded into out[i] (malloc'd; NULL for
 * inputs). Returns 0 if anything failed (already reported). */
static int run_on(ims_backend *be, const op_case *c, const graph *g, void **out, const char *what)
{
    imsi_tensor t[MAX_SPECS];
    memset(t, 0, sizeof t);
    memset(out, 0, MAX_SPECS * sizeof *out);
    ims_error err = {0};
    const char *bn = ims_backend_get_info(be)->name;
    int ok = 1;
    for (int i = 0; ok && i < g->n; i++) {
        const spec *s = &g->t[i];
        ok = test_check_ok(imsi_tensor_alloc(be, s->dt, s->ndim, s->shape, &t[i], &err), &err, "alloc");
        if (ok && (s->role == IN || s->role == INOUT))
            ok = test_check_ok(imsi_backend_upload(be, &t[i], s->host, imsi_tensor_nbytes(&t[i]), &err), &err,
                               "upload");
        else if (ok)
            ok = test_check_ok(imsi_backend_fill_bytes(be, &t[i], 0xff, &err), &err, "poison");
    }
    if (ok) {
        ims_status st = run_op(be, c, t, &err);
        TEST_CHECK(st == IMS_OK, "%s on %s: %s: %s", what, bn, ims_status_name(st), err.msg);
        ok = st == IMS_OK && test_check_ok(imsi_backend_synchronize(be, &err), &err, "synchronize");
    }
    for (int i = 0; ok && i < g->n; i++) {
        const spec *s = &g->t[i];
        if (s->role != OUT && s->role != INOUT)
            continue;
        size_t nbytes = imsi_tensor_nbytes(&t[i]);
        out[i] = test_xmalloc(nbytes);
        ok = test_check_ok(imsi_backend_download(be, out[i], nbytes, &t[i], &err), &err, "download");
    }
    for (int i = 0; i < g->n; i++)
        imsi_tensor_free(&t[i]);
    for (int i = 0; !ok && i < g->n; i++) {
        free(out[i]);
        out[i] = NULL;
    }
    return ok;
}

/* Compares output s (got, in its dtype) with want (doubles); returns the
 * largest error ratio |got - want| / mag (0 when exactness was required and
 * held; INFINITY for a broken NaN, Inf or exactness rule). */
static double compare(const spec *s, const void *got, const double *want, double tol, int *bad)
{
    double worst = 0.0;
    for (size_t i = 0; i < s->n; i++) {
        double gv = value(s->dt, got, i), wv = want[i], e;
        if (s->score) { /* knn ids on float data: the scores they stand for */
            int64_t gi = (int64_t)gv, wi = (int64_t)wv, q = (int64_t)(i / (s->n / (size_t)s->shape[0]));
            const double *row = s->score + (size_t)q * s->score_n;
            int dup = 0;
            for (size_t j = i - i % (size_t)s->shape[1]; j < i; j++)
                dup |= value(s->dt, got, j) == gv;
            e = gi < 0 || gi >= s->score_n || dup ? INFINITY : fabs(row[gi] - row[wi]) / s->mag[i];
        } else if (isnan(wv) || isnan(gv)) {
            e = isnan(wv) && isnan(gv) ? 0.0 : INFINITY;
        } else if (isinf(wv) || tol == 0.0) {
            e = gv == wv && signbit(gv) == signbit(wv) ? 0.0 : INFINITY;
        } else {
            e = fabs(gv - wv) / (s->mag ? s->mag[i] : 1.0);
        }
        if (e > tol && (*bad)++ < 3)
            fprintf(stderr, "  %s[%zu]: got %.9g, want %.9g (error %.3g)\n", s->name, i, gv, wv, e);
        worst = e > worst ? e : worst;
    }
    return worst;
}

static void describe(const op_case *c, char *buf, size_t size)
{
    static const char *const names[] = {"convert", "l2_normalize_rows", "linear", "conv2d", "pool2d",
                                        "global_avg_pool", "input_u8", "knn_select", "embed_layernorm", "bias_act",
                                        "add_layernorm", "attention", "pool_normalize"};
    /* sizes per op: see the table; attention and pool_normalize add b lengths */
    static const int count[] = {1, 2, 3, 10, 7, 4, 3, 4, 5, 2, 2, 4, 3};
    int ns = count[c->op] + (c->op == OP_ATTENTION || c->op == OP_POOL_NORM ? c->s[0] : 0);
    int n = snprintf(buf, size, "%s (", names[c->op]);
    for (int i = 0; i < ns && n < (int)size; i++)
        n += snprintf(buf + n, size - (size_t)n, i ? ", %d" : "%d", c->s[i]);
    if (n < (int)size)
        snprintf(buf + n, size - (size_t)n, ") %s%s%s%s%s%s%s%s%s", ims_dtype_name(c->dt),
                 c->op == OP_CONVERT || c->op == OP_L2 ? " -> " : "",
                 c->op == OP_CONVERT || c->op == OP_L2 ? ims_dtype_name(c->dt2) : "",
                 (c->flags & F_BIAS) ? " bias" : "", (c->flags & F_RELU) ? " relu" : "",
                 (c->flags & F_INPLACE) ? " in place" : "", (c->flags & F_GELU) ? " gelu" : "",
                 (c->flags & (F_MAX | F_CLS)) ? ((c->op == OP_POOL2D) ? " max" : " cls")
                                              : (c->op == OP_POOL2D ? " avg" : ""),
                 (c->flags & F_INCL) ? " include_pad" : (c->flags & F_NORM) ? " normalize" : "");
}

/* The CPU backend's fast path (imsi_backend_cpu_set_strict 0) on the case:
 * bounded against the double reference like another backend (tol_backend),
 * and against the strict path's output with the same tolerance. */
static void run_fast(const op_case *c, ims_backend *fast, const graph *g, void *const *strict_out, const char *what)
{
    void *got[MAX_SPECS];
    if (!run_on(fast, c, g, got, what))
        return;
    printf("; cpu fast");
    for (int i = 0; i < g->n; i++) {
        const spec *s = &g->t[i];
        if (!got[i])
            continue;
        double tol = s->tol_bk >= 0 ? s->tol_bk : c->tol_backend;
        double *strict_vals = test_xmalloc(s->n * sizeof *strict_vals);
        for (size_t j = 0; j < s->n; j++)
            strict_vals[j] = value(s->dt, strict_out[i], j);
        int bad = 0, bad_strict = 0;
        double e = compare(s, got[i], s->want, tol, &bad);
        double es = compare(s, got[i], strict_vals, tol, &bad_strict);
        printf(" %s %.2g (vs strict %.2g)", s->name, e, es);
        TEST_CHECK(bad == 0, "%s on cpu fast: %s: %d of %zu elements beyond %g (worst %.3g)", what, s->name, bad, s->n,
                   tol, e);
        TEST_CHECK(bad_strict == 0, "%s on cpu fast vs strict: %s: %d of %zu elements beyond %g (worst %.3g)", what,
                   s->name, bad_strict, s->n, tol, es);
        free(strict_vals);
        free(got[i]);
    }
}

static void run_case(const op_case *c, ims_backend *cpu, ims_backend *fast, ims_backend *const *others,
                     int nothers)
{
    char what[192];
    describe(c, what, sizeof what);
    graph g;
    build(c, &g);
    void *ref_out[MAX_SPECS];
    if (!run_on(cpu, c, &g, ref_out, what)) {
        graph_free(&g);
        return;
    }
    printf("%-72s cpu", what);
    for (int i = 0; i < g.n; i++) {
        const spec *s = &g.t[i];
        if (!ref_out[i])
            continue;
        double tol = s->tol >= 0 ? s->tol : c->tol;
        int bad = 0;
        double e = compare(s, ref_out[i], s->want, tol, &bad);
        printf(" %s %.2g", s->name, e);
        TEST_CHECK(bad == 0, "%s on cpu: %s: %d of %zu elements beyond %g (worst %.3g)", what, s->name, bad, s->n,
                   tol, e);
    }
    if (fast && (c->op == OP_EMBED || c->op == OP_BIAS_ACT || c->op == OP_ADD_LN || c->op == OP_ATTENTION ||
                 c->op == OP_POOL_NORM || c->op == OP_CONV2D)) /* the ops the fast path changes (conv2d: oneDNN) */
        run_fast(c, fast, &g, ref_out, what);
    for (int b = 0; b < nothers; b++) {
        void *got[MAX_SPECS];
        if (!run_on(others[b], c, &g, got, what))
            continue;
        printf("; %s", ims_backend_get_info(others[b])->name);
        for (int i = 0; i < g.n; i++) {
            const spec *s = &g.t[i];
            if (!got[i])
                continue;
            double tol = s->tol_bk >= 0 ? s->tol_bk : c->tol_backend;
            if (ims_backend_get_info(others[b])->kind == IMS_BACKEND_CPU)
                tol = 0; /* the stand-in: the same strict kernels, the same bits */
            double *cpu_vals = test_xmalloc(s->n * sizeof *cpu_vals);
            for (size_t j = 0; j < s->n; j++)
                cpu_vals[j] = value(s->dt, ref_out[i], j);
            int bad = 0;
            double e = compare(s, got[i], cpu_vals, tol, &bad);
            printf(" %s %.2g", s->name, e);
            TEST_CHECK(bad == 0, "%s on %s vs cpu: %s: %d of %zu elements beyond %g (worst %.3g)", what,
                       ims_backend_get_info(others[b])->name, s->name, bad, s->n, tol, e);
            free(cpu_vals);
            free(got[i]);
        }
    }
    printf("\n");
    fflush(stdout);
    for (int i = 0; i < g.n; i++)
        free(ref_out[i]);
    graph_free(&g);
}

/* ---- The fast paths' math (kernels/cpu/fast_math.h) ------------------------------------ */

/* Sweeps each function over its range (a fine grid plus random points)
 * against libm in double, with the bounds fast_math.h states; and GELU in
 * f32 through the fast bias_act against the double formula: within one f32
 * ulp (the strict path rounds the same double value once). */
static void test_fast_math(void)
{
    double e_exp = 0, e_erf = 0, e_expf = 0;
    for (int i = 0; i <= 200000; i++) {
        double x = -700.0 + 1400.0 * i / 200000.0 + 1e-3 * test_rand_uniform(&rng, 0.0f, 1.0f);
        double r = fabs(cpu_exp_f64(x) - exp(x)) / exp(x);
        e_exp = r > e_exp ? r : e_exp;
        double z = -9.0 + 18.0 * i / 200000.0 + 1e-5 * test_rand_uniform(&rng, 0.0f, 1.0f);
        double a = fabs(cpu_erf_f64(z) - erf(z));
        e_erf = a > e_erf ? a : e_erf;
        float xf = (float)(-87.0 * i / 200000.0);
        double rf = fabs((double)cpu_expf(xf) - exp((double)xf)) / exp((double)xf);
        e_expf = rf > e_expf ? rf : e_expf;
    }
    TEST_CHECK(cpu_erf_f64(0.0) == 0.0 && cpu_erf_f64(40.0) == 1.0 && cpu_erf_f64(-40.0) == -1.0 &&
                   cpu_expf(0.0f) == 1.0f && cpu_expf(-200.0f) == 0.0f,
               "fast math: erf(0) %g, erf(+-40) %g %g, expf(0) %g, expf(-200) %g", cpu_erf_f64(0.0),
               cpu_erf_f64(40.0), cpu_erf_f64(-40.0), cpu_expf(0.0f), cpu_expf(-200.0f));
    printf("fast math: exp relative %.2g, erf absolute %.2g, expf relative %.2g\n", e_exp, e_erf, e_expf);
    TEST_CHECK(e_exp < 1e-15, "cpu_exp_f64: relative error %.3g", e_exp);
    TEST_CHECK(e_erf < 1e-11, "cpu_erf_f64: absolute error %.3g", e_erf);
    TEST_CHECK(e_expf < 2e-7, "cpu_expf: relative error %.3g", e_expf);

    enum { N = 24001 };
    float *x = test_xmalloc(N * sizeof *x), *y = test_xmalloc(N * sizeof *y), zero = 0.0f;
    for (int i = 0; i < N; i++)
        x[i] = -12.0f + 24.0f * (float)i / (N - 1) + 1e-4f * test_rand_uniform(&rng, -1.0f, 1.0f);
    imsi_cpu_bias_act_fast(x, &zero, y, 1, N, 1); /* a column: the bias is 0 for every row */
    int off = 0, exact = 0;
    for (int i = 0; i < N; i++) {
        double want = gelu((double)x[i]);
        float rounded = (float)want;
        double ulp = nextafterf(fabsf(rounded), INFINITY) - fabsf(rounded);
        if (fabs(y[i] - want) > ulp && off < 3)
            printf("gelu(%.9g): fast %.9g, want %.17g\n", x[i], y[i], want);
        if (fabs(y[i] - want) > ulp)
            off++;
        exact += y[i] == rounded;
    }
    printf("fast GELU in f32: %d of %d equal to the rounded double formula\n", exact, N);
    TEST_CHECK(off == 0, "fast GELU: %d of %d values beyond one f32 ulp of the double formula", off, N);
    free(x), free(y);
}

/* ---- Errors every backend reports the same way ---------------------------------------- */

/* embed_layernorm: an id outside the vocabulary (either end) is named with
 * its place and the vocabulary size; the backend works on afterwards. */
static void test_embed_bad_id(ims_backend *be)
{
    ims_error err = {0};
    const char *bn = ims_backend_get_info(be)->name;
    imsi_tensor ids, word, g, y;
    float w[7 * 4], gv[4];
    int32_t idv[6] = {0, 1, 2, 3, 4, 7};
    static const struct {
        int at;
        int32_t id;
        const char *msg;
    } bad[] = {
        {5, 7, "token id 7 at sequence 1, position 2 is outside the vocabulary of 7"},
        {1, -1, "token id -1 at sequence 0, position 1 is outside the vocabulary of 7"},
    };
    for (int i = 0; i < 28; i++)
        w[i] = test_rand_uniform(&rng, 0.1f, 1.0f);
    for (int i = 0; i < 4; i++)
        gv[i] = 1.0f;
    if (!test_check_ok(imsi_tensor_alloc(be, IMS_DTYPE_I32, 2, (int64_t[]){2, 3}, &ids, &err), &err, "alloc") ||
        !test_check_ok(imsi_tensor_alloc(be, F32, 2, (int64_t[]){7, 4}, &word, &err), &err, "alloc") ||
        !test_check_ok(imsi_tensor_alloc(be, F32, 1, (int64_t[]){4}, &g, &err), &err, "alloc") ||
        !test_check_ok(imsi_tensor_alloc(be, F32, 3, (int64_t[]){2, 3, 4}, &y, &err), &err, "alloc"))
        return;
    test_check_ok(imsi_backend_upload(be, &word, w, sizeof w, &err), &err, "upload");
    test_check_ok(imsi_backend_upload(be, &g, gv, sizeof gv, &err), &err, "upload");
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        for (int i = 0; i < 6; i++)
            idv[i] = i == bad[c].at ? bad[c].id : i;
        test_check_ok(imsi_backend_upload(be, &ids, idv, sizeof idv, &err), &err, "upload");
        ims_status st = imsi_op_embed_layernorm(be, &ids, &word, &word, &word, &g, &g, 1e-5, &y, &err);
        TEST_CHECK(st == IMS_ERR_ARGUMENT && strstr(err.msg, bad[c].msg), "embed with id %d on %s: %s (%s)",
                   bad[c].id, bn, ims_status_name(st), err.msg);
        printf("embed_layernorm with id %d of 7 on %s: %s\n", bad[c].id, bn, err.msg);
    }
    for (int i = 0; i < 6; i++) /* the backend still works afterwards */
        idv[i] = 6 - i;
    test_check_ok(imsi_backend_upload(be, &ids, idv, sizeof idv, &err), &err, "upload");
    test_check_ok(imsi_op_embed_layernorm(be, &ids, &word, &word, &word, &g, &g, 1e-5, &y, &err), &err,
                  "embed after a bad id");
    imsi_tensor_free(&ids), imsi_tensor_free(&word), imsi_tensor_free(&g), imsi_tensor_free(&y);
}

int main(int argc, char **argv)
{
    int quick = argc > 1 && !strcmp(argv[1], "quick");
    ims_error err = {0};
    ims_backend *cpu = NULL, *fast = NULL, *others[1];
    int nothers = 0, count = 0;
    if (!test_check_ok(ims_backend_create(IMS_BACKEND_CPU, 0, &cpu, &err), &err, "cpu backend") ||
        !test_check_ok(ims_backend_create(IMS_BACKEND_CPU, 0, &fast, &err), &err, "cpu backend (fast)"))
        return test_finish();
    imsi_backend_cpu_set_strict(cpu, 1); /* the reference; `fast` keeps the default */
    test_fast_math();
    if (!ims_cuda_compiled())
        printf("SKIPPED (other backends): built without CUDA\n");
    else if (ims_cuda_device_count(&count, &err) != IMS_OK || count <= 0)
        printf("SKIPPED (other backends): %s\n", err.msg);
    else if (test_check_ok(ims_backend_create(IMS_BACKEND_CUDA, 0, &others[0], &err), &err, "cuda backend"))
        nothers = 1;
    if (!nothers) {
        /* A second CPU backend on the strict reference paths (convolutions by
         * im2col + sgemm instead of oneDNN, the BERT ops' strict kernels as
         * `cpu`) stands in, so the comparison path runs here too and the fast
         * convolutions are checked against the strict ones (within
         * tol_backend; the other ops are the same kernels). */
        printf("(a second strict CPU backend stands in for the missing ones)\n");
        if (test_check_ok(ims_backend_create(IMS_BACKEND_CPU, 0, &others[0], &err), &err, "second cpu backend")) {
            imsi_backend_cpu_set_strict(others[0], 1);
            nothers = 1;
        }
    }
    for (size_t i = 0; i < NCASES; i++)
        if (!quick || !(cases[i].flags & F_BIG))
            run_case(&cases[i], cpu, fast, others, nothers);
    test_embed_bad_id(cpu);
    for (int b = 0; b < nothers; b++)
        test_embed_bad_id(others[b]);
    for (int b = 0; b < nothers; b++)
        ims_backend_free(others[b]);
    ims_backend_free(fast);
    ims_backend_free(cpu);
    return test_finish();
}
