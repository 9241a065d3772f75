/* fuzz_bench_run.c: libFuzzer target for the saved runs `imgsearch bench
 * --compare` reads (cli/bench_output.c: a JSON array of rows, or one JSON
 * object per line), and the lookup of a row's saved median in them.
 *
 * Every input is parsed; an accepted run must have rows that are objects with
 * a string "workload", and looking up rows of every workload (with and
 * without parameters) must give 0 or a positive finite median.
 */
#include "cli/bench.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bench_baseline b;
    ims_error err = {0};
    if (bench_baseline_parse((const char *)data, size, "fuzz", &b, &err) != IMS_OK) {
        if (!err.msg[0] || b.count || b.rows || b.docs)
            __builtin_trap(); /* a failure says why and leaves nothing behind */
        return 0;
    }
    if (b.count == 0)
        __builtin_trap();
    for (size_t i = 0; i < b.count; i++)
        if (ims_json_kind_of(b.rows[i]) != IMS_JSON_OBJECT || !ims_json_string(ims_json_member(b.rows[i], "workload")))
            __builtin_trap();
    static const bench_row rows[] = {
        {.workload = "knn", .precision = "f16", .batch = 2, .rows = 3000, .dim = 32, .k = 5},
        {.workload = "text", .precision = "fp32", .batch = 1, .seq = "short", .tokens = 16},
        {.workload = "decode", .files = 2},
        {.workload = "inception", .precision = "fp16", .batch = 1},
        {.workload = ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double m = bench_baseline_median(&b, &rows[i]);
        if (!(m == 0 || (m > 0 && isfinite(m))))
            __builtin_trap();
    }
    bench_baseline_free(&b);
    return 0;
}
