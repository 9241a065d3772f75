/* cmd_info.c: `imgsearch info FILE`: a weight file's header, metadata and tensor
 * table, as text for people or JSON (--json) for machines. */
#include "cli.h"

#include <inttypes.h>
#include <string.h>

typedef struct info_options {
    const char *path;
    int json, verify, all;
} info_options;

static const char info_usage[] =
    "usage: imgsearch info [--json] [--verify] [--all] FILE\n"
    "\n"
    "Prints a weight file's header, metadata and tensor table. The file is fully\n"
    "validated first; a malformed file is reported with the field at fault.\n"
    "\n"
    "  --json     one JSON object on stdout\n"
    "  --verify   also check every tensor's crc32 (reads all the data)\n"
    "  --all      print arrays whole (text mode shows the first 8 elements)\n";

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
        return cli_args_error(&a, "missing FILE");
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
