/* html.h: search results as pages people look at: the contact sheet that
 * `search --html` writes, and the pieces `serve`'s page shares with it (the
 * style, escaping). Everything written is self-contained: no network, no
 * external scripts, styles or fonts.
 */
#ifndef IMS_CLI_HTML_H
#define IMS_CLI_HTML_H

#include "imgsearch.h"

#include <stdio.h>

#define HTML_THUMB_SIDE 256   /* a thumbnail's long side unless told */
#define HTML_THUMB_QUALITY 85 /* JPEG quality: small files, no visible blocking at 256 px */

/* The style sheet of both pages (the contact sheet's grid). */
extern const char html_style[];

/* s (len bytes) as HTML text or attribute value: & < > " ' escaped, an
 * invalid UTF-8 byte or a control character as U+FFFD. */
void html_text(FILE *out, const char *s, size_t len);
/* "file://" + the absolute path, every byte but [A-Za-z0-9/._~-] as %XX:
 * a link that names the file's exact bytes and is safe inside an attribute. */
void html_file_url(FILE *out, const char *path);
void html_base64(FILE *out, const uint8_t *data, size_t len);

typedef struct html_query {
    const char *text; /* the text, or the image's path */
    int image;
} html_query;

typedef struct html_sheet_options {
    const char *index_name;    /* shown in the title */
    int thumb_side;            /* the thumbnails' long side */
    int links;                 /* 1: <img> links the original files (large k); 0: embedded JPEG thumbnails */
    int synthetic;             /* the image model's weights are synthetic: the page says so */
    ims_decode_options decode; /* for the thumbnails */
} html_sheet_options;

/* One page: per query its text (or its image's thumbnail) and its results as a
 * grid of thumbnails with rank, score and path (a link to the file); an index
 * of the queries first when there are several. A result whose thumbnail
 * cannot be made shows why instead. Returns 0, or -1 when out fails. */
int html_sheet_write(FILE *out, const html_sheet_options *o, const html_query *queries,
                     const ims_search_results *res);

#endif /* IMS_CLI_HTML_H */
