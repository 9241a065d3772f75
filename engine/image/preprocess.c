/* image/preprocess.c: RGB8 image -> the network's input, as the reference
 * Python pipelines compute it.
 *
 * Layouts: input and uint8 output are HWC (RGB interleaved); float output is
 * CHW or HWC (ims_layout).
 *
 * torchvision mode reproduces, byte for byte, transforms.Resize(resize) on a
 * PIL image followed by transforms.CenterCrop(crop):
 * - torchvision computes the long side as int(resize * long / short) (float
 *   division, truncation) and calls Image.resize(size, BILINEAR) with no
 *   reducing_gap, so Pillow resamples directly (no reduce() first).
 * - Pillow's ImagingResample (libImaging/Resample.c): per axis, triangle-filter
 *   coefficients in double, support scaled by the downscale factor
 *   (antialias), normalized to 22-bit fixed point (PRECISION_BITS = 32-8-2),
 *   horizontal pass first into an 8-bit intermediate, then the vertical pass;
 *   a pass is skipped when its axis keeps its size; each sum starts at
 *   1 << 21 and is clipped to 0..255 after >> 22.
 * - center_crop pads with zeros when the image is smaller than the crop, then
 *   crops at int(round((size - crop) / 2.0)), Python's round halving to even.
 * Only the output pixels that survive the crop are computed: every resampled
 * pixel depends on its own coefficients only, so this changes no byte.
 *
 * fid mode reproduces pytorch-fid: ToTensor (x / 255 in float32), then
 * F.interpolate(bilinear, align_corners=False, no antialias) in float32, then
 * 2x - 1. Torch's CPU kernels may contract to FMA or multiply the two weights
 * first, so agreement is within about 1e-7, not bit-exact.
 *
 * clean mode reproduces clean-fid's resizer, bit for bit: each channel as a
 * float32 "F" image, Pillow's bicubic resample (the same coefficient rule as
 * above with Keys' cubic, a = -0.5, support 2, but the weights stay double
 * and each output is a double sum stored as float: ImagingResample*_32bpc),
 * clip to 0..255, then (x - 128) / 128 as InceptionV3W normalizes.
 */
#include "core/error.h"
#include "imgsearch.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PP_PRECISION_BITS (32 - 8 - 2)

/* The largest resized side (and crop, fid size) we accept: positions and
 * bounds stay ints. Only the cropped part is ever computed, so a long thin
 * image may resize to a very long side. */
#define PP_MAX_SIDE (1 << 30)

/* Fixed-point coefficients of one output range along one axis. */
/* Coefficients of one output range along one axis: fixed point for the
 * 8-bit passes, the normalized doubles for the float ("F" image) passes. */
typedef struct pp_coeffs {
    int ksize;       /* coefficients per output position */
    int *bounds;     /* (n, 2): first input index, count */
    int32_t *k;      /* (n, ksize), fixed point; NULL for float passes */
    double *kd;      /* (n, ksize), doubles; NULL for 8-bit passes */
} pp_coeffs;

/* A Pillow filter (libImaging/Resample.c): its support and its weights. */
typedef struct pp_filter {
    double support;
    double (*weight)(double x);
} pp_filter;

static double pp_bilinear_filter(double x)
{
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return 1.0 - x;
    return 0.0;
}

/* Pillow's bicubic_filter (Keys' cubic, a = -0.5), in its order of operations. */
static double pp_bicubic_filter(double x)
{
    const double a = -0.5;
    if (x < 0.0)
        x = -x;
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0)
        return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static const pp_filter pp_bilinear = {1.0, pp_bilinear_filter};
static const pp_filter pp_bicubic = {2.0, pp_bicubic_filter};

static void pp_coeffs_free(pp_coeffs *c)
{
    free(c->bounds);
    free(c->k);
    free(c->kd);
    c->bounds = NULL;
    c->k = NULL;
    c->kd = NULL;
}

