/* cmd_info.c: `imgsearch info FILE|INDEX`: a weight file's header, metadata and
 * tensor table, or an index folder's contents (rows live and tombstoned,
 * failures by reason, models, settings, size on disk, last commit), as text
 * for people or JSON (--json) for machines. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct info_options {
    const char *path;
    int json, verify, all;
} info_options;

static const char info_usage[] =
    "usage: imgsearch info [--json] [--verify] [--all] FILE|INDEX|SET\n"
    "\n"
    "Prints a weight file's header, metadata and tensor table. The file is fully\n"
    "validated first; a malformed file is reported with the field at fault.\n"
    "Given an index folder: its format version, rows (live and tombstoned),\n"
    "failures by reason, models, settings, roots, chunks and size on disk, and\n"
    "when it was last committed (the index's files are checked by size; with\n"
    "--verify, its tables by CRC-32 too). Given an index set (a set file or a\n"
    "folder of shards): its totals, then each shard as an index.\n"
    "\n"
    "  --json     one JSON object on stdout\n"
    "  --verify   also check every tensor's (every table's) crc32 (reads all the data)\n"
    "  --all      print arrays whole (text mode shows the first 8 elements); every\n"
    "             failure reason of an index (text mode shows the 10 commonest)\n";

enum { PREVIEW = 8 };

static void print_meta_values(const ims_meta *m, size_t limit, int json)
{
    size_t n = (size_t)m->count < limit ? (size_t)m->count : limit;
    int is_array = m->type == IMS_META_I64_ARRAY || m->type == IMS_META_F64_ARRAY || m->type == IMS_META_STRING_ARRAY;
    if (json && is_array)
        fputc('[', stdout);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", stdout);
        switch (m->type) {
        case IMS_META_I64:
        case IMS_META_I64_ARRAY: printf("%" PRId64, ims_meta_i64_at(m, i)); break;
        case IMS_META_F64:
        case IMS_META_F64_ARRAY:
            if (json)
                json_double(stdout, ims_meta_f64_at(m, i));
            else
                printf("%.9g", ims_meta_f64_at(m, i));
            break;
        case IMS_META_STRING:
        case IMS_META_STRING_ARRAY: json_string(stdout, m->strings[i].ptr, m->strings[i].len); break;
        }
    }
    if (json && is_array)
        fputc(']', stdout);
    else if (n < m->count)
        printf(", ... (%" PRIu64 " more)", m->count - n);
}

static void shape_text(const ims_weight_tensor *t, char *buf, size_t size)
{
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int d = 0; d < t->ndim && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, d ? ", %" PRId64 : "%" PRId64, t->shape[d]);
    if (used < size)
        snprintf(buf + used, size - used, ")");
}

static void print_text(const ims_weights *w, const info_options *o)
{
    const ims_weights_header *h = ims_weights_get_header(w);
    printf("file        %s (%" PRIu64 " bytes)\n", o->path, h->file_size);
    printf("format      imgsearch weights, version %u, little-endian, alignment %u\n", h->version, h->alignment);
    printf("metadata    %" PRIu64 " entries, %" PRIu64 " bytes at offset %" PRIu64 "\n", h->metadata_count,
           h->metadata_size, h->metadata_offset);
    printf("directory   %" PRIu64 " tensors, %" PRIu64 " bytes at offset %" PRIu64 "\n", h->tensor_count,
           h->directory_size, h->directory_offset);
    printf("data        %" PRIu64 " bytes at offset %" PRIu64 "\n", h->data_size, h->data_offset);
    printf("checksums   header and index ok (index crc32 0x%08x); tensor data %s\n", h->index_crc32,
           o->verify ? "ok" : "not checked (use --verify)");

    printf("\nmetadata:\n");
    for (size_t i = 0; i < ims_weights_meta_count(w); i++) {
        const ims_meta *m = ims_weights_meta_at(w, i);
        char type[48];
        if (m->type == IMS_META_I64_ARRAY || m->type == IMS_META_F64_ARRAY || m->type == IMS_META_STRING_ARRAY)
            snprintf(type, sizeof type, "%.*s[%" PRIu64 "]", (int)strlen(ims_meta_type_name(m->type)) - 2,
                     ims_meta_type_name(m->type), m->count);
        else
            snprintf(type, sizeof type, "%s", ims_meta_type_name(m->type));
        printf("  %-36.*s %-14s ", (int)m->key.len, m->key.ptr, type);
        print_meta_values(m, o->all ? SIZE_MAX : PREVIEW, 0);
        fputc('\n', stdout);
    }

    printf("\ntensors:\n  %-5s %-44s %-5s %-22s %12s %12s  %s\n", "#", "name", "dtype", "shape", "offset", "bytes",
           "crc32");
    uint64_t elements = 0, bytes = 0;
    for (size_t i = 0; i < ims_weights_tensor_count(w); i++) {
        const ims_weight_tensor *t = ims_weights_tensor_at(w, i);
        char shape[96];
        shape_text(t, shape, sizeof shape);
        printf("  %-5zu %-44.*s %-5s %-22s %12" PRIu64 " %12" PRIu64 "  0x%08x\n", i, (int)t->name.len, t->name.ptr,
               ims_dtype_name(t->dtype), shape, t->offset, t->nbytes, t->crc32);
        elements += t->nbytes / ims_dtype_size(t->dtype);
        bytes += t->nbytes;
    }
    printf("total: %zu tensors, %" PRIu64 " elements, %" PRIu64 " bytes\n", ims_weights_tensor_count(w), elements,
           bytes);
}

static void print_json(const ims_weights *w, const info_options *o)
{
    const ims_weights_header *h = ims_weights_get_header(w);
    printf("{\"file\": ");
    json_string(stdout, o->path, strlen(o->path));
    printf(", \"version\": %u, \"alignment\": %u, \"file_size\": %" PRIu64 ", \"metadata_count\": %" PRIu64
           ", \"metadata_offset\": %" PRIu64 ", \"metadata_size\": %" PRIu64 ", \"tensor_count\": %" PRIu64
           ", \"directory_offset\": %" PRIu64 ", \"directory_size\": %" PRIu64 ", \"data_offset\": %" PRIu64
           ", \"data_size\": %" PRIu64 ", \"index_crc32\": %u, \"data_verified\": %s,\n \"metadata\": [",
           h->version, h->alignment, h->file_size, h->metadata_count, h->metadata_offset, h->metadata_size,
           h->tensor_count, h->directory_offset, h->directory_size, h->data_offset, h->data_size, h->index_crc32,
           o->verify ? "true" : "false");
    for (size_t i = 0; i < ims_weights_meta_count(w); i++) {
        const ims_meta *m = ims_weights_meta_at(w, i);
        printf("%s\n  {\"key\": ", i ? "," : "");
        json_string(stdout, m->key.ptr, m->key.len);
        printf(", \"type\": \"%s\", \"value\": ", ims_meta_type_name(m->type));
        print_meta_values(m, SIZE_MAX, 1);
        fputc('}', stdout);
    }
    printf("],\n \"tensors\": [");
    for (size_t i = 0; i < ims_weights_tensor_count(w); i++) {
        const ims_weight_tensor *t = ims_weights_tensor_at(w, i);
        printf("%s\n  {\"name\": ", i ? "," : "");
        json_string(stdout, t->name.ptr, t->name.len);
        printf(", \"dtype\": \"%s\", \"shape\": [", ims_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++)
            printf(d ? ", %" PRId64 : "%" PRId64, t->shape[d]);
        printf("], \"offset\": %" PRIu64 ", \"nbytes\": %" PRIu64 ", \"crc32\": %u}", t->offset, t->nbytes, t->crc32);
    }
    printf("]}\n");
}

/* ---- An index folder ------------------------------------------------------------------------ */

