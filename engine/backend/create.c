/* create.c: backend creation: the one file that knows every backend, and the
 * check that a backend's op table has every required slot (backend.h), so a
 * missing op is refused by name at creation, not met as a NULL call later. */
#include "backend/backend.h"

#include "core/error.h"

#include <stddef.h>
#include <string.h>

typedef void (*slot_fn)(void);

typedef struct slot {
    const char *name;
    size_t offset; /* in imsi_backend_ops */
} slot;

#define SLOT(name) {#name, offsetof(imsi_backend_ops, name)}

/* Every required slot, in the struct's order. */
static const slot required_slots[] = {
    SLOT(destroy),         SLOT(alloc),          SLOT(dealloc),           SLOT(host_alloc),    SLOT(host_free),
    SLOT(upload),          SLOT(download),       SLOT(fill_bytes),        SLOT(synchronize),   SLOT(convert),
    SLOT(l2_normalize_rows), SLOT(linear),       SLOT(knn_select),    SLOT(conv2d),
    SLOT(pool2d),          SLOT(global_avg_pool), SLOT(input_u8),         SLOT(embed_layernorm), SLOT(bias_act),
    SLOT(add_layernorm),   SLOT(attention),      SLOT(pool_normalize),
};
/* The required slots are the struct's first ones, up to timer_create: a
 * required slot added to backend.h but not listed here fails to compile. */
_Static_assert(sizeof required_slots / sizeof required_slots[0] ==
                   offsetof(imsi_backend_ops, timer_create) / sizeof(slot_fn),
               "required_slots must list every slot before timer_create");

/* Optional slots that only make sense together. */
static const slot timer_slots[] = {SLOT(timer_create), SLOT(timer_mark), SLOT(timer_elapsed_ms), SLOT(timer_free)};
static const slot graph_slots[] = {SLOT(capture_begin), SLOT(capture_end), SLOT(graph_launch), SLOT(graph_free)};

static int slot_set(const imsi_backend_ops *ops, const slot *s)
{
    /* Every function pointer has the same size and a NULL one is all zero bits
     * on the platforms we build for; memcpy reads it without a type pun. */
    slot_fn fn;
    memcpy(&fn, (const char *)ops + s->offset, sizeof fn);
    return fn != NULL;
}

/* All of `set` or none of it. */
static ims_status check_set(const ims_backend *be, const slot *set, size_t n, const char *what, ims_error *err)
{
    size_t have = 0;
    for (size_t i = 0; i < n; i++)
        have += slot_set(be->ops, &set[i]) ? 1u : 0u;
    for (size_t i = 0; have != 0 && have != n && i < n; i++)
        if (!slot_set(be->ops, &set[i]))
            return ims_error_set(err, IMS_ERR_UNSUPPORTED, "backend %s: %s slot '%s' is empty but others of its "
                                 "set are not", be->info.name, what, set[i].name);
    return IMS_OK;
}

ims_status imsi_backend_adopt(ims_backend *be, ims_backend **out, ims_error *err)
{
    *out = NULL;
    ims_status st = IMS_OK;
    for (size_t i = 0; !st && i < sizeof required_slots / sizeof required_slots[0]; i++)
        if (!slot_set(be->ops, &required_slots[i]))
            st = ims_error_set(err, IMS_ERR_UNSUPPORTED, "backend %s: required slot '%s' is empty", be->info.name,
                               required_slots[i].name);
    if (!st)
        st = check_set(be, timer_slots, sizeof timer_slots / sizeof timer_slots[0], "timer", err);
    if (!st)
        st = check_set(be, graph_slots, sizeof graph_slots / sizeof graph_slots[0], "graph", err);
    if (st) {
        if (be->ops->destroy)
            be->ops->destroy(be);
        /* without destroy the backend's own state cannot be freed: a bug in its
         * constructor that this message names; leaking it beats guessing */
        return st;
    }
    *out = be;
    return IMS_OK;
}

ims_status ims_backend_create(ims_backend_kind kind, int device, ims_backend **out, ims_error *err)
{
    *out = NULL;
    ims_backend *be = NULL;
    ims_status st;
    switch (kind) {
    case IMS_BACKEND_CPU: st = imsi_backend_cpu_create(&be, err); break;
    case IMS_BACKEND_CUDA: st = imsi_backend_cuda_create(device, &be, err); break;
    default: return ims_error_set(err, IMS_ERR_ARGUMENT, "unknown backend kind %d", (int)kind);
    }
    return st ? st : imsi_backend_adopt(be, out, err);
}
