/* html.c: the contact sheet (`search --html`) and what serve's page shares
 * with it.
 *
 * A figure per result: <figure class="hit" data-rank data-score data-row>
 * holding the thumbnail (a data: URL of a JPEG made by our decoder, resampler
 * and TurboJPEG, or with links a file: URL of the original) and a caption with
 * rank, score and the path as a link. Names we do not control (paths, query
 * texts) are escaped for HTML and never trusted to be UTF-8.
 */
#include "html.h"

#include "cli.h"

#include <stdlib.h>
#include <string.h>

const char html_style[] =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}"
    "h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}"
    ".warn{background:#fff3cd;border:1px solid #e0c060;padding:.6em 1em;font-weight:bold}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:14px}"
    "figure.hit{margin:0;background:#fff;border:1px solid #ddd;border-radius:4px;padding:6px}"
    "figure.hit .img{height:180px;display:flex;align-items:center;justify-content:center;background:#eee}"
    "figure.hit img{max-width:100%;max-height:180px}"
    "figcaption{font-size:12px;word-break:break-all;margin-top:4px}"
    "figcaption b{font-size:13px}.score{color:#555}.err{color:#a00}"
    ".query img{max-height:160px;border:1px solid #ccc}";

void html_text(FILE *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0, n; i < len; i += n) {
        n = text_utf8_length(p + i, len - i);
        unsigned char c = p[i];
        if (n == 0 || (c < 0x20 && c != '\t') || c == 0x7f) {
            fputs("&#xfffd;", out);
            n = 1;
        } else if (c == '&') {
            fputs("&amp;", out);
        } else if (c == '<') {
            fputs("&lt;", out);
        } else if (c == '>') {
            fputs("&gt;", out);
        } else if (c == '"') {
            fputs("&quot;", out);
        } else if (c == '\'') {
            fputs("&#39;", out);
        } else {
            fwrite(p + i, 1, n, out);
        }
    }
}

void html_file_url(FILE *out, const char *path)
{
    fputs("file://", out);
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr("/._~-", *p))
            fputc(*p, out);
        else
            fprintf(out, "%%%02X", *p);
    }
}

void html_base64(FILE *out, const uint8_t *data, size_t len)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)data[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)data[i + 1] << 8;
        if (i + 2 < len)
            v |= data[i + 2];
        char q[4] = {digits[v >> 18], digits[(v >> 12) & 63], i + 1 < len ? digits[(v >> 6) & 63] : '=',
                     i + 2 < len ? digits[v & 63] : '='};
        fwrite(q, 1, 4, out);
    }
}

/* The picture of an image file: its thumbnail embedded (or, with links, the
 * file itself), or why there is none. */
static void sheet_image(FILE *out, const html_sheet_options *o, const char *path)
{
    if (o->links) {
        fputs("<img loading=\"lazy\" alt=\"\" src=\"", out);
        html_file_url(out, path);
        fputs("\">", out);
        return;
    }
    uint8_t *jpeg = NULL;
    size_t size = 0;
    ims_error err = {0};
    if (ims_image_thumbnail_file(path, &o->decode, o->thumb_side, HTML_THUMB_QUALITY, &jpeg, &size, &err)) {
        fputs("<span class=\"err\">no thumbnail: ", out);
        html_text(out, err.msg, strlen(err.msg));
        fputs("</span>", out);
        return;
    }
    fputs("<img alt=\"\" src=\"data:image/jpeg;base64,", out);
    html_base64(out, jpeg, size);
    fputs("\">", out);
    ims_free(jpeg);
}

static void sheet_hit(FILE *out, const html_sheet_options *o, const ims_search_hit *h, int rank)
{
    fprintf(out, "<figure class=\"hit\" data-rank=\"%d\" data-score=\"%.6f\" data-row=\"%lld\"><div class=\"img\">",
            rank, h->score, (long long)h->row);
    sheet_image(out, o, h->path);
    fprintf(out, "</div><figcaption><b>#%d</b> <span class=\"score\">%.4f</span><br><a href=\"", rank, h->score);
    html_file_url(out, h->path);
    fputs("\">", out);
    html_text(out, h->path, strlen(h->path));
    fputs("</a></figcaption></figure>\n", out);
}

static void sheet_query(FILE *out, const html_sheet_options *o, const html_query *q, const ims_search_result *r,
                        size_t i)
{
    const char *table = r->table == IMS_INDEX_TABLE_SEMANTIC ? "semantic" : "visual";
    fprintf(out, "<section class=\"query\" id=\"q%zu\" data-table=\"%s\" data-count=\"%d\">\n<h2>%zu. %s ", i + 1,
            table, r->count, i + 1, q->image ? "image" : "text");
    fputs(q->image ? "" : "&ldquo;", out);
    html_text(out, q->text, strlen(q->text));
    fprintf(out, "%s <small>(%s table)</small></h2>\n", q->image ? "" : "&rdquo;", table);
    if (q->image) {
        fputs("<p>", out);
        sheet_image(out, o, q->text);
        fputs("</p>\n", out);
    }
    if (r->status) {
        fputs("<p class=\"err\">error: ", out);
        html_text(out, r->error, strlen(r->error));
        fputs("</p>\n</section>\n", out);
        return;
    }
    if (r->count == 0)
        fputs("<p>(the index is empty)</p>\n", out);
    fputs("<div class=\"grid\">\n", out);
    for (int j = 0; j < r->count; j++)
        sheet_hit(out, o, &r->hits[j], j + 1);
    fputs("</div>\n</section>\n", out);
}

int html_sheet_write(FILE *out, const html_sheet_options *o, const html_query *queries,
                     const ims_search_results *res)
{
    const char *name = o->index_name ? o->index_name : "";
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data: file:; "
          "style-src 'unsafe-inline'\">\n<title>imgsearch: ",
          out);
    html_text(out, name, strlen(name));
    fprintf(out, "</title>\n<style>%s</style></head><body>\n<h1>imgsearch: %lld quer%s over ", html_style,
            (long long)res->count, res->count == 1 ? "y" : "ies");
    html_text(out, name, strlen(name));
    fputs("</h1>\n", out);
    if (o->synthetic)
        fputs("<p class=\"warn\" id=\"synthetic\">Synthetic weights: the image model holds synthetic weights, "
              "so these results are not meaningful.</p>\n",
              out);
    if (res->count > 1) {
        fputs("<ol class=\"index\">\n", out);
        for (int64_t i = 0; i < res->count; i++) {
            fprintf(out, "<li><a href=\"#q%lld\">%s ", (long long)i + 1, queries[i].image ? "image" : "text");
            html_text(out, queries[i].text, strlen(queries[i].text));
            fputs("</a></li>\n", out);
        }
        fputs("</ol>\n", out);
    }
    for (int64_t i = 0; i < res->count; i++)
        sheet_query(out, o, &queries[i], &res->results[i], (size_t)i);
    fputs("</body></html>\n", out);
    return fflush(out) || ferror(out) ? -1 : 0;
}