typedef struct reason_count {
    const char *reason;
    int64_t count;
} reason_count;

static int compare_reasons(const void *a, const void *b)
{
    const reason_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->reason, y->reason);
}

static int compare_reason_text(const void *a, const void *b)
{
    return strcmp(((const reason_count *)a)->reason, ((const reason_count *)b)->reason);
}

/* The live failures grouped by reason, commonest first; *n groups. */
static reason_count *failure_reasons(const ims_index *idx, size_t *n)
{
    int64_t total = ims_index_failure_count(idx);
    reason_count *all = malloc((size_t)(total ? total : 1) * sizeof *all);
    *n = 0;
    if (!all)
        return NULL;
    for (int64_t i = 0; i < total; i++)
        if (ims_index_failure_live(idx, i))
            all[(*n)++] = (reason_count){ims_index_failure(idx, i)->reason, 1};
    qsort(all, *n, sizeof *all, compare_reason_text);
    size_t groups = 0;
    for (size_t i = 0; i < *n; i++) {
        if (groups && !strcmp(all[groups - 1].reason, all[i].reason))
            all[groups - 1].count++;
        else
            all[groups++] = all[i];
    }
    qsort(all, groups, sizeof *all, compare_reasons);
    *n = groups;
    return all;
}

static void print_model_text(const char *what, const ims_weights_identity *m)
{
    printf("%-12s", what);
    text_safe(stdout, m->name);
    printf(" (");
    text_safe(stdout, m->path);
    printf(", %" PRIu64 " bytes, crc32 %08x%s)\n", m->bytes, m->crc32, m->synthetic ? ", synthetic" : "");
}

