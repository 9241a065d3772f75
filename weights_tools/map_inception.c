/* map_inception.c: torchvision Inception-v3 and pytorch-fid's FID Inception
 * state_dicts -> the engine's Inception weights.
 *
 * For every BasicConv2d (conv without bias, BatchNorm eps 0.001, ReLU) the
 * BatchNorm is folded into the convolution, in double precision:
 *     s = gamma / sqrt(var + eps);  W' = W * s;  b' = beta - mean * s
 * torchvision's transform_input (x' = x * std / 0.5 + (mean - 0.5) / 0.5 per
 * channel, on for the pretrained weights) is folded into Conv2d_1a_3x3, which
 * is exact because that convolution has no padding. Weights are stored OHWI
 * (out, kh, kw, in), the filter layout of NHWC convolutions (cuDNN's KRSC);
 * biases stay f32 whatever the weight dtype. AuxLogits (training only) is
 * dropped; num_batches_tracked is ignored.
 */
#include "convert.h"

#include "core/error.h"
#include "models/inception_v3_arch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BN_EPS 0.001
#define LIST_MAX 12 /* names listed in one error message */

static const double imagenet_mean[3] = {0.485, 0.456, 0.406};
static const double imagenet_std[3] = {0.229, 0.224, 0.225};

/* Collects key names for one error message: "missing: a, b, ... (N more)". */
typedef struct name_list {
    char text[IMS_ERROR_MSG_MAX];
    size_t count;
} name_list;

static void name_list_add(name_list *l, const char *name)
{
    if (l->count++ < LIST_MAX) {
        size_t used = strlen(l->text);
        snprintf(l->text + used, sizeof l->text - used, "%s%s", used ? ", " : "", name);
    }
}

static void name_list_finish(name_list *l)
{
    if (l->count > LIST_MAX) {
        size_t used = strlen(l->text);
        snprintf(l->text + used, sizeof l->text - used, " (%zu more)", l->count - LIST_MAX);
    }
}

static const ckpt_tensor *find_shaped(const ckpt *c, const char *name, int ndim, const int64_t *shape,
                                      name_list *missing, name_list *misshaped)
{
    const ckpt_tensor *t = imsi_ckpt_find(c, name);
    if (!t) {
        name_list_add(missing, name);
        return NULL;
    }
    int ok = t->ndim == ndim && t->dtype != CKPT_BOOL;
    for (int d = 0; ok && d < ndim; d++)
        ok = shape[d] < 0 || t->shape[d] == shape[d];
    if (!ok) {
        char desc[160];
        int n = snprintf(desc, sizeof desc, "%s (", name);
        for (int d = 0; d < t->ndim && n < (int)sizeof desc; d++)
            n += snprintf(desc + n, sizeof desc - (size_t)n, d ? ", %lld" : "%lld", (long long)t->shape[d]);
        if (n < (int)sizeof desc)
            snprintf(desc + n, sizeof desc - (size_t)n, ")");
        name_list_add(misshaped, desc);
        return NULL;
    }
    return t;
}

/* Every layer's tensors, looked up and shape-checked once. */
typedef struct layer_tensors {
    const ckpt_tensor *w, *gamma, *beta, *mean, *var;
} layer_tensors;

typedef struct iv3_source {
    layer_tensors layers[IV3_LAYER_COUNT];
    int64_t out_in[IV3_LAYER_COUNT][2];
    const ckpt_tensor *fc_w, *fc_b;
    int64_t classes, features;
    size_t ignored; /* AuxLogits.*, num_batches_tracked */
} iv3_source;

/* 1 if key names a layer of the table with one of a BasicConv2d's suffixes. */
static int is_layer_key(const char *key)
{
    static const char *const suffixes[] = {".conv.weight", ".bn.weight", ".bn.bias", ".bn.running_mean",
                                           ".bn.running_var", ".bn.num_batches_tracked"};
    size_t len = strlen(key);
    for (size_t s = 0; s < sizeof suffixes / sizeof *suffixes; s++) {
        size_t sl = strlen(suffixes[s]);
        if (len <= sl || strcmp(key + len - sl, suffixes[s]) != 0)
            continue;
        for (int bi = 0; bi < IV3_BLOCK_COUNT; bi++) {
            const iv3_block *b = &imsi_iv3_blocks()[bi];
            for (int li = 0; li < b->layer_count; li++) {
                char layer[96];
                imsi_iv3_layer_name(b, &b->layers[li], layer, sizeof layer);
                if (strlen(layer) == len - sl && strncmp(key, layer, len - sl) == 0)
                    return 1;
            }
        }
    }
    return 0;
}

