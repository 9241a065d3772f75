/* fuzz_index.c: libFuzzer target for the index reader (engine/index/store.c).
 *
 * The input is split at "\n--\n" markers into manifest.json and the text
 * files of two chunks (chunk-000000.rows.txt, chunk-000000.failures.txt,
 * chunk-000001.rows.txt, chunk-000001.failures.txt,
 * chunk-000001.tombstones.txt), written into a private folder with empty
 * table files beside them, and the index is opened. So that a version-2
 * manifest can match its files (their sizes and CRC-32s are checked before
 * anything is parsed), the harness replaces "{{size:NAME}}" and
 * "{{crc:NAME}}" in the manifest with the size and CRC-32 of the file NAME it
 * writes. Whatever the reader accepts must hold together: every live path is
 * found by ims_index_contains, the live rows are live and ascending, every
 * row has a location in a chunk, and the counts agree.
 */
#define _GNU_SOURCE /* memmem */
#include "imgsearch.h"

#include "io/weights_format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

enum { PARTS = 6, FILES = 9 };
static const char *const names[FILES] = {
    "manifest.json",         "chunk-000000.rows.txt",       "chunk-000000.failures.txt",
    "chunk-000001.rows.txt", "chunk-000001.failures.txt",   "chunk-000001.tombstones.txt",
    "chunk-000000.visual.npy", "chunk-000001.visual.npy", "chunk-000000.semantic.npy",
};

static void write_file(const char *name, const uint8_t *p, size_t n)
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

/* The manifest with {{size:NAME}} and {{crc:NAME}} replaced; malloc'd. */
static char *fill_in(const uint8_t *m, size_t n, const uint8_t *const *part, const size_t *len, size_t *out_len)
{
    char *out = malloc(n * 2 + 64);
    size_t o = 0;
    if (!out)
        abort();
    for (size_t i = 0; i < n;) {
        const char *close = NULL;
        int size_field = 0, known = -1;
        if (i + 2 < n && m[i] == '{' && m[i + 1] == '{') {
            size_field = n - i > 7 && !memcmp(m + i + 2, "size:", 5);
            int crc = n - i > 6 && !memcmp(m + i + 2, "crc:", 4);
            const uint8_t *name = m + i + (size_field ? 7 : 6);
            close = (size_field || crc) ? memmem(name, n - (size_t)(name - m), "}}", 2) : NULL;
            for (int k = 0; close && k < FILES; k++)
                if ((size_t)((const uint8_t *)close - name) == strlen(names[k]) &&
                    !memcmp(name, names[k], strlen(names[k])))
                    known = k;
        }
        if (known < 0) {
            out[o++] = (char)m[i++];
            continue;
        }
        char value[32];
        int w = size_field ? snprintf(value, sizeof value, "%zu", len[known])
                           : snprintf(value, sizeof value, "%08x", (unsigned)imsi_isw_crc32(part[known], len[known]));
        if (o + (size_t)w > n * 2 + 32)
            break;
        memcpy(out + o, value, (size_t)w);
        o += (size_t)w;
        i = (size_t)((const uint8_t *)close - m) + 2;
    }
    *out_len = o;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz_index.%ld", (long)getpid());
        if (mkdir(dir, 0700) != 0)
            abort();
    }
    const uint8_t *part[FILES];
    size_t len[FILES];
    for (int i = 0; i < PARTS; i++) {
        size_t skip;
        len[i] = next_part(data, size, &skip);
        part[i] = data;
        data += skip;
        size -= skip;
    }
    for (int i = PARTS; i < FILES; i++) { /* the tables: empty files (they are checked by size at open) */
        part[i] = (const uint8_t *)"";
        len[i] = 0;
    }
    size_t manifest_len;
    char *manifest = fill_in(part[0], len[0], part, len, &manifest_len);
    write_file(names[0], (const uint8_t *)manifest, manifest_len);
    free(manifest);
    for (int i = 1; i < FILES; i++)
        write_file(names[i], part[i], len[i]);

    ims_index *idx = NULL;
    ims_error err;
    if (ims_index_open(dir, &idx, &err) == IMS_OK) {
        ims_index_info info;
        ims_index_get_info(idx, &info);
        if (info.live_rows > info.rows || info.live_failures > info.failures || info.rows != ims_index_row_count(idx) ||
            info.live_rows != ims_index_live_row_count(idx) || (info.version != 1 && info.version != 2))
            abort();
        int64_t live = 0, previous = -1;
        for (int64_t r = 0; r < ims_index_row_count(idx); r++) {
            const ims_file_entry *e = ims_index_row(idx, r);
            int64_t chunk = -1, offset = -1;
            if (!e || !e->path[0] || ims_index_row_location(idx, r, &chunk, &offset, &err) != IMS_OK || offset < 0 ||
                chunk < 0)
                abort();
            if (ims_index_row_live(idx, r)) {
                if (!ims_index_contains(idx, e->path) || ims_index_live_row(idx, live) != r)
                    abort();
                live++;
            }
        }
        for (int64_t i = 0; i < ims_index_live_row_count(idx); i++) {
            int64_t r = ims_index_live_row(idx, i);
            if (r <= previous || !ims_index_row_live(idx, r))
                abort();
            previous = r;
        }
        for (int64_t f = 0; f < ims_index_failure_count(idx); f++) {
            const ims_file_problem *p = ims_index_failure(idx, f);
            if (!p || !p->path[0] || (ims_index_failure_live(idx, f) && !ims_index_contains(idx, p->path)))
                abort();
        }
        if (live != info.live_rows)
            abort();
        ims_index_close(idx);
    } else if (!err.msg[0] || strchr(err.msg, '\n')) {
        abort(); /* a failure always says why, on one line */
    }
    return 0;
}
