/* pickle.c: the restricted unpickler of pickle.h.
 *
 * A pickle is a program for a stack machine. This file runs that program over
 * values of its own (pv below), never Python objects: it knows only the opcodes
 * a state_dict needs, and of the GLOBALs only those that build one, each
 * evaluated here by C code that checks its arguments. Nothing in the file can
 * name code to run; anything outside the lists refuses the whole file with a
 * message naming the opcode or the global and its byte offset.
 *
 * Opcodes (protocol 2, the set torch/_weights_only_unpickler.py accepts):
 *   PROTO STOP MARK GLOBAL REDUCE BUILD NEWOBJ BINPERSID
 *   NONE NEWTRUE NEWFALSE BININT BININT1 BININT2 LONG1 BINFLOAT
 *   BINUNICODE SHORT_BINSTRING EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3
 *   EMPTY_LIST APPEND APPENDS EMPTY_DICT SETITEM SETITEMS EMPTY_SET
 *   BINPUT LONG_BINPUT BINGET LONG_BINGET
 * plus, because torch.save(..., pickle_protocol=3/4/5) writes them for the same
 * data (and torch.load reads such files): FRAME (a length hint, checked and
 * ignored), SHORT_BINUNICODE, BINUNICODE8, MEMOIZE, STACK_GLOBAL (the same
 * allow-list as GLOBAL), BINBYTES, SHORT_BINBYTES, BINBYTES8 (bytes values),
 * ADDITEMS and FROZENSET (how protocol 4 fills sets); and BINSTRING (a Python 2
 * str longer than 255 bytes, as in old legacy files). Everything else (INST,
 * OBJ, EXT1/2/4, PERSID, the text opcodes, POP, DUP, out-of-band buffers, ...)
 * is refused by name.
 *
 * Values live in an arena that is freed at once, so shared and even cyclic
 * structures (the memo makes both possible) need no reference counting, and
 * every walk over them is iterative with visit stamps: no recursion, no
 * revisits. Strings point into the input.
 *
 * Limits against resource exhaustion: values on the stack, open MARKs, memo
 * indices (also below the current offset: a valid pickle defines index n only
 * after n earlier memo writes), and values created (at most one per opcode, so
 * never more than the input has bytes). Every length is checked against the
 * bytes left before it is used.
 */
#include "pickle.h"

#include "core/error.h"
#include "io/weights_format.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long long ull; /* for printf */

#define PICKLE_MAX_STACK (1u << 20)   /* values on the stack; the pickler batches by 1000 */
#define PICKLE_MAX_MARKS 256          /* open MARKs; a state_dict needs about 4 */
#define PICKLE_MAX_MEMO (1u << 22)    /* memo indices */
#define PICKLE_MAX_VALUES (1u << 26)  /* values of one pickle, also <= its length */
#define PICKLE_MAX_LINE 256           /* a GLOBAL's module or name */
#define PICKLE_MAX_NAME 1024          /* a tensor name or storage key, in bytes */

/* ---- Opcodes ------------------------------------------------------------------- */

enum {
    OP_MARK = '(', OP_STOP = '.', OP_POP = '0', OP_POP_MARK = '1', OP_DUP = '2', OP_FLOAT = 'F',
    OP_INT = 'I', OP_BININT = 'J', OP_BININT1 = 'K', OP_LONG = 'L', OP_BININT2 = 'M', OP_NONE = 'N',
    OP_PERSID = 'P', OP_BINPERSID = 'Q', OP_REDUCE = 'R', OP_STRING = 'S', OP_BINSTRING = 'T',
    OP_SHORT_BINSTRING = 'U', OP_UNICODE = 'V', OP_BINUNICODE = 'X', OP_APPEND = 'a', OP_BUILD = 'b',
    OP_GLOBAL = 'c', OP_DICT = 'd', OP_EMPTY_DICT = '}', OP_APPENDS = 'e', OP_GET = 'g', OP_BINGET = 'h',
    OP_INST = 'i', OP_LONG_BINGET = 'j', OP_LIST = 'l', OP_EMPTY_LIST = ']', OP_OBJ = 'o', OP_PUT = 'p',
    OP_BINPUT = 'q', OP_LONG_BINPUT = 'r', OP_SETITEM = 's', OP_TUPLE = 't', OP_EMPTY_TUPLE = ')',
    OP_SETITEMS = 'u', OP_BINFLOAT = 'G',
    OP_PROTO = 0x80, OP_NEWOBJ = 0x81, OP_EXT1 = 0x82, OP_EXT2 = 0x83, OP_EXT4 = 0x84, OP_TUPLE1 = 0x85,
    OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87, OP_NEWTRUE = 0x88, OP_NEWFALSE = 0x89, OP_LONG1 = 0x8a,
    OP_LONG4 = 0x8b,
    OP_BINBYTES = 'B', OP_SHORT_BINBYTES = 'C',
    OP_SHORT_BINUNICODE = 0x8c, OP_BINUNICODE8 = 0x8d, OP_BINBYTES8 = 0x8e, OP_EMPTY_SET = 0x8f,
    OP_ADDITEMS = 0x90, OP_FROZENSET = 0x91, OP_NEWOBJ_EX = 0x92, OP_STACK_GLOBAL = 0x93, OP_MEMOIZE = 0x94,
    OP_FRAME = 0x95, OP_BYTEARRAY8 = 0x96, OP_NEXT_BUFFER = 0x97, OP_READONLY_BUFFER = 0x98,
};

/* Every opcode Python's pickle module defines, so a refusal can name it. */
static const char *opcode_name(unsigned op)
{
    switch (op) {
    case OP_MARK: return "MARK";
    case OP_STOP: return "STOP";
    case OP_POP: return "POP";
    case OP_POP_MARK: return "POP_MARK";
    case OP_DUP: return "DUP";
    case OP_FLOAT: return "FLOAT";
    case OP_INT: return "INT";
    case OP_BININT: return "BININT";
    case OP_BININT1: return "BININT1";
    case OP_LONG: return "LONG";
    case OP_BININT2: return "BININT2";
    case OP_NONE: return "NONE";
    case OP_PERSID: return "PERSID";
    case OP_BINPERSID: return "BINPERSID";
    case OP_REDUCE: return "REDUCE";
    case OP_STRING: return "STRING";
    case OP_BINSTRING: return "BINSTRING";
    case OP_SHORT_BINSTRING: return "SHORT_BINSTRING";
    case OP_UNICODE: return "UNICODE";
    case OP_BINUNICODE: return "BINUNICODE";
    case OP_APPEND: return "APPEND";
    case OP_BUILD: return "BUILD";
    case OP_GLOBAL: return "GLOBAL";
    case OP_DICT: return "DICT";
    case OP_EMPTY_DICT: return "EMPTY_DICT";
    case OP_APPENDS: return "APPENDS";
    case OP_GET: return "GET";
    case OP_BINGET: return "BINGET";
    case OP_INST: return "INST";
    case OP_LONG_BINGET: return "LONG_BINGET";
    case OP_LIST: return "LIST";
    case OP_EMPTY_LIST: return "EMPTY_LIST";
    case OP_OBJ: return "OBJ";
    case OP_PUT: return "PUT";
    case OP_BINPUT: return "BINPUT";
    case OP_LONG_BINPUT: return "LONG_BINPUT";
    case OP_SETITEM: return "SETITEM";
    case OP_TUPLE: return "TUPLE";
    case OP_EMPTY_TUPLE: return "EMPTY_TUPLE";
    case OP_SETITEMS: return "SETITEMS";
    case OP_BINFLOAT: return "BINFLOAT";
    case OP_PROTO: return "PROTO";
    case OP_NEWOBJ: return "NEWOBJ";
    case OP_EXT1: return "EXT1";
    case OP_EXT2: return "EXT2";
    case OP_EXT4: return "EXT4";
    case OP_TUPLE1: return "TUPLE1";
    case OP_TUPLE2: return "TUPLE2";
    case OP_TUPLE3: return "TUPLE3";
    case OP_NEWTRUE: return "NEWTRUE";
    case OP_NEWFALSE: return "NEWFALSE";
    case OP_LONG1: return "LONG1";
    case OP_LONG4: return "LONG4";
    case OP_BINBYTES: return "BINBYTES";
    case OP_SHORT_BINBYTES: return "SHORT_BINBYTES";
    case OP_SHORT_BINUNICODE: return "SHORT_BINUNICODE";
    case OP_BINUNICODE8: return "BINUNICODE8";
    case OP_BINBYTES8: return "BINBYTES8";
    case OP_EMPTY_SET: return "EMPTY_SET";
    case OP_ADDITEMS: return "ADDITEMS";
    case OP_FROZENSET: return "FROZENSET";
    case OP_NEWOBJ_EX: return "NEWOBJ_EX";
    case OP_STACK_GLOBAL: return "STACK_GLOBAL";
    case OP_MEMOIZE: return "MEMOIZE";
    case OP_FRAME: return "FRAME";
    case OP_BYTEARRAY8: return "BYTEARRAY8";
    case OP_NEXT_BUFFER: return "NEXT_BUFFER";
    case OP_READONLY_BUFFER: return "READONLY_BUFFER";
    }
    return NULL;
}

