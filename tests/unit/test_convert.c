/* test_convert.c: the Inception converter on checkpoints made by PyTorch
 * (tests/fixtures/inception/make_fixtures.py): BN and transform_input folding,
 * the OHWI layout, f16 output, labels, and the errors for checkpoints that do
 * not fit the architecture. Expectations were computed in float64 by the
 * fixture script, whose folding formulas it checked against PyTorch's modules.
 *
 * usage: test_convert FIXTURE_DIR   (tests/fixtures/inception)
 */
#include "test.h"

#include "models/inception_v3_arch.h"
#include "weights_tools/convert.h"
#include "weights_tools/hf_model_dir.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static const char *fixture_dir;

static void fixture_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", fixture_dir, name);
}

/* The C layer table equals torchvision's (as the fixture script dumped it). */
static void test_layer_table(void)
{
    char path[1024];
    fixture_path(path, sizeof path, "torchvision_layers.txt");
    FILE *f = fopen(path, "r");
    TEST_CHECK(f != NULL, "cannot open %s", path);
    if (!f)
        return;
    int k = 0, mismatches = 0;
    for (int bi = 0; bi < IV3_BLOCK_COUNT; bi++) {
        const iv3_block *b = &imsi_iv3_blocks()[bi];
        for (int li = 0; li < b->layer_count; li++, k++) {
            const iv3_layer *l = &b->layers[li];
            char want[96], name[96];
            int kh, kw, stride, ph, pw;
            imsi_iv3_layer_name(b, l, want, sizeof want);
            if (fscanf(f, "%95s %d %d %d %d %d", name, &kh, &kw, &stride, &ph, &pw) != 6) {
                TEST_CHECK(0, "torchvision_layers.txt ends at layer %d", k);
                fclose(f);
                return;
            }
            int ok = !strcmp(name, want) && kh == l->kh && kw == l->kw && stride == l->stride && ph == l->pad_h &&
                     pw == l->pad_w;
            if (!ok && mismatches++ < 5)
                TEST_CHECK(ok, "layer %d: table has %s %dx%d s%d p(%d,%d), torchvision %s %dx%d s%d p(%d,%d)", k, want,
                           l->kh, l->kw, l->stride, l->pad_h, l->pad_w, name, kh, kw, stride, ph, pw);
        }
    }
    TEST_CHECK(k == IV3_LAYER_COUNT, "%d layers", k);
    TEST_CHECK(mismatches == 0, "%d layers differ from torchvision", mismatches);
    fclose(f);
}

/* Compares every tensor of a converted file with the expectations file. */
static void check_expected(const ims_weights *w, const char *expected_name, double rel_tol)
{
    char path[1024], line[8192];
    fixture_path(path, sizeof path, expected_name);
    FILE *f = fopen(path, "r");
    TEST_CHECK(f != NULL, "cannot open %s", path);
    if (!f)
        return;
    int tensors = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        char name[160];
        int ndim, used;
        char *p = line;
        if (sscanf(p, "%159s %d%n", name, &ndim, &used) != 2)
            break;
        p += used;
        int64_t shape[4] = {1, 1, 1, 1};
        for (int d = 0; d < ndim; d++) {
            long long v;
            sscanf(p, "%lld%n", &v, &used);
            shape[d] = v;
            p += used;
        }
        double sum, sumsq;
        sscanf(p, "%lf %lf%n", &sum, &sumsq, &used);
        p += used;
        tensors++;
        const ims_weight_tensor *t = ims_weights_tensor_find(w, name);
        int ok = t && t->ndim == ndim;
        for (int d = 0; ok && d < ndim; d++)
            ok = t->shape[d] == shape[d];
        if (!ok) {
            if (bad++ < 5)
                TEST_CHECK(ok, "%s: %s", name, t ? "wrong shape" : "missing");
            continue;
        }
        size_t n = (size_t)(t->nbytes / ims_dtype_size(t->dtype));
        double got_sum = 0, got_sumsq = 0;
        for (size_t i = 0; i < n; i++) {
            double v = t->dtype == IMS_DTYPE_F16 ? ims_f16_to_f32(((const uint16_t *)t->data)[i])
                                                 : ((const float *)t->data)[i];
            got_sum += v;
            got_sumsq += v * v;
        }
        /* each element carries one storage rounding (rel_tol): bound the sums by it */
        double scale = sqrt((double)n * sumsq);
        ok = fabs(got_sum - sum) <= rel_tol * scale + 1e-12 && fabs(got_sumsq - sumsq) <= 3 * rel_tol * sumsq + 1e-12;
        for (int s = 0; ok && s < 8; s++) {
            long long idx;
            double want;
            if (sscanf(p, "%lld %lf%n", &idx, &want, &used) != 2)
                break;
            p += used;
            double v = t->dtype == IMS_DTYPE_F16 ? ims_f16_to_f32(((const uint16_t *)t->data)[idx])
                                                 : ((const float *)t->data)[idx];
            ok = fabs(v - want) <= rel_tol * fabs(want) + 6e-8 * (t->dtype == IMS_DTYPE_F16);
            if (!ok && bad < 5)
                fprintf(stderr, "  %s[%lld] = %.9g, expected %.9g\n", name, idx, v, want);
        }
        if (!ok && bad++ < 5)
            TEST_CHECK(ok, "%s: sum %.9g (expected %.9g), sumsq %.9g (expected %.9g) or a sample differs", name, got_sum,
                       sum, got_sumsq, sumsq);
    }
    fclose(f);
    TEST_CHECK(tensors == 2 * IV3_LAYER_COUNT + 2, "%s lists %d tensors", expected_name, tensors);
    TEST_CHECK((int)ims_weights_tensor_count(w) == 2 * IV3_LAYER_COUNT + 2, "file has %zu tensors",
               ims_weights_tensor_count(w));
    TEST_CHECK(bad == 0, "%d tensors differ from %s", bad, expected_name);
}