/* Pillow's precompute_coeffs for output positions [first, first + n) of an
 * in_size -> out_size resize (box = whole axis), then normalize_coeffs_8bpc
 * when fixed_point (8-bit images) or the doubles as they are ("F" images).
 * The double arithmetic is written in Pillow's order so every weight rounds
 * the same way. */
static ims_status pp_coeffs_init(pp_coeffs *c, const pp_filter *filter, int in_size, int out_size, int first, int n,
                                 int fixed_point, ims_error *err)
{
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = filter->support * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;

    c->ksize = ksize;
    c->bounds = malloc((size_t)n * 2 * sizeof(int));
    if (fixed_point)
        c->k = malloc((size_t)n * (size_t)ksize * sizeof(int32_t));
    else
        c->kd = malloc((size_t)n * (size_t)ksize * sizeof(double));
    double *pre = malloc((size_t)ksize * sizeof(double));
    if (!c->bounds || !(c->k || c->kd) || !pre) {
        free(pre);
        pp_coeffs_free(c);
        return ims_error_set(err, IMS_ERR_NOMEM, "preprocess: out of memory for %d x %d resize coefficients", n, ksize);
    }
    for (int i = 0; i < n; i++) {
        int xx = first + i;
        double center = 0.0 + (xx + 0.5) * scale;
        double ww = 0.0;
        double ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0)
            xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size)
            xmax = in_size;
        xmax -= xmin;
        int x = 0;
        for (x = 0; x < xmax; x++) {
            double w = filter->weight((x + xmin - center + 0.5) * ss);
            pre[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++) {
            if (ww != 0.0)
                pre[x] /= ww;
        }
        if (fixed_point) {
            int32_t *k = c->k + (size_t)i * ksize;
            for (x = 0; x < xmax; x++) {
                double f = pre[x] * (1 << PP_PRECISION_BITS);
                k[x] = (int32_t)(f >= 0.0 ? f + 0.5 : f - 0.5);
            }
            for (; x < ksize; x++)
                k[x] = 0;
        } else {
            double *k = c->kd + (size_t)i * ksize;
            for (x = 0; x < ksize; x++)
                k[x] = x < xmax ? pre[x] : 0.0;
        }
        c->bounds[i * 2 + 0] = xmin;
        c->bounds[i * 2 + 1] = xmax;
    }
    free(pre);
    return IMS_OK;
}

static uint8_t pp_clip8(int32_t v)
{
    if (v >= (1 << PP_PRECISION_BITS << 8))
        return 255;
    if (v <= 0)
        return 0;
    return (uint8_t)(v >> PP_PRECISION_BITS);
}

/* Horizontal pass over rows a and b (b may equal a): in (in_w, 3) -> out
 * (n, 3). Two rows share each coefficient load and give the CPU six
 * independent sums; the arithmetic per pixel is Pillow's. */
static void pp_resample_rows(const uint8_t *in_a, const uint8_t *in_b, const pp_coeffs *c, int n, uint8_t *out_a,
                             uint8_t *out_b)
{
    for (int i = 0; i < n; i++) {
        int xmin = c->bounds[i * 2], xmax = c->bounds[i * 2 + 1];
        const int32_t *k = c->k + (size_t)i * c->ksize;
        const uint8_t *pa = in_a + (size_t)xmin * 3, *pb = in_b + (size_t)xmin * 3;
        int32_t a0 = 1 << (PP_PRECISION_BITS - 1), a1 = a0, a2 = a0, b0 = a0, b1 = a0, b2 = a0;
        for (int x = 0; x < xmax; x++) {
            int32_t kx = k[x];
            a0 += pa[x * 3 + 0] * kx;
            a1 += pa[x * 3 + 1] * kx;
            a2 += pa[x * 3 + 2] * kx;
            b0 += pb[x * 3 + 0] * kx;
            b1 += pb[x * 3 + 1] * kx;
            b2 += pb[x * 3 + 2] * kx;
        }
        out_a[i * 3 + 0] = pp_clip8(a0);
        out_a[i * 3 + 1] = pp_clip8(a1);
        out_a[i * 3 + 2] = pp_clip8(a2);
        out_b[i * 3 + 0] = pp_clip8(b0);
        out_b[i * 3 + 1] = pp_clip8(b1);
        out_b[i * 3 + 2] = pp_clip8(b2);
    }
}

