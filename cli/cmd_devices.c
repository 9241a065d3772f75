/* cmd_devices.c: `imgsearch devices`: the backends this build has, and why a GPU
 * is or is not usable here. */
#include "cli.h"

#include <string.h>

static void print_info(const ims_backend_info *info)
{
    printf("%-8s %s\n", info->name, info->device);
    if (info->kind == IMS_BACKEND_CPU) {
        printf("         %d OpenMP threads\n", info->threads);
        return;
    }
    printf("         compute capability %d.%d, %d SMs, %.1f GiB (%.1f GiB free)\n", info->compute_major,
           info->compute_minor, info->multiprocessors, info->memory_total / 1073741824.0,
           info->memory_free / 1073741824.0);
    printf("         driver %d, runtime %d, cuBLAS %d, cuDNN %d\n", info->driver_version, info->runtime_version,
           info->cublas_version, info->cudnn_version);
}

int cmd_devices(int argc, char **argv)
{
    if (argc > 1) {
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
            printf("usage: imgsearch devices\n\nLists the CPU backend and every CUDA device this build can use.\n");
            return CLI_EXIT_OK;
        }
        return cli_usage_error("devices", "unexpected argument '%s'", argv[1]);
    }
    ims_error err = {0};
    ims_backend *be = NULL;
    if (ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err))
        return cli_error(&err);
    print_info(ims_backend_get_info(be));
    ims_backend_free(be);

    int count = 0;
    if (ims_cuda_device_count(&count, &err)) {
        printf("cuda     unavailable: %s\n", err.msg);
        return CLI_EXIT_OK; /* the CPU backend works: listing is not a failure */
    }
    if (count == 0)
        printf("cuda     no CUDA devices\n");
    int status = CLI_EXIT_OK;
    for (int i = 0; i < count; i++) {
        if (ims_backend_create(IMS_BACKEND_CUDA, i, &be, &err)) {
            printf("cuda:%d   unusable: %s\n", i, err.msg);
            status = CLI_EXIT_FAILURE;
            continue;
        }
        print_info(ims_backend_get_info(be));
        ims_backend_free(be);
    }
    return status;
}