static void convert_and_check(const char *fixture, const ims_convert_options *o, const char *expected, double tol,
                              const char *arch, int64_t classes, int labelled)
{
    char in[1024], out[256];
    fixture_path(in, sizeof in, fixture);
    snprintf(out, sizeof out, "test_convert_%d.isw", (int)getpid());
    ims_convert_report report;
    ims_error err = {0};
    TEST_OK(ims_convert(in, out, o, &report, &err), err);
    printf("%s -> %s: %zu tensors in, %zu out, %zu ignored, %llu bytes\n", fixture, ims_convert_arch_name(report.arch),
           report.tensors_in, report.tensors_out, report.tensors_ignored, (unsigned long long)report.bytes_out);
    ims_weights *w = NULL;
    TEST_OK(ims_weights_open(out, IMS_WEIGHTS_VERIFY_DATA, &w, &err), err);
    unlink(out);
    if (!w)
        return;
    ims_str s;
    int64_t n = 0, folded = -1;
    TEST_OK(ims_weights_get_string(w, "architecture", &s, &err), err);
    TEST_CHECK(s.len == strlen(arch) && !memcmp(s.ptr, arch, s.len), "architecture %.*s", (int)s.len, s.ptr);
    TEST_OK(ims_weights_get_i64(w, "inception.num_classes", &n, &err), err);
    TEST_CHECK(n == classes, "num_classes %lld", (long long)n);
    TEST_OK(ims_weights_get_i64(w, "inception.features", &n, &err), err);
    TEST_CHECK(n == 128, "features %lld (2048 / 16)", (long long)n);
    TEST_OK(ims_weights_get_i64(w, "inception.transform_input_folded", &folded, &err), err);
    const ims_str *labels = NULL;
    size_t count = 0;
    ims_status st = ims_weights_get_strings(w, "labels", &labels, &count, &err);
    if (labelled) {
        TEST_CHECK(st == IMS_OK && count == 1000 && labels[0].len == 5 && !memcmp(labels[0].ptr, "tench", 5) &&
                       labels[999].len == 13 && !memcmp(labels[999].ptr, "toilet tissue", 13),
                   "ImageNet labels embedded");
    } else {
        TEST_CHECK(st == IMS_ERR_NOT_FOUND, "no labels");
    }
    check_expected(w, expected, tol);
    ims_weights_close(w);
}

static void test_conversions(void)
{
    ims_convert_options o;
    ims_convert_options_init(&o);
    const double f32_tol = 1.2e-7; /* one f32 rounding of a double, with margin */
    const double f16_tol = 9.8e-4; /* one f16 rounding (2^-11), with margin */
    convert_and_check("tv_zip.pt", &o, "expected_tv.txt", f32_tol, "inception_v3", 1000, 1);
    convert_and_check("tv_legacy.pt", &o, "expected_tv.txt", f32_tol, "inception_v3", 1000, 1);
    convert_and_check("fid_zip.pt", &o, "expected_fid.txt", f32_tol, "inception_v3_fid", 1008, 0);
    o.transform_input = 0;
    convert_and_check("tv_zip.pt", &o, "expected_tv_notransform.txt", f32_tol, "inception_v3", 1000, 1);
    o.transform_input = -1;
    o.dtype = IMS_DTYPE_F16;
    convert_and_check("tv_zip.pt", &o, "expected_tv.txt", f16_tol, "inception_v3", 1000, 1);
}