static void print_model_json(const char *key, const ims_weights_identity *m)
{
    printf(", \"%s\": {", key);
    json_path(stdout, "name", m->name);
    printf(", ");
    json_path(stdout, "path", m->path);
    printf(", \"bytes\": %" PRIu64 ", \"crc32\": \"%08x\", \"synthetic\": %s}", m->bytes, m->crc32,
           m->synthetic ? "true" : "false");
}

/* One index (or one shard of a set, named path); JSON without the newline. */
static int info_index(const info_options *o, const ims_index *idx, const char *path)
{
    ims_error err = {0};
    if (o->verify) { /* every table's CRC-32, as a search with verification loads them */
        const ims_index_config *c = ims_index_get_config(idx);
        ims_backend *be = NULL;
        ims_knn_table *knn = NULL;
        ims_knn_options ko;
        ims_knn_options_init(&ko);
        ims_status st = ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err);
        for (int t = 0; !st && t < 2; t++) {
            if (t == IMS_INDEX_TABLE_SEMANTIC && c->semantic_dim == 0)
                break;
            st = ims_knn_create(be, t ? c->semantic_dim : c->visual_dim, &ko, &knn, &err);
            if (!st)
                st = ims_index_load_knn(idx, (ims_index_table)t, 1, knn, &err);
            ims_knn_free(knn);
            knn = NULL;
        }
        ims_backend_free(be);
        if (st)
            return cli_error(&err);
    }
    ims_index_info info;
    ims_index_get_info(idx, &info);
    const ims_index_config *c = ims_index_get_config(idx);
    size_t groups = 0;
    reason_count *reasons = failure_reasons(idx, &groups);
    const char *mode = ims_preprocess_mode_name(c->mode);
    const char *precision = c->precision >= 0 ? ims_precision_name((ims_precision)c->precision) : NULL;
    if (o->json) {
        printf("{");
        json_path(stdout, "index", path);
        printf(", \"version\": %d, \"committed\": ", info.version);
        if (info.committed[0])
            json_string(stdout, info.committed, strlen(info.committed));
        else
            printf("null");
        printf(", \"rows\": {\"live\": %" PRId64 ", \"tombstoned\": %" PRId64 ", \"stored\": %" PRId64 "}",
               info.live_rows, info.rows - info.live_rows, info.rows);
        printf(", \"failures\": {\"live\": %" PRId64 ", \"tombstoned\": %" PRId64 ", \"by_reason\": [",
               info.live_failures, info.failures - info.live_failures);
        for (size_t i = 0; reasons && i < groups; i++) {
            printf("%s{\"reason\": ", i ? ", " : "");
            json_string(stdout, reasons[i].reason, strlen(reasons[i].reason));
            printf(", \"count\": %" PRId64 "}", reasons[i].count);
        }
        printf("]}, \"chunks\": %" PRId64 ", \"chunk_rows\": %d, \"disk_bytes\": %" PRIu64, info.chunks,
               c->chunk_rows, info.disk_bytes);
        printf(", \"mode\": \"%s\", \"dtype\": \"%s\", \"precision\": ", mode, ims_dtype_name(c->dtype));
        if (precision)
            printf("\"%s\"", precision);
        else
            printf("null");
        printf(", \"visual_dim\": %d, \"semantic_dim\": %d", c->visual_dim, c->semantic_dim);
        if (c->semantic_dim)
            printf(", \"conse_top\": %d", c->conse_top);
        print_model_json("image_model", &c->image_model);
        if (c->semantic_dim)
            print_model_json("text_model", &c->text_model);
        printf(", \"roots\": [");
        for (int64_t i = 0; i < info.root_count; i++) {
            const char *r = ims_index_root(idx, i);
            printf("%s", i ? ", " : "");
            json_string(stdout, r, strlen(r));
        }
        int shard = 0, shards = ims_index_shard(idx, &shard);
        printf("], \"shard\": ");
        if (shards)
            printf("{\"index\": %d, \"count\": %d}", shard, shards);
        else
            printf("null");
        printf(", \"tables_verified\": %s}", o->verify ? "true" : "false");
    } else {
        printf("index       ");
        text_safe(stdout, path);
        printf(" (format version %d%s)\n", info.version, info.version < 2 ? ": upgrade it with imgsearch index --upgrade" : "");
        printf("rows        %" PRId64 " live, %" PRId64 " tombstoned (%" PRId64 " stored in %" PRId64
               " chunks of at most %d)\n", info.live_rows, info.rows - info.live_rows, info.rows, info.chunks,
               c->chunk_rows);
        printf("failures    %" PRId64 " live, %" PRId64 " tombstoned\n", info.live_failures,
               info.failures - info.live_failures);
        size_t shown = o->all ? groups : groups < 10 ? groups : 10;
        for (size_t i = 0; reasons && i < shown; i++) {
            printf("  %8" PRId64 "  ", reasons[i].count);
            text_safe(stdout, reasons[i].reason);
            fputc('\n', stdout);
        }
        if (shown < groups)
            printf("  ... %zu more reasons (--all)\n", groups - shown);
        print_model_text("image model", &c->image_model);
        if (c->semantic_dim)
            print_model_text("text model", &c->text_model);
        printf("rows are    %s preprocessing, %s tables (%d visual", mode, ims_dtype_name(c->dtype), c->visual_dim);
        if (c->semantic_dim)
            printf(", %d semantic, ConSE over %d classes", c->semantic_dim, c->conse_top);
        printf("), precision %s\n", precision ? precision : "not recorded");
        for (int64_t i = 0; i < info.root_count; i++) {
            printf("%s", i ? "            " : "roots       ");
            text_safe(stdout, ims_index_root(idx, i));
            fputc('\n', stdout);
        }
        int shard = 0, shards = ims_index_shard(idx, &shard);
        if (shards)
            printf("shard       %d of %d (the files whose path hashes to %d: index --shard %d/%d)\n", shard, shards,
                   shard, shard, shards);
        printf("on disk     %.1f MiB (%" PRIu64 " bytes)\n", (double)info.disk_bytes / (1 << 20), info.disk_bytes);
        printf("committed   %s\n", info.committed[0] ? info.committed : "(not recorded: format version 1)");
        if (o->verify)
            printf("checksums   every table's CRC-32 ok\n");
    }
    free(reasons);
    return CLI_EXIT_OK;
}

