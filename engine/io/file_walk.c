/* file_walk.c: the image files under a list of folders, in a fixed order.
 *
 * Folders are walked depth first; symbolic links are followed, and each folder
 * (by device and inode) is entered once, which also ends symlink loops. The
 * result is sorted by path bytes (strcmp), so it never depends on the order
 * the file system returns entries in. Files whose extension is not an image's
 * are ignored: kept apart (their paths, sorted, for --verbose and the summary
 * by extension), never decoded. What cannot be read (a folder without permission, a
 * dangling link named like an image) is listed as a problem with its reason.
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "imgsearch.h"

#include "core/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct dir_id {
    dev_t dev;
    ino_t ino;
} dir_id;

typedef struct walk_state {
    ims_file_list *out;
    dir_id *seen; /* folders entered */
    size_t seen_count, seen_cap;
    size_t files_cap, problems_cap, ignored_cap;
    ims_error *err;
} walk_state;

int ims_path_is_image_name(const char *path)
{
    static const char *const extensions[] = {"jpg", "jpeg", "jpe", "jfif", "png", "webp", "tif", "tiff", "gif", "bmp"};
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash + 1 : path, '.');
    if (!dot || dot[1] == '\0')
        return 0;
    for (size_t i = 0; i < sizeof extensions / sizeof extensions[0]; i++)
        if (strcasecmp(dot + 1, extensions[i]) == 0)
            return 1;
    return 0;
}

static ims_status grow(void **items, size_t *cap, size_t count, size_t item_size, ims_error *err)
{
    if (count < *cap)
        return IMS_OK;
    size_t new_cap = *cap ? *cap * 2 : 256;
    void *p = realloc(*items, new_cap * item_size);
    if (!p)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory listing files (%zu so far)", count);
    *items = p;
    *cap = new_cap;
    return IMS_OK;
}

static ims_status add_file(walk_state *ws, const char *path, const struct stat *st)
{
    ims_file_list *out = ws->out;
    ims_status s = grow((void **)&out->files, &ws->files_cap, out->file_count, sizeof *out->files, ws->err);
    if (s)
        return s;
    ims_file_entry *e = &out->files[out->file_count];
    e->path = strdup(path);
    if (!e->path)
        return ims_error_set(ws->err, IMS_ERR_NOMEM, "out of memory listing files");
    e->size = (uint64_t)st->st_size;
    e->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    out->file_count++;
    return IMS_OK;
}

static ims_status add_problem(walk_state *ws, const char *path, const char *reason)
{
    ims_file_list *out = ws->out;
    ims_status s =
        grow((void **)&out->problems, &ws->problems_cap, out->problem_count, sizeof *out->problems, ws->err);
    if (s)
        return s;
    ims_file_problem *p = &out->problems[out->problem_count];
    p->path = strdup(path);
    p->reason = strdup(reason);
    if (!p->path || !p->reason) {
        free(p->path);
        free(p->reason);
        return ims_error_set(ws->err, IMS_ERR_NOMEM, "out of memory listing files");
    }
    out->problem_count++;
    return IMS_OK;
}

static ims_status add_ignored(walk_state *ws, const char *path)
{
    ims_file_list *out = ws->out;
    ims_status s = grow((void **)&out->ignored, &ws->ignored_cap, (size_t)out->ignored_count, sizeof *out->ignored,
                        ws->err);
    if (s)
        return s;
    if (!(out->ignored[out->ignored_count] = strdup(path)))
        return ims_error_set(ws->err, IMS_ERR_NOMEM, "out of memory listing files");
    out->ignored_count++;
    return IMS_OK;
}

/* 1 if the folder was entered before (then it is skipped), else records it. */
static int seen_before(walk_state *ws, const struct stat *st, ims_status *s)
{
    for (size_t i = 0; i < ws->seen_count; i++)
        if (ws->seen[i].dev == st->st_dev && ws->seen[i].ino == st->st_ino)
            return 1;
    *s = grow((void **)&ws->seen, &ws->seen_cap, ws->seen_count, sizeof *ws->seen, ws->err);
    if (!*s)
        ws->seen[ws->seen_count++] = (dir_id){st->st_dev, st->st_ino};
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The walk reaches every entry through its folder's descriptor (openat,
 * fstatat), so depth is not limited by PATH_MAX; the paths it reports are
 * still whole strings, and a file whose path is too long to be opened by
 * name later is reported as a problem instead of being lost. */
static ims_status walk_path(walk_state *ws, int dirfd, const char *name, const char *path, int depth);

static ims_status walk_dir(walk_state *ws, int fd, const char *path, int depth)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        char reason[300];
        snprintf(reason, sizeof reason, "cannot open folder: %s", strerror(errno));
        close(fd);
        return add_problem(ws, path, reason);
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    ims_status s = IMS_OK;
    struct dirent *de;
    while (!s && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        s = grow((void **)&names, &cap, count, sizeof *names, ws->err);
        if (!s && !(names[count++] = strdup(de->d_name)))
            s = ims_error_set(ws->err, IMS_ERR_NOMEM, "out of memory listing '%s'", path);
    }
    if (!s && count)
        qsort(names, count, sizeof *names, compare_names);
    size_t plen = strlen(path);
    int slash = plen > 0 && path[plen - 1] == '/';
    for (size_t i = 0; !s && i < count; i++) {
        size_t len = plen + 1 + strlen(names[i]) + 1;
        char *child = malloc(len);
        if (!child) {
            s = ims_error_set(ws->err, IMS_ERR_NOMEM, "out of memory listing '%s'", path);
            break;
        }
        snprintf(child, len, slash ? "%s%s" : "%s/%s", path, names[i]);
        s = walk_path(ws, dirfd(d), names[i], child, depth + 1);
        free(child);
    }
    closedir(d); /* closes fd: children were reached through it */
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
    return s;
}

