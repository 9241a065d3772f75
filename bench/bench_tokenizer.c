/* bench_tokenizer.c: WordPiece tokenizer throughput, one thread, in MB/s of
 * input text (and lines/s), over a text file's lines repeated.
 *
 * Usage: bench_tokenizer [--seconds S] [--max-len N] VOCAB_TXT TEXT_FILE
 * Lines are taken as they are (no unescaping); each is encoded with
 * truncation at N (default 256), for at least S seconds (default 2).
 * Output: one line
 *   lines L bytes B tokens T seconds S mb_per_s X lines_per_s Y
 * bench/compare_tokenizers.py runs it and Hugging Face's tokenizers side by side.
 */
#include "imgsearch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Splits a file into NUL-terminated lines (buffer owned by *buf). */
static char **read_lines(const char *path, char **buf, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc((size_t)size + 1);
    if (!*buf || fread(*buf, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        return NULL;
    }
    fclose(f);
    (*buf)[size] = '\0';
    size_t n = 0;
    for (long i = 0; i < size; i++)
        n += (*buf)[i] == '\n';
    char **lines = malloc((n + 1) * sizeof *lines);
    if (!lines)
        return NULL;
    size_t k = 0;
    char *p = *buf;
    for (long i = 0; i < size; i++) {
        if ((*buf)[i] == '\n') {
            (*buf)[i] = '\0';
            lines[k++] = p;
            p = *buf + i + 1;
        }
    }
    *count = k;
    return lines;
}

int main(int argc, char **argv)
{
    double seconds = 2.0;
    int max_len = 256, i = 1;
    for (; i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
        if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-len"))
            max_len = atoi(argv[i + 1]);
        else
            break;
    }
    if (argc - i != 2 || max_len < 2) {
        fprintf(stderr, "usage: bench_tokenizer [--seconds S] [--max-len N] VOCAB_TXT TEXT_FILE\n");
        return 2;
    }
    char *vbuf = NULL, *tbuf = NULL;
    size_t nv = 0, nt = 0;
    char **vocab = read_lines(argv[i], &vbuf, &nv);
    char **text = read_lines(argv[i + 1], &tbuf, &nt);
    if (!vocab || !text || nt == 0) {
        fprintf(stderr, "bench_tokenizer: cannot read %s or %s\n", argv[i], argv[i + 1]);
        return 1;
    }
    ims_error err = {0};
    ims_tokenizer *tok = NULL;
    if (ims_tokenizer_create_from_vocab((const char *const *)vocab, nv, NULL, &tok, &err)) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        return 1;
    }
    size_t *lens = malloc(nt * sizeof *lens);
    int32_t *ids = malloc((size_t)max_len * sizeof *ids);
    size_t file_bytes = 0;
    for (size_t k = 0; k < nt; k++)
        file_bytes += lens[k] = strlen(text[k]);
    double t0 = ims_clock_seconds(), t = t0;
    size_t passes = 0, tokens = 0;
    do {
        for (size_t k = 0; k < nt; k++) {
            int n = 0;
            if (ims_tokenizer_encode(tok, text[k], lens[k], ids, max_len, &n, &err)) {
                fprintf(stderr, "bench_tokenizer: line %zu: %s\n", k + 1, err.msg);
                return 1;
            }
            tokens += (size_t)n;
        }
        passes++;
        t = ims_clock_seconds();
    } while (t - t0 < seconds);
    double s = t - t0;
    printf("lines %zu bytes %zu tokens %zu seconds %.3f mb_per_s %.2f lines_per_s %.0f\n", nt * passes,
           file_bytes * passes, tokens, s, (double)(file_bytes * passes) / s / 1e6, (double)(nt * passes) / s);
    ims_tokenizer_free(tok);
    free(ids);
    free(lens);
    free(vocab);
    free(vbuf);
    free(text);
    free(tbuf);
    return 0;
}
