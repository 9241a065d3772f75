/* bench_output.c: `imgsearch bench`'s rows in four formats, and --compare.
 *
 *   md     a header (device, versions, clocks, ceilings) and one markdown table
 *   csv    one header line, then one line per row (RFC 4180 quoting)
 *   json   one document: an array of row objects
 *   jsonl  one row object per line
 *
 * Every CSV and JSON row is self-contained (device, backend, versions as an
 * object, commit, clocks, ceilings, the workload and each parameter as its own
 * field), so rows from several machines can be concatenated and compared.
 * Values that do not apply are null in JSON and empty in CSV. --compare adds
 * the saved run's median for the same workload and parameters, and the ratio
 * of this run's median to it.
 */
#include "bench.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- The saved run (--compare) ---------------------------------------------------------- */

ims_status bench_read_file(const char *path, size_t max_bytes, const char *what, char **data, size_t *size,
                           ims_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return ims_error_set(err, IMS_ERR_IO, "%s: cannot open %s", path, what);
    size_t cap = 1 << 16, n = 0;
    char *p = malloc(cap);
    while (p) {
        n += fread(p + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *q = cap < max_bytes ? realloc(p, cap * 2) : NULL;
        if (!q)
            free(p);
        p = q;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!p || bad) {
        free(p);
        return ims_error_set(err, bad ? IMS_ERR_IO : IMS_ERR_NOMEM, "%s: cannot read %s", path, what);
    }
    *data = p;
    *size = n;
    return IMS_OK;
}

static ims_status baseline_add_doc(bench_baseline *b, ims_json *doc, ims_error *err)
{
    ims_json **docs = realloc(b->docs, (b->doc_count + 1) * sizeof *docs);
    if (!docs) {
        ims_json_free(doc);
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    }
    b->docs = docs;
    b->docs[b->doc_count++] = doc;
    return IMS_OK;
}

static ims_status baseline_add_row(bench_baseline *b, const ims_json_value *row, const char *path, ims_error *err)
{
    if (ims_json_kind_of(row) != IMS_JSON_OBJECT || !ims_json_string(ims_json_member(row, "workload")))
        return ims_error_set(err, IMS_ERR_FORMAT, "%s: row %zu is not a bench row (an object with a \"workload\")",
                             path, b->count + 1);
    const ims_json_value **rows = realloc(b->rows, (b->count + 1) * sizeof *rows);
    if (!rows)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    b->rows = rows;
    b->rows[b->count++] = row;
    return IMS_OK;
}

ims_status bench_baseline_load(const char *path, bench_baseline *b, ims_error *err)
{
    memset(b, 0, sizeof *b);
    char *text = NULL;
    size_t len = 0;
    /* 256 MiB: far more than any run */
    ims_status st = bench_read_file(path, (size_t)1 << 28, "the saved run", &text, &len, err);
    if (!st)
        st = bench_baseline_parse(text, len, path, b, err);
    free(text);
    return st;
}

/* -o json (an array of rows) or -o jsonl (one row per line). */
ims_status bench_baseline_parse(const char *text, size_t len, const char *path, bench_baseline *b, ims_error *err)
{
    memset(b, 0, sizeof *b);
    ims_status st = IMS_OK;
    ims_json *doc = NULL;
    ims_error whole = {0};
    if (ims_json_parse(text, len, &doc, &whole) == IMS_OK && ims_json_kind_of(ims_json_root(doc)) == IMS_JSON_ARRAY) {
        st = baseline_add_doc(b, doc, err);
        const ims_json_value *root = ims_json_root(doc);
        for (size_t i = 0; !st && i < ims_json_count(root); i++)
            st = baseline_add_row(b, ims_json_item(root, i), path, err);
    } else {
        ims_json_free(doc); /* not an array: one object per line */
        size_t line_no = 0;
        for (size_t start = 0; !st && start < len; line_no++) {
            const char *nl = memchr(text + start, '\n', len - start);
            size_t end = nl ? (size_t)(nl - text) : len;
            size_t i = start;
            while (i < end && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r'))
                i++;
            if (i < end) {
                ims_error line_err = {0};
                if (ims_json_parse(text + start, end - start, &doc, &line_err)) {
                    st = ims_error_set(err, IMS_ERR_FORMAT, "%s: line %zu: %s (want a run saved with -o json or -o jsonl)",
                                       path, line_no + 1, line_err.msg);
                    break;
                }
                st = baseline_add_doc(b, doc, err);
                if (!st)
                    st = baseline_add_row(b, ims_json_root(doc), path, err);
            }
            start = end + 1;
        }
    }
    if (!st && b->count == 0)
        st = ims_error_set(err, IMS_ERR_FORMAT, "%s: no rows in the saved run", path);
    if (st)
        bench_baseline_free(b);
    return st;
}

void bench_baseline_free(bench_baseline *b)
{
    for (size_t i = 0; i < b->doc_count; i++)
        ims_json_free(b->docs[i]);
    free(b->docs);
    free(b->rows);
    memset(b, 0, sizeof *b);
}

/* A parameter of a saved row equals ours: both absent (null) or the same. */
static int same_string(const ims_json_value *row, const char *key, const char *ours)
{
    const char *theirs = ims_json_string(ims_json_member(row, key));
    return ours ? theirs && strcmp(ours, theirs) == 0 : !theirs;
}

static int same_number(const ims_json_value *row, const char *key, double ours)
{
    double theirs = 0;
    int has = ims_json_number(ims_json_member(row, key), &theirs);
    return ours ? has && theirs == ours : !has;
}

/* The saved row with r's workload and parameters, or NULL. */
static const ims_json_value *baseline_find(const bench_baseline *b, const bench_row *r)
{
    for (size_t i = 0; b && i < b->count; i++) {
        const ims_json_value *x = b->rows[i];
        if (same_string(x, "workload", r->workload) && same_string(x, "precision", r->precision) &&
            same_number(x, "batch", r->batch) && same_string(x, "seq", r->seq) &&
            same_number(x, "tokens", r->tokens) && same_number(x, "rows", (double)r->rows) &&
            same_number(x, "dim", r->dim) && same_number(x, "k", r->k) && same_number(x, "files", (double)r->files))
            return x;
    }
    return NULL;
}

double bench_baseline_median(const bench_baseline *b, const bench_row *r)
{
    double m = 0;
    const ims_json_value *x = baseline_find(b, r);
    return x && ims_json_number(ims_json_member(x, "median"), &m) && m > 0 ? m : 0;
}

/* ---- Markdown ------------------------------------------------------------------------------ */

/* A table cell: '|' escaped, control characters as spaces. */
static void md_text(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else
            fputc((unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s, f);
    }
}

/* A rate with 4 significant digits at most, never in exponent form below 1e9. */
static void md_number(FILE *f, double v)
{
    if (!isfinite(v))
        fputs("-", f);
    else if (fabs(v) >= 100)
        fprintf(f, "%.1f", v);
    else if (fabs(v) >= 1)
        fprintf(f, "%.2f", v);
    else
        fprintf(f, "%.4f", v);
}

static void md_int(FILE *f, int64_t v)
{
    if (v)
        fprintf(f, "%lld", (long long)v);
    else
        fputs("-", f);
}

static void md_header(const bench_out *o)
{
    const bench_env *e = o->env;
    printf("imgsearch bench on ");
    md_text(stdout, e->info->device);
    printf(" (%s", e->info->name);
    if (e->info->kind == IMS_BACKEND_CPU)
        printf(", %d threads", e->info->threads);
    printf("), commit %s\n\n", e->commit);
    printf("versions:");
    for (size_t i = 0; i < e->version_count; i++) {
        if (strcmp(e->versions[i].name, "commit") == 0)
            continue;
        printf("%s %s ", i ? "," : "", e->versions[i].name);
        md_text(stdout, e->versions[i].version);
    }
    printf("\n\nclocks: ");
    const ims_device_clocks *k = &e->clocks;
    if (k->sm_mhz < 0 && k->memory_mhz < 0 && k->power_limit_w < 0)
        md_text(stdout, k->source);
    else
        printf("SM %d MHz (max %d), memory %d MHz (max %d), power limit %.0f W [%s]", k->sm_mhz, k->sm_max_mhz,
               k->memory_mhz, k->memory_max_mhz, k->power_limit_w, k->source);
    printf("\n\nceilings: copy %.1f GB/s [%s]; GEMM %.3f TFLOP/s [%s]\n", e->peaks.copy_gb_per_s, e->peaks.copy_what,
           e->peaks.gemm_tflop_per_s, e->peaks.gemm_what);
    if (o->base) {
        const ims_json_value *first = o->base->rows[0];
        const char *dev = ims_json_string(ims_json_member(first, "device"));
        const char *commit = ims_json_string(ims_json_member(first, "commit"));
        printf("\ncompared with %s: ", o->opt->compare);
        md_text(stdout, dev ? dev : "an unnamed device");
        printf(", commit ");
        md_text(stdout, commit ? commit : "unknown");
        printf(" (ratio: this run's median / the saved one)\n");
    }
    printf("\n| workload | precision | batch | seq | tokens | N | D | k | files | median | min | max | unit | ms/call "
           "| of GEMM | of copy |%s\n",
           o->base ? " saved | ratio |" : "");
    printf("|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|%s\n", o->base ? "--:|--:|" : "");
}

static void md_fraction(FILE *f, double v)
{
    if (v < 0)
        fputs("-", f);
    else
        fprintf(f, 100 * v < 1 ? "%.2f%%" : "%.1f%%", 100 * v);
}

static void md_row(const bench_out *o, const bench_row *r)
{
    FILE *f = stdout;
    fprintf(f, "| %s | %s | ", r->workload, r->precision ? r->precision : "-");
    md_int(f, r->batch);
    fprintf(f, " | %s | ", r->seq ? r->seq : "-");
    md_int(f, r->tokens);
    fputs(" | ", f);
    md_int(f, r->rows);
    fputs(" | ", f);
    md_int(f, r->dim);
    fputs(" | ", f);
    md_int(f, r->k);
    fputs(" | ", f);
    md_int(f, r->files);
    fputs(" | ", f);
    md_number(f, r->median);
    fputs(" | ", f);
    md_number(f, r->min);
    fputs(" | ", f);
    md_number(f, r->max);
    fprintf(f, " | %s | ", r->unit);
    md_number(f, r->ms_per_call);
    fputs(" | ", f);
    md_fraction(f, r->of_gemm);
    fputs(" | ", f);
    md_fraction(f, r->of_copy);
    fputs(" |", f);
    if (o->base) {
        double m = bench_baseline_median(o->base, r);
        fputs(" ", f);
        if (m > 0)
            md_number(f, m);
        else
            fputs("-", f);
        fputs(" | ", f);
        if (m > 0)
            fprintf(f, "%.3fx", r->median / m);
        else
            fputs("-", f);
        fputs(" |", f);
    }
    fputs("\n", f);
}

/* ---- CSV ------------------------------------------------------------------------------------- */

/* A field, quoted when it holds a comma, a quote or a line break. */
static void csv_text(FILE *f, const char *s)
{
    if (!s)
        return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_number(FILE *f, double v, int present)
{
    if (present && isfinite(v))
        fprintf(f, "%.9g", v);
}

static const char *const csv_columns[] = {
    "device", "backend", "commit", "clocks_sm_mhz", "clocks_memory_mhz", "clocks_sm_max_mhz",
    "clocks_memory_max_mhz", "power_limit_w", "clocks_source", "ceiling_copy_gb_per_s", "ceiling_gemm_tflop_per_s",
    "workload", "precision", "batch", "seq", "tokens", "rows", "dim", "k", "files", "reps", "calls", "median",
    "min", "max", "unit", "ms_per_call", "flop_per_item", "bytes_per_item", "fraction_of_gemm", "fraction_of_copy",
};

static void csv_header(const bench_out *o)
{
    for (size_t i = 0; i < sizeof csv_columns / sizeof csv_columns[0]; i++)
        printf("%s%s", i ? "," : "", csv_columns[i]);
    for (size_t i = 0; i < o->env->version_count; i++)
        if (strcmp(o->env->versions[i].name, "commit"))
            printf(",version_%s", o->env->versions[i].name);
    printf("%s\n", o->base ? ",saved_median,ratio" : "");
}

static void csv_row(const bench_out *o, const bench_row *r)
{
    FILE *f = stdout;
    const bench_env *e = o->env;
    const ims_device_clocks *k = &e->clocks;
    csv_text(f, e->info->device);
    fputc(',', f);
    csv_text(f, e->info->name);
    fputc(',', f);
    csv_text(f, e->commit);
    fputc(',', f);
    csv_number(f, k->sm_mhz, k->sm_mhz >= 0);
    fputc(',', f);
    csv_number(f, k->memory_mhz, k->memory_mhz >= 0);
    fputc(',', f);
    csv_number(f, k->sm_max_mhz, k->sm_max_mhz >= 0);
    fputc(',', f);
    csv_number(f, k->memory_max_mhz, k->memory_max_mhz >= 0);
    fputc(',', f);
    csv_number(f, k->power_limit_w, k->power_limit_w >= 0);
    fputc(',', f);
    csv_text(f, k->source);
    fputc(',', f);
    csv_number(f, e->peaks.copy_gb_per_s, 1);
    fputc(',', f);
    csv_number(f, e->peaks.gemm_tflop_per_s, 1);
    fputc(',', f);
    csv_text(f, r->workload);
    fputc(',', f);
    csv_text(f, r->precision);
    fputc(',', f);
    csv_number(f, r->batch, r->batch);
    fputc(',', f);
    csv_text(f, r->seq);
    fputc(',', f);
    csv_number(f, r->tokens, r->tokens);
    fputc(',', f);
    csv_number(f, (double)r->rows, r->rows);
    fputc(',', f);
    csv_number(f, r->dim, r->dim);
    fputc(',', f);
    csv_number(f, r->k, r->k);
    fputc(',', f);
    csv_number(f, (double)r->files, r->files);
    fprintf(f, ",%d,%d,", r->reps, r->calls);
    csv_number(f, r->median, 1);
    fputc(',', f);
    csv_number(f, r->min, 1);
    fputc(',', f);
    csv_number(f, r->max, 1);
    fputc(',', f);
    csv_text(f, r->unit);
    fputc(',', f);
    csv_number(f, r->ms_per_call, 1);
    fputc(',', f);
    csv_number(f, r->flop_per_item, r->flop_per_item > 0);
    fputc(',', f);
    csv_number(f, r->bytes_per_item, r->bytes_per_item > 0);
    fputc(',', f);
    csv_number(f, r->of_gemm, r->of_gemm >= 0);
    fputc(',', f);
    csv_number(f, r->of_copy, r->of_copy >= 0);
    for (size_t i = 0; i < e->version_count; i++)
        if (strcmp(e->versions[i].name, "commit")) {
            fputc(',', f);
            csv_text(f, e->versions[i].version);
        }
    if (o->base) {
        double m = bench_baseline_median(o->base, r);
        fputc(',', f);
        csv_number(f, m, m > 0);
        fputc(',', f);
        csv_number(f, m > 0 ? r->median / m : 0, m > 0);
    }
    fputc('\n', f);
}

/* ---- JSON ------------------------------------------------------------------------------------ */

static void json_key(FILE *f, const char *key) { fprintf(f, ", \"%s\": ", key); }

static void json_text_or_null(FILE *f, const char *key, const char *s)
{
    json_key(f, key);
    if (s)
        json_string(f, s, strlen(s));
    else
        fputs("null", f);
}

static void json_number_or_null(FILE *f, const char *key, double v, int present)
{
    json_key(f, key);
    if (present)
        json_double(f, v);
    else
        fputs("null", f);
}

/* Counts and sizes as JSON integers (a reader gets ints, not 2.0). */
static void json_int_or_null(FILE *f, const char *key, int64_t v, int present)
{
    json_key(f, key);
    if (present)
        fprintf(f, "%lld", (long long)v);
    else
        fputs("null", f);
}

static void json_row(const bench_out *o, const bench_row *r)
{
    FILE *f = stdout;
    const bench_env *e = o->env;
    const ims_device_clocks *k = &e->clocks;
    fputs("{\"device\": ", f);
    json_string(f, e->info->device, strlen(e->info->device));
    json_text_or_null(f, "backend", e->info->name);
    json_int_or_null(f, "threads", e->info->threads, e->info->kind == IMS_BACKEND_CPU);
    json_text_or_null(f, "commit", e->commit);
    fputs(", \"versions\": {", f);
    for (size_t i = 0, n = 0; i < e->version_count; i++) {
        if (strcmp(e->versions[i].name, "commit") == 0)
            continue;
        fprintf(f, "%s\"%s\": ", n++ ? ", " : "", e->versions[i].name);
        json_string(f, e->versions[i].version, strlen(e->versions[i].version));
    }
    fputs("}, \"clocks\": {\"sm_mhz\": ", f);
    if (k->sm_mhz >= 0)
        fprintf(f, "%d", k->sm_mhz);
    else
        fputs("null", f);
    json_int_or_null(f, "memory_mhz", k->memory_mhz, k->memory_mhz >= 0);
    json_int_or_null(f, "sm_max_mhz", k->sm_max_mhz, k->sm_max_mhz >= 0);
    json_int_or_null(f, "memory_max_mhz", k->memory_max_mhz, k->memory_max_mhz >= 0);
    json_number_or_null(f, "power_limit_w", k->power_limit_w, k->power_limit_w >= 0);
    json_text_or_null(f, "source", k->source);
    fputs("}, \"ceilings\": {\"copy_gb_per_s\": ", f);
    json_double(f, e->peaks.copy_gb_per_s);
    json_number_or_null(f, "gemm_tflop_per_s", e->peaks.gemm_tflop_per_s, 1);
    json_text_or_null(f, "copy_what", e->peaks.copy_what);
    json_text_or_null(f, "gemm_what", e->peaks.gemm_what);
    fputs("}", f);
    json_text_or_null(f, "workload", r->workload);
    json_text_or_null(f, "precision", r->precision);
    json_int_or_null(f, "batch", r->batch, r->batch);
    json_text_or_null(f, "seq", r->seq);
    json_int_or_null(f, "tokens", r->tokens, r->tokens);
    json_int_or_null(f, "rows", r->rows, r->rows);
    json_int_or_null(f, "dim", r->dim, r->dim);
    json_int_or_null(f, "k", r->k, r->k);
    json_int_or_null(f, "files", r->files, r->files);
    json_int_or_null(f, "reps", r->reps, 1);
    json_int_or_null(f, "calls", r->calls, 1);
    json_number_or_null(f, "median", r->median, 1);
    json_number_or_null(f, "min", r->min, 1);
    json_number_or_null(f, "max", r->max, 1);
    json_text_or_null(f, "unit", r->unit);
    json_number_or_null(f, "ms_per_call", r->ms_per_call, 1);
    json_number_or_null(f, "flop_per_item", r->flop_per_item, r->flop_per_item > 0);
    json_number_or_null(f, "bytes_per_item", r->bytes_per_item, r->bytes_per_item > 0);
    json_number_or_null(f, "fraction_of_gemm", r->of_gemm, r->of_gemm >= 0);
    json_number_or_null(f, "fraction_of_copy", r->of_copy, r->of_copy >= 0);
    if (o->base) {
        double m = bench_baseline_median(o->base, r);
        json_number_or_null(f, "saved_median", m, m > 0);
        json_number_or_null(f, "ratio", m > 0 ? r->median / m : 0, m > 0);
    }
    fputs("}", f);
}

/* ---- The run ------------------------------------------------------------------------------------ */

void bench_out_begin(bench_out *o)
{
    o->rows = 0;
    if (o->opt->format == BENCH_FORMAT_MD)
        md_header(o);
    else if (o->opt->format == BENCH_FORMAT_CSV)
        csv_header(o);
    else if (o->opt->format == BENCH_FORMAT_JSON)
        fputs("[", stdout);
    fflush(stdout);
}

void bench_out_row(bench_out *o, const bench_row *r)
{
    switch (o->opt->format) {
    case BENCH_FORMAT_MD: md_row(o, r); break;
    case BENCH_FORMAT_CSV: csv_row(o, r); break;
    case BENCH_FORMAT_JSON:
        fputs(o->rows ? ",\n" : "\n", stdout);
        json_row(o, r);
        break;
    case BENCH_FORMAT_JSONL:
        json_row(o, r);
        fputc('\n', stdout);
        break;
    }
    o->rows++;
    fflush(stdout); /* a long sweep shows each point as it is measured */
}

void bench_out_end(bench_out *o)
{
    if (o->opt->format == BENCH_FORMAT_JSON)
        fputs(o->rows ? "\n]\n" : "]\n", stdout);
    fflush(stdout);
}