/* Keys a state_dict carries that the eval graph does not use. */
static int is_ignored_key(const char *key)
{
    size_t len = strlen(key);
    return strncmp(key, "AuxLogits.", 10) == 0 ||
           (len > 20 && strcmp(key + len - 20, ".num_batches_tracked") == 0);
}

static ims_status collect(const ckpt *c, iv3_source *src, ims_error *err)
{
    name_list missing = {0}, misshaped = {0}, unexpected = {0};
    char name[160];
    int k = 0;
    for (int bi = 0; bi < IV3_BLOCK_COUNT; bi++) {
        const iv3_block *b = &imsi_iv3_blocks()[bi];
        for (int li = 0; li < b->layer_count; li++, k++) {
            const iv3_layer *l = &b->layers[li];
            char layer[96];
            imsi_iv3_layer_name(b, l, layer, sizeof layer);
            layer_tensors *lt = &src->layers[k];
            snprintf(name, sizeof name, "%s.conv.weight", layer);
            lt->w = find_shaped(c, name, 4, (int64_t[]){-1, -1, l->kh, l->kw}, &missing, &misshaped);
            int64_t out = lt->w ? lt->w->shape[0] : -1;
            const char *bn[4] = {"weight", "bias", "running_mean", "running_var"};
            const ckpt_tensor **slot[4] = {&lt->gamma, &lt->beta, &lt->mean, &lt->var};
            for (int i = 0; i < 4; i++) {
                snprintf(name, sizeof name, "%s.bn.%s", layer, bn[i]);
                *slot[i] = find_shaped(c, name, 1, (int64_t[]){out}, &missing, &misshaped);
            }
            if (lt->w) {
                src->out_in[k][0] = lt->w->shape[0];
                src->out_in[k][1] = lt->w->shape[1];
            }
        }
    }
    src->fc_w = find_shaped(c, "fc.weight", 2, (int64_t[]){-1, -1}, &missing, &misshaped);
    src->classes = src->fc_w ? src->fc_w->shape[0] : -1;
    src->fc_b = find_shaped(c, "fc.bias", 1, (int64_t[]){src->classes}, &missing, &misshaped);

    for (size_t i = 0; i < c->count; i++) {
        const char *key = c->tensors[i].name;
        if (is_ignored_key(key))
            src->ignored++;
        else if (!is_layer_key(key) && strcmp(key, "fc.weight") != 0 && strcmp(key, "fc.bias") != 0)
            name_list_add(&unexpected, key);
    }

    name_list_finish(&missing);
    name_list_finish(&misshaped);
    name_list_finish(&unexpected);
    if (missing.count || misshaped.count || unexpected.count)
        return ims_error_set(err, IMS_ERR_FORMAT, "not a torchvision Inception-v3 state_dict:%s%s%s%s%s%s",
                             missing.count ? " missing: " : "", missing.text, misshaped.count ? "; mis-shaped: " : "",
                             misshaped.text, unexpected.count ? "; unexpected: " : "", unexpected.text);
    ims_status st = imsi_iv3_check_channels((const int64_t(*)[2])src->out_in, &src->features, err);
    if (st)
        return st;
    if (src->fc_w->shape[1] != src->features)
        return ims_error_set(err, IMS_ERR_FORMAT, "fc.weight takes %lld features, but Mixed_7c gives %lld",
                             (long long)src->fc_w->shape[1], (long long)src->features);
    return IMS_OK;
}

static double *read_f64(const ckpt_tensor *t, ims_error *err)
{
    double *v = malloc((size_t)imsi_ckpt_tensor_numel(t) * sizeof *v);
    if (!v)
        ims_error_set(err, IMS_ERR_NOMEM, "out of memory reading '%s'", t->name);
    else
        imsi_ckpt_tensor_read_f64(t, v);
    return v;
}

/* Folds BatchNorm (and, for the first layer, transform_input) into one layer
 * and adds "<layer>.weight" (O, KH, KW, I) and "<layer>.bias" (O). */
