/* test_index_store.c: the file walk and the index store (engine/io/file_walk.c,
 * engine/index/store.c, store_write.c, compact.c): ordering, symlink loops,
 * escaping, commits, reopening, configuration checks, malformed manifests and
 * chunk files, tombstones, records hidden by a later one, the writer lock,
 * crash leftovers, compaction and the version-1 upgrade. */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include "index/store.h"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char tmp_root[256];

static void path_join(char *out, size_t size, const char *rel)
{
    snprintf(out, size, "%s/%s", tmp_root, rel);
}

static void touch(const char *rel, const char *content)
{
    char p[512];
    path_join(p, sizeof p, rel);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(2);
    }
    fputs(content, f);
    fclose(f);
}

static void make_dir(const char *rel)
{
    char p[512];
    path_join(p, sizeof p, rel);
    mkdir(p, 0755);
}

static void write_text(const char *rel, const char *fmt, ...)
{
    char p[512];
    path_join(p, sizeof p, rel);
    FILE *f = fopen(p, "wb");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

/* ---- Escaping ---------------------------------------------------------------------- */

static void check_escape_round_trip(const char *s, size_t len, const char *expect)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    imsi_index_escape_write(f, s, len);
    fclose(f);
    TEST_CHECK(!memchr(buf, '\n', size) && !memchr(buf, '\t', size), "escaped text holds a newline or tab");
    if (expect)
        TEST_CHECK(strcmp(buf, expect) == 0, "escape: got '%s', want '%s'", buf, expect);
    size_t n = size;
    TEST_CHECK(imsi_index_unescape(buf, &n) == 0, "unescape failed on '%s'", buf);
    TEST_CHECK(n == len && memcmp(buf, s, len) == 0, "round trip changed %zu bytes into %zu", len, n);
    free(buf);
}

static void test_escaping(void)
{
    check_escape_round_trip("plain/ascii name.jpg", 20, "plain/ascii name.jpg");
    check_escape_round_trip("a\tb\nc%d", 7, "a%09b%0Ac%25d");
    check_escape_round_trip("caf\xc3\xa9.jpg", 9, "caf\xc3\xa9.jpg");              /* valid UTF-8 kept */
    check_escape_round_trip("bad\xc3(\xff\xed\xa0\x80", 9, "bad%C3(%FF%ED%A0%80"); /* invalid bytes escaped */
    check_escape_round_trip("\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80");
    uint64_t rng = 7;
    for (int round = 0; round < 2000; round++) {
        char s[64];
        size_t len = 1 + test_rand_u64(&rng) % 63;
        for (size_t i = 0; i < len; i++)
            s[i] = (char)(1 + test_rand_u64(&rng) % 255); /* no NUL: paths cannot hold one */
        check_escape_round_trip(s, len, NULL);
    }
    char bad[] = "abc%4";
    size_t n = 5;
    TEST_CHECK(imsi_index_unescape(bad, &n) != 0, "a cut escape was accepted");
    char bad2[] = "%zz";
    n = 3;
    TEST_CHECK(imsi_index_unescape(bad2, &n) != 0, "a non-hex escape was accepted");
}

/* ---- The walk ---------------------------------------------------------------------------- */

/* Folders nested past PATH_MAX: the walk descends through descriptors; an
 * image whose path is too long to be opened by name is a problem with its
 * reason (it used to be counted as an ignored non-image, with everything under
 * the folder whose path was too long), and one above the limit is a file. */
