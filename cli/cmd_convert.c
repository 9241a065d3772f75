/* cmd_convert.c: `imgsearch convert`: a PyTorch or safetensors checkpoint (or a
 * Hugging Face model directory) to the engine's weight file. */
#include "cli.h"

#include <string.h>

static const char convert_usage[] =
    "usage: imgsearch convert INPUT -o OUTPUT.isw [options]\n"
    "       imgsearch convert --synthetic -o OUTPUT.isw\n"
    "\n"
    "Converts a checkpoint to imgsearch's weight file without running any of its\n"
    "code (pickle is read by a restricted parser that refuses anything else).\n"
    "INPUT: a torch.save file (zip or legacy .pth), a .safetensors file, or a\n"
    "Hugging Face / sentence-transformers model directory (BERT).\n"
    "\n"
    "  -o, --output FILE       the weight file to write (written crash-safely)\n"
    "  --arch NAME             inception_v3, inception_v3_fid or bert (default: from the keys)\n"
    "  --dtype f32|f16         storage type of the weight matrices (default f32; biases stay f32)\n"
    "  --no-transform-input    Inception: the model was trained without torchvision's\n"
    "                          transform_input (the pretrained weights need it: on by default)\n"
    "  --transform-input       force it on (for example for an FID checkpoint)\n"
    "  --labels FILE           Inception: class names, one per line (default: ImageNet's 1000)\n"
    "  --synthetic             no INPUT: a full-size inception_v3 with synthetic weights\n"
    "                          (a documented generator; for benchmarks and tests where the\n"
    "                          published weights cannot be downloaded; marked synthetic)\n";

int cmd_convert(int argc, char **argv)
{
    ims_convert_options o;
    ims_convert_options_init(&o);
    const char *input = NULL, *output = NULL;
    int synthetic = 0;
    ims_error err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(convert_usage, stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output") || !strcmp(a, "--arch") || !strcmp(a, "--dtype") ||
                   !strcmp(a, "--labels")) {
            if (!value)
                return cli_usage_error("convert", "%s needs a value", a);
            i++;
            if (!strcmp(a, "--arch")) {
                if (ims_convert_arch_parse(value, &o.arch, &err))
                    return cli_usage_error("convert", "%s", err.msg);
            } else if (!strcmp(a, "--dtype")) {
                if (!strcmp(value, "f32"))
                    o.dtype = IMS_DTYPE_F32;
                else if (!strcmp(value, "f16"))
                    o.dtype = IMS_DTYPE_F16;
                else
                    return cli_usage_error("convert", "--dtype is f32 or f16, not '%s'", value);
            } else if (!strcmp(a, "--labels")) {
                o.labels_path = value;
            } else {
                output = value;
            }
        } else if (!strcmp(a, "--synthetic")) {
            synthetic = 1;
        } else if (!strcmp(a, "--no-transform-input")) {
            o.transform_input = 0;
        } else if (!strcmp(a, "--transform-input")) {
            o.transform_input = 1;
        } else if (a[0] == '-' && a[1] != '\0') {
            return cli_usage_error("convert", "unknown option '%s'", a);
        } else if (input) {
            return cli_usage_error("convert", "one INPUT at a time ('%s' and '%s')", input, a);
        } else {
            input = a;
        }
    }
    if (!output)
        return cli_usage_error("convert", "missing -o OUTPUT.isw");
    ims_convert_report report;
    if (synthetic) {
        if (input)
            return cli_usage_error("convert", "--synthetic takes no INPUT ('%s')", input);
        if (ims_convert_synthetic(o.arch == IMS_CONVERT_ARCH_AUTO ? IMS_CONVERT_ARCH_INCEPTION_V3 : o.arch, output, &o,
                                  &report, &err))
            return cli_error(&err);
        printf("synthetic %s -> %s: %zu tensors, %llu bytes (NOT a trained model: results made with it are "
               "not meaningful)\n",
               ims_convert_arch_name(report.arch), output, report.tensors_out, (unsigned long long)report.bytes_out);
        return CLI_EXIT_OK;
    }
    if (!input)
        return cli_usage_error("convert", "missing INPUT");
    const char *slash = strrchr(input, '/');
    o.source = slash && slash[1] ? slash + 1 : input;
    if (ims_convert(input, output, &o, &report, &err))
        return cli_error(&err);
    printf("%s (%s, %zu tensors) -> %s: %s, %zu tensors, %llu bytes (%zu source tensors not used by inference)\n",
           input, report.format, report.tensors_in, output, ims_convert_arch_name(report.arch),
           report.tensors_out, (unsigned long long)report.bytes_out, report.tensors_ignored);
    return CLI_EXIT_OK;
}
