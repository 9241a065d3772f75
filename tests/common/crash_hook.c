/* crash_hook.c: the index commit's crash points for tests (index/store.h).
 *
 * Linked into test programs ahead of libimgsearch.a, replacing the library's
 * empty definition: IMS_TEST_CRASH=chunk:C:STEP kills the process with SIGKILL
 * (as a power cut would) in the commit of chunk C right after STEP, so tests
 * check that an index resumes from inside a chunk's write. */
#include "index/store.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void imsi_index_crash_point(size_t chunk, const char *step)
{
    const char *spec = getenv("IMS_TEST_CRASH");
    char want[64];
    snprintf(want, sizeof want, "chunk:%zu:%s", chunk, step);
    if (spec && strcmp(spec, want) == 0)
        raise(SIGKILL);
}