static void test_walk_long_paths(void)
{
    char root[512];
    path_join(root, sizeof root, "long");
    make_dir("long");
    int fd = open(root, O_RDONLY | O_DIRECTORY);
    char name[201];
    memset(name, 'd', 200);
    name[200] = '\0';
    size_t path_len = strlen(root);
    for (int level = 0; fd >= 0 && level < 25; level++) { /* 25 x 201 bytes: past 4096 */
        if (level == 5) {
            int f = openat(fd, "shallow.png", O_WRONLY | O_CREAT | O_TRUNC, 0644);
            TEST_CHECK(f >= 0 && write(f, "x", 1) == 1, "shallow.png");
            close(f);
        }
        TEST_CHECK(mkdirat(fd, name, 0755) == 0, "mkdirat at level %d", level);
        int next = openat(fd, name, O_RDONLY | O_DIRECTORY);
        close(fd);
        fd = next;
        path_len += 201;
    }
    if (fd >= 0) {
        int f = openat(fd, "deep.png", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        TEST_CHECK(f >= 0 && write(f, "x", 1) == 1, "deep.png");
        close(f);
        close(fd);
    }
    TEST_CHECK(path_len > 4096, "the deep path is %zu bytes", path_len);
    ims_file_list list;
    ims_error err = {0};
    const char *roots[1] = {root};
    TEST_OK(ims_file_list_walk(roots, 1, &list, &err), err);
    TEST_CHECK(list.file_count == 1 && strstr(list.files[0].path, "/shallow.png"), "%lld files",
               (long long)list.file_count);
    TEST_CHECK(list.problem_count == 1 && strstr(list.problems[0].path, "/deep.png") &&
                   strstr(list.problems[0].reason, "PATH_MAX"),
               "%lld problems: %s", (long long)list.problem_count,
               list.problem_count ? list.problems[0].reason : "none");
    TEST_CHECK(list.ignored_count == 0, "%lld ignored", (long long)list.ignored_count);
    ims_file_list_free(&list);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    TEST_CHECK(system(cmd) == 0, "remove the deep folders");
}

static void test_walk(void)
{
    make_dir("photos");
    make_dir("photos/b");
    make_dir("photos/a");
    make_dir("photos/a/deep");
    touch("photos/z.JPG", "x");
    touch("photos/b/2.png", "x");
    touch("photos/b/1.jpeg", "x");
    touch("photos/a/deep/x.jpg", "x");
    touch("photos/a/notes.txt", "not an image");
    touch("photos/a/noext", "x");
    char link[512], target[512];
    path_join(link, sizeof link, "photos/a/loop");
    path_join(target, sizeof target, "photos");
    TEST_CHECK(symlink(target, link) == 0, "symlink");
    path_join(link, sizeof link, "photos/b/dangling.jpg");
    TEST_CHECK(symlink("/nonexistent/nowhere.jpg", link) == 0, "symlink");

    char root[512];
    path_join(root, sizeof root, "photos");
    const char *roots[2] = {root, root}; /* the same root twice: listed once */
    ims_file_list list;
    ims_error err = {0};
    TEST_OK(ims_file_list_walk(roots, 2, &list, &err), err);
    const char *expect[] = {"a/deep/x.jpg", "b/1.jpeg", "b/2.png", "z.JPG"};
    TEST_CHECK(list.file_count == 4, "%lld files listed, want 4", (long long)list.file_count);
    for (int64_t i = 0; i < list.file_count && i < 4; i++) {
        char want[600];
        snprintf(want, sizeof want, "%s/%s", root, expect[i]);
        TEST_CHECK(strcmp(list.files[i].path, want) == 0, "file %lld: '%s', want '%s'", (long long)i, list.files[i].path, want);
        TEST_CHECK(list.files[i].size == 1 && list.files[i].mtime_ns > 0, "size/mtime of %s", list.files[i].path);
    }
    TEST_CHECK(list.ignored_count == 2, "%lld ignored, want 2 (notes.txt, noext)", (long long)list.ignored_count);
    TEST_CHECK(list.problem_count == 1 && strstr(list.problems[0].path, "dangling.jpg") &&
                   strstr(list.problems[0].reason, "dangling"),
               "%lld problems; the dangling link must be one", (long long)list.problem_count);
    ims_file_list_free(&list);

    /* A file named on the command line is taken whatever its extension; a missing root is a problem. */
    char file[512], missing[512];
    path_join(file, sizeof file, "photos/a/notes.txt");
    path_join(missing, sizeof missing, "no/such/dir");
    const char *roots2[2] = {file, missing};
    TEST_OK(ims_file_list_walk(roots2, 2, &list, &err), err);
    TEST_CHECK(list.file_count == 1 && list.problem_count == 1, "%lld files, %lld problems", (long long)list.file_count,
               (long long)list.problem_count);
    ims_file_list_free(&list);

    if (geteuid() != 0) { /* root reads everything */
        make_dir("locked");
        touch("locked/in.jpg", "x");
        char locked[512];
        path_join(locked, sizeof locked, "locked");
        chmod(locked, 0);
        const char *roots3[1] = {locked};
        TEST_OK(ims_file_list_walk(roots3, 1, &list, &err), err);
        TEST_CHECK(list.problem_count == 1 && strstr(list.problems[0].reason, "cannot open folder"),
                   "an unreadable folder must be a problem");
        ims_file_list_free(&list);
        chmod(locked, 0755);
    }
}

/* ---- The index ---------------------------------------------------------------------------- */

enum { VD = 5, SD = 3 };

static void row_values(int row, float *v, float *s)
{
    uint64_t rng = 1000 + (uint64_t)row;
    for (int i = 0; i < VD; i++)
        v[i] = test_rand_uniform(&rng, -1, 1);
    for (int i = 0; i < SD; i++)
        s[i] = test_rand_uniform(&rng, -1, 1);
}

static void config_for_test(ims_index_config *c, ims_dtype dtype)
{
    ims_index_config_init(c);
    c->dtype = dtype;
    c->chunk_rows = 4;
    c->visual_dim = VD;
    c->semantic_dim = SD;
    c->conse_top = 3;
    c->precision = IMS_PRECISION_FP16;
    snprintf(c->image_model.name, sizeof c->image_model.name, "iv3.isw");
    c->image_model.bytes = 123;
    c->image_model.crc32 = 0xdeadbeef;
    snprintf(c->text_model.name, sizeof c->text_model.name, "text.isw");
    c->text_model.bytes = 456;
    c->text_model.crc32 = 0x01020304;
}

static void add_rows(ims_index *idx, int first, int count, ims_error *err)
{
    for (int r = first; r < first + count; r++) {
        char path[64];
        snprintf(path, sizeof path, "img/%03d\t%%\xff.jpg", r); /* needs escaping */
        float v[VD], s[SD];
        row_values(r, v, s);
        ims_file_entry e = {path, (uint64_t)r * 10, (int64_t)r * 1000000007};
        TEST_OK(ims_index_add(idx, &e, v, s, err), *err);
    }
}

/* ims_index_load_knn gives the k-NN table the stored rows, chunk by chunk in
 * the stored dtype: with the inner product and f32 storage (no normalization,
 * f16 widened exactly), a search's scores are the rows' dot products. Loading
 * twice appends: ids continue. */
static void check_load_knn(const ims_index *idx, int rows)
{
    ims_error err = {0};
    ims_backend *be = NULL;
    ims_knn_table *knn = NULL, *wrong = NULL;
    float *table = NULL;
    int dim = 0;
    TEST_OK(ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err), err);
    TEST_OK(ims_index_load_table(idx, IMS_INDEX_TABLE_VISUAL, &table, &dim, &err), err);
    ims_knn_options o;
    ims_knn_options_init(&o);
    o.metric = IMS_KNN_METRIC_IP;
    o.dtype = IMS_DTYPE_F32;
    TEST_OK(ims_knn_create(be, VD, &o, &knn, &err), err);
    TEST_OK(ims_knn_create(be, SD, &o, &wrong, &err), err);
    if (!be || !table || !knn || !wrong)
        goto done;
    TEST_CHECK(ims_index_load_knn(idx, IMS_INDEX_TABLE_VISUAL, 1, wrong, &err) == IMS_ERR_ARGUMENT &&
                   strstr(err.msg, "columns"),
               "a k-NN table of another dimension: %s", err.msg);
    TEST_OK(ims_index_load_knn(idx, IMS_INDEX_TABLE_VISUAL, 1, knn, &err), err);
    TEST_OK(ims_index_load_knn(idx, IMS_INDEX_TABLE_VISUAL, 0, knn, &err), err);
    TEST_CHECK(ims_knn_rows(knn) == 2 * rows, "%lld k-NN rows, want %d", (long long)ims_knn_rows(knn), 2 * rows);
    float q[VD] = {0.5f, -1, 0.25f, 2, -0.75f};
    int64_t ids[64];
    float scores[64];
    int k = 2 * rows;
    TEST_CHECK(k <= 64, "k");
    TEST_OK(ims_knn_search(knn, q, 1, k, ids, scores, &err), err);
    for (int j = 0; j < k; j++) {
        TEST_CHECK(ids[j] >= 0 && ids[j] < 2 * rows, "hit %d: id %lld", j, (long long)ids[j]);
        if (ids[j] < 0 || ids[j] >= 2 * rows)
            continue;
        const float *r = table + (size_t)(ids[j] % rows) * VD;
        double dot = 0;
        for (int c = 0; c < VD; c++)
            dot += (double)r[c] * q[c];
        TEST_CHECK(fabs(scores[j] - dot) < 1e-5, "hit %d (row %lld): score %g, dot %g", j, (long long)ids[j],
                   scores[j], dot);
    }
done:
    ims_knn_free(knn);
    ims_knn_free(wrong);
    ims_free(table);
    ims_backend_free(be);
}

