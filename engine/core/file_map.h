/* file_map.h: a whole file mapped read-only: the one way the library maps
 * files (weight files, .npy tables, checkpoints). */
#ifndef IMS_FILE_MAP_H
#define IMS_FILE_MAP_H

#include "imgsearch.h"

typedef struct imsi_file_map {
    const unsigned char *data; /* size bytes; an empty file maps to "" */
    size_t size;
    void *mapping_; /* what munmap releases (NULL for an empty file) */
} imsi_file_map;

/* Maps a regular file read-only (MAP_PRIVATE); anything else (a FIFO, a
 * device such as /dev/zero, a folder) is refused without reading or blocking,
 * and what is read is bounded by the size the file had when opened. Messages
 * say what failed
 * ("cannot open: ...", "not a regular file", "cannot map N bytes: ...");
 * callers prefix the file's role and name. On failure *out is zeroed. */
ims_status imsi_file_map_open(const char *path, imsi_file_map *out, ims_error *err);

/* A whole regular file as a NUL-terminated malloc'd copy (*len bytes before
 * the NUL), refused if larger than max bytes. IMS_ERR_NOT_FOUND when the file
 * does not exist; otherwise as imsi_file_map_open. Messages name the file. */
ims_status imsi_file_read_text(const char *path, size_t max, char **out, size_t *len, ims_error *err);

/* Unmaps; a zeroed or closed map is fine. */
void imsi_file_map_close(imsi_file_map *m);

#endif /* IMS_FILE_MAP_H */