/* Vertical pass for output row i: rows of `in` (stride bytes apart, row 0 is
 * input row `row0`) -> out (w, 3). Rows outer, columns inner, so the inner
 * loop runs over contiguous bytes into the acc row (w * 3 int32). */
static void pp_resample_col(const uint8_t *in, size_t stride, int row0, const pp_coeffs *c, int i, int w,
                            int32_t *acc, uint8_t *out)
{
    int ymin = c->bounds[i * 2] - row0, ymax = c->bounds[i * 2 + 1];
    const int32_t *k = c->k + (size_t)i * c->ksize;
    size_t n = (size_t)w * 3;
    for (size_t x = 0; x < n; x++)
        acc[x] = 1 << (PP_PRECISION_BITS - 1);
    for (int y = 0; y < ymax; y++) {
        const uint8_t *r = in + (size_t)(ymin + y) * stride;
        int32_t ky = k[y];
        for (size_t x = 0; x < n; x++)
            acc[x] += r[x] * ky;
    }
    for (size_t x = 0; x < n; x++)
        out[x] = pp_clip8(acc[x]);
}

/* Python's int(round(v / 2.0)) for v >= 0: halves go to the even neighbour. */
static int pp_half_round_even(int v)
{
    int q = v / 2;
    if (v % 2 != 0 && (q & 1))
        q++;
    return q;
}

static ims_status pp_check_image(const ims_image *img, ims_error *err)
{
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "preprocess: empty image");
    if ((uint64_t)img->width * (uint64_t)img->height > SIZE_MAX / 3)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "preprocess: image %d x %d too large", img->width, img->height);
    return IMS_OK;
}

/* torchvision's _compute_resized_output_size for an int size. */
static ims_status pp_resized_size(int w, int h, int resize, int *nw, int *nh, ims_error *err)
{
    int shrt = w <= h ? w : h, lng = w <= h ? h : w;
    double new_long = (double)((int64_t)resize * lng) / (double)shrt;
    if (new_long >= PP_MAX_SIDE)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "preprocess: %d x %d resized to short side %d is too long (%.0f)", w,
                             h, resize, new_long);
    int nl = (int)new_long;
    *nw = w <= h ? resize : nl;
    *nh = w <= h ? nl : resize;
    return IMS_OK;
}

/* Pillow's pass order (ImagingResampleInner, Pillow 12.3 and later): the
 * vertical pass goes first when the height shrinks by more than twice as many
 * pixels as the width; else the horizontal one. The intermediate is rounded
 * (to bytes, or to float), so the order shows in the result. */
static int pp_vertical_first(int w, int h, int nw, int nh)
{
    return h - nh > 0 && h - nh > (w - nw) * 2;
}

/* The horizontal pass over rows [0, rows) of src (src_row bytes apart) into
 * dst (dst_row bytes apart), or a copy of them when hc is NULL. */
static void pp_horizontal_rows(const uint8_t *src, size_t src_row, int rows, const pp_coeffs *hc, int cw,
                               uint8_t *dst, size_t dst_row)
{
    for (int y = 0; y < rows; y += 2) {
        int y2 = y + 1 < rows ? y + 1 : y;
        if (hc)
            pp_resample_rows(src + (size_t)y * src_row, src + (size_t)y2 * src_row, hc, cw, dst + (size_t)y * dst_row,
                             dst + (size_t)y2 * dst_row);
        else
            for (int r = y; r <= y2; r++)
                memcpy(dst + (size_t)r * dst_row, src + (size_t)r * src_row, (size_t)cw * 3);
    }
}

