/* main.c: the imgsearch command: subcommand dispatch, help and version. */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

static const char usage[] =
    "usage: imgsearch <command> [options]\n"
    "\n"
    "Search large image collections by text or by example image, on the GPU.\n"
    "\n"
    "commands:\n"
    "  convert INPUT -o OUT.isw\n"
    "                  convert a PyTorch/safetensors checkpoint or a Hugging Face model\n"
    "                  directory to imgsearch's weight file (no checkpoint code is run)\n"
    "  info FILE       print a weight file's header, metadata and tensor table\n"
    "                  (--json for machines, --verify to check tensor checksums)\n"
    "  preprocess IMAGE... -o OUT.npy\n"
    "                  write the exact network input of images as a NumPy array\n"
    "                  (--mode torchvision|fid, --uint8 for the cropped pixels)\n"
    "  bench           measure imgsearch's workloads against this device's ceilings\n"
    "                  (--quick for a short run, --json for machines)\n"
    "  devices         list the compute backends and GPUs this build can use\n"
    "  classify IMAGE... --image-model M.isw\n"
    "                  the top-k classes of images under an Inception-v3 model\n"
    "  embed-image IMAGE... --image-model M.isw -o OUT.npy\n"
    "                  Inception-v3 features (or logits) of images as a NumPy array\n"
    "  tokenize --text-model M.isw\n"
    "                  lines on stdin -> BERT WordPiece ids, one line per input line\n"
    "  knn TABLE.npy QUERIES.npy -k K\n"
    "                  exact top-k cosine search of an embedding table (.npz or JSON out)\n"
    "  version         print the versions of imgsearch and the libraries it links\n"
    "  help            print this message\n"
    "\n"
    "Run 'imgsearch <command> --help' for a command's options.\n"
    "Exit status: 0 success, 1 failure (the message says why), 2 bad command line.\n";

int cli_error(const ims_error *err)
{
    fprintf(stderr, "imgsearch: %s\n", err->msg[0] ? err->msg : ims_status_name(err->code));
    return CLI_EXIT_FAILURE;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "imgsearch %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(try 'imgsearch %s --help')\n", cmd);
    return CLI_EXIT_USAGE;
}

static int cmd_version(int argc, char **argv)
{
    (void)argc, (void)argv;
    char buf[2048];
    ims_library_versions(buf, sizeof buf);
    fputs(buf, stdout);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage, stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version"))
        return cmd_version(argc - 1, argv + 1);
    if (!strcmp(cmd, "convert"))
        return cmd_convert(argc - 1, argv + 1);
    if (!strcmp(cmd, "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "preprocess"))
        return cmd_preprocess(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "devices"))
        return cmd_devices(argc - 1, argv + 1);
    if (!strcmp(cmd, "index"))
        return cmd_index(argc - 1, argv + 1);
    if (!strcmp(cmd, "search"))
        return cmd_search(argc - 1, argv + 1);
    if (!strcmp(cmd, "embed-text"))
        return cmd_embed_text(argc - 1, argv + 1);
    if (!strcmp(cmd, "classify"))
        return cmd_classify(argc - 1, argv + 1);
    if (!strcmp(cmd, "embed-image"))
        return cmd_embed_image(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize"))
        return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "knn"))
        return cmd_knn(argc - 1, argv + 1);
    fprintf(stderr, "imgsearch: unknown command '%s'\n\n%s", cmd, usage);
    return CLI_EXIT_USAGE;
}
