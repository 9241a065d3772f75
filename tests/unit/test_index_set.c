/* test_index_set.c: index sets (engine/index/index_set.c) and the searcher
 * over them (engine/index/search.c), with synthetic rows and no models.
 *
 * One index and three shards hold the same 330 files (random unit vectors,
 * some repeated exactly under other paths: ties), added in different orders
 * so that row order is not path order. Searching the set, its parts merged,
 * and the single index must give the same paths and scores bit for bit, best
 * first with equal scores by path; every score within 1e-6 of an fp64
 * reference. Also: the shard hash's documented values (FNV-1a 64), a set
 * whose shards disagree, a malformed set file, and parts that open only
 * their shards.
 * usage: test_index_set SCRATCH_DIR
 */
#include "test.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

enum { DIM = 24, FILES = 330, DISTINCT = 300, SHARDS = 3, QUERIES = 40 };

static char root[512];

static const char *path_in(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", root, name);
    return buf;
}

/* File i: its path and vector (files past DISTINCT repeat earlier vectors). */
static void file_vector(int i, float *v)
{
    uint64_t s = 1000 + (uint64_t)(i < DISTINCT ? i : (i * 7) % 20);
    for (int d = 0; d < DIM; d++)
        v[d] = test_rand_uniform(&s, -1.0f, 1.0f);
}

static void file_path(int i, char *buf, size_t size) { snprintf(buf, size, "/photos/%03d/img%04d.png", i % 17, i); }

/* An index of the files whose shard (of shards) is shard (all when shards is 1), added from index `start` on. */
static void build(const char *dir, int shard, int shards, int start, int semantic_dim)
{
    ims_index_config cfg;
    ims_index_config_init(&cfg);
    cfg.visual_dim = DIM;
    cfg.semantic_dim = semantic_dim;
    cfg.chunk_rows = 37 + shard; /* chunk sizes may differ between shards */
    ims_index *w = NULL;
    ims_error err = {0};
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &w, &err), err);
    if (!w)
        return;
    float v[DIM], sem[DIM];
    for (int n = 0; n < FILES; n++) {
        int i = (start + n * 7) % FILES; /* 7 is prime to FILES: every file once, out of path order */
        char path[64];
        file_path(i, path, sizeof path);
        const char *rel = strchr(path + 1, '/') + 1;
        if (shards > 1 && ims_index_shard_of(rel, shards) != shard)
            continue;
        file_vector(i, v);
        for (int d = 0; d < DIM; d++)
            sem[d] = v[DIM - 1 - d];
        ims_file_entry f = {path, (uint64_t)i, 0};
        TEST_OK(ims_index_add(w, &f, v, semantic_dim ? sem : NULL, &err), err);
    }
    TEST_OK(ims_index_commit(w, &err), err);
    ims_index_close(w);
}

static void test_hash(void)
{
    /* FNV-1a 64 (docs/FORMAT.md): "" 0xcbf29ce484222325, "a" 0xaf63dc4c8601ec8c, "foobar" 0x85944171f73967e8 */
    TEST_CHECK(ims_index_shard_of("", 1000003) == 801432, "FNV-1a of \"\"");
    TEST_CHECK(ims_index_shard_of("a", 1000003) == 783675, "FNV-1a of \"a\"");
    TEST_CHECK(ims_index_shard_of("foobar", 1000003) == 281224, "FNV-1a of \"foobar\"");
    TEST_CHECK(ims_index_shard_of("2019/07/IMG_0001.JPG", 64) == 34, "a photo's shard of 64");
    TEST_CHECK(ims_index_shard_of("anything", 1) == 0, "one shard");
}

/* Hits of a and b: the same count, paths and scores (bits), per query. */
static void same_results(const ims_search_results *a, const ims_search_results *b, const char *what)
{
    TEST_CHECK(a->count == b->count, "%s: %lld and %lld queries", what, (long long)a->count, (long long)b->count);
    for (int64_t q = 0; q < a->count && q < b->count; q++) {
        const ims_search_result *x = &a->results[q], *y = &b->results[q];
        TEST_CHECK(x->count == y->count, "%s: query %lld: %d and %d hits", what, (long long)q, x->count, y->count);
        for (int j = 0; j < x->count && j < y->count; j++)
            TEST_CHECK(!strcmp(x->hits[j].path, y->hits[j].path) &&
                           memcmp(&x->hits[j].score, &y->hits[j].score, sizeof(float)) == 0,
                       "%s: query %lld hit %d: %s %.9g vs %s %.9g", what, (long long)q, j, x->hits[j].path,
                       x->hits[j].score, y->hits[j].path, y->hits[j].score);
    }
}

/* Best first, equal scores by path; each score within 1e-6 of fp64 over the
 * rows as stored (f16 in the index, normalized as the k-NN table does). */
