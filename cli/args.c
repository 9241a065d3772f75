/* args.c: how every imgsearch command reads its command line: the argument
 * cursor (options, operands, "--", --help, "--name=value"), the typed option
 * values with one return convention (0, or the exit status after a usage
 * error that names the option and what it accepts), and the one --device /
 * --gpu parser. See cli.h for the loop a command writes. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void usage_error_v(const char *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "imgsearch %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(try 'imgsearch %s --help')\n", cmd);
}

int cli_args_error(cli_args *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    usage_error_v(a->cmd, fmt, ap);
    va_end(ap);
    return a->status = CLI_EXIT_USAGE;
}

int cli_args_stop(cli_args *a, int status)
{
    return a->status = status;
}

/* ---- Typos ------------------------------------------------------------------ */

enum { TYPO_MAX_LEN = 64 };

/* Optimal string alignment distance: edits, with an adjacent swap as one. */
static size_t osa_distance(const char *s, size_t n, const char *t, size_t m)
{
    size_t d[TYPO_MAX_LEN + 1][TYPO_MAX_LEN + 1];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t best = d[i - 1][j - 1] + (s[i - 1] != t[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && s[i - 1] == t[j - 2] && s[i - 2] == t[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

size_t cli_typo_distance(const char *word, const char *name, size_t name_len)
{
    size_t n = strlen(word);
    if (n > TYPO_MAX_LEN || name_len > TYPO_MAX_LEN)
        return SIZE_MAX;
    size_t d = osa_distance(word, n, name, name_len);
    /* Leading dashes are not letters: "-x" is not a typo of "-k". */
    size_t letters = name_len;
    while (letters > 0 && name[name_len - letters] == '-')
        letters--;
    size_t allowed = letters <= 4 ? 1 : 2;
    return d <= allowed && d < letters ? d : SIZE_MAX;
}

/* ---- The cursor ------------------------------------------------------------- */

void cli_args_init(cli_args *a, const char *cmd, const char *help, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->help = help;
    a->argc = argc;
    a->argv = argv;
    a->i = 1; /* argv[0] is the command's name */
    a->status = -1;
}

int cli_args_next(cli_args *a)
{
    if (a->status < 0 && a->inline_value) /* "--json=1": no helper took the value */
        cli_args_error(a, "%s takes no value ('%s=%s')", a->opt, a->opt, a->inline_value);
    if (a->status >= 0)
        return 0;
    a->opt = a->operand = a->inline_value = NULL;
    a->tried_count = 0;
    while (a->i < a->argc) {
        const char *s = a->argv[a->i++];
        if (a->operands_only || s[0] != '-' || s[1] == '\0') { /* "-" is an operand: stdin */
            a->operand = s;
            return 1;
        }
        if (!strcmp(s, "--")) {
            a->operands_only = 1;
            continue;
        }
        const char *eq = s[1] == '-' ? strchr(s, '=') : NULL;
        if (eq) {
            size_t len = (size_t)(eq - s);
            if (len >= sizeof a->name)
                len = sizeof a->name - 1; /* no option is that long: it stays unknown */
            memcpy(a->name, s, len);
            a->name[len] = '\0';
            a->opt = a->name;
            a->inline_value = eq + 1;
        } else {
            a->opt = s;
        }
        if (!strcmp(a->opt, "--help") || !strcmp(a->opt, "-h")) {
            if (a->inline_value)
                return cli_args_error(a, "%s takes no value", a->opt), 0;
            fputs(a->help, stdout);
            a->status = CLI_EXIT_OK;
            return 0;
        }
        return 1;
    }
    return 0;
}

int cli_is(cli_args *a, const char *names)
{
    if (!a->opt)
        return 0;
    size_t opt_len = strlen(a->opt);
    for (const char *p = names; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == opt_len && !memcmp(p, a->opt, len))
            return 1;
        if (a->tried_count < (int)(sizeof a->tried / sizeof a->tried[0])) {
            a->tried[a->tried_count].ptr = p;
            a->tried[a->tried_count++].len = len;
        }
        p += len + (bar != NULL);
    }
    return 0;
}

int cli_args_unknown(cli_args *a)
{
    if (a->operand)
        return cli_args_error(a, "unexpected argument '%s'", a->operand);
    size_t best = SIZE_MAX;
    int at = -1;
    for (int i = 0; i < a->tried_count; i++) {
        size_t d = cli_typo_distance(a->opt, a->tried[i].ptr, a->tried[i].len);
        if (d < best) {
            best = d;
            at = i;
        }
    }
    a->inline_value = NULL;
    if (at >= 0)
        return cli_args_error(a, "unknown option '%s' (did you mean '%.*s'?)", a->opt, (int)a->tried[at].len,
                              a->tried[at].ptr);
    return cli_args_error(a, "unknown option '%s'", a->opt);
}

/* ---- Lists ------------------------------------------------------------------ */

void cli_list_free(cli_list *l)
{
    free(l->items);
    memset(l, 0, sizeof *l);
}

int cli_list_add(cli_args *a, cli_list *l, const char *s)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        const char **p = realloc(l->items, cap * sizeof *p);
        if (!p) {
            fprintf(stderr, "imgsearch %s: out of memory\n", a->cmd);
            return a->status = CLI_EXIT_FAILURE;
        }
        l->items = p;
        l->cap = cap;
    }
    l->items[l->count++] = s;
    return 0;
}

int cli_operand_add(cli_args *a, cli_list *l)
{
    return cli_list_add(a, l, a->operand);
}

/* ---- Values ----------------------------------------------------------------- */

/* The current option's value (its "=value", else the next argument), or NULL
 * after a usage error. */
static const char *take_value(cli_args *a)
{
    const char *v = a->inline_value;
    if (v) {
        a->inline_value = NULL;
        return v;
    }
    if (a->i >= a->argc) {
        cli_args_error(a, "%s needs a value", a->opt);
        return NULL;
    }
    return a->argv[a->i++];
}

int cli_arg_string(cli_args *a, const char **out)
{
    const char *v = take_value(a);
    if (!v)
        return a->status;
    *out = v;
    return 0;
}

int cli_arg_path(cli_args *a, const char **out)
{
    const char *v = take_value(a);
    if (!v)
        return a->status;
    if (!*v)
        return cli_args_error(a, "%s needs a path, not an empty string", a->opt);
    *out = v;
    return 0;
}

int cli_arg_append(cli_args *a, cli_list *l)
{
    const char *v = take_value(a);
    return v ? cli_list_add(a, l, v) : a->status;
}

int cli_arg_int64(cli_args *a, int64_t lo, int64_t hi, int64_t *out)
{
    const char *v = take_value(a);
    if (!v)
        return a->status;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < lo || n > hi)
        return cli_args_error(a, "%s '%s': expected an integer in %lld..%lld", a->opt, v, (long long)lo,
                              (long long)hi);
    *out = (int64_t)n;
    return 0;
}

