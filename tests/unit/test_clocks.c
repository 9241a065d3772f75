/* test_clocks.c: clocks and power limit through NVML (engine/backend/nvml.c)
 * without a GPU: the driver's library absent (every value unknown, with the
 * reason), and a stand-in library (tests/common/fake_nvml.c) answering,
 * failing to start, not knowing the device, lacking the power limit.
 * usage: test_clocks FAKE_NVML.so */
#include "test.h"

#include "backend/backend.h"

static int all_unknown(const ims_device_clocks *c)
{
    return c->sm_mhz == -1 && c->memory_mhz == -1 && c->sm_max_mhz == -1 && c->memory_max_mhz == -1 &&
           c->power_limit_w == -1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_clocks FAKE_NVML.so\n");
        return 2;
    }
    const char *fake = argv[1];
    const char *bus = "00000000:65:00.0";
    ims_device_clocks c;

    /* The CPU backend has no clocks to report. */
    ims_error err = {0};
    ims_backend *be = NULL;
    TEST_OK(ims_backend_create(IMS_BACKEND_CPU, 0, &be, &err), err);
    memset(&c, 0x55, sizeof c);
    ims_backend_get_clocks(be, &c);
    TEST_CHECK(all_unknown(&c) && strstr(c.source, "unknown: not a GPU"), "%s", c.source);
    ims_backend_free(be);
    ims_backend_get_clocks(NULL, &c);
    TEST_CHECK(all_unknown(&c), "NULL backend");

    /* No library: unknown, naming it. */
    memset(&c, 0x55, sizeof c);
    imsi_nvml_clocks("/nonexistent/libnvidia-ml.so.1", bus, &c);
    TEST_CHECK(all_unknown(&c) && strstr(c.source, "could not be loaded"), "%s", c.source);
    /* A library without NVML's entry points (libm is loaded in every test). */
    imsi_nvml_clocks("libm.so.6", bus, &c);
    TEST_CHECK(all_unknown(&c) && strstr(c.source, "entry point"), "%s", c.source);

    /* The stand-in answers. */
    unsetenv("FAKE_NVML_MODE");
    imsi_nvml_clocks(fake, bus, &c);
    TEST_CHECK(c.sm_mhz == 1410 && c.memory_mhz == 1593 && c.sm_max_mhz == 1980 && c.memory_max_mhz == 2619,
               "%d %d %d %d", c.sm_mhz, c.memory_mhz, c.sm_max_mhz, c.memory_max_mhz);
    TEST_CHECK(c.power_limit_w == 700.0, "%g", c.power_limit_w);
    TEST_CHECK(strcmp(c.source, "NVML 999.12.34") == 0, "%s", c.source);

    /* Another bus id: not found, by name. */
    imsi_nvml_clocks(fake, "00000000:01:00.0", &c);
    TEST_CHECK(all_unknown(&c) && strstr(c.source, "no device 00000000:01:00.0: Not Found"), "%s", c.source);

    setenv("FAKE_NVML_MODE", "init_fails", 1);
    imsi_nvml_clocks(fake, bus, &c);
    TEST_CHECK(all_unknown(&c) && strstr(c.source, "nvmlInit failed: Driver Not Loaded"), "%s", c.source);

    setenv("FAKE_NVML_MODE", "no_power", 1);
    imsi_nvml_clocks(fake, bus, &c);
    TEST_CHECK(c.sm_mhz == 1410 && c.power_limit_w == -1, "%d %g", c.sm_mhz, c.power_limit_w);
    unsetenv("FAKE_NVML_MODE");
    return test_finish();
}
