/* test_index_store.c: the file walk and the index store (engine/io/file_walk.c,
 * engine/index/store.c): ordering, symlink loops, escaping, commits, reopening,
 * crash leftovers, configuration checks and malformed manifests. */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include "index/store.h"

#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* A manifest written before conse_top and precision were recorded: ConSE
 * mixed 10 classes then, the precision is unknown (any run may add to it, and
 * it stays unrecorded). */
static void test_old_manifest(void)
{
    make_dir("old");
    write_text("old/manifest.json", "%s",
               "{\"format\": \"imgsearch-index\", \"version\": 1, \"tool_version\": \"0.1.0\", \"mode\": \"torchvision\","
               " \"dtype\": \"f32\", \"chunk_rows\": 4, \"visual_dim\": 5, \"semantic_dim\": 3,"
               " \"image_model\": {\"name\": \"iv3.isw\", \"path\": \"/a\", \"bytes\": 123, \"crc32\": \"deadbeef\"},"
               " \"text_model\": {\"name\": \"text.isw\", \"path\": \"/b\", \"bytes\": 456, \"crc32\": \"01020304\"},"
               " \"rows\": 0, \"failures\": 0, \"chunks\": []}");
    char dir[512];
    path_join(dir, sizeof dir, "old");
    ims_error err = {0};
    ims_index *idx = NULL;
    TEST_OK(ims_index_open(dir, &idx, &err), err);
    if (idx) {
        TEST_CHECK(ims_index_get_config(idx)->conse_top == 10, "an old index reads as conse_top %d, want 10",
                   ims_index_get_config(idx)->conse_top);
        TEST_CHECK(ims_index_get_config(idx)->precision == -1, "an old index's precision reads as %d, want -1",
                   ims_index_get_config(idx)->precision);
        ims_index_close(idx);
    }
    ims_index_config cfg;
    config_for_test(&cfg, IMS_DTYPE_F32); /* conse_top 3 */
    TEST_CHECK(ims_index_open_for_writing(dir, &cfg, &idx, &err) == IMS_ERR_ARGUMENT && strstr(err.msg, "--conse-top 10") &&
                   strstr(err.msg, "not 3"),
               "an old index (conse_top 10) resumed with 3: %s", err.msg);
    cfg.conse_top = 10;
    cfg.precision = IMS_PRECISION_FP32;
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &idx, &err), err);
    if (!idx)
        return;
    add_rows(idx, 0, 1, &err);
    TEST_OK(ims_index_commit(idx, &err), err);
    ims_index_close(idx);
    TEST_OK(ims_index_open(dir, &idx, &err), err);
    if (idx) {
        TEST_CHECK(ims_index_row_count(idx) == 1, "%lld rows", (long long)ims_index_row_count(idx));
        TEST_CHECK(ims_index_get_config(idx)->conse_top == 10 && ims_index_get_config(idx)->precision == -1,
                   "after a commit: conse_top %d, precision %d (want 10, unrecorded)",
                   ims_index_get_config(idx)->conse_top, ims_index_get_config(idx)->precision);
        ims_index_close(idx);
    }
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

/* The manifest as an index made before chunk files' sizes and CRC-32s were
 * recorded wrote it: without the chunks' "files" objects. */
static char *without_file_records(const char *manifest)
{
    char *out = strdup(manifest), *p;
    while (out && (p = strstr(out, ", \"files\": {"))) {
        char *end = strstr(p, "}}"); /* the last file's object and "files" end together */
        if (!end)
            break;
        memmove(p, end + 2, strlen(end + 2) + 1);
    }
    return out;
}

/* Each malformed manifest or chunk file is refused with a message naming it.
 * A changed chunk file fails its size or CRC-32 check first; the parser's own
 * checks are then tried as an older index (no recorded files) meets them. */
