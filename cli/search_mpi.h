/* search_mpi.h: `imgsearch search SET --mpi`: the ranks of an MPI job search
 * one index set together (search_mpi.c; search_mpi_absent.c in a build
 * without MPI, where --mpi says so). */
#ifndef IMS_CLI_SEARCH_MPI_H
#define IMS_CLI_SEARCH_MPI_H

#include "cli.h"

typedef struct cli_mpi_search {
    const char *set_path;
    const cli_device *device;          /* each rank opens its own backend */
    const ims_search_options *options; /* backend: ignored (each rank's own) */
    const ims_search_query *queries;   /* read on every rank, embedded on rank 0 only */
    size_t count;
    int k;
} cli_mpi_search;

typedef struct cli_mpi_outcome {
    int root;      /* this process is rank 0: it prints */
    int is_set;    /* the path named a set (hits carry their shard) */
    int synthetic; /* the image model's weights are synthetic */
    int ranks;
} cli_mpi_outcome;

/* Runs this process's part of the search (MPI_Init to MPI_Finalize). On rank
 * 0, *out gets the merged results (every rank's shards). Every rank returns
 * the same status: a failure on any rank fails them all, err naming the rank
 * ("rank 2: shard 2 ('s2'): ..."). */
ims_status cli_search_mpi(const cli_mpi_search *m, cli_mpi_outcome *o, ims_search_results **out, ims_error *err);

#endif /* IMS_CLI_SEARCH_MPI_H */
