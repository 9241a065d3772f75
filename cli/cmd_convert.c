/* cmd_convert.c: `imgsearch convert`: a PyTorch or safetensors checkpoint (or a
 * Hugging Face model directory) to the engine's weight file. */
#include "cli.h"

#include <string.h>

static const char convert_usage[] =
    "usage: imgsearch convert INPUT -o OUTPUT.isw [--arch A] [--dtype f32|f16] [--labels FILE]\n"
    "                         [--transform-input | --no-transform-input]\n"
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

/* --arch: the names the library gives its architectures, "auto" first. */
static int parse_arch(cli_args *a, ims_convert_arch *out)
{
    const char *names[IMS_CONVERT_ARCH_BERT + 2];
    for (int i = IMS_CONVERT_ARCH_AUTO; i <= IMS_CONVERT_ARCH_BERT; i++)
        names[i] = ims_convert_arch_name((ims_convert_arch)i);
    names[IMS_CONVERT_ARCH_BERT + 1] = NULL;
    int i = 0;
    int rc = cli_arg_choice(a, names, &i);
    if (!rc)
        *out = (ims_convert_arch)i;
    return rc;
}

int cmd_convert(int argc, char **argv)
{
    ims_convert_options o;
    ims_convert_options_init(&o);
    const char *input = NULL, *output = NULL;
    int synthetic = 0;
    ims_error err = {0};
    cli_args a;
    cli_args_init(&a, "convert", convert_usage, argc, argv);
    while (cli_args_next(&a)) {
        if (a.operand && !input)
            input = a.operand;
        else if (a.operand)
            cli_args_error(&a, "one INPUT at a time ('%s' and '%s')", input, a.operand);
        else if (cli_is(&a, "-o|--output"))
            cli_arg_path(&a, &output);
        else if (cli_is(&a, "--arch"))
            parse_arch(&a, &o.arch);
        else if (cli_is(&a, "--dtype"))
            cli_arg_dtype(&a, &o.dtype);
        else if (cli_is(&a, "--labels"))
            cli_arg_path(&a, &o.labels_path);
        else if (cli_is(&a, "--synthetic"))
            synthetic = 1;
        else if (cli_is(&a, "--no-transform-input"))
            o.transform_input = 0;
        else if (cli_is(&a, "--transform-input"))
            o.transform_input = 1;
        else
            cli_args_unknown(&a);
    }
    if (a.status >= 0)
        return a.status;
    if (!output)
        return cli_args_error(&a, "missing -o OUTPUT.isw");
    ims_convert_report report;
    if (synthetic) {
        if (input)
            return cli_args_error(&a, "--synthetic takes no INPUT ('%s')", input);
        if (ims_convert_synthetic(o.arch == IMS_CONVERT_ARCH_AUTO ? IMS_CONVERT_ARCH_INCEPTION_V3 : o.arch, output, &o,
                                  &report, &err))
            return cli_error(&err);
        printf("synthetic %s -> %s: %zu tensors, %llu bytes (NOT a trained model: results made with it are "
               "not meaningful)\n",
               ims_convert_arch_name(report.arch), output, report.tensors_out, (unsigned long long)report.bytes_out);
        return CLI_EXIT_OK;
    }
    if (!input)
        return cli_args_error(&a, "missing INPUT");
    const char *slash = strrchr(input, '/');
    o.source = slash && slash[1] ? slash + 1 : input;
    if (ims_convert(input, output, &o, &report, &err))
        return cli_error(&err);
    printf("%s (%s, %zu tensors) -> %s: %s, %zu tensors, %llu bytes (%zu source tensors not used by inference)\n",
           input, report.format, report.tensors_in, output, ims_convert_arch_name(report.arch),
           report.tensors_out, (unsigned long long)report.bytes_out, report.tensors_ignored);
    return CLI_EXIT_OK;
}