static void test_malformed(void)
{
    ims_index_config cfg;
    config_for_test(&cfg, IMS_DTYPE_F32);
    ims_error err = {0};
    ims_index *idx;
    char dir[512];
    path_join(dir, sizeof dir, "bad");
    TEST_OK(ims_index_open_for_writing(dir, &cfg, &idx, &err), err);
    add_rows(idx, 0, 2, &err);
    TEST_OK(ims_index_commit(idx, &err), err);
    ims_index_close(idx);

    static const struct {
        const char *file, *content, *expect;
    } cases[] = {
        {"bad/manifest.json", "{\"format\": \"zip\"}", "not an imgsearch index"},
        {"bad/manifest.json", "[1, 2]", "not a JSON object"},
        {"bad/manifest.json", "{\"format\": \"imgsearch-index\", \"version\": 9}", "version 9"},
        {"bad/manifest.json",
         "{\"format\": \"imgsearch-index\", \"version\": 1, \"tool_version\": \"x\", \"mode\": \"torchvision\","
         " \"dtype\": \"f32\", \"chunk_rows\": 4, \"visual_dim\": 5, \"semantic_dim\": 3,"
         " \"image_model\": {\"name\": \"a\", \"path\": \"/a\", \"bytes\": 1, \"crc32\": \"deadbeef\"},"
         " \"text_model\": {\"name\": \"b\", \"path\": \"/b\", \"bytes\": 1, \"crc32\": \"xyz\"},"
         " \"rows\": 2, \"failures\": 0, \"chunks\": [{\"rows\": 2, \"failures\": 0}]}",
         "crc32"},
        {"bad/manifest.json",
         "{\"format\": \"imgsearch-index\", \"version\": 1, \"tool_version\": \"x\", \"mode\": \"torchvision\","
         " \"dtype\": \"f32\", \"chunk_rows\": 4, \"visual_dim\": 5, \"semantic_dim\": 0,"
         " \"image_model\": {\"name\": \"a\", \"path\": \"/a\", \"bytes\": 1, \"crc32\": \"deadbeef\"},"
         " \"rows\": 3, \"failures\": 0, \"chunks\": [{\"rows\": 2, \"failures\": 0}]}",
         "the chunks hold 2 rows"},
        {"bad/manifest.json",
         "{\"format\": \"imgsearch-index\", \"version\": 1, \"tool_version\": \"x\", \"mode\": \"torchvision\","
         " \"dtype\": \"f32\", \"chunk_rows\": 4, \"visual_dim\": 5, \"semantic_dim\": 0, \"conse_top\": 0,"
         " \"image_model\": {\"name\": \"a\", \"path\": \"/a\", \"bytes\": 1, \"crc32\": \"deadbeef\"},"
         " \"rows\": 2, \"failures\": 0, \"chunks\": [{\"rows\": 2, \"failures\": 0}]}",
         "'conse_top'"},
        {"bad/manifest.json",
         "{\"format\": \"imgsearch-index\", \"version\": 1, \"tool_version\": \"x\", \"mode\": \"torchvision\","
         " \"dtype\": \"f32\", \"chunk_rows\": 4, \"visual_dim\": 5, \"semantic_dim\": 0, \"precision\": \"fp8\","
         " \"image_model\": {\"name\": \"a\", \"path\": \"/a\", \"bytes\": 1, \"crc32\": \"deadbeef\"},"
         " \"rows\": 2, \"failures\": 0, \"chunks\": [{\"rows\": 2, \"failures\": 0}]}",
         "precision 'fp8'"},
        /* A hostile count (2^62 failures): refused by the size of failures.txt,
         * before it sizes memory (it once wrapped a capacity to zero). */
        {"bad/manifest.json",
         "{\"format\": \"imgsearch-index\", \"version\": 1, \"tool_version\": \"x\", \"mode\": \"torchvision\","
         " \"dtype\": \"f32\", \"chunk_rows\": 4, \"visual_dim\": 5, \"semantic_dim\": 0,"
         " \"image_model\": {\"name\": \"a\", \"path\": \"/a\", \"bytes\": 1, \"crc32\": \"deadbeef\"},"
         " \"rows\": 2, \"failures\": 4611686018427387904,"
         " \"chunks\": [{\"rows\": 2, \"failures\": 4611686018427387904}]}",
         "more than its"},
        {"bad/chunk-000000.rows.txt", "20\t1\timg/000.jpg\n", "1 rows, the manifest lists 2"},
        {"bad/chunk-000000.rows.txt", "20\t1\timg/000.jpg\nx\t1\timg/001.jpg\n", "line 2"},
        {"bad/chunk-000000.rows.txt", "20\t1\timg/000.jpg\n20\t1\timg/%G1.jpg\n", "malformed"},
        {"bad/chunk-000000.failures.txt", "one\tline\n", "more than the 0 failures"},
    };
    char manifest[512], rows[512];
    path_join(manifest, sizeof manifest, "bad/manifest.json");
    path_join(rows, sizeof rows, "bad/chunk-000000.rows.txt");
    size_t manifest_len, rows_len;
    char *good_manifest = test_read_file(manifest, &manifest_len);
    char *good_rows = test_read_file(rows, &rows_len);
    char *old_manifest = without_file_records(good_manifest);
    TEST_CHECK(old_manifest && !strstr(old_manifest, "files") && strstr(good_manifest, "\"files\""),
               "the manifest records the chunk files");
    for (size_t i = 0; old_manifest && i < sizeof cases / sizeof cases[0]; i++) {
        int chunk_file = strstr(cases[i].file, "chunk-") != NULL;
        for (int legacy = 0; legacy <= chunk_file; legacy++) {
            write_text(cases[i].file, "%s", cases[i].content);
            if (legacy)
                write_text("bad/manifest.json", "%s", old_manifest);
            const char *expect = chunk_file && !legacy ? "the file was changed or replaced" : cases[i].expect;
            err.msg[0] = '\0';
            ims_status st = ims_index_open(dir, &idx, &err);
            TEST_CHECK(st != IMS_OK && strstr(err.msg, expect), "case %zu (%s%s): %s -> '%s'", i, cases[i].file,
                       legacy ? ", an older index" : "", ims_status_name(st), err.msg);
            if (st == IMS_OK)
                ims_index_close(idx);
            write_text("bad/manifest.json", "%s", good_manifest);
            write_text("bad/chunk-000000.rows.txt", "%s", good_rows);
            write_text("bad/chunk-000000.failures.txt", "%s", "");
        }
    }
    /* The same size, one byte changed: the CRC-32 names the file. */
    char *changed = strdup(good_rows);
    if (changed && rows_len > 0) {
        changed[0] = changed[0] == '1' ? '2' : '1';
        write_text("bad/chunk-000000.rows.txt", "%s", changed);
        TEST_CHECK(ims_index_open(dir, &idx, &err) == IMS_ERR_CHECKSUM && strstr(err.msg, "CRC-32") &&
                       strstr(err.msg, "rows.txt"),
                   "a changed byte in rows.txt: '%s'", err.msg);
        write_text("bad/chunk-000000.rows.txt", "%s", good_rows);
    }
    free(changed);
    /* An older index (no records) still opens. */
    write_text("bad/manifest.json", "%s", old_manifest ? old_manifest : "");
    TEST_OK(ims_index_open(dir, &idx, &err), err);
    ims_index_close(idx);
    write_text("bad/manifest.json", "%s", good_manifest);
    free(old_manifest);
    TEST_OK(ims_index_open(dir, &idx, &err), err); /* restored */
    ims_index_close(idx);
    free(good_manifest);
    free(good_rows);
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
    test_old_manifest();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s'; rm -rf '%s'", tmp_root, tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
    return test_finish();
}
