/* cmd_devices.c: `imgsearch devices`: the backends this build has, and why a GPU
 * is or is not usable here. */
#include "cli.h"

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

static const char devices_usage[] =
    "usage: imgsearch devices\n"
    "\n"
    "Lists the CPU backend and every CUDA device this build can use, or why a GPU\n"
    "is not usable here. The other commands pick one with --device auto|cpu|cuda\n"
    "and --gpu N (the CUDA device number, from 0).\n";

int cmd_devices(int argc, char **argv)
{
    cli_args a;
    cli_args_init(&a, "devices", devices_usage, argc, argv);
    while (cli_args_next(&a))
        cli_args_unknown(&a);
    if (a.status >= 0)
        return a.status;
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
