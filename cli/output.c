/* output.c: what the CLI writes about names it does not control (file names,
 * query texts, labels): JSON that is always valid, text that a terminal shows
 * as text.
 *
 * File names are bytes, not always UTF-8. JSON strings carry each invalid byte
 * as U+FFFD and, for paths, a "<key>_bytes" field keeps the exact bytes, %XX
 * escaped as in the index's rows.txt (Python: urllib.parse.unquote_to_bytes).
 * Text output writes control characters and invalid bytes as \xNN, so an ESC
 * sequence in a file name cannot drive the terminal and a newline cannot split
 * a result line. */
#include "cli.h"

#include <math.h>
#include <string.h>

/* The length of the valid UTF-8 sequence at s[0..len) (no overlongs, no
 * surrogates, at most U+10FFFF), or 0 if s starts with an invalid byte. */
size_t text_utf8_length(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n == 0 || n > len)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f))
        return 0; /* overlong, surrogate, or past U+10FFFF */
    return n;
}

int text_is_utf8(const char *s, size_t len)
{
    for (size_t i = 0, n; i < len; i += n)
        if (!(n = text_utf8_length((const unsigned char *)s + i, len - i)))
            return 0;
    return 1;
}

void json_string(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', out);
    for (size_t i = 0, n; i < len; i += n) {
        unsigned char c = p[i];
        n = text_utf8_length(p + i, len - i);
        if (n == 0) {
            fputs("\\ufffd", out); /* an invalid byte: JSON text must be Unicode */
            n = 1;
            continue;
        }
        switch (c) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (c < 0x20)
                fprintf(out, "\\u%04x", c);
            else
                fwrite(p + i, 1, n, out);
        }
    }
    fputc('"', out);
}

void json_path(FILE *out, const char *key, const char *path)
{
    size_t len = strlen(path);
    fprintf(out, "\"%s\": ", key);
    json_string(out, path, len);
    if (text_is_utf8(path, len))
        return;
    fprintf(out, ", \"%s_bytes\": \"", key);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c < 0x20 || c >= 0x7f || c == '%' || c == '"' || c == '\\')
            fprintf(out, "%%%02X", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

void text_safe(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0, n; i < len; i += n) {
        n = text_utf8_length(p + i, len - i);
        if (n == 0 || p[i] < 0x20 || p[i] == 0x7f) {
            fprintf(out, "\\x%02x", p[i]);
            n = 1;
        } else {
            fwrite(p + i, 1, n, out);
        }
    }
}

void json_double(FILE *out, double v)
{
    if (isnan(v))
        fputs("\"NaN\"", out);
    else if (isinf(v))
        fputs(v > 0 ? "\"Infinity\"" : "\"-Infinity\"", out);
    else {
        /* %.17g round-trips every double; a bare "-0" or "3" would read back as an
         * integer (losing -0's sign), so always write a decimal point or exponent */
        char text[32];
        snprintf(text, sizeof text, "%.17g", v);
        fputs(text, out);
        if (!strpbrk(text, ".e"))
            fputs(".0", out);
    }
}