static ims_status fold_layer(const layer_tensors *lt, const char *layer, int transform_input, ims_dtype dtype,
                             imsi_weights_writer *wr, ims_error *err)
{
    int64_t o_n = lt->w->shape[0], i_n = lt->w->shape[1], kh = lt->w->shape[2], kw = lt->w->shape[3];
    double *w = read_f64(lt->w, err), *g = read_f64(lt->gamma, err), *b = read_f64(lt->beta, err);
    double *m = read_f64(lt->mean, err), *v = read_f64(lt->var, err);
    float *wo = malloc((size_t)(o_n * kh * kw * i_n) * sizeof *wo), *bo = malloc((size_t)o_n * sizeof *bo);
    ims_status st = IMS_OK;
    if (!w || !g || !b || !m || !v || !wo || !bo)
        st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory folding '%s'", layer);
    for (int64_t o = 0; o < o_n && !st; o++) {
        double s = g[o] / sqrt(v[o] + BN_EPS);
        double bias = b[o] - m[o] * s;
        if (!(v[o] >= 0.0) || !isfinite(s) || !isfinite(bias)) {
            st = ims_error_set(err, IMS_ERR_FORMAT, "'%s.bn': channel %lld has running_var %g, weight %g, mean %g: "
                               "the folded layer is not finite", layer, (long long)o, v[o], g[o], m[o]);
            break;
        }
        for (int64_t i = 0; i < i_n; i++) {
            /* transform_input: x' = a x + c per input channel (exact: the first layer has no padding) */
            double a = transform_input ? imagenet_std[i] / 0.5 : 1.0;
            double c = transform_input ? (imagenet_mean[i] - 0.5) / 0.5 : 0.0;
            for (int64_t y = 0; y < kh; y++)
                for (int64_t x = 0; x < kw; x++) {
                    double ws = w[((o * i_n + i) * kh + y) * kw + x] * s;
                    bias += ws * c;
                    wo[((o * kh + y) * kw + x) * i_n + i] = (float)(ws * a);
                }
        }
        bo[o] = (float)bias;
    }
    free(w), free(g), free(b), free(m), free(v);
    if (st) {
        free(wo), free(bo);
        return st;
    }
    char name[160];
    snprintf(name, sizeof name, "%s.weight", layer);
    st = imsi_weights_writer_add_floats(wr, name, dtype, 4, (int64_t[]){o_n, kh, kw, i_n}, wo, err);
    snprintf(name, sizeof name, "%s.bias", layer);
    if (!st)
        st = imsi_weights_writer_add_floats(wr, name, IMS_DTYPE_F32, 1, (int64_t[]){o_n}, bo, err);
    else
        free(bo);
    return st;
}

