/* fake_nvml.c: a stand-in for libnvidia-ml.so.1 with NVML's C entry points
 * and fixed answers, so tests/unit/test_clocks.c runs the dlopen path of
 * engine/backend/nvml.c on a machine without a GPU or a driver.
 * FAKE_NVML_MODE: unset (answers), "init_fails", "no_device", "no_power". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *fake_mode(void)
{
    const char *m = getenv("FAKE_NVML_MODE");
    return m ? m : "";
}

int nvmlInit_v2(void) { return strcmp(fake_mode(), "init_fails") == 0 ? 9 : 0; } /* 9: NVML_ERROR_DRIVER_NOT_LOADED */
int nvmlShutdown(void) { return 0; }

const char *nvmlErrorString(int rc) { return rc == 9 ? "Driver Not Loaded" : rc == 6 ? "Not Found" : "Unknown Error"; }

int nvmlSystemGetDriverVersion(char *buf, unsigned len)
{
    snprintf(buf, len, "999.12.34");
    return 0;
}

int nvmlDeviceGetHandleByPciBusId_v2(const char *bus_id, void **dev)
{
    static int device;
    if (strcmp(fake_mode(), "no_device") == 0 || strcmp(bus_id, "00000000:65:00.0") != 0)
        return 6; /* NVML_ERROR_NOT_FOUND */
    *dev = &device;
    return 0;
}

int nvmlDeviceGetClockInfo(void *dev, int type, unsigned *mhz)
{
    (void)dev;
    *mhz = type == 1 ? 1410u : type == 2 ? 1593u : 0u;
    return type == 1 || type == 2 ? 0 : 2;
}

int nvmlDeviceGetMaxClockInfo(void *dev, int type, unsigned *mhz)
{
    (void)dev;
    *mhz = type == 1 ? 1980u : type == 2 ? 2619u : 0u;
    return type == 1 || type == 2 ? 0 : 2;
}

int nvmlDeviceGetEnforcedPowerLimit(void *dev, unsigned *milliwatts)
{
    (void)dev;
    if (strcmp(fake_mode(), "no_power") == 0)
        return 3; /* NVML_ERROR_NOT_SUPPORTED */
    *milliwatts = 700000u;
    return 0;
}