static ims_status walk_path(walk_state *ws, int dirfd, const char *name, const char *path, int depth)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, 0) != 0) {
        int e = errno;
        struct stat lst;
        int dangling = fstatat(dirfd, name, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode);
        if (depth > 0 && !ims_path_is_image_name(path))
            return add_ignored(ws, path);
        char reason[300];
        snprintf(reason, sizeof reason, "%s: %s", dangling ? "dangling symbolic link" : "cannot read", strerror(e));
        return add_problem(ws, path, reason);
    }
    if (S_ISDIR(st.st_mode)) {
        ims_status s = IMS_OK;
        if (seen_before(ws, &st, &s))
            return IMS_OK; /* a loop, or a second link to the same folder */
        if (s)
            return s;
        if (depth >= 256)
            return add_problem(ws, path, "folders nested more than 256 deep");
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            char reason[300];
            snprintf(reason, sizeof reason, "cannot open folder: %s", strerror(errno));
            return add_problem(ws, path, reason);
        }
        return walk_dir(ws, fd, path, depth);
    }
    /* A file named on the command line is taken whatever its name. */
    if (depth > 0 && !ims_path_is_image_name(path))
        return add_ignored(ws, path);
    if (!S_ISREG(st.st_mode))
        return add_problem(ws, path, "not a regular file");
    if (strlen(path) >= PATH_MAX)
        return add_problem(ws, path, "its path is longer than PATH_MAX (4096 bytes): it cannot be opened by name");
    return add_file(ws, path, &st);
}

static int compare_files(const void *a, const void *b)
{
    return strcmp(((const ims_file_entry *)a)->path, ((const ims_file_entry *)b)->path);
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int compare_problems(const void *a, const void *b)
{
    return strcmp(((const ims_file_problem *)a)->path, ((const ims_file_problem *)b)->path);
}

ims_status ims_file_list_walk(const char *const *roots, size_t root_count, ims_file_list *out, ims_error *err)
{
    memset(out, 0, sizeof *out);
    walk_state ws = {.out = out, .err = err};
    ims_status s = IMS_OK;
    for (size_t i = 0; !s && i < root_count; i++)
        s = walk_path(&ws, AT_FDCWD, roots[i], roots[i], 0);
    free(ws.seen);
    if (s) {
        ims_file_list_free(out);
        return s;
    }
    if (out->file_count)
        qsort(out->files, out->file_count, sizeof *out->files, compare_files);
    if (out->problem_count)
        qsort(out->problems, out->problem_count, sizeof *out->problems, compare_problems);
    if (out->ignored_count)
        qsort(out->ignored, (size_t)out->ignored_count, sizeof *out->ignored, compare_strings);
    /* The same file named twice (two roots that overlap) is indexed once. */
    size_t kept = 0;
    for (int64_t i = 0; i < out->file_count; i++) {
        if (kept > 0 && strcmp(out->files[kept - 1].path, out->files[i].path) == 0) {
            free(out->files[i].path);
            continue;
        }
        out->files[kept++] = out->files[i];
    }
    out->file_count = kept;
    return IMS_OK;
}

void ims_file_list_free(ims_file_list *list)
{
    for (int64_t i = 0; i < list->file_count; i++)
        free(list->files[i].path);
    for (int64_t i = 0; i < list->problem_count; i++) {
        free(list->problems[i].path);
        free(list->problems[i].reason);
    }
    for (int64_t i = 0; i < list->ignored_count; i++)
        free(list->ignored[i]);
    free(list->files);
    free(list->problems);
    free(list->ignored);
    memset(list, 0, sizeof *list);
}

/* The extension of a path's last component, lowercased into buf ("" if none). */
static void extension_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash + 1 : path, '.');
    buf[0] = '\0';
    if (!dot || dot[1] == '\0' || dot == (slash ? slash + 1 : path))
        return; /* no extension, or a dot file such as ".DS_Store" */
    size_t i = 0;
    for (const char *c = dot; *c && i + 1 < size; c++)
        buf[i++] = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    buf[i] = '\0';
}

typedef struct ext_count {
    char ext[24];
    int64_t count;
} ext_count;

static int compare_counts(const void *a, const void *b)
{
    const ext_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return strcmp(x->ext, y->ext);
}

size_t ims_file_list_ignored_summary(const ims_file_list *list, char *buf, size_t size)
{
    if (size)
        buf[0] = '\0';
    if (!list || list->ignored_count <= 0)
        return 0;
    ext_count *counts = calloc((size_t)list->ignored_count, sizeof *counts);
    if (!counts)
        return (size_t)snprintf(buf, size, "%lld files", (long long)list->ignored_count);
    size_t kinds = 0;
    for (int64_t i = 0; i < list->ignored_count; i++) {
        char ext[24];
        extension_of(list->ignored[i], ext, sizeof ext);
        size_t k = 0;
        while (k < kinds && strcmp(counts[k].ext, ext) != 0)
            k++;
        if (k == kinds)
            memcpy(counts[kinds++].ext, ext, sizeof ext);
        counts[k].count++;
    }
    qsort(counts, kinds, sizeof *counts, compare_counts);
    size_t used = 0;
    for (size_t k = 0; k < kinds; k++) {
        int n = snprintf(used < size ? buf + used : NULL, used < size ? size - used : 0, "%s%lld %s", k ? ", " : "",
                         (long long)counts[k].count, counts[k].ext[0] ? counts[k].ext : "(no extension)");
        used += n > 0 ? (size_t)n : 0;
    }
    free(counts);
    return used;
}