static void check_index(const char *dir, int rows, int failures, ims_dtype dtype)
{
    ims_index *idx;
    ims_error err = {0};
    TEST_OK(ims_index_open(dir, &idx, &err), err);
    if (!idx)
        return;
    TEST_CHECK(ims_index_row_count(idx) == rows, "%lld rows, want %d", (long long)ims_index_row_count(idx), rows);
    TEST_CHECK(ims_index_failure_count(idx) == failures, "%lld failures, want %d",
               (long long)ims_index_failure_count(idx), failures);
    TEST_CHECK(ims_index_get_config(idx)->image_model.crc32 == 0xdeadbeef, "model crc");
    TEST_CHECK(ims_index_get_config(idx)->conse_top == 3, "conse_top %d, want 3", ims_index_get_config(idx)->conse_top);
    TEST_CHECK(ims_index_get_config(idx)->precision == IMS_PRECISION_FP16, "precision %d, want fp16",
               ims_index_get_config(idx)->precision);
    for (int r = 0; r < rows && r < (int)ims_index_row_count(idx); r++) {
        char path[64];
        snprintf(path, sizeof path, "img/%03d\t%%\xff.jpg", r);
        const ims_file_entry *e = ims_index_row(idx, (size_t)r);
        TEST_CHECK(strcmp(e->path, path) == 0 && e->size == (uint64_t)r * 10 && e->mtime_ns == (int64_t)r * 1000000007,
                   "row %d: path/size/mtime", r);
        TEST_CHECK(ims_index_contains(idx, path), "contains row %d", r);
    }
    TEST_CHECK(!ims_index_contains(idx, "img/none.jpg"), "contains a path never added");
    float *table;
    int dim;
    TEST_OK(ims_index_load_table(idx, IMS_INDEX_TABLE_VISUAL, &table, &dim, &err), err);
    /* f16 storage: within half a unit in the last place of a half (2^-11 relative) */
    double tol = dtype == IMS_DTYPE_F16 ? 1.0 / 2048 : 0;
    for (int r = 0; table && r < rows; r++) {
        float v[VD], s[SD];
        row_values(r, v, s);
        for (int i = 0; i < VD; i++)
            TEST_CHECK(fabsf(table[r * VD + i] - v[i]) <= tol * fabsf(v[i]), "visual[%d][%d] = %g, want %g", r, i,
                       table[r * VD + i], v[i]);
    }
    ims_free(table);
    TEST_OK(ims_index_load_table(idx, IMS_INDEX_TABLE_SEMANTIC, &table, &dim, &err), err);
    TEST_CHECK(dim == SD, "semantic dim %d", dim);
    for (int r = 0; table && r < rows; r++) {
        float v[VD], s[SD];
        row_values(r, v, s);
        for (int i = 0; i < SD; i++)
            TEST_CHECK(fabsf(table[r * SD + i] - s[i]) <= tol * fabsf(s[i]), "semantic[%d][%d]", r, i);
    }
    ims_free(table);
    check_load_knn(idx, rows);
    ims_index_close(idx);
}

static void test_index(ims_dtype dtype)
{
    char dir[512];
    path_join(dir, sizeof dir, dtype == IMS_DTYPE_F16 ? "index16" : "index32");
    ims_index_config cfg;
    config_for_test(&cfg, dtype);
    ims_error err = {0};
    ims_index *idx;

    /* 6 rows with chunks of 4: one chunk committed on the way, 2 rows pending. */
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &idx, &err), err);
    add_rows(idx, 0, 3, &err);
    TEST_OK(ims_index_add_failure(idx, "img/broken\n.jpg", "JPEG: premature end\tof data", &err), err);
    add_rows(idx, 3, 3, &err);
    TEST_CHECK(ims_index_row_count(idx) == 4 && ims_index_chunk_count(idx) == 1, "a chunk commits at 4 rows");
    ims_index_close(idx); /* a crash: the 2 pending rows are lost */
    check_index(dir, 4, 1, dtype);

    /* Resume: the committed files are known, the lost rows are added again. */
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &idx, &err), err);
    TEST_CHECK(ims_index_contains(idx, "img/broken\n.jpg"), "a committed failure is known");
    add_rows(idx, 4, 3, &err);
    TEST_OK(ims_index_commit(idx, &err), err);
    TEST_OK(ims_index_commit(idx, &err), err); /* nothing pending: no empty chunk */
    TEST_CHECK(ims_index_chunk_count(idx) == 2, "%lld chunks, want 2", (long long)ims_index_chunk_count(idx));
    TEST_OK(ims_index_add_failure(idx, "only/a/failure.png", "not an image", &err), err);
    TEST_OK(ims_index_commit(idx, &err), err); /* a chunk of failures only */
    ims_index_close(idx);
    check_index(dir, 7, 2, dtype);

    /* Class embeddings: absent until saved, then read back exactly. */
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &idx, &err), err);
    float *emb = NULL;
    int classes = 0;
    TEST_CHECK(ims_index_load_class_embeddings(idx, &emb, &classes, &err) == IMS_ERR_NOT_FOUND, "no classes.npy yet");
    float saved[7 * SD];
    uint64_t rng = 99;
    for (int i = 0; i < 7 * SD; i++)
        saved[i] = test_rand_uniform(&rng, -1, 1);
    TEST_OK(ims_index_save_class_embeddings(idx, saved, 7, &err), err);
    TEST_OK(ims_index_load_class_embeddings(idx, &emb, &classes, &err), err);
    TEST_CHECK(classes == 7 && emb && memcmp(emb, saved, sizeof saved) == 0, "class embeddings round trip");
    ims_free(emb);
    ims_index_close(idx);

    /* A run with another model is refused, naming it. */
    ims_index_config other = cfg;
    other.image_model.crc32 = 0x11111111;
    snprintf(other.image_model.name, sizeof other.image_model.name, "other.isw");
    TEST_CHECK(ims_index_open_for_writing(dir, &other, &idx, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "other.isw"),
               "another image model: %s", err.msg);
    other = cfg;
    other.mode = IMS_PREPROCESS_FID;
    TEST_CHECK(ims_index_open_for_writing(dir, &other, &idx, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "mode"),
               "another mode: %s", err.msg);
    /* ConSE's class count and the precision are part of what the rows are: a
     * run with others would mix two kinds of rows in one table. */
    other = cfg;
    other.conse_top = 5;
    TEST_CHECK(ims_index_open_for_writing(dir, &other, &idx, &err) == IMS_ERR_ARGUMENT &&
                   strstr(err.msg, "--conse-top 3") && strstr(err.msg, "not 5"),
               "another conse_top: %s", err.msg);
    other = cfg;
    other.precision = IMS_PRECISION_FP32;
    TEST_CHECK(ims_index_open_for_writing(dir, &other, &idx, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "fp16") &&
                   strstr(err.msg, "fp32"),
               "another precision: %s", err.msg);
    check_index(dir, 7, 2, dtype); /* the refusals changed nothing */
}

/* Two chunks' tables of the same shape swapped: the index opens (sizes agree)
 * but loading the table names the file by its CRC-32, unless asked not to
 * verify (then it is the caller's risk). Before CRCs were recorded, a search
 * returned the wrong image at score 1.0. */
static void test_swapped_chunks(void)
{
    ims_index_config cfg;
    config_for_test(&cfg, IMS_DTYPE_F16);
    ims_error err = {0};
    ims_index *idx = NULL;
    char dir[512], a[600], b[600], tmp[600];
    path_join(dir, sizeof dir, "swapped");
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &idx, &err), err);
    if (!idx)
        return;
    add_rows(idx, 0, 2 * cfg.chunk_rows, &err); /* two full chunks */
    TEST_OK(ims_index_commit(idx, &err), err);
    ims_index_close(idx);
    snprintf(a, sizeof a, "%s/chunk-000000.visual.npy", dir);
    snprintf(b, sizeof b, "%s/chunk-000001.visual.npy", dir);
    snprintf(tmp, sizeof tmp, "%s/swap.npy", dir);
    TEST_CHECK(!rename(a, tmp) && !rename(b, a) && !rename(tmp, b), "swap the two tables");
    ims_backend *be = NULL;
    ims_knn_table *knn = NULL;
    ims_knn_options o;
    ims_knn_options_init(&o);
    TEST_OK(ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err), err);
    if (be)
        TEST_OK(ims_knn_create(be, VD, &o, &knn, &err), err);
    TEST_OK(ims_index_open(dir, &idx, &err), err);
    if (idx && knn) {
        ims_status st = ims_index_load_knn(idx, IMS_INDEX_TABLE_VISUAL, 1, knn, &err);
        TEST_CHECK(st == IMS_ERR_CHECKSUM && strstr(err.msg, "chunk-000000.visual.npy") && strstr(err.msg, "CRC-32"),
                   "swapped tables: %s '%s'", ims_status_name(st), err.msg);
        ims_knn_free(knn);
        knn = NULL;
        TEST_OK(ims_knn_create(be, VD, &o, &knn, &err), err);
        if (knn)
            TEST_OK(ims_index_load_knn(idx, IMS_INDEX_TABLE_VISUAL, 0, knn, &err), err); /* sizes only */
    }
    ims_index_close(idx);
    ims_knn_free(knn);
    ims_backend_free(be);
}

