/* zip_reader.h: a minimal, fully validating reader of STORED zip archives held
 * in memory (PyTorch's torch.save format since 1.6 is one).
 *
 * imsi_zip_open checks the whole archive before it returns: the end of central
 * directory record (and the zip64 end records, which recent PyTorch writes),
 * every central directory header (zip64 extra fields included), every local
 * header (its signature, its name, which must equal the central one, its
 * method and its lengths), that every entry is STORED (method 0) with equal
 * compressed and uncompressed sizes, that every entry's local header and data
 * lie before the central directory and overlap no other entry, and that no
 * name appears twice. Sizes, CRCs and offsets come from the central directory:
 * PyTorch writes data descriptors (flag bit 3) and leaves the local header's
 * CRC and sizes zero; without that flag they must agree with the central
 * directory. Entry data are pointers into the caller's buffer, which must
 * outlive the archive. Encrypted entries and multi-disk archives are refused.
 *
 * CRCs are not checked by imsi_zip_open (a storage may be gigabytes the caller never
 * reads); imsi_zip_entry_verify checks one entry, and ZIP_OPEN_VERIFY_CRC checks all.
 *
 * Entry names are 1..65535 bytes without control characters (bytes < 0x20 and
 * 0x7f), so they can be printed in messages as they are.
 */
#ifndef IMS_ZIP_READER_H
#define IMS_ZIP_READER_H

#include "imgsearch.h"

typedef struct zip_entry {
    char *name;                 /* owned, NUL-terminated */
    const unsigned char *data;  /* inside the caller's buffer */
    uint64_t size;              /* bytes (compressed == uncompressed: STORED) */
    uint32_t crc32;             /* as the central directory states it */
    uint64_t local_offset;      /* of the local header, from the buffer's start */
    uint64_t central_offset;    /* of the central directory header */
} zip_entry;

typedef struct zip_archive {
    zip_entry *entries;         /* in central directory order */
    size_t count;
    zip_entry **by_name;        /* the same entries sorted by name (imsi_zip_find) */
} zip_archive;

enum {
    ZIP_OPEN_VERIFY_CRC = 1u << 0, /* also check every entry's CRC-32 */
};

/* Validates the archive in data[0..size) and lists its entries. On failure
 * *out is left empty (imsi_zip_close on it is harmless) and err names the entry,
 * the field and its value. */
ims_status imsi_zip_open(const unsigned char *data, size_t size, unsigned flags, zip_archive *out, ims_error *err);
void imsi_zip_close(zip_archive *z);

/* The entry with exactly this name, or NULL. */
const zip_entry *imsi_zip_find(const zip_archive *z, const char *name);

/* Checks the entry's data against its CRC-32 (IMS_ERR_CHECKSUM on mismatch). */
ims_status imsi_zip_entry_verify(const zip_entry *e, ims_error *err);

#endif /* IMS_ZIP_READER_H */
