/* versions.c: the versions of every library this build links, for bug reports
 * and benchmark headers. Compile-time versions where the library has no runtime
 * query (libjpeg-turbo). */
#include "backend/backend.h"

#include <cblas.h>
#include <jconfig.h>
#include <png.h>
#include <stdio.h>
#include <zlib.h>

#define IMS_STR2_(x) #x
#define IMS_STR_(x) IMS_STR2_(x)

void ims_library_versions(char *buf, size_t size)
{
    char cuda[512];
    imsi_cuda_versions(cuda, sizeof cuda);
    snprintf(buf, size,
             "imgsearch %s\n"
             "libpng %s\n"
             "libjpeg-turbo %s\n"
             "zlib %s\n"
             "openblas %s (%d threads)\n"
             "%s",
             IMS_VERSION_STRING, png_get_libpng_ver(NULL), IMS_STR_(LIBJPEG_TURBO_VERSION), zlibVersion(),
             openblas_get_config(), openblas_get_num_threads(), cuda);
}