/* Replaces the record of chunk 0's file `name` in the manifest text m with
 * the size and CRC-32 of content: a changed file whose record matches, so the
 * parser's own checks are reached. Returns a malloc'd manifest. */
static char *with_record(const char *m, const char *name, const char *content)
{
    char key[64], rec[128];
    snprintf(key, sizeof key, "\"%s\": {\"bytes\": ", name);
    const char *at = strstr(m, key);
    const char *end = at ? strchr(at, '}') : NULL;
    if (!at || !end)
        return strdup(m);
    snprintf(rec, sizeof rec, "\"%s\": {\"bytes\": %zu, \"crc32\": \"%08lx\"", name, strlen(content),
             (unsigned long)crc32(0, (const unsigned char *)content, (unsigned)strlen(content)));
    size_t head = (size_t)(at - m), len = strlen(m);
    char *out = malloc(len + sizeof rec);
    memcpy(out, m, head);
    strcpy(out + head, rec);
    strcat(out, end);
    return out;
}

/* The fields of a version-2 manifest up to "rows", for hand-made cases. */
#define V2_HEAD                                                                                              \
    "{\"format\": \"imgsearch-index\", \"version\": 2, \"tool_version\": \"x\", \"committed\": "             \
    "\"2025-01-01T00:00:00Z\", \"mode\": \"torchvision\", \"dtype\": \"f32\", \"chunk_rows\": 4, "         \
    "\"visual_dim\": 5, \"semantic_dim\": 0, \"image_model\": {\"name\": \"a\", \"path\": \"/a\", \"bytes\": 1, " \
    "\"crc32\": \"deadbeef\"}, \"roots\": [], \"settings\": {}, "
#define V2_FILES                                                                                             \
    "\"files\": {\"visual.npy\": {\"bytes\": 0, \"crc32\": \"00000000\"}, \"rows.txt\": {\"bytes\": 0, "        \
    "\"crc32\": \"00000000\"}, \"failures.txt\": {\"bytes\": 0, \"crc32\": \"00000000\"}}"

/* Each malformed manifest or chunk file is refused with a message naming it.
 * A changed chunk file fails its size or CRC-32 check first; with a record
 * that matches it, the parser's own check. */
