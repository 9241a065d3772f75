/* fuzz_index_set.c: libFuzzer target for the index set file reader
 * (engine/index/index_set.c).
 *
 * The input is written as a set file into a private folder that holds one
 * empty index, "a" (made once), and opened as a set, whole and as part 1 of
 * 2. Whatever the reader accepts must hold together: at least one shard,
 * every shard named, shard 0 opened whole and the part holding exactly the
 * odd shards.
 */
#include "imgsearch.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], set_path[96];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/fuzz_index_set.%ld", (long)getpid());
    snprintf(set_path, sizeof set_path, "%s/x.set", dir);
    char shard[96];
    snprintf(shard, sizeof shard, "%s/a", dir);
    ims_index_config cfg;
    ims_index_config_init(&cfg);
    ims_index *idx = NULL;
    ims_error err;
    if (mkdir(dir, 0700) != 0 || ims_index_open_for_writing(shard, &cfg, &idx, &err) != IMS_OK)
        abort();
    ims_index_close(idx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0])
        setup();
    FILE *f = fopen(set_path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size))
        abort();
    fclose(f);
    ims_index_set *set = NULL;
    ims_error err;
    if (ims_index_set_open(set_path, &set, &err) == IMS_OK) {
        int64_t n = ims_index_set_shard_count(set);
        if (n < 1 || !ims_index_set_is_set(set) || !ims_index_set_shard(set, 0) || !ims_index_set_config(set))
            abort();
        for (int64_t i = 0; i < n; i++)
            if (!ims_index_set_shard_path(set, i) || !ims_index_set_shard(set, i))
                abort();
        ims_index_set_close(set);
        if (ims_index_set_open_part(set_path, 1, 2, &set, &err) == IMS_OK) {
            for (int64_t i = 0; i < n; i++)
                if ((ims_index_set_shard(set, i) != NULL) != (i % 2 == 1))
                    abort();
            ims_index_set_close(set);
        }
    }
    return 0;
}