/* ---- Checkpoints that do not fit ---------------------------------------------------- */


static ckpt_tensor *find_mut(ckpt *c, const char *name) { return (ckpt_tensor *)imsi_ckpt_find(c, name); }

typedef void (*mutation)(ckpt *c);

static void drop_layer(ckpt *c) { find_mut(c, "Mixed_6b.branch7x7_2.conv.weight")->name[0] = 'X'; }
static void wrong_kernel(ckpt *c) { find_mut(c, "Mixed_5b.branch5x5_2.conv.weight")->shape[2] = 3; }
static void wrong_channels(ckpt *c) { find_mut(c, "Mixed_5c.branch1x1.conv.weight")->shape[1] -= 1; }
static void wrong_fc(ckpt *c) { find_mut(c, "fc.weight")->shape[1] -= 1; }
static void wrong_bn(ckpt *c) { find_mut(c, "Conv2d_3b_1x1.bn.running_var")->shape[0] -= 1; }

static void negative_var(ckpt *c)
{
    ckpt_tensor *t = find_mut(c, "Mixed_7c.branch_pool.bn.running_var");
    float v = -2.0f; /* var + eps < 0: sqrt of a negative */
    memcpy((unsigned char *)t->storage + 4 * (t->storage_offset + 3), &v, 4);
}