static void test_malformed(void)
{
    ims_index_config cfg;
    config_for_test(&cfg, IMS_DTYPE_F32);
    ims_error err = {0};
    ims_index *idx;
    char dir[512];
    path_join(dir, sizeof dir, "bad");
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &idx, &err), err);
    add_rows(idx, 0, 3, &err);
    TEST_OK(ims_index_commit(idx, &err), err);
    add_rows(idx, 3, 1, &err);
    TEST_OK(ims_index_remove(idx, 1, &err), err); /* chunk 1 has tombstones */
    TEST_OK(ims_index_commit(idx, &err), err);
    ims_index_close(idx);

    static const struct {
        const char *file, *content, *expect;
    } cases[] = {
        {"bad/manifest.json", "{\"format\": \"zip\"}", "not an imgsearch index"},
        {"bad/manifest.json", "[1, 2]", "not a JSON object"},
        {"bad/manifest.json", "{\"format\": \"imgsearch-index\", \"version\": 9}", "version 9"},
        {"bad/manifest.json", "{\"format\": \"imgsearch-index\", \"version\": 3}", "a newer imgsearch"},
        {"bad/manifest.json",
         "{\"format\": \"imgsearch-index\", \"version\": 2, \"tool_version\": \"x\", \"mode\": \"torchvision\","
         " \"dtype\": \"f32\", \"chunk_rows\": 4, \"visual_dim\": 5, \"semantic_dim\": 3,"
         " \"image_model\": {\"name\": \"a\", \"path\": \"/a\", \"bytes\": 1, \"crc32\": \"deadbeef\"},"
         " \"text_model\": {\"name\": \"b\", \"path\": \"/b\", \"bytes\": 1, \"crc32\": \"xyz\"},"
         " \"rows\": 2, \"failures\": 0, \"chunks\": []}",
         "crc32"},
        {"bad/manifest.json",
         V2_HEAD "\"rows\": 3, \"failures\": 0, \"tombstones\": {\"rows\": 0, \"failures\": 0}, \"next_chunk\": 1,"
                 " \"chunks\": [{\"id\": 0, \"rows\": 2, \"failures\": 0, \"tombstones\": 0, " V2_FILES "}]}",
         "the chunks hold 2 rows"},
        {"bad/manifest.json",
         V2_HEAD "\"rows\": 2, \"failures\": 0, \"tombstones\": {\"rows\": 0, \"failures\": 0}, \"next_chunk\": 1,"
                 " \"chunks\": [{\"id\": 0, \"rows\": 2, \"failures\": 0, \"tombstones\": 0}]}",
         "'files' is missing"},
        {"bad/manifest.json",
         V2_HEAD "\"rows\": 2, \"failures\": 0, \"tombstones\": {\"rows\": 0, \"failures\": 0}, \"next_chunk\": 1,"
                 " \"chunks\": [{\"id\": 3, \"rows\": 2, \"failures\": 0, \"tombstones\": 0, " V2_FILES "}]}",
         "not below next_chunk"},
        {"bad/manifest.json",
         V2_HEAD "\"rows\": 2, \"failures\": 0, \"tombstones\": {\"rows\": 0, \"failures\": 0}, \"next_chunk\": 9,"
                 " \"chunks\": [{\"id\": 3, \"rows\": 1, \"failures\": 0, \"tombstones\": 0, " V2_FILES "},"
                 " {\"id\": 3, \"rows\": 1, \"failures\": 0, \"tombstones\": 0, " V2_FILES "}]}",
         "ids must grow"},
        {"bad/manifest.json",
         V2_HEAD "\"rows\": 0, \"failures\": 0, \"tombstones\": {\"rows\": 1, \"failures\": 0}, \"next_chunk\": 0,"
                 " \"chunks\": []}",
         "'rows' at byte"}, /* more tombstones than rows */
        {"bad/manifest.json",
         "{\"format\": \"imgsearch-index\", \"version\": 2, \"tool_version\": \"x\", \"committed\": \"x\","
         " \"mode\": \"torchvision\", \"dtype\": \"f32\", \"chunk_rows\": 4, \"visual_dim\": 5, \"semantic_dim\": 0,"
         " \"image_model\": {\"name\": \"a\", \"path\": \"/a\", \"bytes\": 1, \"crc32\": \"deadbeef\"},"
         " \"roots\": [\"relative/path\"], \"settings\": {}, \"rows\": 0, \"failures\": 0,"
         " \"tombstones\": {\"rows\": 0, \"failures\": 0}, \"next_chunk\": 0, \"chunks\": []}",
         "not an absolute path"},
        {"bad/manifest.json",
         V2_HEAD "\"rows\": 0, \"failures\": 0, \"tombstones\": {\"rows\": 0, \"failures\": 0}, \"chunks\": []}",
         "'next_chunk' is missing"},
        {"bad/manifest.json",
         "{\"format\": \"imgsearch-index\", \"version\": 2, \"tool_version\": \"x\", \"committed\": \"x\","
         " \"mode\": \"torchvision\", \"dtype\": \"f32\", \"chunk_rows\": 4, \"visual_dim\": 5, \"semantic_dim\": 0,"
         " \"image_model\": {\"name\": \"a\", \"path\": \"/a%zz\", \"bytes\": 1, \"crc32\": \"deadbeef\"},"
         " \"roots\": [], \"settings\": {}, \"rows\": 0, \"failures\": 0,"
         " \"tombstones\": {\"rows\": 0, \"failures\": 0}, \"next_chunk\": 0, \"chunks\": []}",
         "malformed %XX"},
        {"bad/manifest.json",
         V2_HEAD "\"rows\": 0, \"failures\": 0, \"tombstones\": {\"rows\": 0, \"failures\": 0}, \"next_chunk\": 0,"
                 " \"conse_top\": 0, \"chunks\": []}",
         "'conse_top'"},
        {"bad/manifest.json",
         V2_HEAD "\"rows\": 0, \"failures\": 0, \"tombstones\": {\"rows\": 0, \"failures\": 0}, \"next_chunk\": 0,"
                 " \"precision\": \"fp8\", \"chunks\": []}",
         "precision 'fp8'"},
        {"bad/chunk-000000.rows.txt", "20\t1\t-\timg/000.jpg\n", "more than its 19 bytes can hold"},
        {"bad/chunk-000000.rows.txt", "20\t1\t-\timg/000.jpg\n20\t1\t-\timg/001.jpg\n", "2 rows, the manifest lists 3"},
        {"bad/chunk-000000.rows.txt", "20\t1\t-\timg/000.jpg\nx\t1\t-\timg/001.jpg\n20\t1\t-\tc.jpg\n", "line 2"},
        {"bad/chunk-000000.rows.txt", "20\t1\t-\timg/000.jpg\n20\t1\tabc\timg/001.jpg\n20\t1\t-\tc.jpg\n",
         "crc32 is not 8 hex digits"},
        {"bad/chunk-000000.rows.txt", "20\t1\t-\timg/000.jpg\n20\t1\t-\timg/%G1.jpg\n20\t1\t-\tc.jpg\n", "malformed"},
        {"bad/chunk-000000.rows.txt", "20\t1\timg/000.jpg\n20\t1\timg/001.jpg\n20\t1\tc.jpg\n", "expected size"},
        {"bad/chunk-000000.failures.txt", "0\t0\tone\tline\n", "more than the 0 failures"},
        {"bad/chunk-000001.tombstones.txt", "row\t7\n", "row 7 is not a record of an earlier chunk"},
        {"bad/chunk-000001.tombstones.txt", "row\t3\n", "row 3 is not a record of an earlier chunk"},
        {"bad/chunk-000001.tombstones.txt", "failure\t0\n", "failure 0 is not a record"},
        {"bad/chunk-000001.tombstones.txt", "rows\t1\n", "expected row<TAB>ID"},
        {"bad/chunk-000001.tombstones.txt", "row\t1\nrow\t1\n", "more than the 1 tombstones"},
        {"bad/chunk-000001.tombstones.txt", "row\t-1\n", "expected row<TAB>ID"},
    };
    char manifest[512];
    path_join(manifest, sizeof manifest, "bad/manifest.json");
    static const char *const chunk_files[] = {"bad/chunk-000000.rows.txt", "bad/chunk-000000.failures.txt",
                                              "bad/chunk-000001.tombstones.txt"};
    char *good[3];
    size_t manifest_len, len;
    char *good_manifest = test_read_file(manifest, &manifest_len);
    for (int f = 0; f < 3; f++) {
        char p[512];
        path_join(p, sizeof p, chunk_files[f]);
        good[f] = test_read_file(p, &len);
    }
    TEST_CHECK(strstr(good_manifest, "\"tombstones\": 1") && strstr(good_manifest, "\"tombstones.txt\""),
               "the manifest records chunk 1's tombstones");
    TEST_CHECK(good[2] && strcmp(good[2], "row\t1\n") == 0, "tombstones.txt: '%s'", good[2] ? good[2] : "");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int chunk_file = strstr(cases[i].file, "chunk-") != NULL;
        for (int matched = 0; matched <= chunk_file; matched++) {
            write_text(cases[i].file, "%s", cases[i].content);
            if (matched) { /* the manifest's record says the changed file is the one */
                const char *suffix = strchr(cases[i].file + strlen("bad/chunk-"), '.') + 1; /* "rows.txt" */
                char *m = with_record(good_manifest, suffix, cases[i].content);
                write_text("bad/manifest.json", "%s", m);
                free(m);
            }
            const char *expect = chunk_file && !matched ? "the file was changed or replaced" : cases[i].expect;
            err.msg[0] = '\0';
            ims_status st = ims_index_open(dir, &idx, &err);
            TEST_CHECK(st != IMS_OK && strstr(err.msg, expect), "case %zu (%s%s): %s -> '%s'", i, cases[i].file,
                       matched ? ", its record matching" : "", ims_status_name(st), err.msg);
            if (st == IMS_OK)
                ims_index_close(idx);
            write_text("bad/manifest.json", "%s", good_manifest);
            for (int f = 0; f < 3; f++)
                write_text(chunk_files[f], "%s", good[f] ? good[f] : "");
        }
    }
    /* A hostile count (2^62 failures, the records intact): refused by the
     * size of failures.txt, before it sizes memory (it once wrapped a
     * capacity to zero). */
    char *hostile = malloc(manifest_len + 64), *at;
    if (hostile) {
        strcpy(hostile, good_manifest);
        static const char from[] = "\"failures\": 0,", to[] = "\"failures\": 4611686018427387904,";
        for (int i = 0; i < 2 && (at = strstr(hostile, from)); i++) { /* the total, then chunk 0's */
            memmove(at + strlen(to), at + strlen(from), strlen(at + strlen(from)) + 1);
            memcpy(at, to, strlen(to));
        }
        write_text("bad/manifest.json", "%s", hostile);
        TEST_CHECK(ims_index_open(dir, &idx, &err) == IMS_ERR_FORMAT && strstr(err.msg, "more than its"),
                   "a hostile failure count: %s", err.msg);
        write_text("bad/manifest.json", "%s", good_manifest);
        free(hostile);
    }
    /* The same size, one byte changed: the CRC-32 names the file. */
    char *changed = good[0] ? strdup(good[0]) : NULL;
    if (changed && changed[0]) {
        changed[0] = changed[0] == '1' ? '2' : '1';
        write_text("bad/chunk-000000.rows.txt", "%s", changed);
        TEST_CHECK(ims_index_open(dir, &idx, &err) == IMS_ERR_CHECKSUM && strstr(err.msg, "CRC-32") &&
                       strstr(err.msg, "rows.txt"),
                   "a changed byte in rows.txt: '%s'", err.msg);
        write_text("bad/chunk-000000.rows.txt", "%s", good[0]);
    }
    free(changed);
    TEST_OK(ims_index_open(dir, &idx, &err), err); /* restored */
    ims_index_close(idx);
    free(good_manifest);
    for (int f = 0; f < 3; f++)
        free(good[f]);
}

