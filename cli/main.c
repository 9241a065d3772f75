/* main.c: the imgsearch command: the table of subcommands, which is the only
 * place that knows them all; dispatch; the top-level help made from the
 * table; `help`, with "did you mean" for a mistyped command; and `version`.
 * A command's own help is its `--help` (`help CMD` runs `CMD --help`). */
#include "cli.h"

#include <stdint.h>
#include <string.h>

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary; /* one line */
    const char *usage;   /* the arguments after the name, in brief */
} cli_command;

/* The main job first: build an index, search it; then the tools. */
static const cli_command commands[] = {
    {"index", cmd_index, "index image folders, or bring an index up to date with them (--compact, --upgrade)",
     "DIR|FILE... -o INDEX --image-model M.isw [--text-model M.isw] [--device D]"},
    {"search", cmd_search, "the images of an index most like a text or an example image",
     "INDEX (--text T | --image F | --queries FILE)... [-k K] [--device D]"},
    {"index-set", cmd_index_set, "shards made with index --shard, read as one index (a set file)",
     "create OUT.set SHARD... | list SET"},
    {"serve", cmd_serve, "a local web page and JSON API for searching an index, models loaded once",
     "INDEX [--host 127.0.0.1] [--port 8080] [--device D]"},
    {"embed-text", cmd_embed_text, "sentence embeddings of texts (stdin's lines or --text), .npy or JSON",
     "--text-model M.isw [--text T]... [-o OUT.npy] [--device D]"},
    {"classify", cmd_classify, "the top-k classes of images under an Inception-v3 model",
     "IMAGE... --image-model M.isw [-k K] [--device D]"},
    {"embed-image", cmd_embed_image, "Inception-v3 features (or logits) of images as a NumPy array",
     "IMAGE... --image-model M.isw -o OUT.npy [--device D]"},
    {"knn", cmd_knn, "exact top-k cosine search of your own embedding table (.npz or JSON out)",
     "TABLE.npy QUERIES.npy -k K [--device D]"},
    {"fid", cmd_fid, "FID (and KID, Inception Score) between image folders or .npz statistics",
     "A [B] [--image-model M.isw] [--save-stats OUT.npz] [--kid] [--is] [--device D]"},
    {"preprocess", cmd_preprocess, "the exact network input of images as a NumPy array",
     "IMAGE... -o OUT.npy [--mode torchvision|fid|clean] [--uint8]"},
    {"tokenize", cmd_tokenize, "lines on stdin -> BERT WordPiece ids, one line per input line",
     "(--text-model M.isw | --vocab vocab.txt)"},
    {"convert", cmd_convert, "a PyTorch/safetensors checkpoint or Hugging Face directory to a weight file",
     "INPUT -o OUT.isw"},
    {"info", cmd_info, "a weight file's header, metadata and tensors, or an index's rows, failures and models",
     "FILE|INDEX [--json]"},
    {"bench", cmd_bench, "imgsearch's workloads timed against this device's measured ceilings",
     "[--quick] [--json] [--device D]"},
    {"devices", cmd_devices, "the compute backends and GPUs this build can use", ""},
    {"version", cmd_version, "the versions of imgsearch and the libraries it links", ""},
    {"help", cmd_help, "the help of imgsearch, or of one command", "[COMMAND]"},
};

enum { COMMAND_COUNT = sizeof commands / sizeof commands[0] };

static void print_usage(FILE *out)
{
    fputs("usage: imgsearch <command> [options]\n"
          "\n"
          "Search large image collections by text or by example image, on the GPU.\n"
          "\n"
          "commands:\n",
          out);
    for (int i = 0; i < COMMAND_COUNT; i++)
        fprintf(out, "  %s%s%s\n      %s\n", commands[i].name, commands[i].usage[0] ? " " : "", commands[i].usage,
                commands[i].summary);
    fputs("\n"
          "D is auto (the default: cuda when a GPU is usable, else cpu), cpu or cuda;\n"
          "--gpu N picks the GPU. '--' ends the options: later arguments are operands\n"
          "even when they begin with '-'. Run 'imgsearch help <command>' or\n"
          "'imgsearch <command> --help' for a command's options.\n"
          "Exit status: 0 success, 1 failure (one line on stderr says why), 2 bad command\n"
          "line, 3 done but some images were skipped (each reported on stderr).\n",
          out);
}

static const cli_command *find_command(const char *name)
{
    for (int i = 0; i < COMMAND_COUNT; i++)
        if (!strcmp(commands[i].name, name))
            return &commands[i];
    return NULL;
}

/* "imgsearch: unknown command 'serch' (did you mean 'search'?)"; exit 2. */
static int unknown_command(const char *name)
{
    const char *what = name[0] == '-' ? "option" : "command";
    size_t best = SIZE_MAX;
    const char *nearest = NULL;
    for (int i = 0; i < COMMAND_COUNT; i++) {
        size_t d = cli_typo_distance(name, commands[i].name, strlen(commands[i].name));
        if (d < best) {
            best = d;
            nearest = commands[i].name;
        }
    }
    if (nearest)
        fprintf(stderr, "imgsearch: unknown %s '%s' (did you mean '%s'?)\n", what, name, nearest);
    else
        fprintf(stderr, "imgsearch: unknown %s '%s'\n", what, name);
    fputs("(try 'imgsearch --help')\n", stderr);
    return CLI_EXIT_USAGE;
}

static const char help_usage[] =
    "usage: imgsearch help [COMMAND]\n"
    "\n"
    "Prints the list of commands, or COMMAND's own help (as 'imgsearch COMMAND --help').\n";

static int cmd_help(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "help", help_usage, argc, argv);
    const char *topic = NULL;
    while (cli_args_next(&a)) {
        if (a.operand && !topic)
            topic = a.operand;
        else
            cli_args_unknown(&a);
    }
    if (a.status >= 0)
        return a.status;
    if (!topic) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    const cli_command *c = find_command(topic);
    if (!c)
        return unknown_command(topic);
    char name[32], flag[] = "--help";
    snprintf(name, sizeof name, "%s", c->name);
    char *help_argv[] = {name, flag, NULL};
    return c->run(2, help_argv);
}

static const char version_usage[] =
    "usage: imgsearch version\n"
    "\n"
    "Prints the versions of imgsearch and of every library it links (CUDA, cuBLAS,\n"
    "cuDNN, libpng, libjpeg-turbo, zlib, OpenBLAS, ...).\n";

static int cmd_version(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "version", version_usage, argc, argv);
    while (cli_args_next(&a))
        cli_args_unknown(&a);
    if (a.status >= 0)
        return a.status;
    char buf[2048];
    ims_library_versions(buf, sizeof buf);
    fputs(buf, stdout);
    return CLI_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h"))
        name = "help";
    else if (!strcmp(name, "--version"))
        name = "version";
    const cli_command *c = find_command(name);
    if (!c)
        return unknown_command(name);
    return cli_finish_output(c->run(argc - 1, argv + 1));
}