static void expect_mapping_error(const char *label, mutation mutate, const char *needle)
{
    char path[1024];
    fixture_path(path, sizeof path, "tv_zip.pt");
    size_t size = 0;
    unsigned char *buf = (unsigned char *)test_read_file(path, &size);
    TEST_CHECK(buf != NULL, "read %s", path);
    if (!buf)
        return;
    ckpt *c = NULL;
    ims_error err = {0};
    TEST_OK(imsi_ckpt_open_memory(buf, size, &c, &err), err);
    if (c) {
        mutate(c);
        ims_convert_options o;
        ims_convert_options_init(&o);
        ims_convert_report report = {0};
        imsi_weights_writer *wr = NULL;
        TEST_OK(imsi_weights_writer_create(&wr, &err), err);
        ims_status st = imsi_map_inception(c, IMS_CONVERT_ARCH_INCEPTION_V3, &o, wr, &report, &err);
        TEST_CHECK(st == IMS_ERR_FORMAT, "%s: status %s", label, ims_status_name(st));
        TEST_CHECK(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", label, err.msg, needle);
        imsi_weights_writer_free(wr);
        imsi_ckpt_free(c);
    }
    free(buf);
}

static void test_mapping_errors(void)
{
    expect_mapping_error("missing layer", drop_layer,
                         "missing: Mixed_6b.branch7x7_2.conv.weight; unexpected: Xixed_6b.branch7x7_2.conv.weight");
    expect_mapping_error("kernel size", wrong_kernel, "mis-shaped: Mixed_5b.branch5x5_2.conv.weight (");
    expect_mapping_error("channels", wrong_channels, "'Mixed_5c.branch1x1' takes 15 input channels, but its input has 16");
    expect_mapping_error("fc", wrong_fc, "fc.weight takes 127 features, but Mixed_7c gives 128");
    expect_mapping_error("bn size", wrong_bn, "mis-shaped: Conv2d_3b_1x1.bn.running_var (4)");
    expect_mapping_error("negative variance", negative_var, "'Mixed_7c.branch_pool.bn': channel 3 has running_var -2");

    /* a checkpoint of another architecture, and --arch that does not fit it */
    char path[1024];
    ims_error err = {0};
    ims_convert_report report;
    ims_convert_options o;
    ims_convert_options_init(&o);
    fixture_path(path, sizeof path, "torchvision_layers.txt");
    TEST_CHECK(ims_convert(path, "never.isw", &o, &report, &err) == IMS_ERR_FORMAT, "a text file is refused");
    TEST_CHECK(access("never.isw", F_OK) != 0, "no output on failure");
}

/* ---- BERT ------------------------------------------------------------------------ */

/* Every converted tensor equals its source (q, k, v stacked for qkv). */
static void check_bert_against_source(const ims_weights *w, const ckpt *src, const char *prefix, double tol)
{
    int bad = 0, checked = 0;
    for (size_t i = 0; i < ims_weights_tensor_count(w); i++) {
        const ims_weight_tensor *t = ims_weights_tensor_at(w, i);
        char name[300];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        const char *parts[3] = {name, NULL, NULL};
        char qkv[3][300];
        int n_parts = 1;
        char *fused = strstr(name, "attention.qkv.");
        if (fused) {
            const char *which[3] = {"query", "key", "value"};
            for (int k = 0; k < 3; k++) {
                snprintf(qkv[k], sizeof qkv[k], "%.*sattention.self.%s.%s", (int)(fused - name), name, which[k],
                         fused + strlen("attention.qkv."));
                parts[k] = qkv[k];
            }
            n_parts = 3;
        }
        size_t at = 0, n = (size_t)(t->nbytes / ims_dtype_size(t->dtype));
        for (int k = 0; k < n_parts; k++) {
            char full[320];
            snprintf(full, sizeof full, "%s%s", prefix, parts[k]);
            const ckpt_tensor *s = imsi_ckpt_find(src, full);
            TEST_CHECK(s != NULL, "source has no '%s'", full);
            if (!s)
                return;
            size_t m = (size_t)imsi_ckpt_tensor_numel(s);
            double *v = malloc(m * sizeof *v);
            imsi_ckpt_tensor_read_f64(s, v);
            for (size_t j = 0; j < m && at + j < n; j++) {
                double got = t->dtype == IMS_DTYPE_F16 ? ims_f16_to_f32(((const uint16_t *)t->data)[at + j])
                                                       : ((const float *)t->data)[at + j];
                if (fabs(got - v[j]) > tol * fabs(v[j]) + 6e-8 * (t->dtype == IMS_DTYPE_F16) && bad++ < 5)
                    TEST_CHECK(0, "%s[%zu] = %.9g, source %s = %.9g", name, at + j, got, full, v[j]);
            }
            free(v);
            at += m;
        }
        TEST_CHECK(at == n, "%s: %zu elements, sources have %zu", name, n, at);
        checked++;
    }
    TEST_CHECK(bad == 0, "%d BERT values differ from the source", bad);
    printf("BERT: %d tensors equal their source\n", checked);
}

static void test_bert_dir(const char *dir, int64_t layers, int64_t hidden, int64_t vocab)
{
    ims_error err = {0};
    ims_convert_options o;
    ims_convert_options_init(&o);
    char out[64];
    snprintf(out, sizeof out, "test_convert_bert_%d.isw", (int)getpid());
    for (int pass = 0; pass < 2; pass++) {
        o.dtype = pass ? IMS_DTYPE_F16 : IMS_DTYPE_F32;
        ims_convert_report report;
        ims_status st = ims_convert(dir, out, &o, &report, &err);
        TEST_OK(st, err);
        if (st)
            return;
        ims_weights *w = NULL;
        TEST_OK(ims_weights_open(out, IMS_WEIGHTS_VERIFY_DATA, &w, &err), err);
        unlink(out);
        if (!w)
            return;
        int64_t v = 0;
        TEST_OK(ims_weights_get_i64(w, "bert.num_layers", &v, &err), err);
        TEST_CHECK(v == layers, "num_layers %lld", (long long)v);
        TEST_OK(ims_weights_get_i64(w, "bert.hidden_size", &v, &err), err);
        TEST_CHECK(v == hidden, "hidden %lld", (long long)v);
        const ims_str *tokens;
        size_t count = 0;
        TEST_OK(ims_weights_get_strings(w, "tokenizer.vocab", &tokens, &count, &err), err);
        TEST_CHECK(vocab < 0 || (int64_t)count == vocab, "vocab %zu", count);
        TEST_CHECK(ims_weights_tensor_count(w) == (size_t)(5 + 12 * layers), "%zu tensors", ims_weights_tensor_count(w));
        hf_model_dir d;
        ckpt *src = NULL;
        if (!imsi_hf_model_dir_open(dir, &d, &err)) {
            TEST_OK(imsi_ckpt_open(d.weights_path, &src, &err), err);
            if (src) {
                const char *prefix = imsi_ckpt_find(src, "embeddings.word_embeddings.weight") ? "" : "bert.";
                check_bert_against_source(w, src, prefix, pass ? 4.9e-4 : 0.0);
            }
            imsi_ckpt_free(src);
            imsi_hf_model_dir_free(&d);
        }
        ims_weights_close(w);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_convert INCEPTION_FIXTURE_DIR TINY_BERT_DIR\n");
        return 2;
    }
    fixture_dir = argv[1];
    test_layer_table();
    test_conversions();
    test_mapping_errors();
    test_bert_dir(argv[2], 2, 8, -1);
    /* The real all-MiniLM-L6-v2 (scripts/fetch-minilm.sh), where it was fetched. */
    const char *minilm = getenv("IMS_MINILM_DIR");
    if (minilm && *minilm)
        test_bert_dir(minilm, 6, 384, 30522);
    else
        printf("all-MiniLM-L6-v2 not checked: IMS_MINILM_DIR is not set (scripts/fetch-minilm.sh fetches it)\n");
    return test_finish();
}