/* ---- Tombstones, the lock, leftovers, compaction, version 1 ---------------------------------- */

static ims_index *reopen(const char *dir)
{
    ims_index *idx = NULL;
    ims_error err = {0};
    TEST_OK(ims_index_open(dir, &idx, &err), err);
    return idx;
}

static char *row_path(int r)
{
    static char path[64];
    snprintf(path, sizeof path, "img/%03d\t%%\xff.jpg", r);
    return path;
}

/* Rows 0..11 in three chunks of 4; rows 1, 5 and 9 and the failure retired. */
static void make_tombstoned(const char *dir, ims_index_config *cfg)
{
    ims_error err = {0};
    ims_index *idx = NULL;
    TEST_OK(ims_index_open_for_writing(dir, cfg, &idx, &err), err);
    if (!idx)
        return;
    add_rows(idx, 0, 2, &err);
    TEST_OK(ims_index_add_failure(idx, "broken.jpg", "not an image", &err), err);
    add_rows(idx, 2, 10, &err); /* commits at 4, 8 and 12 rows */
    TEST_CHECK(ims_index_chunk_count(idx) == 3, "%lld chunks", (long long)ims_index_chunk_count(idx));
    TEST_OK(ims_index_remove(idx, 1, &err), err);
    TEST_OK(ims_index_remove(idx, 5, &err), err);
    TEST_OK(ims_index_remove_failure(idx, 0, &err), err);
    TEST_CHECK(ims_index_row_live(idx, 1) && ims_index_contains(idx, row_path(1)),
               "a pending tombstone is not committed yet");
    TEST_OK(ims_index_commit(idx, &err), err); /* a chunk of tombstones only */
    TEST_OK(ims_index_remove(idx, 9, &err), err);
    TEST_CHECK(ims_index_remove(idx, 9, &err) == IMS_ERR_ARGUMENT, "a row retired twice: %s", err.msg);
    TEST_CHECK(ims_index_remove(idx, 1, &err) == IMS_ERR_ARGUMENT, "a dead row retired: %s", err.msg);
    TEST_CHECK(ims_index_remove(idx, 12, &err) == IMS_ERR_ARGUMENT, "a row out of range: %s", err.msg);
    TEST_CHECK(ims_index_remove_failure(idx, 0, &err) == IMS_ERR_ARGUMENT, "a dead failure retired: %s", err.msg);
    add_rows(idx, 12, 1, &err);
    TEST_OK(ims_index_commit(idx, &err), err);
    ims_index_close(idx);
}

static void test_tombstones(void)
{
    ims_index_config cfg;
    config_for_test(&cfg, IMS_DTYPE_F16);
    char dir[512];
    path_join(dir, sizeof dir, "tomb");
    make_tombstoned(dir, &cfg);
    ims_index *idx = reopen(dir);
    if (!idx)
        return;
    ims_index_info info;
    ims_index_get_info(idx, &info);
    TEST_CHECK(info.version == 2 && info.rows == 13 && info.live_rows == 10 && info.failures == 1 &&
                   info.live_failures == 0 && info.chunks == 5 && info.committed[0] && info.disk_bytes > 0,
               "info: version %d, rows %lld/%lld, failures %lld/%lld, chunks %lld", info.version,
               (long long)info.live_rows, (long long)info.rows, (long long)info.live_failures,
               (long long)info.failures, (long long)info.chunks);
    static const int dead[3] = {1, 5, 9};
    for (int i = 0; i < 3; i++)
        TEST_CHECK(!ims_index_row_live(idx, dead[i]) && !ims_index_contains(idx, row_path(dead[i])), "row %d is dead",
                   dead[i]);
    TEST_CHECK(ims_index_contains(idx, row_path(0)) && ims_index_contains(idx, row_path(12)) &&
                   !ims_index_contains(idx, "broken.jpg"),
               "contains");
    int64_t expect = 0, chunk = -1, offset = -1;
    ims_error err = {0};
    for (int64_t i = 0; i < ims_index_live_row_count(idx); i++, expect++) {
        while (expect == 1 || expect == 5 || expect == 9)
            expect++;
        TEST_CHECK(ims_index_live_row(idx, i) == expect, "live row %lld is row %lld, want %lld", (long long)i,
                   (long long)ims_index_live_row(idx, i), (long long)expect);
    }
    TEST_CHECK(ims_index_live_row(idx, 10) == -1, "past the live rows");
    TEST_OK(ims_index_row_location(idx, 6, &chunk, &offset, &err), err);
    TEST_CHECK(chunk == 1 && offset == 2, "row 6 at chunk %lld offset %lld, want 1 2", (long long)chunk,
               (long long)offset);
    TEST_OK(ims_index_row_location(idx, 12, &chunk, &offset, &err), err);
    TEST_CHECK(chunk == 4 && offset == 0, "row 12 at chunk %lld offset %lld, want 4 0", (long long)chunk,
               (long long)offset);
    TEST_CHECK(ims_index_row_location(idx, 13, &chunk, &offset, &err) == IMS_ERR_ARGUMENT, "row 13");
    /* The same in bulk: the live ids, and the chunks with their rows (the tombstones-only chunk has none). */
    int64_t live[12] = {0};
    TEST_CHECK(ims_index_live_rows(idx, live, 12) == 10 && live[0] == 0 && live[1] == 2 && live[9] == 12,
               "ims_index_live_rows: %lld %lld .. %lld", (long long)live[0], (long long)live[1], (long long)live[9]);
    TEST_CHECK(ims_index_live_rows(idx, NULL, 0) == 10, "the count alone");
    static const int64_t chunk_rows[5][3] = {{0, 0, 4}, {1, 4, 4}, {2, 8, 4}, {3, 12, 0}, {4, 12, 1}};
    for (int c = 0; c < 5; c++) {
        int64_t id = -1, first = -1, rows = -1;
        TEST_OK(ims_index_chunk(idx, c, &id, &first, &rows, &err), err);
        TEST_CHECK(id == chunk_rows[c][0] && first == chunk_rows[c][1] && rows == chunk_rows[c][2],
                   "chunk %d: id %lld rows %lld + %lld", c, (long long)id, (long long)first, (long long)rows);
    }
    TEST_CHECK(ims_index_chunk(idx, 5, &chunk, &offset, &chunk, &err) == IMS_ERR_ARGUMENT, "chunk 5: %s", err.msg);
    /* The tables hold the live rows, in order. */
    float *table = NULL;
    int dim = 0;
    TEST_OK(ims_index_load_table(idx, IMS_INDEX_TABLE_VISUAL, &table, &dim, &err), err);
    for (int64_t i = 0; table && i < 10; i++) {
        float v[VD], sem[SD];
        row_values((int)ims_index_live_row(idx, i), v, sem);
        TEST_CHECK(fabsf(table[i * VD] - v[0]) <= fabsf(v[0]) / 2048, "live row %lld's values", (long long)i);
    }
    ims_free(table);
    ims_backend *be = NULL;
    ims_knn_table *knn = NULL;
    ims_knn_options o;
    ims_knn_options_init(&o);
    TEST_OK(ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err), err);
    if (be)
        TEST_OK(ims_knn_create(be, VD, &o, &knn, &err), err);
    if (knn) {
        TEST_OK(ims_index_load_knn(idx, IMS_INDEX_TABLE_VISUAL, 1, knn, &err), err);
        TEST_CHECK(ims_knn_rows(knn) == 10, "the k-NN table holds %lld rows, want the 10 live ones",
                   (long long)ims_knn_rows(knn));
    }
    ims_knn_free(knn);
    ims_backend_free(be);
    ims_index_close(idx);
}

