/* versions.c: the versions of every library this build links, for bug reports
 * and benchmark headers: one list (ims_library_version_list), printed one per
 * line by ims_library_versions. Compile-time versions where the library has no
 * runtime query (libjpeg-turbo, giflib); the commit is written into build_commit.h by
 * scripts/build_commit.cmake at every build. */
#include "backend/backend.h"
#include "kernels/cpu/ops_cpu.h"

#include <cblas.h>
#include <gif_lib.h>
#include <jconfig.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <tiffio.h>
#include <webp/decode.h>
#include <zlib.h>

#include "build_commit.h"

#define IMS_STR2_(x) #x
#define IMS_STR_(x) IMS_STR2_(x)

/* Appends (name, printf text) to out when there is room; counts it anyway. */
static void version_add(ims_library_version *out, size_t max, size_t *n, const char *name, const char *text)
{
    if (*n < max) {
        out[*n].name = name;
        snprintf(out[*n].version, sizeof out[*n].version, "%s", text);
    }
    (*n)++;
}

size_t ims_library_version_list(ims_library_version *out, size_t max)
{
    size_t n = 0;
    char openblas[160];
    snprintf(openblas, sizeof openblas, "%s (%d threads)", openblas_get_config(), openblas_get_num_threads());
    version_add(out, max, &n, "imgsearch", IMS_VERSION_STRING);
    version_add(out, max, &n, "commit", IMSI_BUILD_COMMIT);
    version_add(out, max, &n, "libpng", png_get_libpng_ver(NULL));
    version_add(out, max, &n, "libjpeg-turbo", IMS_STR_(LIBJPEG_TURBO_VERSION));
    version_add(out, max, &n, "zlib", zlibVersion());
    int webp = WebPGetDecoderVersion(); /* 0xMMmmrr */
    char webp_text[32], tiff_text[64];
    snprintf(webp_text, sizeof webp_text, "%d.%d.%d", (webp >> 16) & 0xff, (webp >> 8) & 0xff, webp & 0xff);
    version_add(out, max, &n, "libwebp", webp_text);
    const char *tiff = TIFFGetVersion(); /* "LIBTIFF, Version 4.5.0\nCopyright ..." */
    const char *at = tiff ? strstr(tiff, "Version ") : NULL;
    snprintf(tiff_text, sizeof tiff_text, "%.*s", at ? (int)strcspn(at + 8, "\n") : 7, at ? at + 8 : "unknown");
    version_add(out, max, &n, "libtiff", tiff_text);
    version_add(out, max, &n, "giflib", IMS_STR_(GIFLIB_MAJOR) "." IMS_STR_(GIFLIB_MINOR) "." IMS_STR_(GIFLIB_RELEASE));
    version_add(out, max, &n, "openblas", openblas);
    char onednn[64];
    if (imsi_onednn_version(onednn, sizeof onednn))
        version_add(out, max, &n, "onednn", onednn);
    ims_library_version cuda[8];
    size_t cuda_count = imsi_cuda_version_list(cuda, 8);
    for (size_t i = 0; i < cuda_count && i < 8; i++)
        version_add(out, max, &n, cuda[i].name, cuda[i].version);
    return n < IMS_LIBRARY_VERSIONS_MAX ? n : IMS_LIBRARY_VERSIONS_MAX;
}

void ims_library_versions(char *buf, size_t size)
{
    ims_library_version v[IMS_LIBRARY_VERSIONS_MAX];
    size_t n = ims_library_version_list(v, IMS_LIBRARY_VERSIONS_MAX);
    size_t used = 0;
    if (size)
        buf[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s", v[i].name);
        for (char *p = name; *p; p++)
            if (*p == '_')
                *p = ' '; /* "cuda runtime 13.0", as before the list existed */
        int w = snprintf(buf + used, size - used, "%s %s\n", name, v[i].version);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}