/* The vertical pass for output rows [0, ch) from src (whose row 0 is input
 * row row0; src_row bytes apart), w pixels wide, into dst, or a copy of the
 * rows when vc is NULL. acc: w * 3 int32. */
static void pp_vertical_rows(const uint8_t *src, size_t src_row, int row0, const pp_coeffs *vc, int ch, int w,
                             int32_t *acc, uint8_t *dst, size_t dst_row)
{
    for (int i = 0; i < ch; i++) {
        uint8_t *o = dst + (size_t)i * dst_row;
        if (vc)
            pp_resample_col(src, src_row, row0, vc, i, w, acc, o);
        else
            memcpy(o, src + (size_t)i * src_row, (size_t)w * 3);
    }
}

/* Pillow's resize of img to nw x nh, restricted to the window of columns
 * [x0, x0 + cw) and rows [y0, y0 + ch), written to dst (ch, cw, 3) whose rows
 * are dst_row bytes apart. Only the input rows (horizontal pass first) or
 * columns (vertical first) the window depends on are resampled: each output
 * pixel has its own coefficients, so this changes no byte. */
static ims_status pp_resample_window(const ims_image *img, int nw, int nh, int x0, int y0, int cw, int ch,
                                     uint8_t *dst, size_t dst_row, ims_error *err)
{
    ims_status st = IMS_OK;
    int w = img->width, h = img->height;
    int need_h = nw != w, need_v = nh != h; /* as Pillow, skip a pass whose size is unchanged */
    int v_first = pp_vertical_first(w, h, nw, nh);
    size_t in_row = (size_t)w * 3;
    pp_coeffs hc = {0}, vc = {0};
    uint8_t *tmp = NULL;
    int32_t *acc = NULL;
    if (need_h && (st = pp_coeffs_init(&hc, &pp_bilinear, w, nw, x0, cw, 1, err)) != IMS_OK)
        goto done;
    if (need_v && (st = pp_coeffs_init(&vc, &pp_bilinear, h, nh, y0, ch, 1, err)) != IMS_OK)
        goto done;
    /* The input rows [r0, r1) and columns [c0, c1) the window reads. */
    int r0 = need_v ? vc.bounds[0] : y0, r1 = need_v ? vc.bounds[(ch - 1) * 2] + vc.bounds[(ch - 1) * 2 + 1] : y0 + ch;
    int c0 = need_h ? hc.bounds[0] : x0, c1 = need_h ? hc.bounds[(cw - 1) * 2] + hc.bounds[(cw - 1) * 2 + 1] : x0 + cw;
    /* tmp: the first pass's 8-bit intermediate: (r1 - r0, cw) horizontal
     * first, (ch, c1 - c0) vertical first. */
    size_t tmp_w = v_first ? (size_t)(c1 - c0) : (size_t)cw, tmp_h = v_first ? (size_t)ch : (size_t)(r1 - r0);
    int acc_w = v_first ? c1 - c0 : cw;
    if (!(tmp = malloc(tmp_h * tmp_w * 3)) || !(acc = malloc((size_t)acc_w * 3 * sizeof(int32_t)))) {
        st = ims_error_set(err, IMS_ERR_NOMEM, "preprocess: out of memory for a %zu x %zu intermediate", tmp_w, tmp_h);
        goto done;
    }
    if (v_first) {
        pp_vertical_rows(img->pixels + (size_t)(need_v ? 0 : y0) * in_row + (size_t)c0 * 3, in_row, 0,
                         need_v ? &vc : NULL, ch, c1 - c0, acc, tmp, tmp_w * 3);
        for (int i = 0; need_h && i < cw; i++)
            hc.bounds[i * 2] -= c0; /* tmp's column 0 is input column c0 */
        pp_horizontal_rows(tmp, tmp_w * 3, ch, need_h ? &hc : NULL, cw, dst, dst_row);
    } else {
        pp_horizontal_rows(img->pixels + (size_t)r0 * in_row + (size_t)(need_h ? 0 : c0) * 3, in_row, r1 - r0,
                           need_h ? &hc : NULL, cw, tmp, tmp_w * 3);
        pp_vertical_rows(tmp, tmp_w * 3, r0, need_v ? &vc : NULL, ch, cw, acc, dst, dst_row);
    }
done:
    free(tmp);
    free(acc);
    pp_coeffs_free(&hc);
    pp_coeffs_free(&vc);
    return st;
}

