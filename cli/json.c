/* json.c: the little JSON the CLI writes (strings escaped per RFC 8259). */
#include "cli.h"

#include <math.h>
#include <string.h>

void json_string(FILE *out, const char *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
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
                fputc(c, out); /* UTF-8 passes through; the reader validated it */
        }
    }
    fputc('"', out);
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
