/* backend/nvml.c: a GPU's clocks and power limit from NVML, the driver's
 * management library, loaded with dlopen at run time. No build dependency and
 * no header: the few entry points are declared here with NVML's C types
 * (nvmlReturn_t is an int enum, 0 = success; nvmlDevice_t an opaque pointer;
 * clock types 1 = SM, 2 = memory). Without the library, or when a call fails,
 * the value stays -1 ("unknown") and `source` says why; nothing here fails. */
#include "backend/backend.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef struct nvml_device_st *nvml_device;

enum { NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2 };

typedef struct nvml_api {
    int (*init)(void);
    int (*shutdown)(void);
    int (*driver_version)(char *buf, unsigned len);
    int (*by_bus_id)(const char *bus_id, nvml_device *dev);
    int (*clock)(nvml_device dev, int type, unsigned *mhz);
    int (*max_clock)(nvml_device dev, int type, unsigned *mhz);
    int (*power_limit)(nvml_device dev, unsigned *milliwatts);
    const char *(*error_string)(int result);
} nvml_api;

void imsi_clocks_unknown(ims_device_clocks *out, const char *why)
{
    out->sm_mhz = out->memory_mhz = out->sm_max_mhz = out->memory_max_mhz = -1;
    out->power_limit_w = -1;
    snprintf(out->source, sizeof out->source, "unknown: %s", why);
}

/* dlsym into a function pointer (POSIX guarantees the conversion works). */
static int nvml_sym(void *lib, const char *name, void *fn_ptr)
{
    void *p = dlsym(lib, name);
    memcpy(fn_ptr, &p, sizeof p);
    return p != NULL;
}

static const char *nvml_error(const nvml_api *api, int rc)
{
    const char *s = api->error_string ? api->error_string(rc) : NULL;
    return s ? s : "error";
}

/* An unsigned MHz reading, or -1 when the call fails. */
static int nvml_mhz(int (*fn)(nvml_device, int, unsigned *), nvml_device dev, int type)
{
    unsigned v = 0;
    return fn(dev, type, &v) == 0 && v < 1000000u ? (int)v : -1;
}

void imsi_nvml_clocks(const char *library, const char *pci_bus_id, ims_device_clocks *out)
{
    imsi_clocks_unknown(out, "NVML not queried");
    void *lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        char why[140];
        snprintf(why, sizeof why, "no NVML (%s could not be loaded)", library);
        imsi_clocks_unknown(out, why);
        return;
    }
    nvml_api api = {0};
    int ok = nvml_sym(lib, "nvmlInit_v2", &api.init) & nvml_sym(lib, "nvmlShutdown", &api.shutdown) &
             nvml_sym(lib, "nvmlDeviceGetHandleByPciBusId_v2", &api.by_bus_id) &
             nvml_sym(lib, "nvmlDeviceGetClockInfo", &api.clock) &
             nvml_sym(lib, "nvmlDeviceGetMaxClockInfo", &api.max_clock) &
             nvml_sym(lib, "nvmlDeviceGetEnforcedPowerLimit", &api.power_limit);
    nvml_sym(lib, "nvmlSystemGetDriverVersion", &api.driver_version); /* optional: names the source */
    nvml_sym(lib, "nvmlErrorString", &api.error_string);
    if (!ok) {
        imsi_clocks_unknown(out, "NVML lacks an entry point this build uses");
        dlclose(lib);
        return;
    }
    int rc = api.init();
    if (rc != 0) {
        char why[140];
        snprintf(why, sizeof why, "nvmlInit failed: %s", nvml_error(&api, rc));
        imsi_clocks_unknown(out, why);
        dlclose(lib);
        return;
    }
    nvml_device dev = NULL;
    rc = api.by_bus_id(pci_bus_id, &dev);
    if (rc != 0) {
        char why[140];
        snprintf(why, sizeof why, "NVML has no device %s: %s", pci_bus_id, nvml_error(&api, rc));
        imsi_clocks_unknown(out, why);
    } else {
        out->sm_mhz = nvml_mhz(api.clock, dev, NVML_CLOCK_SM);
        out->memory_mhz = nvml_mhz(api.clock, dev, NVML_CLOCK_MEM);
        out->sm_max_mhz = nvml_mhz(api.max_clock, dev, NVML_CLOCK_SM);
        out->memory_max_mhz = nvml_mhz(api.max_clock, dev, NVML_CLOCK_MEM);
        unsigned mw = 0;
        out->power_limit_w = api.power_limit(dev, &mw) == 0 ? mw / 1000.0 : -1;
        char version[80] = "";
        if (!api.driver_version || api.driver_version(version, sizeof version) != 0)
            snprintf(version, sizeof version, "driver version unknown");
        version[sizeof version - 1] = '\0';
        snprintf(out->source, sizeof out->source, "NVML %s", version);
    }
    api.shutdown();
    dlclose(lib);
}

void ims_backend_get_clocks(const ims_backend *be, ims_device_clocks *out)
{
    if (!be || be->info.kind != IMS_BACKEND_CUDA) {
        imsi_clocks_unknown(out, "not a GPU");
        return;
    }
    char bus_id[64];
    if (imsi_cuda_pci_bus_id(be, bus_id, sizeof bus_id) != 0) {
        imsi_clocks_unknown(out, "the CUDA runtime gave no PCI bus id");
        return;
    }
    imsi_nvml_clocks("libnvidia-ml.so.1", bus_id, out);
}
