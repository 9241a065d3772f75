/* cmd_tokenize.c: `imgsearch tokenize`: lines of text on stdin -> one line of
 * WordPiece ids (or token strings) per input line on stdout.
 *
 * With --escaped each input line is first unescaped as in the tokenizer corpus
 * (tests/fixtures/tokenizer/make_corpus.py): \\ a backslash, \n LF, \r CR, \xHH
 * one raw byte (so a line may carry LF, CR or invalid UTF-8).
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char tokenize_usage[] =
    "usage: imgsearch tokenize (--text-model M.isw | --vocab vocab.txt) [--max-len N] [--tokens]\n"
    "                          [--escaped] [--cased]\n"
    "\n"
    "Reads lines of UTF-8 text on stdin and prints, for each, the BERT WordPiece ids\n"
    "([CLS] ... [SEP], space separated), exactly as Hugging Face's tokenizers does.\n"
    "\n"
    "  --text-model M.isw  a converted BERT model (its vocabulary and max_seq_length)\n"
    "  --vocab FILE        a vocab.txt instead (uncased BERT, max length 512)\n"
    "  --max-len N         truncate to N tokens, [CLS] and [SEP] included\n"
    "  --tokens            print the token strings instead of the ids\n"
    "  --escaped           unescape each line first: \\\\ \\n \\r \\xHH\n"
    "  --cased             with --vocab: no lowercasing or accent stripping\n";

/* Unescapes s[0..n) in place; returns the new length. */
static size_t unescape(char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            s[o++] = s[i];
            continue;
        }
        char c = s[++i];
        if (c == 'n') {
            s[o++] = '\n';
        } else if (c == 'r') {
            s[o++] = '\r';
        } else if (c == 'x' && i + 2 < n) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            s[o++] = (char)strtoul(hex, NULL, 16);
            i += 2;
        } else {
            s[o++] = c; /* "\\" and anything else: the character itself */
        }
    }
    return o;
}

static int load_vocab(const char *path, int cased, ims_tokenizer **tok, ims_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "imgsearch: %s: %s\n", path, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    char what[64 + 4096];
    snprintf(what, sizeof what, "vocabulary '%s'", path);
    cli_lines in;
    cli_lines_init(&in, f, what);
    char **tokens = NULL, *line;
    size_t n = 0, cap = 0, len;
    int rc = CLI_EXIT_OK, got;
    while ((got = cli_lines_next(&in, &line, &len)) > 0) {
        while (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            char **t = realloc(tokens, cap * sizeof *t);
            if (!t) {
                rc = CLI_EXIT_FAILURE;
                break;
            }
            tokens = t;
        }
        if (!(tokens[n++] = strdup(line))) {
            n--;
            rc = CLI_EXIT_FAILURE;
            break;
        }
    }
    fclose(f);
    cli_lines_free(&in);
    if (got < 0) {
        rc = CLI_EXIT_FAILURE;
    } else if (rc) {
        fprintf(stderr, "imgsearch: out of memory reading %s\n", path);
    } else {
        ims_tokenizer_options o;
        ims_tokenizer_options_init(&o);
        o.lowercase = !cased;
        if (ims_tokenizer_create_from_vocab((const char *const *)tokens, n, &o, tok, err))
            rc = cli_error(err);
    }
    for (size_t i = 0; i < n; i++)
        free(tokens[i]);
    free(tokens);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *vocab = NULL;
    int max_len = 0, tokens = 0, escaped = 0, cased = 0;
    cli_args a;
    cli_args_init(&a, "tokenize", tokenize_usage, argc, argv);
    while (cli_args_next(&a)) {
        if (cli_is(&a, "--text-model"))
            cli_arg_path(&a, &model);
        else if (cli_is(&a, "--vocab"))
            cli_arg_path(&a, &vocab);
        else if (cli_is(&a, "--max-len"))
            cli_arg_int(&a, 2, 1 << 20, &max_len);
        else if (cli_is(&a, "--tokens"))
            tokens = 1;
        else if (cli_is(&a, "--escaped"))
            escaped = 1;
        else if (cli_is(&a, "--cased"))
            cased = 1;
        else
            cli_args_unknown(&a);
    }
    if (a.status >= 0)
        return a.status;
    if (!model == !vocab)
        return cli_args_error(&a, "give one of --text-model or --vocab");

    ims_error err = {0};
    ims_tokenizer *tok = NULL;
    if (model) {
        ims_weights *w = NULL;
        if (ims_weights_open(model, 0, &w, &err))
            return cli_error(&err);
        ims_status st = ims_tokenizer_create_from_weights(w, &tok, &err);
        ims_weights_close(w);
        if (st)
            return cli_error(&err);
    } else {
        int rc = load_vocab(vocab, cased, &tok, &err);
        if (rc)
            return rc;
    }
    if (max_len == 0)
        max_len = ims_tokenizer_max_len(tok);
    int32_t *ids = malloc((size_t)max_len * sizeof *ids);
    cli_lines in;
    cli_lines_init(&in, stdin, "stdin");
    char *line;
    size_t n;
    int rc = ids ? CLI_EXIT_OK : CLI_EXIT_FAILURE, got = 0;
    while (!rc && (got = cli_lines_next(&in, &line, &n)) > 0) {
        if (escaped)
            n = unescape(line, n);
        int n_ids = 0;
        if (ims_tokenizer_encode(tok, line, n, ids, max_len, &n_ids, &err)) {
            rc = cli_error(&err);
            break;
        }
        for (int t = 0; t < n_ids; t++) {
            if (t)
                fputc(' ', stdout);
            if (tokens)
                fputs(ims_tokenizer_decode_token(tok, ids[t]), stdout);
            else
                printf("%d", (int)ids[t]);
        }
        fputc('\n', stdout);
    }
    if (!ids)
        fputs("imgsearch: out of memory\n", stderr);
    if (got < 0)
        rc = CLI_EXIT_FAILURE;
    cli_lines_free(&in);
    free(ids);
    ims_tokenizer_free(tok);
    if (!rc && fflush(stdout) != 0)
        rc = CLI_EXIT_FAILURE;
    return rc;
}
