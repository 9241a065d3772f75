/* fuzz_index.c: libFuzzer target for the index reader (engine/index/store.c).
 *
 * The input is split at "\n--\n" markers into manifest.json,
 * chunk-000000.rows.txt and chunk-000000.failures.txt, written into a private
 * folder, and the index is opened. Whatever it accepts must hold together:
 * every row has a non-empty path without NUL, every committed path is found by
 * ims_index_contains, and the counts match the manifest's.
 */
#include "imgsearch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void write_part(const char *name, const uint8_t *p, size_t n)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (n && fwrite(p, 1, n, f) != n)
        abort();
    fclose(f);
}

/* The next part of data up to the "\n--\n" marker (or the end). */
static size_t next_part(const uint8_t *data, size_t size, size_t *skip)
{
    for (size_t i = 0; i + 4 <= size; i++)
        if (!memcmp(data + i, "\n--\n", 4)) {
            *skip = i + 4;
            return i;
        }
    *skip = size;
    return size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz_index.%ld", (long)getpid());
        if (mkdir(dir, 0700) != 0)
            abort();
    }
    static const char *const names[3] = {"manifest.json", "chunk-000000.rows.txt", "chunk-000000.failures.txt"};
    for (int i = 0; i < 3; i++) {
        size_t skip, n = next_part(data, size, &skip);
        write_part(names[i], data, n);
        data += skip;
        size -= skip;
    }
    ims_index *idx = NULL;
    ims_error err;
    if (ims_index_open(dir, &idx, &err) == IMS_OK) {
        for (int64_t r = 0; r < ims_index_row_count(idx); r++) {
            const ims_file_entry *e = ims_index_row(idx, r);
            if (!e || !e->path[0] || !ims_index_contains(idx, e->path))
                abort();
        }
        for (int64_t f = 0; f < ims_index_failure_count(idx); f++) {
            const ims_file_problem *p = ims_index_failure(idx, f);
            if (!p || !p->path[0] || !ims_index_contains(idx, p->path))
                abort();
        }
        ims_index_close(idx);
    } else if (!err.msg[0] || strchr(err.msg, '\n')) {
        abort(); /* a failure always says why, on one line */
    }
    return 0;
}