ims_status ims_preprocess_torchvision_u8(const ims_image *img, int resize, int crop, uint8_t *out, ims_error *err)
{
    ims_status st = pp_check_image(img, err);
    if (st != IMS_OK)
        return st;
    if (!out || resize <= 0 || crop <= 0 || resize >= PP_MAX_SIDE || crop >= PP_MAX_SIDE)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "preprocess: bad resize %d / crop %d", resize, crop);
    int nw = 0, nh = 0;
    st = pp_resized_size(img->width, img->height, resize, &nw, &nh, err);
    if (st != IMS_OK)
        return st;

    /* Center crop (with zero padding) as a window of the resized image:
     * output (oy, ox) is resized (oy + top, ox + left), zero where outside. */
    int pad_left = crop > nw ? (crop - nw) / 2 : 0, pad_top = crop > nh ? (crop - nh) / 2 : 0;
    int pw = crop > nw ? crop : nw, ph = crop > nh ? crop : nh;
    int left = pp_half_round_even(pw - crop) - pad_left, top = pp_half_round_even(ph - crop) - pad_top;
    int x0 = left < 0 ? 0 : left, x1 = left + crop < nw ? left + crop : nw; /* resized columns kept */
    int y0 = top < 0 ? 0 : top, y1 = top + crop < nh ? top + crop : nh;     /* resized rows kept */

    size_t out_row = (size_t)crop * 3;
    if (x1 - x0 != crop || y1 - y0 != crop)
        memset(out, 0, out_row * (size_t)crop);
    uint8_t *dst = out + (size_t)(y0 - top) * out_row + (size_t)(x0 - left) * 3;
    return pp_resample_window(img, nw, nh, x0, y0, x1 - x0, y1 - y0, dst, out_row, err);
}

void ims_preprocess_normalize(const uint8_t *pixels, int h, int w, const float mean[3], const float std[3],
                              ims_layout layout, float *out)
{
    size_t plane = (size_t)h * (size_t)w;
    for (size_t p = 0; p < plane; p++) {
        for (int c = 0; c < 3; c++) {
            /* ToTensor: float32 / 255; Normalize: sub_(mean) then div_(std). */
            float v = (float)pixels[p * 3 + (size_t)c] / 255.0f;
            v = (v - mean[c]) / std[c];
            if (layout == IMS_LAYOUT_NCHW)
                out[(size_t)c * plane + p] = v;
            else
                out[p * 3 + (size_t)c] = v;
        }
    }
}

/* torch's source index and weights for align_corners=False (float32):
 * src = scale * (dst + 0.5) - 0.5, clamped at 0; i0 = floor; i1 = i0 + 1
 * unless at the edge; lambda = src - i0. */
static void pp_linear_index(int in_size, int out_size, int dst, int *i0, int *i1, float *l0, float *l1)
{
    float scale = (float)in_size / (float)out_size;
    float src = scale * ((float)dst + 0.5f) - 0.5f;
    if (src < 0.0f)
        src = 0.0f;
    int i = (int)src;
    if (i > in_size - 1)
        i = in_size - 1;
    float lambda = src - (float)i;
    if (lambda < 0.0f)
        lambda = 0.0f;
    if (lambda > 1.0f)
        lambda = 1.0f;
    *i0 = i;
    *i1 = i < in_size - 1 ? i + 1 : i;
    *l1 = lambda;
    *l0 = 1.0f - lambda;
}