/* ---- The allowed GLOBALs ---------------------------------------------------------- */

typedef enum pg_kind {
    PG_ORDERED_DICT,   /* the state_dict, backward_hooks and _metadata containers */
    PG_REBUILD_TENSOR, /* a tensor: (storage, offset, size, stride) */
    PG_REBUILD_TENSOR_V2, /* the same plus requires_grad, backward_hooks[, metadata] */
    PG_REBUILD_PARAMETER, /* an nn.Parameter: (tensor, requires_grad, backward_hooks) */
    PG_TORCH_SIZE,     /* torch.Size(tuple): a size tuple */
    PG_STORAGE,        /* a storage type, named by a persistent id; never called */
} pg_kind;

typedef struct pg_entry {
    const char *module, *name;
    pg_kind kind;
    ckpt_dtype dtype; /* PG_STORAGE only */
} pg_entry;

/* Each entry is here because a plain state_dict pickle needs it:
 * - collections.OrderedDict: Module.state_dict() returns one; each tensor's
 *   backward_hooks argument is an empty one; _metadata is one.
 * - torch._utils._rebuild_tensor_v2: how every tensor pickles since 1.0;
 *   _rebuild_tensor: the same in files from before 1.0 (4 arguments).
 * - torch._utils._rebuild_parameter: an nn.Parameter value, as in
 *   state_dict(keep_vars=True) or a dict of parameters; plain parameters never
 *   use _rebuild_parameter_with_state (that is for parameters with Python
 *   attributes), so it stays out.
 * - torch.Size: a size may pickle as torch.Size((...)).
 * - torch.<X>Storage: the storage type inside each persistent id, one per
 *   dtype the converter reads. _rebuild_tensor_v3 and UntypedStorage appear
 *   only for dtypes without a storage type (uint16, float8, ...): refused. */
static const pg_entry allowed_globals[] = {
    {"collections", "OrderedDict", PG_ORDERED_DICT, CKPT_F32},
    {"torch._utils", "_rebuild_tensor_v2", PG_REBUILD_TENSOR_V2, CKPT_F32},
    {"torch._utils", "_rebuild_tensor", PG_REBUILD_TENSOR, CKPT_F32},
    {"torch._utils", "_rebuild_parameter", PG_REBUILD_PARAMETER, CKPT_F32},
    {"torch", "Size", PG_TORCH_SIZE, CKPT_F32},
    {"torch", "FloatStorage", PG_STORAGE, CKPT_F32},
    {"torch", "DoubleStorage", PG_STORAGE, CKPT_F64},
    {"torch", "HalfStorage", PG_STORAGE, CKPT_F16},
    {"torch", "BFloat16Storage", PG_STORAGE, CKPT_BF16},
    {"torch", "LongStorage", PG_STORAGE, CKPT_I64},
    {"torch", "IntStorage", PG_STORAGE, CKPT_I32},
    {"torch", "ShortStorage", PG_STORAGE, CKPT_I16},
    {"torch", "CharStorage", PG_STORAGE, CKPT_I8},
    {"torch", "ByteStorage", PG_STORAGE, CKPT_U8},
    {"torch", "BoolStorage", PG_STORAGE, CKPT_BOOL},
};

#define ALLOWED_GLOBALS_TEXT                                                                                     \
    "a state_dict may use only collections.OrderedDict, torch._utils._rebuild_tensor(_v2), "                     \
    "torch._utils._rebuild_parameter, torch.Size and torch.{Float,Double,Half,BFloat16,Long,Int,Short,Char,"    \
    "Byte,Bool}Storage"

/* ---- Values --------------------------------------------------------------------------- */

typedef enum pv_kind {
    PV_NONE, PV_BOOL, PV_INT, PV_BIGINT, PV_FLOAT, PV_STR, PV_BYTES,
    PV_TUPLE, PV_LIST, PV_DICT, PV_ODICT, PV_SET, PV_FROZENSET,
    PV_GLOBAL, PV_STORAGE, PV_TENSOR,
} pv_kind;