static void check_against_reference(const ims_search_results *r, const float *queries)
{
    for (int64_t q = 0; q < r->count; q++) {
        const ims_search_result *x = &r->results[q];
        const float *qv = queries + q * DIM;
        double qq = 0;
        for (int d = 0; d < DIM; d++)
            qq += (double)qv[d] * qv[d];
        for (int j = 0; j < x->count; j++) {
            const ims_search_hit *h = &x->hits[j];
            int i = atoi(strstr(h->path, "img") + 3);
            float v[DIM];
            file_vector(i, v);
            double vv = 0, vq = 0;
            for (int d = 0; d < DIM; d++) {
                v[d] = ims_f16_to_f32(ims_f32_to_f16(v[d]));
                vv += (double)v[d] * v[d];
            }
            for (int d = 0; d < DIM; d++)
                vq += (double)v[d] * qv[d];
            double want = vq / sqrt(vv) / sqrt(qq);
            TEST_CHECK(fabs(h->score - want) < 1e-6, "query %lld hit %d: %.9g, fp64 %.9g", (long long)q, j, h->score,
                       want);
            if (j > 0) {
                const ims_search_hit *p = &x->hits[j - 1];
                TEST_CHECK(p->score > h->score || (p->score == h->score && strcmp(p->path, h->path) < 0),
                           "query %lld: hits %d and %d out of order", (long long)q, j - 1, j);
            }
        }
    }
}

static ims_status search_all(const ims_index_set *set, ims_backend *be, const ims_search_vector *v, int k,
                             ims_search_results **out, ims_error *err)
{
    ims_search_options o;
    ims_search_options_init(&o);
    o.backend = be;
    ims_searcher *s = NULL;
    ims_status st = ims_searcher_open_set(set, &o, &s, err);
    if (!st)
        st = ims_searcher_search_vectors(s, v, QUERIES, k, out, err);
    ims_searcher_close(s);
    return st;
}

static void test_search(ims_backend *be)
{
    char single[600], shard[SHARDS][600], set_file[600], name[32];
    path_in("single", single, sizeof single);
    build(single, 0, 1, 0, 0);
    const char *shard_paths[SHARDS];
    for (int s = 0; s < SHARDS; s++) {
        snprintf(name, sizeof name, "shards/%04d", s);
        path_in(name, shard[s], sizeof shard[s]);
        build(shard[s], s, SHARDS, 11 * s + 5, 0);
        shard_paths[s] = shard[s];
    }
    ims_error err = {0};
    path_in("photos.set", set_file, sizeof set_file);
    TEST_OK(ims_index_set_create(set_file, shard_paths, SHARDS, &err), err);

    /* queries: random, and the repeated vectors themselves (exact ties at the top) */
    float queries[QUERIES * DIM];
    ims_search_vector v[QUERIES];
    uint64_t s = 77;
    for (int q = 0; q < QUERIES; q++) {
        if (q % 4 == 0)
            file_vector((q * 7) % 20, queries + q * DIM);
        else
            for (int d = 0; d < DIM; d++)
                queries[q * DIM + d] = test_rand_uniform(&s, -1.0f, 1.0f);
        v[q] = (ims_search_vector){IMS_INDEX_TABLE_VISUAL, DIM, queries + q * DIM, IMS_OK, NULL};
    }
    v[3].status = IMS_ERR_IO; /* a query that could not be embedded stays failed */
    v[3].error = "unreadable";

    ims_index_set *one = NULL, *set = NULL, *folder = NULL;
    char shards_dir[600];
    path_in("shards", shards_dir, sizeof shards_dir);
    TEST_OK(ims_index_set_open(single, &one, &err), err);
    TEST_OK(ims_index_set_open(set_file, &set, &err), err);
    TEST_OK(ims_index_set_open(shards_dir, &folder, &err), err);
    if (!one || !set || !folder)
        goto done;
    TEST_CHECK(!ims_index_set_is_set(one) && ims_index_set_is_set(set) && ims_index_set_shard_count(set) == SHARDS,
               "what each names");
    int64_t live = 0;
    for (int i = 0; i < SHARDS; i++)
        live += ims_index_live_row_count(ims_index_set_shard(set, i));
    TEST_CHECK(live == FILES, "the shards hold every file once: %lld", (long long)live);
    static const int ks[] = {1, 5, 37, 400};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
        int k = ks[ki];
        ims_search_results *a = NULL, *b = NULL, *c = NULL, *merged = NULL, *part[SHARDS] = {0};
        TEST_OK(search_all(one, be, v, k, &a, &err), err);
        TEST_OK(search_all(set, be, v, k, &b, &err), err);
        TEST_OK(search_all(folder, be, v, k, &c, &err), err);
        for (int p = 0; p < 2; p++) { /* two processes: parts 0 and 1 of 2 */
            ims_index_set *ps = NULL;
            TEST_OK(ims_index_set_open_part(set_file, p, 2, &ps, &err), err);
            if (ps) {
                TEST_CHECK((ims_index_set_shard(ps, 1) != NULL) == (p == 1), "part %d opens its shards only", p);
                TEST_OK(search_all(ps, be, v, k, &part[p], &err), err);
            }
            ims_index_set_close(ps);
        }
        if (part[0] && part[1])
            TEST_OK(ims_search_results_merge((const ims_search_results *const *)part, 2, k, &merged, &err), err);
        if (a && b && c && merged) {
            char what[64];
            snprintf(what, sizeof what, "set file, k %d", k);
            same_results(a, b, what);
            snprintf(what, sizeof what, "folder of shards, k %d", k);
            same_results(a, c, what);
            snprintf(what, sizeof what, "merged parts, k %d", k);
            same_results(a, merged, what);
            check_against_reference(b, queries);
            TEST_CHECK(b->results[0].count == (k < FILES ? k : FILES), "k %d: %d hits", k, b->results[0].count);
            TEST_CHECK(b->failed == 1 && b->results[3].status == IMS_ERR_IO && merged->results[3].status == IMS_ERR_IO &&
                           !strcmp(merged->results[3].error, "unreadable"),
                       "the failed query stays failed, with its reason");
            const ims_search_hit *h = &b->results[0].hits[0];
            const ims_index *sh = ims_index_set_shard(set, IMS_INDEX_SET_SHARD(h->row));
            TEST_CHECK(sh && !strcmp(ims_index_row(sh, IMS_INDEX_SET_SHARD_ROW(h->row))->path, h->path),
                       "a set row names its shard and row");
            if (k >= 5)
                TEST_CHECK(b->results[0].hits[0].score == b->results[0].hits[1].score, "query 0 ties at the top");
        }
        ims_search_results_free(a);
        ims_search_results_free(b);
        ims_search_results_free(c);
        ims_search_results_free(merged);
        for (int p = 0; p < SHARDS; p++)
            ims_search_results_free(part[p]);
    }
