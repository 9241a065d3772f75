/* image/decode_gif.c: GIF -> RGB8 with giflib (5.x), the first frame as
 * Pillow's GifImagePlugin loads it and convert('RGB') converts it.
 *
 * - The canvas is the logical screen, grown to hold the first frame when it
 *   reaches past it (Pillow does the same, and checks the grown size).
 * - Outside the frame the canvas holds the frame's transparent index when its
 *   graphic control extension names one, else index 0; inside, every pixel of
 *   the frame, transparent or not.
 * - Colors: the frame's local color table, else the global one. A table whose
 *   entries are exactly the gray ramp (entry i = (i, i, i)), or no table at
 *   all, makes the indices gray levels (Pillow's mode L); otherwise an index
 *   past the table's end is black. Transparency is dropped, never blended:
 *   a transparent pixel shows its palette color, as in Pillow's convert('RGB').
 * - Interlaced frames are put back in row order. A frame whose data ends
 *   early is refused (Pillow: "image file is truncated").
 * giflib reads from memory through its input callback; it never prints.
 */
#include "image/decode_formats.h"

#include "core/error.h"

#include <gif_lib.h>
#include <stdlib.h>
#include <string.h>

typedef struct gif_src {
    const unsigned char *data;
    size_t size, pos;
} gif_src;

static int gif_read(GifFileType *gif, GifByteType *dst, int n)
{
    gif_src *s = gif->UserData;
    size_t want = n > 0 ? (size_t)n : 0, left = s->size - s->pos;
    if (want > left)
        want = left;
    memcpy(dst, s->data + s->pos, want);
    s->pos += want;
    return (int)want;
}

static const char *gif_why(int code)
{
    const char *s = GifErrorString(code);
    return s ? s : "unknown giflib error";
}

/* 1 if the table is the gray ramp (Pillow's _is_palette_needed is false). */
static int gray_ramp(const ColorMapObject *map)
{
    for (int i = 0; i < map->ColorCount; i++)
        if (map->Colors[i].Red != i || map->Colors[i].Green != i || map->Colors[i].Blue != i)
            return 0;
    return 1;
}

ims_status imsi_decode_gif(const unsigned char *data, size_t size, imsi_decode_call *call, ims_image *out,
                           ims_error *err)
{
    gif_src src = {data, size, 0};
    int code = 0;
    GifFileType *gif = DGifOpen(&src, gif_read, &code);
    if (!gif)
        return ims_error_set(err, code == D_GIF_ERR_NOT_ENOUGH_MEM ? IMS_ERR_NOMEM : IMS_ERR_FORMAT,
                             "bad GIF: %s", gif_why(code));
    ims_status st = IMS_OK;
    int transparent = -1; /* of the graphic control extension before the first frame */
    uint8_t *idx = NULL;
    for (;;) {
        GifRecordType type;
        if (DGifGetRecordType(gif, &type) == GIF_ERROR) {
            st = ims_error_set(err, IMS_ERR_FORMAT, "bad GIF: %s", gif_why(gif->Error));
            break;
        }
        if (type == TERMINATE_RECORD_TYPE) {
            st = ims_error_set(err, IMS_ERR_FORMAT, "GIF holds no image");
            break;
        }
        if (type == EXTENSION_RECORD_TYPE) {
            int ext_code;
            GifByteType *ext;
            if (DGifGetExtension(gif, &ext_code, &ext) == GIF_ERROR) {
                st = ims_error_set(err, IMS_ERR_FORMAT, "bad GIF extension: %s", gif_why(gif->Error));
                break;
            }
            /* ext[0] is the sub-block's length; Pillow reads flags at 0 and
             * the index at 3 of the first sub-block. */
            if (ext_code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4)
                transparent = (ext[1] & 1) ? ext[4] : transparent;
            while (ext) {
                if (DGifGetExtensionNext(gif, &ext) == GIF_ERROR) {
                    st = ims_error_set(err, IMS_ERR_FORMAT, "bad GIF extension: %s", gif_why(gif->Error));
                    break;
                }
            }
            if (st)
                break;
            continue;
        }
        if (type != IMAGE_DESC_RECORD_TYPE)
            continue;
        if (DGifGetImageDesc(gif) == GIF_ERROR) {
            st = ims_error_set(err, IMS_ERR_FORMAT, "bad GIF image descriptor: %s", gif_why(gif->Error));
            break;
        }
        const GifImageDesc *f = &gif->Image;
        uint64_t x0 = (uint64_t)f->Left, y0 = (uint64_t)f->Top, fw = (uint64_t)f->Width, fh = (uint64_t)f->Height;
        uint64_t cw = gif->SWidth > 0 ? (uint64_t)gif->SWidth : 0, ch = gif->SHeight > 0 ? (uint64_t)gif->SHeight : 0;
        if (x0 + fw > cw || y0 + fh > ch) { /* Pillow grows the canvas */
            cw = x0 + fw > cw ? x0 + fw : cw;
            ch = y0 + fh > ch ? y0 + fh : ch;
        }
        if ((st = imsi_image_check_size(cw, ch, call, "GIF", 5, out, err)) != IMS_OK)
            break;
        int w = (int)cw, h = (int)ch;
        size_t npx = (size_t)w * (size_t)h;
        idx = malloc(npx);
        if (!idx) {
            st = ims_error_set(err, IMS_ERR_NOMEM, "out of memory for a %d x %d GIF", w, h);
            break;
        }
        memset(idx, transparent >= 0 ? transparent : 0, npx);
        /* Interlaced rows come in four passes: every 8th from 0, every 8th
         * from 4, every 4th from 2, every 2nd from 1. */
        static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
        int passes = f->Interlace ? 4 : 1;
        for (int p = 0; p < passes && !st; p++) {
            for (uint64_t r = f->Interlace ? (uint64_t)start[p] : 0; r < fh && !st; r += f->Interlace ? (uint64_t)step[p] : 1) {
                GifPixelType *row = idx + (size_t)(y0 + r) * (size_t)w + (size_t)x0;
                if (DGifGetLine(gif, row, (int)fw) == GIF_ERROR)
                    st = ims_error_set(err, IMS_ERR_FORMAT, "GIF image data is truncated or corrupt: %s",
                                       gif_why(gif->Error));
            }
        }
        if (st)
            break;
        const ColorMapObject *map = f->ColorMap ? f->ColorMap : gif->SColorMap;
        int gray = !map || gray_ramp(map);
        if ((st = imsi_image_alloc(out, w, h, "GIF", err)) != IMS_OK)
            break;
        uint8_t *px = out->pixels;
        for (size_t i = 0; i < npx; i++, px += 3) {
            unsigned v = idx[i];
            if (gray) {
                px[0] = px[1] = px[2] = (uint8_t)v;
            } else if ((int)v < map->ColorCount) {
                px[0] = map->Colors[v].Red, px[1] = map->Colors[v].Green, px[2] = map->Colors[v].Blue;
            } else {
                px[0] = px[1] = px[2] = 0;
            }
        }
        break;
    }
    free(idx);
    if (st)
        imsi_image_clear(out);
    int close_err = 0;
    DGifCloseFile(gif, &close_err);
    return st;
}