/* One class name per line (a trailing newline optional, CRLF accepted). */
static ims_status read_labels(const char *path, int64_t classes, char ***out, ims_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ims_error_set(err, IMS_ERR_IO, "labels file '%s': cannot open", path);
    char **labels = calloc((size_t)classes, sizeof *labels);
    char line[4096];
    int64_t n = 0;
    ims_status st = labels ? IMS_OK : ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    while (!st && fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        line[len] = '\0';
        if (n >= classes)
            st = ims_error_set(err, IMS_ERR_FORMAT, "labels file '%s' has more than %lld lines (the model's classes)",
                               path, (long long)classes);
        else if (!(labels[n++] = strdup(line)))
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    fclose(f);
    if (!st && n != classes)
        st = ims_error_set(err, IMS_ERR_FORMAT, "labels file '%s' has %lld lines, the model has %lld classes", path,
                           (long long)n, (long long)classes);
    if (st) {
        for (int64_t i = 0; labels && i < classes; i++)
            free(labels[i]);
        free(labels);
        return st;
    }
    *out = labels;
    return IMS_OK;
}

static ims_status add_metadata(const iv3_source *src, ims_convert_arch arch, int transform_input,
                               const ims_convert_options *o, imsi_weights_writer *wr, ims_error *err)
{
    int fid = arch == IMS_CONVERT_ARCH_INCEPTION_V3_FID;
    /* FID: [0, 1] -> 2x - 1, i.e. mean 0.5, std 0.5; torchvision: ImageNet's */
    const double half[3] = {0.5, 0.5, 0.5};
    ims_status st = imsi_weights_writer_add_string(wr, "architecture", ims_convert_arch_name(arch), err);
    if (!st) st = imsi_weights_writer_add_string(wr, "name", fid ? "pytorch-fid Inception-v3" : "torchvision Inception-v3", err);
    if (!st) st = imsi_weights_writer_add_string(wr, "converter", "imgsearch convert " IMS_VERSION_STRING, err);
    if (!st && o->source) st = imsi_weights_writer_add_string(wr, "source", o->source, err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "inception.num_classes", src->classes, err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "inception.features", src->features, err);
    if (!st) st = imsi_weights_writer_add_string(wr, "inception.weight_layout", "OHWI", err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "inception.bn_folded", 1, err);
    if (!st) st = imsi_weights_writer_add_f64(wr, "inception.bn_eps", BN_EPS, err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "inception.transform_input_folded", transform_input, err);
    /* pytorch-fid's differences: avg pools exclude padding; Mixed_7c's pool branch is a max pool */
    if (!st) st = imsi_weights_writer_add_i64(wr, "inception.avgpool_count_include_pad", fid ? 0 : 1, err);
    if (!st) st = imsi_weights_writer_add_string(wr, "inception.mixed_7c_pool", fid ? "max" : "avg", err);
    if (!st) st = imsi_weights_writer_add_string(wr, "preprocess.mode", fid ? "fid" : "torchvision", err);
    if (!st) st = imsi_weights_writer_add_i64(wr, "preprocess.image_size", 299, err);
    if (!st && !fid) st = imsi_weights_writer_add_i64(wr, "preprocess.resize", 342, err);
    if (!st) st = imsi_weights_writer_add_f64_array(wr, "preprocess.mean", fid ? half : imagenet_mean, 3, err);
    if (!st) st = imsi_weights_writer_add_f64_array(wr, "preprocess.std", fid ? half : imagenet_std, 3, err);
    if (st)
        return st;
    if (o->labels_path) {
        char **labels = NULL;
        st = read_labels(o->labels_path, src->classes, &labels, err);
        if (!st)
            st = imsi_weights_writer_add_string_array(wr, "labels", (const char *const *)labels, (size_t)src->classes, err);
        for (int64_t i = 0; labels && i < src->classes; i++)
            free(labels[i]);
        free(labels);
    } else if (src->classes == 1000 && !fid) {
        st = imsi_weights_writer_add_string_array(wr, "labels", imsi_imagenet_classes, 1000, err);
    }
    return st;
}

ims_status imsi_map_inception(const ckpt *c, ims_convert_arch arch, const ims_convert_options *o, imsi_weights_writer *wr,
                              ims_convert_report *report, ims_error *err)
{
    iv3_source *src = calloc(1, sizeof *src);
    if (!src)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    ims_status st = collect(c, src, err);
    int fid = arch == IMS_CONVERT_ARCH_INCEPTION_V3_FID;
    int transform_input = o->transform_input < 0 ? !fid : o->transform_input;
    if (!st)
        st = add_metadata(src, arch, transform_input, o, wr, err);
    int k = 0;
    for (int bi = 0; bi < IV3_BLOCK_COUNT && !st; bi++) {
        const iv3_block *b = &imsi_iv3_blocks()[bi];
        for (int li = 0; li < b->layer_count && !st; li++, k++) {
            char layer[96];
            imsi_iv3_layer_name(b, &b->layers[li], layer, sizeof layer);
            st = fold_layer(&src->layers[k], layer, transform_input && k == 0, o->dtype, wr, err);
            report->tensors_out += 2;
        }
    }
    if (!st) {
        size_t n = (size_t)imsi_ckpt_tensor_numel(src->fc_w);
        float *w = malloc(n * sizeof *w), *b = malloc((size_t)src->classes * sizeof *b);
        if (!w || !b) {
            free(w), free(b);
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
        } else {
            imsi_ckpt_tensor_read_f32(src->fc_w, w);
            imsi_ckpt_tensor_read_f32(src->fc_b, b);
            st = imsi_weights_writer_add_floats(wr, "fc.weight", o->dtype, 2, (int64_t[]){src->classes, src->features}, w, err);
            if (!st)
                st = imsi_weights_writer_add_floats(wr, "fc.bias", IMS_DTYPE_F32, 1, (int64_t[]){src->classes}, b, err);
            else
                free(b);
            report->tensors_out += 2;
        }
    }
    report->tensors_ignored = src->ignored;
    free(src);
    return st;
}
