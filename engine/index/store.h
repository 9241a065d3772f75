/* index/store.h: the index store's internals, shared by its files (store.c:
 * the model, the manifest, reading; store_write.c: the writer lock, appends,
 * tombstones, commits; compact.c: compaction and the version-1 upgrade), the
 * indexer and its tests. docs/FORMAT.md ("The index") is the format.
 *
 * Records: rows (an embedding and its file) and failures (a file that could
 * not be indexed, with the reason), each numbered over the chunks in order.
 * A "ref" names one record in one integer: r >= 0 is row r, r < 0 is
 * failure -r - 1. A record is live until a tombstone (a later chunk's
 * tombstones.txt line) marks it dead; the path map points at each path's
 * latest record.
 */
#ifndef IMS_INDEX_STORE_H
#define IMS_INDEX_STORE_H

#include "imgsearch.h"

#include <stdio.h>

#define IMSI_INDEX_VERSION 2 /* what this build writes; it reads 1 and 2 */

/* The files of a chunk; a manifest records each one's size and CRC-32. */
enum {
    IMSI_CHUNK_VISUAL,
    IMSI_CHUNK_SEMANTIC,   /* only with a semantic table */
    IMSI_CHUNK_ROWS,
    IMSI_CHUNK_FAILURES,
    IMSI_CHUNK_TOMBSTONES, /* version 2, only in a chunk with tombstones */
    IMSI_CHUNK_FILES
};
const char *imsi_chunk_suffix(int which); /* "visual.npy", ... */

static inline int64_t imsi_ref_failure(int64_t i) { return -i - 1; }
static inline int imsi_ref_is_failure(int64_t ref) { return ref < 0; }
static inline int64_t imsi_ref_index(int64_t ref) { return ref < 0 ? -ref - 1 : ref; }

typedef struct imsi_chunk_file {
    uint64_t bytes;
    uint32_t crc32;
} imsi_chunk_file;

typedef struct imsi_chunk {
    int64_t id; /* its files are chunk-<id>.*: ids grow and are never reused */
    size_t rows, failures, tombstones;
    size_t dead_rows, dead_failures; /* its tombstones by kind (they add up to tombstones) */
    int recorded; /* the manifest holds files[] (version 2 always; version 1 since it was added) */
    imsi_chunk_file files[IMSI_CHUNK_FILES];
} imsi_chunk;

typedef struct imsi_row {
    ims_file_entry file; /* path, size and mtime when it was indexed */
    uint32_t crc32;      /* of the file's bytes, when has_crc (indexed with verify_content) */
    uint8_t has_crc;
    uint8_t dead;   /* 0 live; 1 tombstoned; 2 shadowed (see below) */
    uint8_t doomed; /* a writer's pending tombstone */
} imsi_row;

typedef struct imsi_failure {
    ims_file_problem problem; /* path, reason */
    uint64_t size;            /* the file's size and mtime when it failed (0: unknown) */
    int64_t mtime_ns;
    uint8_t dead, doomed; /* as a row's */
} imsi_failure;

/* Path -> ref of its latest record (pointers into the records, not owned). */
typedef struct imsi_path_map {
    const char **keys;
    int64_t *refs;
    size_t cap, count;
} imsi_path_map;

/* What a run remembers for the next one (0: not recorded). */
typedef struct imsi_index_settings {
    double commit_every_s;
    int64_t batch, threads; /* only when a run was given them */
    int64_t shard, shards;  /* a shard of the files (ims_index_run_shard); shards 0: all files */
} imsi_index_settings;

struct ims_index {
    char *dir;
    ims_index_config cfg;
    int version;  /* of the manifest read; IMSI_INDEX_VERSION once this build writes it */
    int writable; /* holds the writer lock (lock_fd) */
    int lock_fd;
    char committed[32]; /* "YYYY-MM-DDTHH:MM:SSZ" of the last commit; "" if not recorded */
    char **roots;       /* absolute, sorted, unique */
    size_t root_count, root_cap;
    imsi_index_settings settings;
    int64_t next_chunk;