done:
    ims_index_set_close(one);
    ims_index_set_close(set);
    ims_index_set_close(folder);
}

static void test_refusals(void)
{
    ims_error err = {0};
    char other[600], bad[600], file[600];
    path_in("other", other, sizeof other);
    build(other, 0, 1, 0, DIM); /* with a semantic table: not like the others */
    const char *paths[2];
    char s0[600];
    paths[0] = path_in("shards/0000", s0, sizeof s0);
    paths[1] = other;
    path_in("bad.set", bad, sizeof bad);
    TEST_CHECK(ims_index_set_create(bad, paths, 2, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "shard 1 ("),
               "a shard unlike the first: %s", err.msg);
    struct stat sb;
    TEST_CHECK(stat(bad, &sb) != 0, "no set file written");
    static const char *const texts[] = {
        "{\"format\": \"imgsearch-index-set\", \"version\": 1, \"shards\": []}",
        "{\"format\": \"imgsearch-index-set\", \"version\": 1, \"shards\": [\"\"]}",
        "{\"format\": \"imgsearch-index\", \"version\": 1, \"shards\": [\"shards/0000\"]}",
        "{\"format\": \"imgsearch-index-set\", \"version\": 1, \"shards\": [\"%zz\"]}",
        "{\"format\": \"imgsearch-index-set\", \"version\": 1, \"shards\": [\"shards/0000\", \"other\"]}",
        "{\"format\": \"imgsearch-index-set\", \"version\": 1, \"shards\": [\"nowhere\"]}",
        "[1, 2",
    };
    path_in("t.set", file, sizeof file);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        FILE *f = fopen(file, "wb");
        fputs(texts[i], f);
        fclose(f);
        ims_index_set *set = NULL;
        err.msg[0] = '\0';
        TEST_CHECK(ims_index_set_open(file, &set, &err) != IMS_OK && !set && err.msg[0] && !strchr(err.msg, '\n'),
                   "set file %zu refused in one line: %s", i, err.msg);
    }
    ims_index_set *set = NULL;
    TEST_CHECK(ims_index_set_open(root, &set, &err) != IMS_OK, "a folder of no shards: %s", err.msg);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_index_set SCRATCH_DIR\n");
        return 2;
    }
    snprintf(root, sizeof root, "%s/test_index_set.%ld", argv[1], (long)getpid());
    mkdir(argv[1], 0700);
    char shards[600];
    if (mkdir(root, 0700) != 0 || mkdir(path_in("shards", shards, sizeof shards), 0700) != 0) {
        perror(root);
        return 1;
    }
    test_hash();
    ims_backend *be = NULL;
    ims_error err = {0};
    TEST_OK(ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err), err);
    if (be) {
        test_search(be);
        test_refusals();
    }
    ims_backend_free(be);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return test_finish();
}