/* Two live records of one path (a hand-edited or damaged index): readers see
 * the later one only; the next writer retires the earlier with a tombstone. */
static void test_shadowed(void)
{
    ims_index_config cfg;
    config_for_test(&cfg, IMS_DTYPE_F32);
    char dir[512];
    path_join(dir, sizeof dir, "shadow");
    ims_error err = {0};
    ims_index *idx = NULL;
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &idx, &err), err);
    if (!idx)
        return;
    add_rows(idx, 0, 2, &err);
    TEST_OK(ims_index_commit(idx, &err), err);
    add_rows(idx, 1, 1, &err); /* row 1's path again, without retiring the first */
    TEST_OK(ims_index_commit(idx, &err), err);
    ims_index_close(idx);
    idx = reopen(dir);
    if (idx) {
        TEST_CHECK(ims_index_live_row_count(idx) == 2 && !ims_index_row_live(idx, 1) && ims_index_row_live(idx, 2),
                   "the later record of a path hides the earlier");
        ims_index_close(idx);
    }
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &idx, &err), err);
    TEST_OK(ims_index_commit(idx, &err), err);
    ims_index_close(idx);
    char p[512];
    path_join(p, sizeof p, "shadow/chunk-000002.tombstones.txt");
    size_t len = 0;
    char *text = test_read_file(p, &len);
    TEST_CHECK(text && strcmp(text, "row\t1\n") == 0, "the writer retires the hidden record: '%s'", text ? text : "");
    free(text);
}

/* One writer at a time; readers do not wait; a killed writer's leftovers go. */
static void test_lock_and_leftovers(void)
{
    ims_index_config cfg;
    config_for_test(&cfg, IMS_DTYPE_F32);
    char dir[512];
    path_join(dir, sizeof dir, "locked_index");
    ims_error err = {0};
    ims_index *a = NULL, *b = NULL, *r = NULL;
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &a, &err), err);
    if (!a)
        return;
    add_rows(a, 0, 4, &err); /* one chunk committed */
    char pid[32];
    snprintf(pid, sizeof pid, "process %ld", (long)getpid());
    TEST_CHECK(ims_index_open_for_writing(dir, &cfg, &b, &err) == IMS_ERR_BUSY && !b && strstr(err.msg, pid) &&
                   strstr(err.msg, "one writer at a time"),
               "a second writer: %s", err.msg);
    TEST_OK(ims_index_open(dir, &r, &err), err); /* a reader takes no lock */
    TEST_CHECK(r && ims_index_row_count(r) == 4, "a reader sees the committed rows");
    ims_index_close(r);
    ims_index_close(a);
    /* What a writer killed mid-commit leaves; and a file that is not ours. */
    write_text("locked_index/manifest.json.tmp.4242", "{");
    write_text("locked_index/chunk-000001.visual.npy.tmp.4242", "x");
    write_text("locked_index/chunk-000001.rows.txt", "x");
    write_text("locked_index/chunk-000007.failures.txt", "x");
    write_text("locked_index/notes.txt", "mine");
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &b, &err), err);
    ims_index_close(b);
    static const char *const gone[] = {"manifest.json.tmp.4242", "chunk-000001.visual.npy.tmp.4242",
                                       "chunk-000001.rows.txt", "chunk-000007.failures.txt"};
    for (int i = 0; i < 4; i++) {
        char p[512], rel[128];
        snprintf(rel, sizeof rel, "locked_index/%s", gone[i]);
        path_join(p, sizeof p, rel);
        TEST_CHECK(access(p, F_OK) != 0, "the leftover %s was not removed", gone[i]);
    }
    char keep[512];
    path_join(keep, sizeof keep, "locked_index/notes.txt");
    TEST_CHECK(access(keep, F_OK) == 0, "a file that is not the index's was removed");
    r = reopen(dir);
    TEST_CHECK(r && ims_index_row_count(r) == 4, "the index after the clean-up");
    ims_index_close(r);
}

/* Compaction keeps the live records, in order, bit for bit, in fewer chunks
 * under new ids; the old files go; a reader of the old manifest is told. */
static void test_compact(ims_dtype dtype)
{
    ims_index_config cfg;
    config_for_test(&cfg, dtype);
    char dir[512];
    path_join(dir, sizeof dir, dtype == IMS_DTYPE_F16 ? "compact16" : "compact32");
    make_tombstoned(dir, &cfg);
    ims_error err = {0};
    ims_index *before = reopen(dir);
    if (!before)
        return;
    float *t0 = NULL, *t1 = NULL, *s0 = NULL;
    int dim = 0;
    TEST_OK(ims_index_load_table(before, IMS_INDEX_TABLE_VISUAL, &t0, &dim, &err), err);
    TEST_OK(ims_index_load_table(before, IMS_INDEX_TABLE_SEMANTIC, &s0, &dim, &err), err);
    ims_index_compact_report rep;
    TEST_OK(ims_index_compact(dir, NULL, &rep, &err), err);
    TEST_CHECK(rep.rows == 10 && rep.failures == 0 && rep.dropped_rows == 3 && rep.dropped_failures == 1 &&
                   rep.chunks_before == 5 && rep.chunks_after == 3 && rep.bytes_after < rep.bytes_before,
               "report: %lld rows, %lld dropped, chunks %lld -> %lld", (long long)rep.rows,
               (long long)rep.dropped_rows, (long long)rep.chunks_before, (long long)rep.chunks_after);
    /* The old manifest's reader: its files are gone, and it says so. */
    ims_backend *be = NULL;
    ims_knn_table *knn = NULL;
    ims_knn_options o;
    ims_knn_options_init(&o);
    TEST_OK(ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err), err);
    if (be)
        TEST_OK(ims_knn_create(be, VD, &o, &knn, &err), err);
    if (knn)
        TEST_CHECK(ims_index_load_knn(before, IMS_INDEX_TABLE_VISUAL, 1, knn, &err) == IMS_ERR_NOT_FOUND &&
                       strstr(err.msg, "open it again"),
                   "a reader after a compaction: %s", err.msg);
    ims_knn_free(knn);
    ims_backend_free(be);
    ims_index *after = reopen(dir);
    if (after) {
        TEST_CHECK(ims_index_row_count(after) == 10 && ims_index_live_row_count(after) == 10 &&
                       ims_index_failure_count(after) == 0 && ims_index_chunk_count(after) == 3,
                   "after: %lld rows in %lld chunks", (long long)ims_index_row_count(after),
                   (long long)ims_index_chunk_count(after));
        for (int64_t i = 0; i < 10 && i < ims_index_row_count(after); i++)
            TEST_CHECK(strcmp(ims_index_row(after, i)->path, ims_index_row(before, ims_index_live_row(before, i))->path) == 0,
                       "row %lld's path", (long long)i);
        int64_t chunk = -1, offset = -1;
        TEST_OK(ims_index_row_location(after, 0, &chunk, &offset, &err), err);
        TEST_CHECK(chunk == 5 && offset == 0, "the new chunks' ids follow the old ones: %lld", (long long)chunk);
        TEST_OK(ims_index_load_table(after, IMS_INDEX_TABLE_VISUAL, &t1, &dim, &err), err);
        TEST_CHECK(t0 && t1 && memcmp(t0, t1, 10 * VD * sizeof *t0) == 0, "the visual rows are copied bit for bit");
        ims_free(t1);
        TEST_OK(ims_index_load_table(after, IMS_INDEX_TABLE_SEMANTIC, &t1, &dim, &err), err);
        TEST_CHECK(s0 && t1 && memcmp(s0, t1, 10 * SD * sizeof *s0) == 0, "the semantic rows are copied bit for bit");
        ims_free(t1);
        ims_index_close(after);
    }
    for (int c = 0; c < 5; c++) {
        char p[512], rel[128];
        snprintf(rel, sizeof rel, "%s/chunk-%06d.rows.txt", dtype == IMS_DTYPE_F16 ? "compact16" : "compact32", c);
        path_join(p, sizeof p, rel);
        TEST_CHECK(access(p, F_OK) != 0, "an old chunk's file is still there: %s", rel);
    }
    ims_free(t0);
    ims_free(s0);
    ims_index_close(before);
    /* Compacting again: nothing to drop; an index that is written meanwhile is refused. */
    TEST_OK(ims_index_compact(dir, NULL, &rep, &err), err);
    TEST_CHECK(rep.dropped_rows == 0 && rep.rows == 10, "a second compaction");
    ims_index *w = NULL;
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &w, &err), err);
    TEST_CHECK(ims_index_compact(dir, NULL, &rep, &err) == IMS_ERR_BUSY, "a compaction beside a writer: %s", err.msg);
    ims_index_close(w);
}