static const char *pv_kind_name(pv_kind k)
{
    static const char *const names[] = {"None", "bool", "int", "int beyond 64 bits", "float", "str", "bytes",
                                        "tuple", "list", "dict", "OrderedDict", "set", "frozenset",
                                        "global", "storage", "tensor"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

typedef struct pv pv;

typedef struct pv_tensor {
    const pv *storage; /* PV_STORAGE */
    int ndim;
    int64_t shape[CKPT_MAX_DIMS], stride[CKPT_MAX_DIMS];
    int64_t offset;
} pv_tensor;

struct pv {
    pv_kind kind;
    uint32_t stamp;   /* walks mark what they visited */
    int name_ok;      /* STR: check_name passed (it runs once per value) */
    size_t offset;    /* the opcode that made it, for messages */
    union {
        int64_t i;    /* BOOL, INT */
        double f;     /* FLOAT */
        struct {      /* STR, BYTES, BIGINT (little-endian two's complement) */
            const unsigned char *p;
            size_t len;
        } s;
        struct {      /* TUPLE, LIST, SET, FROZENSET; DICT, ODICT: key, value, key, value, ... */
            pv **v;
            size_t n, cap;
        } seq;
        const pg_entry *g; /* GLOBAL */
        struct {      /* STORAGE, from a persistent id */
            const unsigned char *key;
            size_t key_len;
            ckpt_dtype dtype;
            uint64_t numel;
        } st;
        pv_tensor *t; /* TENSOR */
    } u;
};

#define PV_BLOCK 256

typedef struct pv_block {
    struct pv_block *next;
    size_t used;
    pv v[PV_BLOCK];
} pv_block;

typedef struct unpickler {
    const unsigned char *data;
    size_t size, pos;
    size_t op_pos;         /* offset of the opcode being run */
    unsigned op;
    int allow_persid;      /* only a state_dict pickle names storages */
    pv **stack;
    size_t depth, stack_cap;
    size_t *marks;         /* stack depth at each open MARK */
    size_t nmarks, marks_cap;
    pv **memo;             /* NULL: index not set */
    size_t memo_cap, memo_count;
    pv_block *blocks;
    size_t nvalues, max_values;
    size_t nslots, max_slots; /* container items, all containers together */
    uint32_t stamp;
    pv **work;             /* the walks' worklist */
    size_t work_cap;
    size_t walked, max_walked; /* values visited by all walks together */
    ims_status status;     /* the last failure, for callers of functions that return a value */
    ims_error *err;
} unpickler;

/* Immutable values are shared, so that they cost no allocation. */
static pv pv_none = {PV_NONE, 0, 0, 0, {0}};
static pv pv_true = {PV_BOOL, 0, 0, 0, {.i = 1}};
static pv pv_false = {PV_BOOL, 0, 0, 0, {.i = 0}};

/* ---- Errors ------------------------------------------------------------------------------ */

/* "pickle offset N: ..." for the opcode being run. */
static ims_status fail_at(unpickler *u, size_t offset, const char *fmt, ...) IMS_PRINTF(3, 4);
static ims_status fail_at(unpickler *u, size_t offset, const char *fmt, ...)
{
    char msg[IMS_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return u->status = ims_error_set(u->err, IMS_ERR_FORMAT, "pickle offset %zu: %s", offset, msg);
}

#define FAIL(u, ...) fail_at((u), (u)->op_pos, __VA_ARGS__)

static ims_status fail_nomem(unpickler *u)
{
    return u->status = ims_error_set(u->err, IMS_ERR_NOMEM, "pickle offset %zu: out of memory", u->op_pos);
}

/* Copies at most 64 bytes of s into out for a message, with '?' for anything
 * that is not printable ASCII (names come from the file). */
static const char *printable(const unsigned char *s, size_t len, char out[72])
{
    size_t n = len < 64 ? len : 64;
    for (size_t i = 0; i < n; i++)
        out[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
    if (len > n)
        memcpy(out + n, "...", 3), n += 3;
    out[n] = '\0';
    return out;
}

static const char *op_label(unsigned op, char out[48])
{
    const char *name = opcode_name(op);
    if (op >= 0x20 && op < 0x7f)
        snprintf(out, 48, "%s (0x%02x '%c')", name ? name : "unknown", op, (char)op);
    else
        snprintf(out, 48, "%s (0x%02x)", name ? name : "unknown", op);
    return out;
}

/* ---- The arena ------------------------------------------------------------------------- */

static pv *pv_new(unpickler *u, pv_kind kind)
{
    if (u->nvalues >= u->max_values) {
        FAIL(u, "more than %zu values (one per opcode at most)", u->max_values);
        return NULL;
    }
    if (!u->blocks || u->blocks->used == PV_BLOCK) {
        pv_block *b = malloc(sizeof *b);
        if (!b) {
            fail_nomem(u);
            return NULL;
        }
        b->next = u->blocks;
        b->used = 0;
        u->blocks = b;
    }
    pv *v = &u->blocks->v[u->blocks->used++];
    u->nvalues++;
    memset(v, 0, sizeof *v);
    v->kind = kind;
    v->offset = u->op_pos;
    return v;
}

static int pv_has_seq(const pv *v)
{
    return v->kind == PV_TUPLE || v->kind == PV_LIST || v->kind == PV_DICT || v->kind == PV_ODICT ||
           v->kind == PV_SET || v->kind == PV_FROZENSET;
}

static int pv_is_dict(const pv *v) { return v->kind == PV_DICT || v->kind == PV_ODICT; }

static void unpickler_free(unpickler *u)
{
    for (pv_block *b = u->blocks, *next; b; b = next) {
        next = b->next;
        for (size_t i = 0; i < b->used; i++) {
            if (pv_has_seq(&b->v[i]))
                free(b->v[i].u.seq.v);
            else if (b->v[i].kind == PV_TENSOR)
                free(b->v[i].u.t);
        }
        free(b);
    }
    free(u->stack);
    free(u->marks);
    free(u->memo);
    free(u->work);
    memset(u, 0, sizeof *u);
}

/* Appends n values to a container. */
static ims_status seq_extend(unpickler *u, pv *c, pv *const *items, size_t n)
{
    /* Copies (OrderedDict of a list) could otherwise repeat one long list
     * many times over: all containers together hold a bounded number of items. */
    if (n > u->max_slots - u->nslots)
        return FAIL(u, "containers hold more than %zu items (twice the pickle's length)", u->max_slots);
    u->nslots += n;
    if (n > c->u.seq.cap - c->u.seq.n) {
        size_t cap = c->u.seq.cap ? c->u.seq.cap : 4;
        while (cap - c->u.seq.n < n) {
            if (cap > SIZE_MAX / 2 / sizeof(pv *))
                return fail_nomem(u);
            cap *= 2;
        }
        pv **p = realloc(c->u.seq.v, cap * sizeof *p);
        if (!p)
            return fail_nomem(u);
        c->u.seq.v = p;
        c->u.seq.cap = cap;
    }
    if (n)
        memcpy(c->u.seq.v + c->u.seq.n, items, n * sizeof *items);
    c->u.seq.n += n;
    return IMS_OK;
}

/* A new container holding a copy of items[0..n). */
static pv *seq_new(unpickler *u, pv_kind kind, pv *const *items, size_t n)
{
    pv *c = pv_new(u, kind);
    if (c && seq_extend(u, c, items, n))
        return NULL;
    return c;
}

/* ---- Input ------------------------------------------------------------------------------ */

static ims_status need(unpickler *u, uint64_t n, const char *what)
{
    if (n > u->size - u->pos)
        return FAIL(u, "%s needs %llu bytes, but the pickle has %zu left", what, (ull)n, u->size - u->pos);
    return IMS_OK;
}

static uint64_t read_le(unpickler *u, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)u->data[u->pos + i] << (8 * i);
    u->pos += n;
    return v;
}

/* Reads an n-byte little-endian unsigned argument. */
static ims_status read_arg(unpickler *u, size_t n, uint64_t *out)
{
    char label[48];
    ims_status st = need(u, n, op_label(u->op, label));
    if (st)
        return st;
    *out = read_le(u, n);
    return IMS_OK;
}

/* ---- The stack ------------------------------------------------------------------------- */

static size_t fence(const unpickler *u) { return u->nmarks ? u->marks[u->nmarks - 1] : 0; }

static ims_status push(unpickler *u, pv *v)
{
    if (!v)
        return u->status; /* pv_new failed and said why */
    if (u->depth == u->stack_cap) {
        if (u->depth >= PICKLE_MAX_STACK)
            return FAIL(u, "stack deeper than %u values", PICKLE_MAX_STACK);
        size_t cap = u->stack_cap ? 2 * u->stack_cap : 64;
        pv **p = realloc(u->stack, cap * sizeof *p);
        if (!p)
            return fail_nomem(u);
        u->stack = p;
        u->stack_cap = cap;
    }
    u->stack[u->depth++] = v;
    return IMS_OK;
}

/* The n values on top of the stack, all above the innermost MARK. */
static ims_status top_n(unpickler *u, size_t n, pv ***out)
{
    char label[48];
    if (u->depth - fence(u) < n)
        return FAIL(u, "stack underflow: %s needs %zu values above the %s, the stack has %zu", op_label(u->op, label),
                    n, u->nmarks ? "last MARK" : "bottom", u->depth - fence(u));
    *out = u->stack + u->depth - n;
    return IMS_OK;
}

static ims_status pop(unpickler *u, pv **out)
{
    pv **p = NULL;
    ims_status st = top_n(u, 1, &p);
    if (st)
        return st;
    *out = *p;
    u->depth--;
    return IMS_OK;
}

/* Ends the innermost MARK: the values above it come back in items[0..n). */
static ims_status pop_mark(unpickler *u, pv ***items, size_t *n)
{
    char label[48];
    if (u->nmarks == 0)
        return FAIL(u, "%s without a MARK (MARK underflow)", op_label(u->op, label));
    size_t mark = u->marks[--u->nmarks];
    *items = u->stack + mark;
    *n = u->depth - mark;
    u->depth = mark;
    return IMS_OK;
}

/* ---- Walks --------------------------------------------------------------------------- */

static ims_status work_push(unpickler *u, size_t *n, pv *v)
{
    if (*n == u->work_cap) {
        size_t cap = u->work_cap ? 2 * u->work_cap : 64;
        if (cap > SIZE_MAX / sizeof(pv *))
            return fail_nomem(u);
        pv **p = realloc(u->work, cap * sizeof *p);
        if (!p)
            return fail_nomem(u);
        u->work = p;
        u->work_cap = cap;
    }
    u->work[(*n)++] = v;
    return IMS_OK;
}

/* Checks that root and all it holds is plain data: None, bool, int, float,
 * str, bytes and containers of them. A tensor, a storage or a bare global (an
 * uncalled class or function) is not. */
static ims_status check_plain(unpickler *u, pv *root, const char *what)
{
    u->stamp++;
    size_t n = 0;
    ims_status st = work_push(u, &n, root);
    while (!st && n) {
        pv *v = u->work[--n];
        /* BINGET can hand one large value to many walks: bound their sum */
        if (++u->walked > u->max_walked)
            return fail_at(u, v->offset, "checking %s: more than %zu values visited in all", what, u->max_walked);
        if (v->kind == PV_GLOBAL)
            return fail_at(u, v->offset, "%s holds the global %s.%s, not plain data", what, v->u.g->module,
                           v->u.g->name);
        if (v->kind == PV_STORAGE || v->kind == PV_TENSOR)
            return fail_at(u, v->offset, "%s holds a %s, not plain data", what, pv_kind_name(v->kind));
        if (!pv_has_seq(v) || v->stamp == u->stamp)
            continue;
        v->stamp = u->stamp;
        for (size_t i = 0; i < v->u.seq.n && !st; i++)
            st = work_push(u, &n, v->u.seq.v[i]);
    }
    return st;
}

/* ---- Argument checks ------------------------------------------------------------------- */

static int str_eq(const pv *v, const char *s)
{
    size_t len = strlen(s);
    return v->kind == PV_STR && v->u.s.len == len && memcmp(v->u.s.p, s, len) == 0;
}

/* A name or key taken from the file: a str of valid UTF-8, without control
 * characters, not empty. */
static ims_status check_name(unpickler *u, pv *v, const char *what)
{
    if (v->kind == PV_STR && v->name_ok)
        return IMS_OK;
    if (v->kind != PV_STR)
        return fail_at(u, v->offset, "%s is a %s, not a str", what, pv_kind_name(v->kind));
    if (v->u.s.len == 0 || v->u.s.len > PICKLE_MAX_NAME)
        return fail_at(u, v->offset, "%s has %zu bytes (1..%d allowed)", what, v->u.s.len, PICKLE_MAX_NAME);
    if (!imsi_isw_utf8_printable((const char *)v->u.s.p, v->u.s.len))
        return fail_at(u, v->offset, "%s is not valid UTF-8 without control characters", what);
    v->name_ok = 1;
    return IMS_OK;
}

static ims_status want_int(unpickler *u, const pv *v, int64_t lo, const char *what, int64_t *out)
{
    if (v->kind != PV_INT)
        return FAIL(u, "%s is a %s, not an int", what, pv_kind_name(v->kind));
    if (v->u.i < lo)
        return FAIL(u, "%s = %lld is below %lld", what, (long long)v->u.i, (long long)lo);
    *out = v->u.i;
    return IMS_OK;
}

/* A size or stride: a tuple of non-negative ints, at most CKPT_MAX_DIMS. */
static ims_status want_dims(unpickler *u, const pv *v, const char *what, int64_t *dims, int *ndim)
{
    if (v->kind != PV_TUPLE)
        return FAIL(u, "%s is a %s, not a tuple", what, pv_kind_name(v->kind));
    if (v->u.seq.n > CKPT_MAX_DIMS)
        return FAIL(u, "%s has %zu dims (at most %d)", what, v->u.seq.n, CKPT_MAX_DIMS);
    for (size_t d = 0; d < v->u.seq.n; d++) {
        char label[48];
        snprintf(label, sizeof label, "%s[%zu]", what, d);
        ims_status st = want_int(u, v->u.seq.v[d], 0, label, &dims[d]);
        if (st)
            return st;
    }
    *ndim = (int)v->u.seq.n;
    return IMS_OK;
}

/* backward_hooks: hooks are code, so only an empty dict is accepted. */
static ims_status want_no_hooks(unpickler *u, const pv *v)
{
    if (!pv_is_dict(v) || v->u.seq.n != 0)
        return FAIL(u, "backward_hooks is a %s with %zu entries; only an empty OrderedDict is accepted",
                    pv_kind_name(v->kind), pv_has_seq(v) ? v->u.seq.n / (pv_is_dict(v) ? 2 : 1) : (size_t)0);
    return IMS_OK;
}

/* ---- Callables -------------------------------------------------------------------------- */

/* OrderedDict() or, as Python 2 pickled it, OrderedDict([[key, value], ...]). */
static ims_status call_ordered_dict(unpickler *u, const pv *args, pv **out)
{
    pv *d = pv_new(u, PV_ODICT);
    if (!d)
        return u->status;
    if (args->u.seq.n == 0) {
        *out = d;
        return IMS_OK;
    }
    const pv *items = args->u.seq.v[0];
    if (args->u.seq.n != 1 || items->kind != PV_LIST)
        return FAIL(u, "collections.OrderedDict takes () or ([[key, value], ...],) here");
    for (size_t i = 0; i < items->u.seq.n; i++) {
        const pv *pair = items->u.seq.v[i];
        if ((pair->kind != PV_LIST && pair->kind != PV_TUPLE) || pair->u.seq.n != 2)
            return FAIL(u, "collections.OrderedDict item %zu is not a [key, value] pair", i);
        ims_status st = seq_extend(u, d, pair->u.seq.v, 2);
        if (st)
            return st;
    }
    *out = d;
    return IMS_OK;
}

/* _rebuild_tensor(storage, offset, size, stride) and
 * _rebuild_tensor_v2(..., requires_grad, backward_hooks[, metadata]). */
static ims_status call_rebuild_tensor(unpickler *u, const pg_entry *g, const pv *args, pv **out)
{
    size_t n = args->u.seq.n;
    int v2 = g->kind == PG_REBUILD_TENSOR_V2;
    if (v2 ? n != 6 && n != 7 : n != 4)
        return FAIL(u, "%s.%s takes %s arguments, got %zu", g->module, g->name, v2 ? "6 or 7" : "4", n);
    pv *const *a = args->u.seq.v;
    if (a[0]->kind != PV_STORAGE)
        return FAIL(u, "%s.%s: the storage argument is a %s, not a persistent storage", g->module, g->name,
                    pv_kind_name(a[0]->kind));
    pv_tensor t = {0};
    t.storage = a[0];
    int stride_ndim = 0;
    ims_status st = want_int(u, a[1], 0, "storage_offset", &t.offset);
    if (!st)
        st = want_dims(u, a[2], "size", t.shape, &t.ndim);
    if (!st)
        st = want_dims(u, a[3], "stride", t.stride, &stride_ndim);
    if (st)
        return st;
    if (stride_ndim != t.ndim)
        return FAIL(u, "size has %d dims but stride has %d", t.ndim, stride_ndim);
    if (v2) {
        if (a[4]->kind != PV_BOOL)
            return FAIL(u, "requires_grad is a %s, not a bool", pv_kind_name(a[4]->kind));
        if ((st = want_no_hooks(u, a[5])))
            return st;
        /* metadata: {"conj": bool, "neg": bool}, present only when a bit is set;
         * a set bit changes the values, so only all-false is accepted. */
        if (n == 7 && a[6]->kind != PV_NONE) {
            if (!pv_is_dict(a[6]) || a[6]->u.seq.n > 2 * 8)
                return FAIL(u, "tensor metadata is a %s of %zu values, not a small dict", pv_kind_name(a[6]->kind),
                            pv_has_seq(a[6]) ? a[6]->u.seq.n : (size_t)0);
            for (size_t i = 0; i + 1 < a[6]->u.seq.n; i += 2) {
                const pv *k = a[6]->u.seq.v[i], *val = a[6]->u.seq.v[i + 1];
                char key[72];
                if (k->kind != PV_STR || val->kind != PV_BOOL)
                    return FAIL(u, "tensor metadata holds a %s: %s entry, not str: bool", pv_kind_name(k->kind),
                                pv_kind_name(val->kind));
                if (val->u.i)
                    return FAIL(u, "tensor metadata '%s' is True (conjugate or negative views are not supported)",
                                printable(k->u.s.p, k->u.s.len, key));
            }
        }
    }
    pv *v = pv_new(u, PV_TENSOR);
    if (!v)
        return u->status;
    if (!(v->u.t = malloc(sizeof *v->u.t))) {
        v->kind = PV_NONE;
        return fail_nomem(u);
    }
    *v->u.t = t;
    *out = v;
    return IMS_OK;
}

/* _rebuild_parameter(tensor, requires_grad, backward_hooks): the tensor. */
static ims_status call_rebuild_parameter(unpickler *u, const pv *args, pv **out)
{
    if (args->u.seq.n != 3)
        return FAIL(u, "torch._utils._rebuild_parameter takes 3 arguments, got %zu", args->u.seq.n);
    pv *const *a = args->u.seq.v;
    if (a[0]->kind != PV_TENSOR)
        return FAIL(u, "torch._utils._rebuild_parameter: data is a %s, not a tensor", pv_kind_name(a[0]->kind));
    if (a[1]->kind != PV_BOOL)
        return FAIL(u, "requires_grad is a %s, not a bool", pv_kind_name(a[1]->kind));
    ims_status st = want_no_hooks(u, a[2]);
    if (st)
        return st;
    *out = a[0];
    return IMS_OK;
}

/* torch.Size((d0, d1, ...)): the tuple itself, once checked. */
static ims_status call_torch_size(unpickler *u, const pv *args, pv **out)
{
    int64_t dims[CKPT_MAX_DIMS];
    int ndim = 0;
    if (args->u.seq.n != 1)
        return FAIL(u, "torch.Size takes 1 argument, got %zu", args->u.seq.n);
    ims_status st = want_dims(u, args->u.seq.v[0], "torch.Size", dims, &ndim);
    if (st)
        return st;
    *out = args->u.seq.v[0];
    return IMS_OK;
}

/* Runs callable(*args) for an allowed callable; the result is the new value. */
static ims_status call(unpickler *u, const pv *callable, const pv *args, pv **out)
{
    char label[48];
    if (callable->kind != PV_GLOBAL)
        return FAIL(u, "%s on a %s, which is not an allowed callable", op_label(u->op, label),
                    pv_kind_name(callable->kind));
    const pg_entry *g = callable->u.g;
    if (args->kind != PV_TUPLE)
        return FAIL(u, "%s of %s.%s: the arguments are a %s, not a tuple", op_label(u->op, label), g->module, g->name,
                    pv_kind_name(args->kind));
    switch (g->kind) {
    case PG_ORDERED_DICT: return call_ordered_dict(u, args, out);
    case PG_REBUILD_TENSOR:
    case PG_REBUILD_TENSOR_V2: return call_rebuild_tensor(u, g, args, out);
    case PG_REBUILD_PARAMETER: return call_rebuild_parameter(u, args, out);
    case PG_TORCH_SIZE: return call_torch_size(u, args, out);
    case PG_STORAGE: break;
    }
    return FAIL(u, "%s of %s.%s: a storage type cannot be called", op_label(u->op, label), g->module, g->name);
}

/* ---- Opcodes ----------------------------------------------------------------------------- */

static ims_status find_global(unpickler *u, const unsigned char *module, size_t mlen, const unsigned char *name,
                              size_t nlen)
{
    for (size_t i = 0; i < sizeof allowed_globals / sizeof allowed_globals[0]; i++) {
        const pg_entry *g = &allowed_globals[i];
        if (strlen(g->module) == mlen && memcmp(g->module, module, mlen) == 0 && strlen(g->name) == nlen &&
            memcmp(g->name, name, nlen) == 0) {
            pv *v = pv_new(u, PV_GLOBAL);
            if (v)
                v->u.g = g;
            return push(u, v);
        }
    }
    char m[72], n[72], label[48];
    return FAIL(u, "%s %s.%s is not allowed: " ALLOWED_GLOBALS_TEXT, op_label(u->op, label), printable(module, mlen, m),
                printable(name, nlen, n));
}

/* GLOBAL: "module\nname\n". */
static ims_status op_global(unpickler *u)
{
    const unsigned char *line[2];
    size_t len[2];
    for (int k = 0; k < 2; k++) {
        size_t left = u->size - u->pos, max = left < PICKLE_MAX_LINE + 1 ? left : PICKLE_MAX_LINE + 1;
        const unsigned char *nl = memchr(u->data + u->pos, '\n', max);
        if (!nl)
            return FAIL(u, "GLOBAL: no newline within %d bytes after the %s", PICKLE_MAX_LINE, k ? "module" : "opcode");
        line[k] = u->data + u->pos;
        len[k] = (size_t)(nl - line[k]);
        u->pos += len[k] + 1;
    }
    return find_global(u, line[0], len[0], line[1], len[1]);
}

/* STACK_GLOBAL: module and name are the two str values on top. */
static ims_status op_stack_global(unpickler *u)
{
    pv **a = NULL;
    ims_status st = top_n(u, 2, &a);
    if (st)
        return st;
    if (a[0]->kind != PV_STR || a[1]->kind != PV_STR)
        return FAIL(u, "STACK_GLOBAL on a %s and a %s, not two str", pv_kind_name(a[0]->kind),
                    pv_kind_name(a[1]->kind));
    const pv *module = a[0], *name = a[1];
    u->depth -= 2;
    return find_global(u, module->u.s.p, module->u.s.len, name->u.s.p, name->u.s.len);
}

static ims_status op_reduce(unpickler *u)
{
    pv **a = NULL, *result = NULL;
    ims_status st = top_n(u, 2, &a);
    if (!st)
        st = call(u, a[0], a[1], &result);
    if (st)
        return st;
    u->depth -= 2;
    return push(u, result);
}

/* NEWOBJ: cls.__new__(cls, *args); only OrderedDict(), which is harmless. */
static ims_status op_newobj(unpickler *u)
{
    pv **a = NULL;
    ims_status st = top_n(u, 2, &a);
    if (st)
        return st;
    if (a[0]->kind != PV_GLOBAL || a[0]->u.g->kind != PG_ORDERED_DICT || a[1]->kind != PV_TUPLE ||
        a[1]->u.seq.n != 0) {
        if (a[0]->kind == PV_GLOBAL)
            return FAIL(u, "NEWOBJ of %s.%s is not allowed (only collections.OrderedDict with no arguments)",
                        a[0]->u.g->module, a[0]->u.g->name);
        return FAIL(u, "NEWOBJ on a %s is not allowed (only collections.OrderedDict with no arguments)",
                    pv_kind_name(a[0]->kind));
    }
    u->depth -= 2;
    return push(u, pv_new(u, PV_ODICT));
}

/* BUILD: only on an OrderedDict, whose state (the attributes, such as the
 * state_dict's _metadata) must be a dict of plain data; it is not kept. */
static ims_status op_build(unpickler *u)
{
    pv **a = NULL;
    ims_status st = top_n(u, 2, &a);
    if (st)
        return st;
    if (a[0]->kind != PV_ODICT)
        return FAIL(u, "BUILD on a %s (only an OrderedDict's attributes may be set)", pv_kind_name(a[0]->kind));
    if (!pv_is_dict(a[1]))
        return FAIL(u, "BUILD state is a %s, not a dict", pv_kind_name(a[1]->kind));
    for (size_t i = 0; i < a[1]->u.seq.n; i += 2)
        if (a[1]->u.seq.v[i]->kind != PV_STR)
            return FAIL(u, "BUILD state has a %s attribute name", pv_kind_name(a[1]->u.seq.v[i]->kind));
    if ((st = check_plain(u, a[1], "BUILD state (OrderedDict attributes)")))
        return st;
    u->depth--;
    return IMS_OK;
}

/* BINPERSID: ('storage', StorageType, key, location, numel) as the zip format
 * writes it, or the legacy format's 6-tuple whose view_metadata must be None. */
static ims_status op_binpersid(unpickler *u)
{
    pv *pid = NULL;
    ims_status st = pop(u, &pid);
    if (st)
        return st;
    if (!u->allow_persid)
        return FAIL(u, "a persistent id (BINPERSID) outside the state_dict pickle");
    if (pid->kind != PV_TUPLE || (pid->u.seq.n != 5 && pid->u.seq.n != 6))
        return FAIL(u, "persistent id is a %s of %zu values, not ('storage', type, key, location, numel[, view])",
                    pv_kind_name(pid->kind), pid->kind == PV_TUPLE ? pid->u.seq.n : (size_t)0);
    pv *const *a = pid->u.seq.v;
    char s[72];
    if (!str_eq(a[0], "storage") && !(a[0]->kind == PV_BYTES && a[0]->u.s.len == 7 &&
                                       memcmp(a[0]->u.s.p, "storage", 7) == 0))
        return FAIL(u, "persistent id of kind '%s' (only 'storage' is supported)",
                    a[0]->kind == PV_STR || a[0]->kind == PV_BYTES ? printable(a[0]->u.s.p, a[0]->u.s.len, s)
                                                                  : pv_kind_name(a[0]->kind));
    if (a[1]->kind == PV_GLOBAL && a[1]->u.g->kind != PG_STORAGE)
        return FAIL(u, "persistent id: the storage type is %s.%s, not a torch.<X>Storage", a[1]->u.g->module,
                    a[1]->u.g->name);
    if (a[1]->kind != PV_GLOBAL)
        return FAIL(u, "persistent id: the storage type is a %s, not a torch.<X>Storage", pv_kind_name(a[1]->kind));
    if ((st = check_name(u, a[2], "persistent id: the storage key")))
        return st;
    if (a[3]->kind != PV_STR && a[3]->kind != PV_BYTES)
        return FAIL(u, "persistent id: the location is a %s, not a str", pv_kind_name(a[3]->kind));
    int64_t numel = 0;
    if ((st = want_int(u, a[4], 0, "persistent id: the storage numel", &numel)))
        return st;
    if (pid->u.seq.n == 6 && a[5]->kind != PV_NONE)
        return FAIL(u, "storage '%s' is a view of another storage (view_metadata is a %s, not None): "
                       "storage views are not supported",
                    printable(a[2]->u.s.p, a[2]->u.s.len, s), pv_kind_name(a[5]->kind));
    pv *v = pv_new(u, PV_STORAGE);
    if (v) {
        v->u.st.key = a[2]->u.s.p;
        v->u.st.key_len = a[2]->u.s.len;
        v->u.st.dtype = a[1]->u.g->dtype;
        v->u.st.numel = (uint64_t)numel;
    }
    return push(u, v);
}

/* BINPUT, LONG_BINPUT, MEMOIZE: memo[index] = top of stack. */
static ims_status memo_put(unpickler *u, uint64_t index)
{
    pv **top = NULL;
    ims_status st = top_n(u, 1, &top);
    if (st)
        return st;
    if (index >= PICKLE_MAX_MEMO || index >= u->op_pos + 1)
        return FAIL(u, "memo index %llu is out of range (at most %u, and below the opcode's offset)", (ull)index,
                    PICKLE_MAX_MEMO);
    if (index >= u->memo_cap) {
        size_t cap = u->memo_cap ? u->memo_cap : 64;
        while (cap <= index)
            cap *= 2;
        pv **p = realloc(u->memo, cap * sizeof *p);
        if (!p)
            return fail_nomem(u);
        memset(p + u->memo_cap, 0, (cap - u->memo_cap) * sizeof *p);
        u->memo = p;
        u->memo_cap = cap;
    }
    if (!u->memo[index])
        u->memo_count++;
    u->memo[index] = *top;
    return IMS_OK;
}

static ims_status memo_get(unpickler *u, uint64_t index)
{
    if (index >= u->memo_cap || !u->memo[index])
        return FAIL(u, "memo index %llu was never set", (ull)index);
    return push(u, u->memo[index]);
}

static ims_status push_int(unpickler *u, int64_t i)
{
    pv *v = pv_new(u, PV_INT);
    if (v)
        v->u.i = i;
    return push(u, v);
}

/* LONG1: n bytes of little-endian two's complement. Values that do not fit
 * in 64 bits stay raw bytes (plain data, but never a size or an offset). */
static ims_status op_long1(unpickler *u)
{
    uint64_t n = 0;
    ims_status st = read_arg(u, 1, &n);
    if (!st)
        st = need(u, n, "LONG1");
    if (st)
        return st;
    const unsigned char *p = u->data + u->pos;
    u->pos += n;
    if (n == 0)
        return push_int(u, 0);
    /* fits if every byte past the 8th repeats the sign of byte 7 */
    size_t low = n < 8 ? n : 8;
    unsigned sign = (p[low - 1] & 0x80) ? 0xff : 0x00;
    int fits = 1;
    for (size_t i = 8; i < n; i++)
        fits &= p[i] == sign;
    if (!fits) {
        pv *v = pv_new(u, PV_BIGINT);
        if (v)
            v->u.s.p = p, v->u.s.len = n;
        return push(u, v);
    }
    uint64_t x = 0;
    for (size_t i = 0; i < 8; i++)
        x |= (uint64_t)(i < low ? p[i] : sign) << (8 * i);
    return push_int(u, (int64_t)x);
}

/* A string or bytes value with a length prefix of len_size bytes. */
static ims_status op_string(unpickler *u, size_t len_size, pv_kind kind)
{
    uint64_t len = 0;
    char label[48];
    ims_status st = read_arg(u, len_size, &len);
    if (st)
        return st;
    if (u->op == OP_BINSTRING && len >= 0x80000000u)
        return FAIL(u, "BINSTRING length is negative");
    if ((st = need(u, len, op_label(u->op, label))))
        return st;
    pv *v = pv_new(u, kind);
    if (v) {
        v->u.s.p = u->data + u->pos;
        v->u.s.len = (size_t)len;
    }
    u->pos += (size_t)len;
    return push(u, v);
}

static ims_status op_binfloat(unpickler *u)
{
    ims_status st = need(u, 8, "BINFLOAT");
    if (st)
        return st;
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++) /* big-endian */
        bits = bits << 8 | u->data[u->pos + (size_t)i];
    u->pos += 8;
    pv *v = pv_new(u, PV_FLOAT);
    if (v)
        memcpy(&v->u.f, &bits, 8);
    return push(u, v);
}

/* TUPLE1..3 (n values) and TUPLE / FROZENSET (to the MARK). */
static ims_status op_tuple_n(unpickler *u, size_t n)
{
    pv **a = NULL;
    ims_status st = top_n(u, n, &a);
    if (st)
        return st;
    pv *t = seq_new(u, PV_TUPLE, a, n);
    if (!t)
        return u->status;
    u->depth -= n;
    return push(u, t);
}

static ims_status op_tuple_mark(unpickler *u, pv_kind kind)
{
    pv **items = NULL;
    size_t n = 0;
    ims_status st = pop_mark(u, &items, &n);
    if (st)
        return st;
    pv *t = seq_new(u, kind, items, n);
    return t ? push(u, t) : u->status;
}

/* APPEND, APPENDS, ADDITEMS, SETITEM, SETITEMS: items join the container below
 * them, which must be of the opcode's kind. */
static ims_status op_add(unpickler *u, int to_mark, size_t n_fixed)
{
    pv **items = NULL;
    size_t n = n_fixed;
    ims_status st = to_mark ? pop_mark(u, &items, &n) : top_n(u, n_fixed + 1, &items);
    if (st)
        return st;
    if (!to_mark)
        items++; /* items[-1] is the container */
    pv **target = NULL;
    if ((st = top_n(u, (to_mark ? 1 : n_fixed + 1), &target)))
        return st;
    pv *c = *target;
    char label[48];
    int is_dict_op = u->op == OP_SETITEM || u->op == OP_SETITEMS;
    int ok = is_dict_op ? pv_is_dict(c) : u->op == OP_ADDITEMS ? c->kind == PV_SET : c->kind == PV_LIST;
    if (!ok)
        return FAIL(u, "%s on a %s", op_label(u->op, label), pv_kind_name(c->kind));
    if (is_dict_op && n % 2)
        return FAIL(u, "SETITEMS with an odd number (%zu) of keys and values", n);
    if ((st = seq_extend(u, c, items, n)))
        return st;
    if (!to_mark)
        u->depth -= n_fixed;
    return IMS_OK;
}

static ims_status op_mark(unpickler *u)
{
    if (u->nmarks == u->marks_cap) {
        if (u->nmarks >= PICKLE_MAX_MARKS)
            return FAIL(u, "MARKs nested deeper than %d", PICKLE_MAX_MARKS);
        size_t cap = u->marks_cap ? 2 * u->marks_cap : 8;
        size_t *p = realloc(u->marks, cap * sizeof *p);
        if (!p)
            return fail_nomem(u);
        u->marks = p;
        u->marks_cap = cap;
    }
    u->marks[u->nmarks++] = u->depth;
    return IMS_OK;
}

static ims_status op_proto(unpickler *u)
{
    uint64_t version = 0;
    ims_status st = read_arg(u, 1, &version);
    if (st)
        return st;
    if (version < 2 || version > 5)
        return FAIL(u, "pickle protocol %llu is not supported (2..5)", (ull)version);
    return IMS_OK;
}

/* FRAME: a length hint for buffered readers; the frame must lie inside the data. */
static ims_status op_frame(unpickler *u)
{
    uint64_t len = 0;
    ims_status st = read_arg(u, 8, &len);
    if (!st)
        st = need(u, len, "FRAME");
    return st;
}

/* Runs one opcode. *stop = 1 after STOP. */
static ims_status step(unpickler *u, int *stop)
{
    uint64_t arg = 0;
    ims_status st;
    u->op_pos = u->pos;
    u->op = u->data[u->pos++];
    switch (u->op) {
    case OP_PROTO: return op_proto(u);
    case OP_FRAME: return op_frame(u);
    case OP_STOP:
        if (u->nmarks || u->depth != 1)
            return FAIL(u, "STOP with %zu values on the stack and %zu open MARKs (expected 1 value, no MARK)",
                        u->depth, u->nmarks);
        *stop = 1;
        return IMS_OK;
    case OP_MARK: return op_mark(u);
    case OP_GLOBAL: return op_global(u);
    case OP_STACK_GLOBAL: return op_stack_global(u);
    case OP_REDUCE: return op_reduce(u);
    case OP_NEWOBJ: return op_newobj(u);
    case OP_BUILD: return op_build(u);
    case OP_BINPERSID: return op_binpersid(u);
    case OP_NONE: return push(u, &pv_none);
    case OP_NEWTRUE: return push(u, &pv_true);
    case OP_NEWFALSE: return push(u, &pv_false);
    case OP_BININT:
        if ((st = read_arg(u, 4, &arg)))
            return st;
        return push_int(u, (int32_t)(uint32_t)arg);
    case OP_BININT1:
    case OP_BININT2:
        if ((st = read_arg(u, u->op == OP_BININT1 ? 1 : 2, &arg)))
            return st;
        return push_int(u, (int64_t)arg);
    case OP_LONG1: return op_long1(u);
    case OP_BINFLOAT: return op_binfloat(u);
    case OP_SHORT_BINSTRING: return op_string(u, 1, PV_STR); /* Python 2 str */
    case OP_BINSTRING: return op_string(u, 4, PV_STR);
    case OP_SHORT_BINUNICODE: return op_string(u, 1, PV_STR);
    case OP_BINUNICODE: return op_string(u, 4, PV_STR);
    case OP_BINUNICODE8: return op_string(u, 8, PV_STR);
    case OP_SHORT_BINBYTES: return op_string(u, 1, PV_BYTES);
    case OP_BINBYTES: return op_string(u, 4, PV_BYTES);
    case OP_BINBYTES8: return op_string(u, 8, PV_BYTES);
    case OP_EMPTY_TUPLE: return op_tuple_n(u, 0);
    case OP_TUPLE1: return op_tuple_n(u, 1);
    case OP_TUPLE2: return op_tuple_n(u, 2);
    case OP_TUPLE3: return op_tuple_n(u, 3);
    case OP_TUPLE: return op_tuple_mark(u, PV_TUPLE);
    case OP_FROZENSET: return op_tuple_mark(u, PV_FROZENSET);
    case OP_EMPTY_LIST: return push(u, pv_new(u, PV_LIST));
    case OP_EMPTY_DICT: return push(u, pv_new(u, PV_DICT));
    case OP_EMPTY_SET: return push(u, pv_new(u, PV_SET));
    case OP_APPEND: return op_add(u, 0, 1);
    case OP_SETITEM: return op_add(u, 0, 2);
    case OP_APPENDS:
    case OP_SETITEMS:
    case OP_ADDITEMS: return op_add(u, 1, 0);
    case OP_BINPUT:
    case OP_LONG_BINPUT:
        if ((st = read_arg(u, u->op == OP_BINPUT ? 1 : 4, &arg)))
            return st;
        return memo_put(u, arg);
    case OP_MEMOIZE: return memo_put(u, u->memo_count);
    case OP_BINGET:
    case OP_LONG_BINGET:
        if ((st = read_arg(u, u->op == OP_BINGET ? 1 : 4, &arg)))
            return st;
        return memo_get(u, arg);
    }
    char label[48];
    if (opcode_name(u->op))
        return FAIL(u, "opcode %s is not allowed in a state_dict pickle", op_label(u->op, label));
    return FAIL(u, "unknown opcode 0x%02x", u->op);
}

/* Runs the pickle in data[0..size) to its STOP. On success *result is the
 * value it built (owned by u: call unpickler_free after use). */
static ims_status unpickle(unpickler *u, const unsigned char *data, size_t size, int allow_persid, pv **result,
                           size_t *consumed, ims_error *err)
{
    memset(u, 0, sizeof *u);
    u->data = data;
    u->size = size;
    u->err = err;
    u->allow_persid = allow_persid;
    u->max_values = size < PICKLE_MAX_VALUES ? size : PICKLE_MAX_VALUES;
    u->max_slots = size < SIZE_MAX / 2 ? 2 * size : SIZE_MAX;
    u->max_walked = size < SIZE_MAX / 4 - 64 ? 4 * size + 64 : SIZE_MAX;
    if (size == 0)
        return ims_error_set(err, IMS_ERR_FORMAT, "pickle offset 0: the pickle is empty");
    /* never NULL, so that stack + depth is always defined */
    if (!(u->stack = malloc(64 * sizeof *u->stack)))
        return fail_nomem(u);
    u->stack_cap = 64;
    int stop = 0;
    while (!stop) {
        if (u->pos == size)
            return ims_error_set(err, IMS_ERR_FORMAT, "pickle offset %zu: the pickle ends without STOP", size);
        ims_status st = step(u, &stop);
        if (st)
            return st;
    }
    *result = u->stack[0];
    if (consumed)
        *consumed = u->pos;
    return IMS_OK;
}

/* ---- The state_dict -------------------------------------------------------------------- */

/* The value of str key `key` in a dict, or NULL. */
static pv *dict_get(const pv *d, const char *key)
{
    for (size_t i = 0; i + 1 < d->u.seq.n; i += 2)
        if (str_eq(d->u.seq.v[i], key))
            return d->u.seq.v[i + 1];
    return NULL;
}

/* The root itself, or a dict it wraps under "state_dict" or "model"; the
 * wrapper's other entries must be plain data (no tensors: a legacy file's
 * storage records can only be sized through the state_dict's tensors). */
static ims_status find_state_dict(unpickler *u, pv *root, pv **out)
{
    if (!pv_is_dict(root))
        return fail_at(u, root->offset, "the pickle holds a %s, not a state_dict (a dict of tensors)",
                       pv_kind_name(root->kind));
    static const char *const wrappers[] = {"state_dict", "model"};
    for (size_t w = 0; w < 2; w++) {
        pv *sd = dict_get(root, wrappers[w]);
        if (!sd || !pv_is_dict(sd))
            continue;
        for (size_t i = 0; i + 1 < root->u.seq.n; i += 2) {
            if (root->u.seq.v[i + 1] == sd)
                continue;
            char what[128], key[72];
            const pv *k = root->u.seq.v[i];
            snprintf(what, sizeof what, "checkpoint entry '%s' (beside '%s')",
                     k->kind == PV_STR ? printable(k->u.s.p, k->u.s.len, key) : pv_kind_name(k->kind), wrappers[w]);
            ims_status st = check_plain(u, root->u.seq.v[i], what);
            if (!st)
                st = check_plain(u, root->u.seq.v[i + 1], what);
            if (st)
                return st;
        }
        *out = sd;
        return IMS_OK;
    }
    *out = root;
    return IMS_OK;
}

static char *copy_str(const unsigned char *p, size_t len)
{
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp((*(const pickle_tensor *const *)a)->name, (*(const pickle_tensor *const *)b)->name);
}

/* By key, then by position, so that a message names the earlier tensor first. */
static int cmp_key(const void *a, const void *b)
{
    const pickle_tensor *x = *(const pickle_tensor *const *)a, *y = *(const pickle_tensor *const *)b;
    int c = strcmp(x->storage_key, y->storage_key);
    return c ? c : (x > y) - (x < y);
}

/* Every name once; every storage key with one dtype and numel (PyTorch never
 * saves one storage as two types). Sorting keeps this O(n log n). */
static ims_status check_unique(pickle_state_dict *sd, ims_error *err)
{
    if (sd->count < 2)
        return IMS_OK;
    const pickle_tensor **p = malloc(sd->count * sizeof *p);
    if (!p)
        return ims_error_set(err, IMS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < sd->count; i++)
        p[i] = &sd->tensors[i];
    ims_status st = IMS_OK;
    qsort(p, sd->count, sizeof *p, cmp_name);
    for (size_t i = 1; i < sd->count && !st; i++)
        if (strcmp(p[i - 1]->name, p[i]->name) == 0)
            st = ims_error_set(err, IMS_ERR_FORMAT, "state_dict key '%s' appears twice", p[i]->name);
    if (!st)
        qsort(p, sd->count, sizeof *p, cmp_key);
    for (size_t i = 1; i < sd->count && !st; i++)
        if (strcmp(p[i - 1]->storage_key, p[i]->storage_key) == 0 &&
            (p[i - 1]->dtype != p[i]->dtype || p[i - 1]->storage_numel != p[i]->storage_numel))
            st = ims_error_set(err, IMS_ERR_FORMAT,
                               "storage '%s' is %llu %s elements for tensor '%s' but %llu %s elements for tensor '%s'",
                               p[i]->storage_key, (ull)p[i - 1]->storage_numel, imsi_ckpt_dtype_name(p[i - 1]->dtype),
                               p[i - 1]->name, (ull)p[i]->storage_numel, imsi_ckpt_dtype_name(p[i]->dtype), p[i]->name);
    free(p);
    return st;
}

static ims_status collect_tensors(unpickler *u, const pv *sd, pickle_state_dict *out)
{
    size_t n = sd->u.seq.n / 2;
    if (n && !(out->tensors = calloc(n, sizeof *out->tensors)))
        return fail_nomem(u);
    /* Entries may share one long name or key through the memo: bound the copies. */
    size_t copied = 0, max_copied = u->size < SIZE_MAX / 8 ? 4 * u->size + 4096 : SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        pv *k = sd->u.seq.v[2 * i];
        const pv *v = sd->u.seq.v[2 * i + 1];
        ims_status st = check_name(u, k, "a state_dict key");
        if (st)
            return st;
        char name[72];
        if (v->kind != PV_TENSOR)
            return fail_at(u, v->offset, "state_dict entry '%s' is a %s, not a tensor",
                           printable(k->u.s.p, k->u.s.len, name), pv_kind_name(v->kind));
        const pv_tensor *t = v->u.t;
        copied += k->u.s.len + t->storage->u.st.key_len; /* each <= PICKLE_MAX_NAME */
        if (copied > max_copied)
            return fail_at(u, k->offset, "tensor names and storage keys add up to more than %zu bytes", max_copied);
        pickle_tensor *pt = &out->tensors[out->count++];
        pt->name = copy_str(k->u.s.p, k->u.s.len);
        pt->storage_key = copy_str(t->storage->u.st.key, t->storage->u.st.key_len);
        if (!pt->name || !pt->storage_key)
            return fail_nomem(u);
        pt->dtype = t->storage->u.st.dtype;
        pt->storage_numel = t->storage->u.st.numel;
        pt->ndim = t->ndim;
        for (int d = 0; d < CKPT_MAX_DIMS; d++) {
            pt->shape[d] = d < t->ndim ? t->shape[d] : 1;
            pt->stride[d] = d < t->ndim ? t->stride[d] : 0;
        }
        pt->storage_offset = t->offset;
    }
    return check_unique(out, u->err);
}

ims_status imsi_pickle_load_state_dict(const unsigned char *data, size_t size, pickle_state_dict *out, size_t *consumed,
                                       ims_error *err)
{
    memset(out, 0, sizeof *out);
    unpickler u;
    pv *root = NULL, *sd = NULL;
    ims_status st = unpickle(&u, data, size, 1, &root, consumed, err);
    if (!st)
        st = find_state_dict(&u, root, &sd);
    if (!st)
        st = collect_tensors(&u, sd, out);
    unpickler_free(&u);
    if (st)
        imsi_pickle_state_dict_free(out);
    return st;
}

ckpt_tensor imsi_pickle_tensor_to_ckpt(const pickle_tensor *pt, const unsigned char *storage, uint64_t nbytes,
                                       int big_endian)
{
    ckpt_tensor t = {0};
    t.name = pt->name;
    t.dtype = pt->dtype;
    t.ndim = pt->ndim;
    memcpy(t.shape, pt->shape, sizeof t.shape);
    memcpy(t.stride, pt->stride, sizeof t.stride);
    t.storage_offset = pt->storage_offset;
    t.storage = storage;
    t.storage_nbytes = nbytes;
    t.big_endian = big_endian;
    return t;
}

void imsi_pickle_state_dict_free(pickle_state_dict *sd)
{
    for (size_t i = 0; i < sd->count; i++) {
        free(sd->tensors[i].name);
        free(sd->tensors[i].storage_key);
    }
    free(sd->tensors);
    sd->tensors = NULL;
    sd->count = 0;
}

/* ---- The legacy format's small pickles --------------------------------------------------- */

ims_status imsi_pickle_load_int(const unsigned char *data, size_t size, int64_t *out, size_t *consumed, ims_error *err)
{
    unpickler u;
    pv *root = NULL;
    ims_status st = unpickle(&u, data, size, 0, &root, consumed, err);
    if (!st && root->kind != PV_INT)
        st = fail_at(&u, root->offset, "the pickle holds a %s, not an int", pv_kind_name(root->kind));
    if (!st)
        *out = root->u.i;
    unpickler_free(&u);
    return st;
}

ims_status imsi_pickle_skip(const unsigned char *data, size_t size, size_t *consumed, ims_error *err)
{
    unpickler u;
    pv *root = NULL;
    ims_status st = unpickle(&u, data, size, 0, &root, consumed, err);
    if (!st)
        st = check_plain(&u, root, "the pickle");
    unpickler_free(&u);
    return st;
}

ims_status imsi_pickle_load_sys_info(const unsigned char *data, size_t size, int *little_endian, size_t *consumed,
                                     ims_error *err)
{
    unpickler u;
    pv *root = NULL;
    ims_status st = unpickle(&u, data, size, 0, &root, consumed, err);
    if (!st && !pv_is_dict(root))
        st = fail_at(&u, root->offset, "sys_info is a %s, not a dict", pv_kind_name(root->kind));
    if (!st)
        st = check_plain(&u, root, "sys_info");
    if (!st) {
        const pv *le = dict_get(root, "little_endian");
        *little_endian = le && le->kind == PV_BOOL ? (int)le->u.i : -1;
    }
    unpickler_free(&u);
    return st;
}

void imsi_pickle_string_list_free(char **list, size_t count)
{
    if (!list)
        return;
    for (size_t i = 0; i < count; i++)
        free(list[i]);
    free(list);
}

ims_status imsi_pickle_load_string_list(const unsigned char *data, size_t size, char ***out, size_t *count,
                                        size_t *consumed, ims_error *err)
{
    *out = NULL;
    *count = 0;
    unpickler u;
    pv *root = NULL;
    ims_status st = unpickle(&u, data, size, 0, &root, consumed, err);
    if (!st && root->kind != PV_LIST)
        st = fail_at(&u, root->offset, "the pickle holds a %s, not a list of str", pv_kind_name(root->kind));
    char **list = NULL;
    size_t n = 0, copied = 0, max_copied = size < SIZE_MAX / 8 ? 4 * size + 4096 : SIZE_MAX;
    if (!st && root->u.seq.n && !(list = calloc(root->u.seq.n, sizeof *list)))
        st = fail_nomem(&u);
    for (; !st && n < root->u.seq.n; n++) {
        pv *s = root->u.seq.v[n];
        char what[48];
        snprintf(what, sizeof what, "list item %zu", n);
        if ((st = check_name(&u, s, what)))
            break;
        if ((copied += s->u.s.len) > max_copied) /* one long str repeated through the memo */
            st = fail_at(&u, s->offset, "the strings add up to more than %zu bytes", max_copied);
        else if (!(list[n] = copy_str(s->u.s.p, s->u.s.len)))
            st = fail_nomem(&u);
    }
    unpickler_free(&u);
    if (st) {
        imsi_pickle_string_list_free(list, n);
        return st;
    }
    *out = list;
    *count = n;
    return IMS_OK;
}
