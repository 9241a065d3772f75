/* weights_format.c: the helpers both the weight-file reader and writer use. */
#include "io/weights_format.h"

#include "core/error.h"

#include <zlib.h>

uint32_t imsi_isw_crc32(const void *data, uint64_t nbytes) { return imsi_isw_crc32_update(0, data, nbytes); }

uint32_t imsi_isw_crc32_update(uint32_t running, const void *data, uint64_t nbytes)
{
    /* zlib takes uInt lengths: feed it in 1 GiB pieces. */
    const unsigned char *p = data;
    uLong crc = running;
    while (nbytes > 0) {
        uInt piece = nbytes > (1u << 30) ? (1u << 30) : (uInt)nbytes;
        crc = crc32(crc, p, piece);
        p += piece;
        nbytes -= piece;
    }
    return (uint32_t)crc;
}

int imsi_isw_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t extra;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) extra = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0) extra = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0) extra = 3, cp = c & 0x07, min = 0x10000;
        else return 0;
        if (len - i <= extra)
            return 0;
        for (size_t k = 1; k <= extra; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += extra + 1;
    }
    return 1;
}

int imsi_isw_utf8_printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return imsi_isw_utf8_valid(s, len);
}

ims_status imsi_isw_check_name(const char *s, size_t len, size_t max, const char *what, ims_error *err)
{
    if (len == 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "%s is empty", what);
    if (len > max)
        return ims_error_set(err, IMS_ERR_FORMAT, "%s length %zu exceeds %zu", what, len, max);
    if (!imsi_isw_utf8_valid(s, len))
        return ims_error_set(err, IMS_ERR_FORMAT, "%s is not valid UTF-8 or contains a NUL byte", what);
    /* Names appear in one-line messages and tables: no control characters. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return ims_error_set(err, IMS_ERR_FORMAT, "%s contains the control character 0x%02x at byte %zu", what,
                                 (unsigned char)s[i], i);
    return IMS_OK;
}
