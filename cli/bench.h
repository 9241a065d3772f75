/* bench.h: what the files of `imgsearch bench` share.
 *
 *   cmd_bench.c        the options, --list-devices, the command
 *   bench_workloads.c  the workloads: each sweeps its points (batch x
 *                      precision x ...) and measures each one (bench_measure)
 *   bench_output.c     each measured point as a row: md, csv, json, jsonl;
 *                      --compare's saved run and the ratios against it
 *
 * Calls go downwards only (cmd_bench -> workloads -> output), so the link
 * graph has no loops. A rate is items per second (the unit says which items);
 * a point's median, min and max are over its repetitions.
 */
#ifndef IMS_CLI_BENCH_H
#define IMS_CLI_BENCH_H

#include "cli.h"

#define BENCH_MAX_VALUES 16 /* values of one swept option */
#define BENCH_MAX_REPS 1000

typedef enum bench_workload_id {
    BENCH_INCEPTION = 0,
    BENCH_TEXT,
    BENCH_KNN,
    BENCH_INDEX,
    BENCH_DECODE,
    BENCH_TOKENIZE,
    BENCH_KNN_PARTS, /* opt-in (-w knn-parts): not in the default set */
    BENCH_WORKLOAD_COUNT
} bench_workload_id;

typedef enum bench_format {
    BENCH_FORMAT_MD = 0,
    BENCH_FORMAT_CSV,
    BENCH_FORMAT_JSON,
    BENCH_FORMAT_JSONL,
} bench_format;

typedef enum bench_seq { BENCH_SEQ_SHORT = 0, BENCH_SEQ_LONG } bench_seq;

/* "N:D:B:k": an exact top-k search of B queries over N rows of D floats. */
typedef struct bench_knn_shape {
    int64_t n;
    int d, b, k;
} bench_knn_shape;

/* The command line. A count of 0 means "not given": each workload uses its
 * defaults for the device (bench_workloads.c). */
typedef struct bench_options {
    cli_device device;
    unsigned workloads;   /* bit (1 << bench_workload_id) per workload to run */
    int workloads_given;  /* -w named them: each must be able to run */
    int batches[BENCH_MAX_VALUES], batch_count;
    ims_precision precisions[BENCH_MAX_VALUES];
    int precision_count;
    bench_seq seqs[2];
    int seq_count;
    bench_knn_shape knn[BENCH_MAX_VALUES];
    int knn_count;
    int reps, warmup;
    double seconds; /* per point, shared by its repetitions */
    bench_format format;
    int quick, list_devices;
    const char *image_model, *text_model, *images, *compare;
} bench_options;

const char *bench_workload_name(int id);
const char *bench_seq_name(bench_seq s);

/* What every row carries about the machine. */
typedef struct bench_env {
    const ims_backend_info *info;
    ims_backend_peaks peaks;
    ims_library_version versions[IMS_LIBRARY_VERSIONS_MAX];
    size_t version_count;
    const char *commit; /* the "commit" entry of versions */
    ims_device_clocks clocks;
} bench_env;

/* One measured point. Parameters that do not apply to its workload are 0 or
 * NULL (null in JSON, empty in CSV, "-" in markdown). */
typedef struct bench_row {
    const char *workload;  /* bench_workload_name */
    const char *precision; /* "fp16" */
    int batch;             /* images or texts per call; knn: queries per call (B) */
    const char *seq;       /* "short" | "long" */
    int tokens;            /* per text */
    int64_t rows;          /* knn: table rows (N) */
    int dim, k;            /* knn: D, k */
    int64_t files;         /* index, decode: images per pass */
    int reps, calls;       /* repetitions; calls in each (the mean) */
    double median, min, max; /* rate over the repetitions, in unit */
    double ms_per_call;      /* at the median rate */
    const char *unit;        /* "images/s", "texts/s", "queries/s", "GB/s" */
    double flop_per_item, bytes_per_item; /* 0: not counted */
    double of_gemm, of_copy; /* fraction of the ceilings at the median; < 0: not counted */
} bench_row;

/* A saved run for --compare: its rows, matched by workload and parameters. */
typedef struct bench_baseline {
    ims_json **docs; /* one (-o json) or one per line (-o jsonl) */
    size_t doc_count;
    const ims_json_value **rows;
    size_t count;
} bench_baseline;

/* The output of one run (bench_output.c). */
typedef struct bench_out {
    const bench_options *opt;
    const bench_env *env;
    const bench_baseline *base; /* NULL without --compare */
    size_t rows;                /* written so far */
} bench_out;

/* Reads a run saved with -o json or -o jsonl; a failure names the file. */
/* A whole file (at most about max_bytes) in a malloc'd buffer; what names it in messages. */
ims_status bench_read_file(const char *path, size_t max_bytes, const char *what, char **data, size_t *size,
                           ims_error *err);
ims_status bench_baseline_load(const char *path, bench_baseline *b, ims_error *err);
/* The same from text[0..len) (tests/fuzz/fuzz_bench_run.c); path names it in messages. */
ims_status bench_baseline_parse(const char *text, size_t len, const char *path, bench_baseline *b, ims_error *err);
void bench_baseline_free(bench_baseline *b);
/* The saved median of the row with r's workload and parameters; 0 when there
 * is none (or its median is not a positive number). */
double bench_baseline_median(const bench_baseline *b, const bench_row *r);

void bench_out_begin(bench_out *o);
void bench_out_row(bench_out *o, const bench_row *r);
void bench_out_end(bench_out *o);

/* ---- Workloads (bench_workloads.c) --------------------------------------------- */
typedef struct bench_ctx {
    const bench_options *opt;
    ims_backend *be;
    ims_backend_timer *timer;
    bench_env env;
    bench_out *out;
} bench_ctx;

/* Runs the workload's sweep, one row per point. A point this device cannot
 * run (fp16 on the CPU) is skipped with a note on stderr. */
ims_status bench_workload_run(bench_ctx *c, bench_workload_id id, ims_error *err);
/* Why the workload cannot run with these options ("give --text-model M.isw"),
 * or NULL when it can. */
const char *bench_workload_missing(const bench_options *o, bench_workload_id id);

#endif /* IMS_CLI_BENCH_H */