int cli_arg_int(cli_args *a, int lo, int hi, int *out)
{
    int64_t n = 0;
    int rc = cli_arg_int64(a, lo, hi, &n);
    if (!rc)
        *out = (int)n;
    return rc;
}

int cli_arg_choice(cli_args *a, const char *const *names, int *out)
{
    const char *v = take_value(a);
    if (!v)
        return a->status;
    int count = 0;
    for (; names[count]; count++)
        if (!strcmp(v, names[count])) {
            *out = count;
            return 0;
        }
    /* "--metric 'l2': expected cosine or ip" */
    char list[256];
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < count && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i == 0 ? "" : i + 1 < count ? ", " : " or ",
                                 names[i]);
    return cli_args_error(a, "%s '%s': expected %s", a->opt, v, list);
}

int cli_arg_dtype(cli_args *a, ims_dtype *out)
{
    static const char *const names[] = {"f16", "f32", NULL};
    static const ims_dtype values[] = {IMS_DTYPE_F16, IMS_DTYPE_F32};
    int i = 0;
    int rc = cli_arg_choice(a, names, &i);
    if (!rc)
        *out = values[i];
    return rc;
}

int cli_arg_precision(cli_args *a, int *out)
{
    static const char *const names[] = {"fp32", "tf32", "fp16", NULL};
    static const ims_precision values[] = {IMS_PRECISION_FP32, IMS_PRECISION_TF32, IMS_PRECISION_FP16};
    int i = 0;
    int rc = cli_arg_choice(a, names, &i);
    if (!rc)
        *out = (int)values[i];
    return rc;
}

int cli_arg_mode(cli_args *a, int *out)
{
    static const char *const names[] = {"torchvision", "fid", "clean", NULL};
    int i = 0;
    int rc = cli_arg_choice(a, names, &i);
    if (!rc)
        *out = ims_preprocess_mode_from_name(names[i]);
    return rc;
}

/* --gpu N, a list "0,2,3" (several GPUs) or "all". */
static int arg_gpus(cli_args *a, cli_device *d)
{
    const char *v = take_value(a);
    if (!v)
        return a->status;
    d->gpu_all = !strcmp(v, "all");
    d->gpu_set = 0;
    d->gpu = 0;
    if (d->gpu_all)
        return 0;
    int first = -1;
    for (const char *p = v;;) {
        char *end = NULL;
        long g = (*p >= '0' && *p <= '9') ? strtol(p, &end, 10) : -1;
        if (g < 0 || g > CLI_GPU_MAX || (*end != ',' && *end != '\0')) {
            cli_args_error(a, "--gpu '%s': expected an integer in 0..%d, a list such as 0,1 or 'all'", v, CLI_GPU_MAX);
            return a->status;
        }
        d->gpu_set |= (uint64_t)1 << g;
        first = first < 0 ? (int)g : first;
        if (*end == '\0')
            break;
        p = end + 1;
    }
    d->gpu = first;
    if (!(d->gpu_set & (d->gpu_set - 1)))
        d->gpu_set = 0; /* one GPU: --gpu N */
    return 0;
}

int cli_arg_device(cli_args *a, cli_device *d)
{
    if (!strcmp(a->opt, "--gpu"))
        return arg_gpus(a, d);
    static const char *const names[] = {"auto", "cpu", "cuda", NULL};
    static const cli_device_kind values[] = {CLI_DEVICE_AUTO, CLI_DEVICE_CPU, CLI_DEVICE_CUDA};
    int i = 0;
    int rc = cli_arg_choice(a, names, &i);
    if (!rc)
        d->kind = values[i];
    return rc;
}

int cli_arg_max_pixels(cli_args *a, ims_decode_options *o)
{
    int64_t n = 0;
    int rc = cli_arg_int64(a, 1, INT64_MAX, &n);
    if (!rc) {
        o->max_pixels = (uint64_t)n;
        o->warn_pixels = (uint64_t)n / 2;
    }
    return rc;
}
