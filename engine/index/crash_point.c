/* crash_point.c: the index commit's crash points do nothing in the library.
 *
 * A file of its own, so that a test program that defines
 * imsi_index_crash_point itself (tests/common/crash_hook.c) is linked with
 * its definition instead of this one: the static archive member is then
 * never pulled in. See index/store.h. */
#include "index/store.h"

void imsi_index_crash_point(size_t chunk, const char *step)
{
    (void)chunk;
    (void)step;
}