/* An index, or every shard of a set and their totals. */
static int info_set(const info_options *o)
{
    ims_error err = {0};
    ims_index_set *set = NULL;
    if (ims_index_set_open(o->path, &set, &err))
        return cli_error(&err);
    int rc = CLI_EXIT_OK;
    int64_t n = ims_index_set_shard_count(set);
    if (!ims_index_set_is_set(set)) {
        rc = info_index(o, ims_index_set_shard(set, 0), o->path);
        if (o->json && !rc)
            printf("\n");
        ims_index_set_close(set);
        return rc;
    }
    ims_index_info sum = {0};
    for (int64_t i = 0; i < n; i++) {
        ims_index_info info;
        ims_index_get_info(ims_index_set_shard(set, i), &info);
        sum.rows += info.rows, sum.live_rows += info.live_rows, sum.failures += info.failures;
        sum.live_failures += info.live_failures, sum.disk_bytes += info.disk_bytes;
    }
    if (o->json) {
        printf("{");
        json_path(stdout, "index_set", o->path);
        printf(", \"shard_count\": %" PRId64 ", \"rows\": {\"live\": %" PRId64 ", \"stored\": %" PRId64
               "}, \"failures\": {\"live\": %" PRId64 ", \"stored\": %" PRId64 "}, \"disk_bytes\": %" PRIu64
               ", \"shards\": [",
               n, sum.live_rows, sum.rows, sum.live_failures, sum.failures, sum.disk_bytes);
    } else {
        printf("index set   ");
        text_safe(stdout, o->path);
        printf(": %" PRId64 " shards, %" PRId64 " live rows, %" PRId64 " live failures, %.1f MiB\n", n,
               sum.live_rows, sum.live_failures, (double)sum.disk_bytes / (1 << 20));
    }
    for (int64_t i = 0; !rc && i < n; i++) {
        printf(o->json ? (i ? ", " : "") : "\nshard %" PRId64 "\n", i);
        rc = info_index(o, ims_index_set_shard(set, i), ims_index_set_shard_path(set, i));
    }
    if (o->json && !rc)
        printf("]}\n");
    ims_index_set_close(set);
    return rc;
}

