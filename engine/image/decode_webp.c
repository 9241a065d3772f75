/* image/decode_webp.c: WebP -> RGB8 with libwebp, as Pillow decodes it.
 *
 * Pillow (WebPImagePlugin) decodes every WebP, still or animated, through
 * libwebp's WebPAnimDecoder in non-premultiplied RGBA and keeps the first
 * frame by default; convert('RGB') then drops alpha. So do we: the first
 * frame as the animation decoder composes it on its canvas (a still image is
 * its own canvas; an animation's first frame is drawn on a canvas cleared to
 * transparent black, never blended with the background color), alpha dropped.
 * Lossy, lossless and alpha planes are libwebp's own arithmetic.
 *
 * The canvas size comes from the demuxer before anything is decoded, so the
 * pixel limits are checked before libwebp allocates its canvas. EXIF
 * orientation: the EXIF chunk, else the XMP chunk's tiff:Orientation, as
 * Pillow's getexif() reads them for exif_transpose.
 */
#include "image/decode_formats.h"

#include "core/error.h"

#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>

/* The orientation of the EXIF chunk, else of the XMP chunk (0: none). */
static int webp_orientation(const WebPDemuxer *demux)
{
    WebPChunkIterator it;
    int o = 0;
    if (WebPDemuxGetChunk(demux, "EXIF", 1, &it)) {
        o = imsi_exif_orientation(it.chunk.bytes, it.chunk.size);
        WebPDemuxReleaseChunkIterator(&it);
    }
    if (!o && WebPDemuxGetChunk(demux, "XMP ", 1, &it)) {
        o = imsi_xmp_orientation(it.chunk.bytes, it.chunk.size);
        WebPDemuxReleaseChunkIterator(&it);
    }
    return o;
}

ims_status imsi_decode_webp(const unsigned char *data, size_t size, imsi_decode_call *call, ims_image *out,
                            ims_error *err)
{
    const ims_decode_options *o = call->o;
    WebPData wd = {data, size};
    WebPDemuxState state;
    WebPDemuxer *demux = WebPDemuxPartial(&wd, &state);
    if (!demux || state != WEBP_DEMUX_DONE) {
        WebPDemuxDelete(demux);
        if (state == WEBP_DEMUX_PARSED_HEADER || state == WEBP_DEMUX_PARSING_HEADER)
            return ims_error_set(err, IMS_ERR_FORMAT, "WebP file is truncated");
        return ims_error_set(err, IMS_ERR_FORMAT, "bad WebP file (its RIFF chunks do not parse)");
    }
    uint32_t w = WebPDemuxGetI(demux, WEBP_FF_CANVAS_WIDTH), h = WebPDemuxGetI(demux, WEBP_FF_CANVAS_HEIGHT);
    uint32_t frames = WebPDemuxGetI(demux, WEBP_FF_FRAME_COUNT);
    int orientation = o->apply_exif_orientation ? webp_orientation(demux) : 0;
    WebPDemuxDelete(demux);
    ims_status st = imsi_image_check_size(w, h, call, "WebP", 11, out, err);
    if (st)
        return st;
    if (frames == 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "WebP file holds no frame");

    WebPAnimDecoderOptions opts;
    if (!WebPAnimDecoderOptionsInit(&opts))
        return ims_error_set(err, IMS_ERR_UNSUPPORTED, "WebP: libwebp's animation decoder version mismatch");
    opts.color_mode = MODE_RGBA; /* Pillow's: straight (not premultiplied) alpha */
    opts.use_threads = 0;
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&wd, &opts);
    if (!dec)
        return ims_error_set(err, IMS_ERR_FORMAT, "bad WebP file (the decoder refused it)");
    uint8_t *rgba = NULL;
    int timestamp = 0;
    if (!WebPAnimDecoderGetNext(dec, &rgba, &timestamp) || !rgba) {
        WebPAnimDecoderDelete(dec);
        return ims_error_set(err, IMS_ERR_FORMAT, "bad WebP image data (truncated or corrupt)");
    }
    if ((st = imsi_image_alloc(out, (int)w, (int)h, "WebP", err)) != IMS_OK) {
        WebPAnimDecoderDelete(dec);
        return st;
    }
    size_t n = (size_t)w * h;
    for (size_t i = 0; i < n; i++)
        memcpy(out->pixels + i * 3, rgba + i * 4, 3);
    WebPAnimDecoderDelete(dec); /* owns rgba */
    if (orientation && (st = imsi_image_orient(out, orientation, err)) != IMS_OK)
        imsi_image_clear(out);
    return st;
}