ims_status ims_preprocess_fid(const ims_image *img, int size, ims_layout layout, float *out, ims_error *err)
{
    ims_status st = pp_check_image(img, err);
    if (st != IMS_OK)
        return st;
    if (!out || size <= 0 || size >= (1 << 24))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "preprocess: bad fid size %d", size);
    int w = img->width, h = img->height;
    size_t plane = (size_t)size * (size_t)size, in_row = (size_t)w * 3;

    int *xi = malloc((size_t)size * 2 * sizeof(int));
    float *xl = malloc((size_t)size * 2 * sizeof(float));
    if (!xi || !xl) {
        free(xi);
        free(xl);
        return ims_error_set(err, IMS_ERR_NOMEM, "preprocess: out of memory for fid size %d", size);
    }
    for (int x = 0; x < size; x++)
        pp_linear_index(w, size, x, &xi[x * 2], &xi[x * 2 + 1], &xl[x * 2], &xl[x * 2 + 1]);

    for (int y = 0; y < size; y++) {
        int y0 = 0, y1 = 0;
        float wy0 = 0, wy1 = 0;
        pp_linear_index(h, size, y, &y0, &y1, &wy0, &wy1);
        const uint8_t *r0 = img->pixels + (size_t)y0 * in_row, *r1 = img->pixels + (size_t)y1 * in_row;
        for (int x = 0; x < size; x++) {
            size_t a = (size_t)xi[x * 2] * 3, b = (size_t)xi[x * 2 + 1] * 3;
            float wx0 = xl[x * 2], wx1 = xl[x * 2 + 1];
            size_t p = (size_t)y * size + (size_t)x;
            for (int c = 0; c < 3; c++) {
                /* ToTensor's x / 255, then torch's generic kernel order:
                 * rows interpolated along x, then blended along y. */
                float t0 = (float)r0[a + c] / 255.0f * wx0 + (float)r0[b + c] / 255.0f * wx1;
                float t1 = (float)r1[a + c] / 255.0f * wx0 + (float)r1[b + c] / 255.0f * wx1;
                float v = 2.0f * (t0 * wy0 + t1 * wy1) - 1.0f;
                if (layout == IMS_LAYOUT_NCHW)
                    out[(size_t)c * plane + p] = v;
                else
                    out[p * 3 + (size_t)c] = v;
            }
        }
    }
    free(xi);
    free(xl);
    return IMS_OK;
}

/* One axis of clean mode's float resize: in (rows, cols of pixels, 3) ->
 * out, along columns (horizontal, in_pixel_step 1) or rows (vertical): each
 * output is Pillow's ss += pixel * k[x] in double, stored as float. */
static void pp_resample_float(const float *in, size_t in_pixel_step, size_t in_line_step, const pp_coeffs *c,
                              int lines, int n, float *out, size_t out_pixel_step, size_t out_line_step)
{
    for (int line = 0; line < lines; line++) {
        const float *src = in + (size_t)line * in_line_step * 3;
        float *dst = out + (size_t)line * out_line_step * 3;
        for (int i = 0; i < n; i++) {
            int first = c->bounds[i * 2], count = c->bounds[i * 2 + 1];
            const double *k = c->kd + (size_t)i * c->ksize;
            for (int ch = 0; ch < 3; ch++) {
                double ss = 0.0;
                for (int j = 0; j < count; j++)
                    ss += src[((size_t)(first + j) * in_pixel_step) * 3 + (size_t)ch] * k[j];
                dst[(size_t)i * out_pixel_step * 3 + (size_t)ch] = (float)ss;
            }
        }
    }
}

