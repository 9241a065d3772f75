/* memory.c: ims_free, the one way a caller releases a buffer the library
 * allocated for it (imgsearch.h). */
#include "imgsearch.h"

#include <stdlib.h>

void ims_free(void *ptr) { free(ptr); }