/* A set file is JSON; a weight file starts with its magic. */
static int looks_like_set_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    int c = f ? fgetc(f) : EOF;
    while (c == ' ' || c == '\n' || c == '\r' || c == '\t')
        c = fgetc(f);
    if (f)
        fclose(f);
    return c == '{';
}

int cmd_info(int argc, char **argv)
{
    info_options o = {0};
    cli_args a;
    cli_args_init(&a, "info", info_usage, argc, argv);
    while (cli_args_next(&a)) {
        if (a.operand && !o.path)
            o.path = a.operand;
        else if (a.operand)
            cli_args_error(&a, "one FILE at a time ('%s' and '%s')", o.path, a.operand);
        else if (cli_is(&a, "--json"))
            o.json = 1;
        else if (cli_is(&a, "--verify"))
            o.verify = 1;
        else if (cli_is(&a, "--all"))
            o.all = 1;
        else
            cli_args_unknown(&a);
    }
    if (a.status >= 0)
        return a.status;
    if (!o.path)
        return cli_args_error(&a, "missing FILE or INDEX");
    struct stat sb;
    if (stat(o.path, &sb) == 0 && (S_ISDIR(sb.st_mode) || (S_ISREG(sb.st_mode) && looks_like_set_file(o.path))))
        return info_set(&o);
    ims_error err = {0};
    ims_weights *w = NULL;
    if (ims_weights_open(o.path, o.verify ? IMS_WEIGHTS_VERIFY_DATA : 0, &w, &err))
        return cli_error(&err);
    if (o.json)
        print_json(w, &o);
    else
        print_text(w, &o);
    ims_weights_close(w);
    return CLI_EXIT_OK;
}