ims_status ims_preprocess_clean(const ims_image *img, int size, ims_layout layout, float *out, ims_error *err)
{
    ims_status st = pp_check_image(img, err);
    if (st != IMS_OK)
        return st;
    if (!out || size <= 0 || size >= (1 << 24))
        return ims_error_set(err, IMS_ERR_ARGUMENT, "preprocess: bad clean size %d", size);
    int w = img->width, h = img->height;
    int need_h = size != w, need_v = size != h; /* as Pillow, skip a pass whose size is unchanged */
    pp_coeffs hc = {0}, vc = {0};
    float *pix = NULL, *tmp = NULL, *res = NULL;
    if (need_h && (st = pp_coeffs_init(&hc, &pp_bicubic, w, size, 0, size, 0, err)) != IMS_OK)
        goto done;
    if (need_v && (st = pp_coeffs_init(&vc, &pp_bicubic, h, size, 0, size, 0, err)) != IMS_OK)
        goto done;
    size_t n = (size_t)w * (size_t)h * 3;
    pix = malloc(n * sizeof *pix); /* Image.fromarray of the bytes as float32 */
    tmp = malloc((size_t)size * (size_t)(w > h ? w : h) * 3 * sizeof *tmp);
    res = malloc((size_t)size * (size_t)size * 3 * sizeof *res);
    if (!pix || !tmp || !res) {
        st = ims_error_set(err, IMS_ERR_NOMEM, "preprocess: out of memory for a %d x %d float image", w, h);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        pix[i] = img->pixels[i];
    /* Each pass: (lines, pixels) with the steps of the axis it resamples;
     * cur is (cur_h, cur_w). Horizontal: lines are rows; vertical: columns. */
    const float *cur = pix;
    int cur_w = w, cur_h = h;
    for (int pass = 0; pass < 2; pass++) {
        int vertical = pp_vertical_first(w, h, size, size) ? pass == 0 : pass == 1;
        if (vertical ? !need_v : !need_h)
            continue;
        float *dst = cur == tmp ? res : tmp;
        if (vertical) {
            pp_resample_float(cur, (size_t)cur_w, 1, &vc, cur_w, size, dst, (size_t)cur_w, 1);
            cur_h = size;
        } else {
            pp_resample_float(cur, 1, (size_t)cur_w, &hc, cur_h, size, dst, 1, (size_t)size);
            cur_w = size;
        }
        cur = dst;
    }
    /* clip(0, 255), then InceptionV3W's (x - 128) / 128, in float. */
    size_t plane = (size_t)size * (size_t)size;
    for (size_t p = 0; p < plane; p++)
        for (int ch = 0; ch < 3; ch++) {
            float v = cur[p * 3 + (size_t)ch];
            v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
            v = (v - 128.0f) / 128.0f;
            if (layout == IMS_LAYOUT_NCHW)
                out[(size_t)ch * plane + p] = v;
            else
                out[p * 3 + (size_t)ch] = v;
        }
done:
    free(pix);
    free(tmp);
    free(res);
    pp_coeffs_free(&hc);
    pp_coeffs_free(&vc);
    return st;
}

static const char *const pp_mode_names[] = {"torchvision", "fid", "clean"};

const char *ims_preprocess_mode_name(ims_preprocess_mode mode)
{
    return (unsigned)mode < sizeof pp_mode_names / sizeof pp_mode_names[0] ? pp_mode_names[mode] : NULL;
}

int ims_preprocess_mode_from_name(const char *name)
{
    for (int i = 0; name && i < (int)(sizeof pp_mode_names / sizeof pp_mode_names[0]); i++)
        if (!strcmp(name, pp_mode_names[i]))
            return i;
    return -1;
}

ims_status ims_image_resize(const ims_image *img, int width, int height, uint8_t *out, ims_error *err)
{
    ims_status st = pp_check_image(img, err);
    if (st != IMS_OK)
        return st;
    if (!out || width <= 0 || height <= 0 || width >= PP_MAX_SIDE || height >= PP_MAX_SIDE)
        return ims_error_set(err, IMS_ERR_ARGUMENT, "resize: bad size %d x %d", width, height);
    return pp_resample_window(img, width, height, 0, 0, width, height, out, (size_t)width * 3, err);
}
