/* test_search_memory.c: the peak host memory of loading an index's table for a
 * search. The goal (hardening issue): at most 1.1x the table in its stored
 * dtype, plus one chunk in flight (its mapping, and the f32 copy in which its
 * rows are normalized on the way in). Before f16 chunks went straight into the
 * k-NN table, the load peaked at about two float32 copies (4.4x the files).
 *
 * One process, measured with ru_maxrss (the high-water mark): the index is
 * written with small chunks first, so the writer's own peak stays far below
 * the table; the load's growth over the RSS before it is what is checked.
 *
 * Usage: test_search_memory SCRATCH_DIR
 */
#include "test.h"

#include <math.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

enum { ROWS = 24576, DIM = 2048, CHUNK = 1024 };

static double rss_mb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (double)resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0;
}

static double max_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* kilobytes on Linux */
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_search_memory SCRATCH_DIR\n");
        return 2;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/memory_index", argv[1]);
    ims_error err = {0};
    ims_index_config cfg;
    ims_index_config_init(&cfg);
    cfg.dtype = IMS_DTYPE_F16;
    cfg.chunk_rows = CHUNK;
    cfg.visual_dim = DIM;
    snprintf(cfg.image_model.name, sizeof cfg.image_model.name, "model.isw");
    ims_index *idx = NULL;
    char rm[4200];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    if (system(rm) != 0)
        return 1;
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &idx, &err), err);
    float *row = malloc(DIM * sizeof *row);
    uint64_t rng = 7;
    for (int r = 0; idx && row && r < ROWS; r++) {
        double norm = 0;
        for (int d = 0; d < DIM; d++) {
            row[d] = test_rand_uniform(&rng, -1.0f, 1.0f);
            norm += (double)row[d] * row[d];
        }
        for (int d = 0; d < DIM; d++)
            row[d] = (float)(row[d] / sqrt(norm));
        char path[64];
        snprintf(path, sizeof path, "img/%06d.jpg", r);
        ims_file_entry e = {path, 1, 1};
        ims_status st = ims_index_add(idx, &e, row, NULL, &err);
        if (st) {
            TEST_OK(st, err);
            break;
        }
    }
    TEST_OK(idx ? ims_index_commit(idx, &err) : IMS_ERR_ARGUMENT, err);
    ims_index_close(idx);
    free(row);

    ims_backend *be = NULL;
    ims_knn_table *knn = NULL;
    TEST_OK(ims_index_open(dir, &idx, &err), err);
    TEST_OK(ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err), err);
    ims_knn_options o;
    ims_knn_options_init(&o);
    o.dtype = IMS_DTYPE_F16; /* the stored dtype: the goal is stated against it */
    if (be)
        TEST_OK(ims_knn_create(be, DIM, &o, &knn, &err), err);
    double table_mb = (double)ROWS * DIM * 2 / 1048576.0;
    double chunk_mb = (double)CHUNK * DIM * (2 + 4) / 1048576.0; /* mapped f16 + its f32 normalization */
    double before = rss_mb(), peak_before = max_rss_mb();
    if (idx && knn)
        TEST_OK(ims_index_load_knn(idx, IMS_INDEX_TABLE_VISUAL, 1, knn, &err), err);
    double growth = max_rss_mb() - before;
    printf("table %.1f MiB (f16); RSS before the load %.1f MiB (peak %.1f), peak growth during it %.1f MiB "
           "= %.2fx the table\n", table_mb, before, peak_before, growth, growth / table_mb);
    TEST_CHECK(peak_before < before + 0.5 * table_mb, "the writer's peak (%.1f MiB) would hide the load's", peak_before);
    TEST_CHECK(growth <= 1.1 * table_mb + chunk_mb, "loading grew RSS by %.1f MiB, more than 1.1 x %.1f + %.1f",
               growth, table_mb, chunk_mb);
    TEST_CHECK(knn && ims_knn_rows(knn) == ROWS, "rows loaded");
    ims_knn_free(knn);
    ims_backend_free(be);
    ims_index_close(idx);
    if (system(rm) != 0)
        return 1;
    return test_finish();
}