    imsi_chunk *chunks; /* committed, in row order */
    size_t chunk_count, chunk_cap;
    imsi_row *rows; /* committed rows, then pending ones */
    size_t row_count, row_cap;
    imsi_failure *failures; /* likewise */
    size_t failure_count, failure_cap;
    size_t dead_rows, dead_failures; /* committed records marked dead */
    int64_t *live;                   /* ids of the live committed rows, ascending */
    size_t live_count;
    int64_t *row_chunk; /* per committed chunk, its first row id (chunk_count + 1 entries) */
    imsi_path_map paths;
    /* Live records hidden by a later record of the same path (a crash between
     * two commits of a hand-edited index): dead to readers; a writer
     * tombstones them at its first commit. */
    int64_t *shadowed;
    size_t shadowed_count, shadowed_cap;

    /* Pending (not yet committed): rows [row_count, row_count + pending_rows),
     * failures likewise, tombstones (refs of committed live records), the
     * embeddings in f32 until written. */
    size_t pending_rows, pending_failures;
    int64_t *pending_dead;
    size_t pending_dead_count, pending_dead_cap;
    float *pending_visual;   /* (chunk_rows, visual_dim) */
    float *pending_semantic; /* (chunk_rows, semantic_dim) or NULL */
    int dirty;               /* roots or settings changed: the next commit writes the manifest */
};

/* ---- Text lines (store.c) ---------------------------------------------------------------- */

/* Writes s[0..len) with '%', control bytes (< 0x20, 0x7f) and bytes that are
 * not part of valid UTF-8 as %XX, so any path fits on one line of a text file
 * and reads back byte for byte (Python: urllib.parse.unquote_to_bytes). */
void imsi_index_escape_write(FILE *f, const char *s, size_t len);
/* Undoes imsi_index_escape_write in place; 0 on success, -1 on a malformed escape. */
int imsi_index_unescape(char *s, size_t *len);
/* s escaped as above, as a JSON string (quotes included): a path in a manifest. */
void imsi_index_write_json_path(FILE *f, const char *s);

/* ---- The model (store.c) -------------------------------------------------------------------- */

/* The largest rows.txt, failures.txt, tombstones.txt or manifest read. */
#define IMSI_INDEX_TEXT_MAX ((size_t)1 << 31)

ims_status imsi_index_grow(void **items, size_t *cap, size_t need, size_t item_size, ims_error *err);
/* dir/chunk-<id>.<suffix>, or dir/manifest.json with suffix NULL; malloc'd. */
char *imsi_index_file_path(const ims_index *idx, int64_t chunk_id, const char *suffix);
/* A new, empty ims_index for dir (no files read); NULL and err when out of memory. */
ims_index *imsi_index_new(const char *dir, ims_error *err);
/* Reads the manifest and every chunk's text files (the tables by size). */
ims_status imsi_index_load(ims_index *idx, ims_error *err);
/* 1 if path's latest record is live: *ref names it. */
int imsi_index_lookup(const ims_index *idx, const char *path, int64_t *ref);
/* Recomputes the live row list and the chunks' first rows after a change. */
ims_status imsi_index_reindex(ims_index *idx, ims_error *err);
/* Points the path map at the records from row `row` and failure `failure` on,
 * noting live records they hide in `shadowed`. */
ims_status imsi_index_map_records(ims_index *idx, size_t row, size_t failure, ims_error *err);
/* Writes manifest.json (crash-safely) listing idx->chunks[0..chunk_count)
 * with these totals; stamps idx->committed. */
ims_status imsi_index_manifest_write(ims_index *idx, size_t chunk_count, ims_error *err);
/* Size and CRC-32 of a committed chunk file as it is on disk. */
ims_status imsi_index_measure(const ims_index *idx, int64_t chunk_id, int which, imsi_chunk_file *out,
                              ims_error *err);
/* Maps chunk c's (position in idx->chunks) table `which`, checking dtype,
 * shape and (verify_crc) the CRC-32 against the manifest. Close with ims_npy_close. */
ims_status imsi_index_map_table(const ims_index *idx, size_t c, int which, int verify_crc, ims_npy **npy,
                                ims_error *err);
/* Frees the records and buffers (not idx itself, its dir or its lock). */
void imsi_index_free_records(ims_index *idx);

/* The weight file the index recorded (or `given` instead), checked against
 * the recorded size and CRC-32 before it is used: queries and new rows are
 * never embedded with a model the index was not built with. what: "image", "text". */
