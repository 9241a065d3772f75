/* fuzz_zip_reader.c: libFuzzer target for the zip reader (zip_reader.h) and the
 * PyTorch zip checkpoint reader (imsi_ckpt_read_torch_zip, through imsi_ckpt_open_memory).
 *
 * Each input is copied into a buffer of exactly its size (so ASan sees any
 * over-read) and opened as a zip: every accepted entry must be found by name,
 * lie inside the buffer, and be readable to its last byte. Since random
 * mutations rarely carry valid CRCs, and torch_zip.c checks the CRC of every
 * entry it reads, the CRCs of an accepted archive are then recomputed and
 * written back into its central directory (and into local headers that carry
 * them), so that the fuzzer reaches the unpickler and the tensor checks; every
 * tensor of an accepted checkpoint is then read.
 *
 * Seeds: tests/fuzz/seeds/zip_reader/ (small fixtures from
 * tests/fixtures/torch_zip).
 */
#include "weights_tools/checkpoint.h"
#include "weights_tools/zip_reader.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void check_failure(ims_status st, const ims_error *err)
{
    if (st != IMS_OK && (err->msg[0] == '\0' || strchr(err->msg, '\n')))
        abort(); /* a failure always explains itself, on one line */
}

static void exercise_zip(const unsigned char *buf, size_t size, const zip_archive *z)
{
    ims_error err = {0};
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < z->count; i++) {
        const zip_entry *e = &z->entries[i];
        if (imsi_zip_find(z, e->name) != e)
            abort(); /* names are unique and each finds its own entry */
        if (e->data < buf || e->size > (uint64_t)(buf + size - e->data))
            abort();
        if (e->size)
            sink ^= e->data[0] ^ e->data[e->size - 1];
        check_failure(imsi_zip_entry_verify(e, &err), &err);
    }
    (void)sink;
}

static void exercise_ckpt(const unsigned char *buf, size_t size)
{
    if (size < 4 || memcmp(buf, "PK\3\4", 4) != 0)
        return; /* other first bytes go to the other readers, fuzzed elsewhere */
    ckpt *c = NULL;
    ims_error err = {0};
    ims_status st = imsi_ckpt_open_memory(buf, size, &c, &err);
    check_failure(st, &err);
    if (st != IMS_OK) {
        if (c)
            abort();
        return;
    }
    for (size_t i = 0; i < c->count; i++) {
        const ckpt_tensor *t = &c->tensors[i];
        if (imsi_ckpt_find(c, t->name) != t)
            abort();
        int64_t numel = imsi_ckpt_tensor_numel(t);
        if (numel > 0 && numel <= (1 << 16)) { /* stride-0 views can be huge but cheap to check */
            double *v = malloc((size_t)numel * sizeof *v);
            if (v)
                imsi_ckpt_tensor_read_f64(t, v);
            free(v);
        }
    }
    imsi_ckpt_free(c);
}

static void store_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16),
    p[3] = (unsigned char)(v >> 24);
}

/* Rewrites each entry's CRC in its central header and, where the local header
 * holds one (no data descriptor, flag bit 3 clear), there too. */
static void fix_crcs(unsigned char *buf, const zip_archive *z)
{
    for (size_t i = 0; i < z->count; i++) {
        const zip_entry *e = &z->entries[i];
        uLong crc = crc32(0L, Z_NULL, 0);
        crc = crc32(crc, e->data, (uInt)e->size); /* fuzz inputs are small */
        store_u32(buf + e->central_offset + 16, (uint32_t)crc);
        if (!(buf[e->local_offset + 6] & 0x08))
            store_u32(buf + e->local_offset + 14, (uint32_t)crc);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    if (size)
        memcpy(buf, data, size);
    zip_archive z;
    ims_error err = {0};
    ims_status st = imsi_zip_open(buf, size, 0, &z, &err);
    check_failure(st, &err);
    if (st == IMS_OK) {
        exercise_zip(buf, size, &z);
        exercise_ckpt(buf, size);
        fix_crcs(buf, &z);
        imsi_zip_close(&z);
        st = imsi_zip_open(buf, size, ZIP_OPEN_VERIFY_CRC, &z, &err);
        if (st != IMS_OK)
            abort(); /* fixing the CRCs must leave a valid archive */
        imsi_zip_close(&z);
        exercise_ckpt(buf, size);
    } else if (z.entries || z.count) {
        abort(); /* a failure leaves the archive empty */
    }
    free(buf);
    return 0;
}