/* A version-1 index, as the indexer wrote it before version 2: searchable,
 * refused to writers with how to upgrade, upgraded by ims_index_compact:
 * its relative paths made absolute against the folder it was made from. */
static void test_version_1(void)
{
    make_dir("v1");
    make_dir("v1/idx");
    char dir[512], base[512];
    path_join(dir, sizeof dir, "v1/idx");
    path_join(base, sizeof base, "v1");
    float rows[3 * VD];
    for (int i = 0; i < 3 * VD; i++)
        rows[i] = (float)(i + 1);
    int64_t shape[2] = {3, VD};
    char p[512];
    ims_error err = {0};
    path_join(p, sizeof p, "v1/idx/chunk-000000.visual.npy");
    TEST_OK(ims_npy_write(p, IMS_DTYPE_F32, 2, shape, rows, &err), err);
    write_text("v1/idx/chunk-000000.rows.txt", "10\t1000\tphotos/a.jpg\n20\t2000\t./photos/b%%09.jpg\n"
                                               "30\t3000\t/abs/c.jpg\n");
    write_text("v1/idx/chunk-000000.failures.txt", "photos/bad.jpg\tJPEG: premature end\n");
    write_text("v1/idx/manifest.json", "%s",
               "{\"format\": \"imgsearch-index\", \"version\": 1, \"tool_version\": \"0.1.0\", \"mode\": \"torchvision\","
               " \"dtype\": \"f32\", \"chunk_rows\": 4, \"visual_dim\": 5, \"semantic_dim\": 0,"
               " \"image_model\": {\"name\": \"iv3.isw\", \"path\": \"/a\", \"bytes\": 123, \"crc32\": \"deadbeef\"},"
               " \"rows\": 3, \"failures\": 1, \"chunks\": [{\"rows\": 3, \"failures\": 1}]}");
    ims_index *idx = reopen(dir);
    if (idx) {
        ims_index_info info;
        ims_index_get_info(idx, &info);
        TEST_CHECK(info.version == 1 && info.live_rows == 3 && !info.committed[0], "a version-1 index opens");
        TEST_CHECK(ims_index_get_config(idx)->conse_top == 10 && ims_index_get_config(idx)->precision == -1,
                   "version 1 without conse_top and precision: 10 and unrecorded");
        TEST_CHECK(ims_index_contains(idx, "photos/a.jpg"), "its paths as stored");
        ims_index_close(idx);
    }
    ims_index_config cfg;
    ims_index_config_init(&cfg);
    cfg.dtype = IMS_DTYPE_F32;
    cfg.chunk_rows = 4;
    cfg.visual_dim = VD;
    cfg.image_model.bytes = 123;
    cfg.image_model.crc32 = 0xdeadbeef;
    TEST_CHECK(ims_index_open_for_writing(dir, &cfg, &idx, &err) == IMS_ERR_UNSUPPORTED && strstr(err.msg, "upgrade"),
               "a writer on a version-1 index: %s", err.msg);
    TEST_CHECK(ims_index_compact(dir, NULL, NULL, &err) == IMS_ERR_UNSUPPORTED, "compacting version 1 without upgrade");
    ims_index_compact_options co;
    ims_index_compact_options_init(&co);
    co.upgrade = 1;
    co.base = base;
    ims_index_compact_report rep;
    TEST_OK(ims_index_compact(dir, &co, &rep, &err), err);
    TEST_CHECK(rep.from_version == 1 && rep.rows == 3 && rep.failures == 1, "the upgrade's report");
    char real[4096], want[3][4200];
    TEST_CHECK(realpath(base, real) != NULL, "realpath");
    snprintf(want[0], sizeof want[0], "%s/photos/a.jpg", real);
    snprintf(want[1], sizeof want[1], "%s/photos/b\t.jpg", real);
    snprintf(want[2], sizeof want[2], "/abs/c.jpg");
    idx = reopen(dir);
    if (idx) {
        ims_index_info info;
        ims_index_get_info(idx, &info);
        TEST_CHECK(info.version == 2 && info.committed[0], "upgraded to version %d", info.version);
        for (int i = 0; i < 3; i++)
            TEST_CHECK(ims_index_row(idx, i) && strcmp(ims_index_row(idx, i)->path, want[i]) == 0, "row %d: '%s'", i,
                       ims_index_row(idx, i) ? ims_index_row(idx, i)->path : "");
        TEST_CHECK(ims_index_failure(idx, 0) && strstr(ims_index_failure(idx, 0)->path, "/photos/bad.jpg") &&
                       ims_index_failure(idx, 0)->path[0] == '/',
                   "the failure's path is absolute");
        float *t = NULL;
        int dim = 0;
        TEST_OK(ims_index_load_table(idx, IMS_INDEX_TABLE_VISUAL, &t, &dim, &err), err);
        TEST_CHECK(t && memcmp(t, rows, sizeof rows) == 0, "the table survives the upgrade");
        ims_free(t);
        ims_index_close(idx);
    }
    /* Now version 2, it takes writers, and its settings hold. */
    cfg.conse_top = 3;
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &idx, &err), err);
    ims_index_close(idx);
}

int main(void)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/test_index_store.XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 2;
    }
    test_escaping();
    test_walk();
    test_walk_long_paths();
    test_index(IMS_DTYPE_F16);
    test_index(IMS_DTYPE_F32);
    test_malformed();
    test_swapped_chunks();
    test_tombstones();
    test_shadowed();
    test_lock_and_leftovers();
    test_compact(IMS_DTYPE_F16);
    test_compact(IMS_DTYPE_F32);
    test_version_1();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s'; rm -rf '%s'", tmp_root, tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
    return test_finish();
}