ims_status imsi_index_open_model(const char *given, const ims_weights_identity *recorded, const char *what,
                                 ims_weights **out, ims_error *err);

/* A set of one shard, idx, which stays the caller's (index_set.c): the searcher
 * of one index is the searcher of this set. */
ims_status imsi_index_set_wrap(const ims_index *idx, ims_index_set **out, ims_error *err);

/* ---- Writing (store_write.c) ------------------------------------------------------------------ */

/* Opens an existing index to add to it: takes the writer lock (refused at
 * once, naming the holder, when another process has it), reads the index,
 * removes what a killed writer left (temporary files, chunk files the
 * manifest does not list) and allocates the pending buffers. A version-1
 * index is refused with how to upgrade it, unless allow_v1 (compaction's
 * upgrade reads it). The configuration is the index's. */
ims_status imsi_index_open_writer(const char *dir, int allow_v1, ims_index **out, ims_error *err);
/* The first difference between the index's configuration and the run's, naming both values. */
ims_status imsi_index_compare_config(const ims_index_config *have, const ims_index_config *want, ims_error *err);
/* Records rows with their content CRC-32 (has_crc 0: none), as ims_index_add. */
ims_status imsi_index_add_row(ims_index *idx, const ims_file_entry *file, int has_crc, uint32_t crc32,
                              const float *visual, const float *semantic, ims_error *err);
/* A failure with the file's size and mtime (a retry compares them). */
ims_status imsi_index_add_failure_file(ims_index *idx, const ims_file_entry *file, const char *reason,
                                       ims_error *err);
/* Adds roots (absolute) to the manifest's list and records settings at the next commit. */
ims_status imsi_index_add_roots(ims_index *idx, const char *const *roots, size_t count, ims_error *err);
/* Whether dir holds a manifest.json (of any kind: an index was started there). */
int imsi_index_has_manifest(const char *dir);
/* Inserts a copy of root at position at (0..root_count) of idx->roots (store.c). */
ims_status imsi_index_insert_root(ims_index *idx, size_t at, const char *root, ims_error *err);
void imsi_index_set_settings(ims_index *idx, const imsi_index_settings *s);
/* Writes a chunk's files (no manifest): its rows and failures are
 * idx->rows[first_row..] / failures[first_failure..] (counts in *ch), its
 * tables the given f32 (rows, dim) buffers or, when raw is set, rows already
 * in the index's dtype; its tombstones dead[0..ch->tombstones). Measures the
 * files into ch. */
typedef struct imsi_chunk_data {
    size_t first_row, first_failure;
    const void *visual, *semantic; /* (rows, dim) */
    int raw;                       /* 1: in the index's dtype; 0: f32 */
    const int64_t *dead;           /* refs */
} imsi_chunk_data;
ims_status imsi_index_write_chunk(ims_index *idx, imsi_chunk *ch, const imsi_chunk_data *d, ims_error *err);

/* The writer lock (index/store_write.c): INDEX/lock, flock'ed while a
 * writer runs (the kernel drops it when the process dies, so a lock left by
 * a killed writer is simply taken), holding "pid<TAB>host<TAB>since" for the
 * message that refuses a second writer. *fd >= 0 while held. */
ims_status imsi_index_lock(const char *dir, int *fd, ims_error *err);
void imsi_index_unlock(int fd);
/* Removes temporary files (NAME.tmp.PID) and chunk files whose id is not
 * listed (ids: the manifest's, ascending): what a killed writer left. Only
 * names the index writes are touched. Call with the lock held. */
size_t imsi_index_remove_leftovers(const char *dir, const int64_t *ids, size_t count); /* files removed */

/* Called in a commit right after each step ("visual", "semantic", "rows",
 * "failures", "tombstones": the chunk's files so far written, the manifest
 * not yet) and in a compaction ("compact" after each new chunk's files,
 * "compacted" after its manifest, "pruned" after the first old chunk's
 * files are removed). The library's definition (index/crash_point.c) does
 * nothing; test programs link their own ahead of the library
 * (tests/common/crash_hook.c: IMS_TEST_CRASH=chunk:C:STEP kills the process
 * there, as a power cut would), so the hook never reaches a product build. */
void imsi_index_crash_point(size_t chunk, const char *step);

#endif /* IMS_INDEX_STORE_H */
