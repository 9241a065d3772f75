/* search_mpi_absent.c: `search --mpi` in a build without MPI: says so. */
#include "search_mpi.h"

ims_status cli_search_mpi(const cli_mpi_search *m, cli_mpi_outcome *o, ims_search_results **out, ims_error *err)
{
    (void)m;
    o->root = 1;
    *out = NULL;
    return ims_error_set(err, IMS_ERR_UNSUPPORTED,
                         "--mpi: this imgsearch was built without MPI (install libopenmpi-dev, as "
                         "scripts/install-deps.sh does, and build again)");
}
