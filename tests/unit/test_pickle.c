/* test_pickle.c: the restricted unpickler (weights_tools/pickle.c) and the
 * legacy PyTorch checkpoint reader (weights_tools/torch_legacy.c).
 *
 * Part 1 runs the unpickler on pickles written here byte by byte (a small
 * encoder below): every allowed opcode, then one hostile or malformed pickle
 * per rule, each refused with a message checked by substring.
 * Part 2 reads the committed fixtures of tests/fixtures/torch_legacy (made by
 * make_fixtures.py with torch.save; this test never runs Python): positive
 * legacy files compared exactly, element by element, with expected.h; the
 * data.pkl of zip saves at pickle protocols 2, 4 and 5; hostile pickles and
 * legacy files; and every truncation of a legacy file.
 * Usage: test_pickle FIXTURE_DIR (tests/fixtures/torch_legacy).
 */
#include "test.h"

#include "weights_tools/checkpoint.h"
#include "weights_tools/pickle.h"

#include "fixtures/torch_legacy/expected.h"

#include <string.h>

/* ---- A pickle encoder ------------------------------------------------------------------ */

typedef test_buf pk;

static void op(pk *b, unsigned char c) { test_buf_put(b, &c, 1); }

static void put_le(pk *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        op(b, (unsigned char)(v >> (8 * i)));
}

static void op_arg(pk *b, unsigned char c, uint64_t v, int n)
{
    op(b, c);
    put_le(b, v, n);
}

static void proto(pk *b, int v) { op_arg(b, 0x80, (uint64_t)v, 1); }
static void binunicode(pk *b, const char *s) { op_arg(b, 'X', strlen(s), 4), test_buf_put(b, s, strlen(s)); }
static void short_binunicode(pk *b, const char *s) { op_arg(b, 0x8c, strlen(s), 1), test_buf_put(b, s, strlen(s)); }
static void global(pk *b, const char *module, const char *name)
{
    op(b, 'c');
    test_buf_put(b, module, strlen(module));
    op(b, '\n');
    test_buf_put(b, name, strlen(name));
    op(b, '\n');
}
static void binint(pk *b, int64_t v)
{
    if (v >= 0 && v < 256)
        op_arg(b, 'K', (uint64_t)v, 1);
    else if (v >= 0 && v < 65536)
        op_arg(b, 'M', (uint64_t)v, 2);
    else
        op_arg(b, 'J', (uint64_t)v, 4);
}
static void ints_tuple(pk *b, int n, const int64_t *v)
{
    op(b, '(');
    for (int i = 0; i < n; i++)
        binint(b, v[i]);
    op(b, 't');
}
static void ordered_dict(pk *b)
{
    global(b, "collections", "OrderedDict");
    op(b, ')');
    op(b, 'R');
}

typedef struct tspec {
    const char *storage_type; /* "FloatStorage" */
    const char *key;
    int64_t numel;
    int64_t offset;
    int ndim;
    int64_t shape[8], stride[8];
} tspec;

/* The persistent id: 5 fields (zip) or 6 with view_metadata None (legacy). */
static void persid(pk *b, const tspec *t, int legacy)
{
    op(b, '(');
    binunicode(b, "storage");
    global(b, "torch", t->storage_type);
    binunicode(b, t->key);
    binunicode(b, "cpu");
    binint(b, t->numel);
    if (legacy)
        op(b, 'N');
    op(b, 't');
    op(b, 'Q');
}

/* _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()) */
static void tensor_v2(pk *b, const tspec *t, int legacy)
{
    global(b, "torch._utils", "_rebuild_tensor_v2");
    op(b, '(');
    persid(b, t, legacy);
    binint(b, t->offset);
    ints_tuple(b, t->ndim, t->shape);
    ints_tuple(b, t->ndim, t->stride);
    op(b, 0x89);
    ordered_dict(b);
    op(b, 't');
    op(b, 'R');
}

static const tspec spec_w = {"FloatStorage", "0", 6, 0, 2, {2, 3}, {3, 1}};
static const tspec spec_b = {"LongStorage", "1", 3, 1, 1, {2}, {1}};

/* {"w": tensor, "b": tensor} as an OrderedDict with SETITEMS. */
static pk two_tensor_pickle(void)
{
    pk b = {0};
    proto(&b, 2);
    ordered_dict(&b);
    op(&b, '(');
    binunicode(&b, "w");
    tensor_v2(&b, &spec_w, 0);
    binunicode(&b, "b");
    tensor_v2(&b, &spec_b, 1);
    op(&b, 'u');
    op(&b, '.');
    return b;
}

/* ---- Checks -------------------------------------------------------------------------------- */

static void check_spec(const pickle_tensor *t, const char *name, const tspec *s, ckpt_dtype dtype)
{
    TEST_CHECK(strcmp(t->name, name) == 0, "name '%s', expected '%s'", t->name, name);
    TEST_CHECK(strcmp(t->storage_key, s->key) == 0, "'%s': key '%s', expected '%s'", name, t->storage_key, s->key);
    TEST_CHECK(t->dtype == dtype, "'%s': dtype %s", name, imsi_ckpt_dtype_name(t->dtype));
    TEST_CHECK(t->storage_numel == (uint64_t)s->numel, "'%s': numel %llu", name, (unsigned long long)t->storage_numel);
    TEST_CHECK(t->storage_offset == s->offset, "'%s': offset %lld", name, (long long)t->storage_offset);
    TEST_CHECK(t->ndim == s->ndim, "'%s': ndim %d", name, t->ndim);
    for (int d = 0; d < s->ndim && d < t->ndim; d++)
        TEST_CHECK(t->shape[d] == s->shape[d] && t->stride[d] == s->stride[d], "'%s' dim %d: %lld/%lld", name, d,
                   (long long)t->shape[d], (long long)t->stride[d]);
}

/* Loads b as a state_dict and expects a refusal naming `needle`. */
static void expect_refused(const char *rule, const pk *b, const char *needle)
{
    pickle_state_dict sd = {0};
    ims_error err = {0};
    size_t used = 0;
    ims_status st = imsi_pickle_load_state_dict(b->p, b->len, &sd, &used, &err);
    TEST_CHECK(st != IMS_OK, "rule '%s': accepted", rule);
    TEST_CHECK(sd.count == 0 && sd.tensors == NULL, "rule '%s': output left behind", rule);
    TEST_CHECK(strstr(err.msg, needle) != NULL, "rule '%s': message '%s' does not name '%s'", rule, err.msg, needle);
    TEST_CHECK(strchr(err.msg, '\n') == NULL, "rule '%s': message has a newline", rule);
}

static void expect_skip_refused(const char *rule, const pk *b, const char *needle)
{
    ims_error err = {0};
    size_t used = 0;
    ims_status st = imsi_pickle_skip(b->p, b->len, &used, &err);
    TEST_CHECK(st != IMS_OK, "rule '%s': accepted", rule);
    TEST_CHECK(strstr(err.msg, needle) != NULL, "rule '%s': message '%s' does not name '%s'", rule, err.msg, needle);
}

/* ---- Part 1: opcodes --------------------------------------------------------------------- */

static void test_basic_state_dict(void)
{
    pk b = two_tensor_pickle();
    pickle_state_dict sd = {0};
    ims_error err = {0};
    size_t used = 0;
    TEST_OK(imsi_pickle_load_state_dict(b.p, b.len, &sd, &used, &err), err);
    TEST_CHECK(used == b.len, "consumed %zu of %zu", used, b.len);
    TEST_CHECK(sd.count == 2, "count %zu", sd.count);
    if (sd.count == 2) {
        check_spec(&sd.tensors[0], "w", &spec_w, CKPT_F32);
        check_spec(&sd.tensors[1], "b", &spec_b, CKPT_I64);
        TEST_CHECK(sd.tensors[0].shape[2] == 1 && sd.tensors[0].stride[2] == 0, "unused dims are 1/0");
    }
    imsi_pickle_state_dict_free(&sd);
    imsi_pickle_state_dict_free(&sd); /* safe twice */

    /* consumed stops at STOP: bytes after it are the caller's */
    op(&b, 'N');
    TEST_OK(imsi_pickle_load_state_dict(b.p, b.len, &sd, &used, &err), err);
    TEST_CHECK(used == b.len - 1, "consumed %zu of %zu", used, b.len);
    imsi_pickle_state_dict_free(&sd);
    free(b.p);

    /* a plain dict with SETITEM, no PROTO, and an empty dict */
    pk c = {0};
    op(&c, '}');
    binunicode(&c, "x");
    tensor_v2(&c, &spec_w, 0);
    op(&c, 's');
    op(&c, '.');
    TEST_OK(imsi_pickle_load_state_dict(c.p, c.len, &sd, &used, &err), err);
    TEST_CHECK(sd.count == 1 && strcmp(sd.tensors[0].name, "x") == 0, "plain dict");
    imsi_pickle_state_dict_free(&sd);
    c.len = 0;
    proto(&c, 2);
    op(&c, '}');
    op(&c, '.');
    TEST_OK(imsi_pickle_load_state_dict(c.p, c.len, &sd, &used, &err), err);
    TEST_CHECK(sd.count == 0 && sd.tensors == NULL, "empty dict");
    free(c.p);
}

/* Every storage type maps to its dtype. */
static void test_storage_types(void)
{
    static const struct {
        const char *type;
        ckpt_dtype dtype;
    } types[] = {{"FloatStorage", CKPT_F32}, {"DoubleStorage", CKPT_F64}, {"HalfStorage", CKPT_F16},
                 {"BFloat16Storage", CKPT_BF16}, {"LongStorage", CKPT_I64}, {"IntStorage", CKPT_I32},
                 {"ShortStorage", CKPT_I16}, {"CharStorage", CKPT_I8}, {"ByteStorage", CKPT_U8},
                 {"BoolStorage", CKPT_BOOL}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        tspec s = {types[i].type, "7", 4, 0, 1, {4}, {1}};
        pk b = {0};
        proto(&b, 2);
        op(&b, '}');
        binunicode(&b, "t");
        tensor_v2(&b, &s, 0);
        op(&b, 's');
        op(&b, '.');
        pickle_state_dict sd = {0};
        ims_error err = {0};
        TEST_OK(imsi_pickle_load_state_dict(b.p, b.len, &sd, NULL, &err), err);
        TEST_CHECK(sd.count == 1 && sd.tensors[0].dtype == types[i].dtype, "%s", types[i].type);
        imsi_pickle_state_dict_free(&sd);
        free(b.p);
    }
}

/* Protocol 4 forms: FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL, BINGET of a
 * memoized global, LONG_BINPUT/LONG_BINGET, TUPLE3, NEWOBJ of OrderedDict,
 * BUILD with _metadata, _rebuild_parameter, torch.Size, _rebuild_tensor (v1),
 * v2 with 7 arguments, LONG1 numbers. */
static void test_protocol4_paths(void)
{
    pk b = {0};
    proto(&b, 4);
    size_t frame_at = b.len;
    op_arg(&b, 0x95, 0, 8); /* FRAME, length patched below */
    short_binunicode(&b, "collections");
    op(&b, 0x94); /* memo 0 */
    short_binunicode(&b, "OrderedDict");
    op(&b, 0x94); /* memo 1 */
    op(&b, 0x93); /* STACK_GLOBAL */
    op(&b, 0x94); /* memo 2: the OrderedDict class */
    op(&b, ')');
    op(&b, 0x81); /* NEWOBJ: OrderedDict() */
    op_arg(&b, 'r', 40, 4); /* LONG_BINPUT 40 (below the offset) */
    op(&b, '(');
    /* "a": _rebuild_parameter(_rebuild_tensor_v2(..., metadata {"neg": False}), True, OrderedDict()) */
    short_binunicode(&b, "a");
    global(&b, "torch._utils", "_rebuild_parameter");
    global(&b, "torch._utils", "_rebuild_tensor_v2");
    op(&b, '(');
    persid(&b, &spec_w, 0);
    op_arg(&b, 0x8a, 0, 1); /* LONG1 of 0 bytes = 0 */
    global(&b, "torch", "Size");
    ints_tuple(&b, 2, spec_w.shape);
    op(&b, 0x85);
    op(&b, 'R'); /* torch.Size((2, 3)) */
    ints_tuple(&b, 2, spec_w.stride);
    op(&b, 0x89);
    op_arg(&b, 'h', 2, 1); /* BINGET the class */
    op(&b, ')');
    op(&b, 'R');
    op(&b, '}');
    short_binunicode(&b, "neg");
    op(&b, 0x89);
    op(&b, 's');
    op(&b, 't');
    op(&b, 'R');
    op(&b, 0x88);
    op_arg(&b, 'j', 2, 4); /* LONG_BINGET the class */
    op(&b, ')');
    op(&b, 'R');
    op(&b, 0x87); /* TUPLE3 */
    op(&b, 'R');
    /* "b": _rebuild_tensor(storage, offset, size, stride), offset as LONG1 */
    short_binunicode(&b, "b");
    global(&b, "torch._utils", "_rebuild_tensor");
    op(&b, '(');
    persid(&b, &spec_b, 1);
    op_arg(&b, 0x8a, 1, 1), op(&b, 1); /* LONG1 1 */
    ints_tuple(&b, 1, spec_b.shape);
    ints_tuple(&b, 1, spec_b.stride);
    op(&b, 't');
    op(&b, 'R');
    op(&b, 'u');
    /* BUILD {"_metadata": OrderedDict((("", {"version": 1}),))} via the py2 list form */
    op(&b, '}');
    short_binunicode(&b, "_metadata");
    op_arg(&b, 'h', 2, 1);
    op(&b, ']');
    op(&b, ']');
    short_binunicode(&b, "");
    op(&b, 'a'); /* [""] */
    op(&b, '}');
    short_binunicode(&b, "version");
    binint(&b, 1);
    op(&b, 's');
    op(&b, 'a'); /* ["", {"version": 1}] */
    op(&b, 'a'); /* [["", {...}]] */
    op(&b, 0x85);
    op(&b, 'R');
    op(&b, 's');
    op(&b, 'b');
    op(&b, '.');
    uint64_t frame = b.len - frame_at - 9;
    for (int i = 0; i < 8; i++)
        b.p[frame_at + 1 + (size_t)i] = (unsigned char)(frame >> (8 * i));

    pickle_state_dict sd = {0};
    ims_error err = {0};
    size_t used = 0;
    TEST_OK(imsi_pickle_load_state_dict(b.p, b.len, &sd, &used, &err), err);
    TEST_CHECK(sd.count == 2 && used == b.len, "count %zu, used %zu of %zu", sd.count, used, b.len);
    if (sd.count == 2) {
        check_spec(&sd.tensors[0], "a", &spec_w, CKPT_F32);
        check_spec(&sd.tensors[1], "b", &spec_b, CKPT_I64);
    }
    imsi_pickle_state_dict_free(&sd);
    free(b.p);
}

/* Plain-data opcodes through imsi_pickle_skip, and the integer encodings through
 * imsi_pickle_load_int. */
static void test_plain_values(void)
{
    pk b = {0};
    proto(&b, 4);
    op(&b, ']');
    op(&b, 'q'), op(&b, 0); /* BINPUT 0 */
    op(&b, '(');
    op(&b, 'N');
    op(&b, 0x88);
    op(&b, 0x89);
    binint(&b, 7);
    binint(&b, 300);
    binint(&b, -5);
    op_arg(&b, 0x8a, 9, 1), put_le(&b, UINT64_MAX, 8), op(&b, 0xff); /* LONG1 -1 in 9 bytes */
    op_arg(&b, 0x8a, 10, 1), put_le(&b, 0, 8), put_le(&b, 1, 2);    /* LONG1 2^64: beyond 64 bits */
    op(&b, 'G'), test_buf_put(&b, "\x3f\xf8\0\0\0\0\0\0", 8);                  /* BINFLOAT 1.5 */
    binunicode(&b, "str");
    short_binunicode(&b, "s");
    op_arg(&b, 0x8d, 2, 8), test_buf_put(&b, "u8", 2);     /* BINUNICODE8 */
    op_arg(&b, 'U', 2, 1), test_buf_put(&b, "py", 2);      /* SHORT_BINSTRING */
    op_arg(&b, 'T', 3, 4), test_buf_put(&b, "py2", 3);     /* BINSTRING */
    op_arg(&b, 'B', 2, 4), test_buf_put(&b, "\0\1", 2);    /* BINBYTES */
    op_arg(&b, 'C', 1, 1), test_buf_put(&b, "\xff", 1);    /* SHORT_BINBYTES */
    op_arg(&b, 0x8e, 0, 8);                       /* BINBYTES8, empty */
    op(&b, ')');
    binint(&b, 1), op(&b, 0x85);
    binint(&b, 1), binint(&b, 2), op(&b, 0x86);
    op(&b, '('), binint(&b, 1), binint(&b, 2), binint(&b, 3), binint(&b, 4), op(&b, 't');
    op(&b, 0x8f), op(&b, '('), binint(&b, 1), op(&b, 0x90); /* EMPTY_SET, ADDITEMS */
    op(&b, '('), binint(&b, 2), op(&b, 0x91);               /* FROZENSET */
    op(&b, '}'), op(&b, '('), binint(&b, 1), binint(&b, 2), op(&b, 'u'); /* {1: 2} */
    op(&b, 'h'), op(&b, 0); /* the list itself: a cycle */
    op(&b, 'e');            /* APPENDS */
    op(&b, ']'), binint(&b, 9), op(&b, 'a');
    op(&b, 'a'); /* APPEND [9] */
    op(&b, '.');
    ims_error err = {0};
    size_t used = 0;
    TEST_OK(imsi_pickle_skip(b.p, b.len, &used, &err), err);
    TEST_CHECK(used == b.len, "used %zu of %zu", used, b.len);
    free(b.p);

    static const struct {
        const char *bytes;
        size_t len;
        int64_t value;
    } ints[] = {
        {"\x80\x02K\xff.", 5, 255},
        {"\x80\x02M\xe9\x03.", 6, 1001},
        {"\x80\x02J\xfb\xff\xff\xff.", 8, -5},
        {"\x80\x02\x8a\x01\xff.", 6, -1},
        {"\x80\x02\x8a\x02\xff\x7f.", 7, 32767},
        {"\x80\x02\x8a\x08\0\0\0\0\0\0\0\x80.", 13, INT64_MIN},
        {"\x80\x02\x8a\x09\xff\xff\xff\xff\xff\xff\xff\x7f\0.", 14, INT64_MAX},
        {"J\x01\0\0\0.", 6, 1},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = 0;
        TEST_OK(imsi_pickle_load_int((const unsigned char *)ints[i].bytes, ints[i].len, &v, &used, &err), err);
        TEST_CHECK(v == ints[i].value && used == ints[i].len, "int %zu: %lld", i, (long long)v);
    }
    /* the legacy magic is 80 bits: not an int64 */
    static const unsigned char magic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                          0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};
    int64_t v = 0;
    TEST_CHECK(imsi_pickle_load_int(magic, sizeof magic, &v, &used, &err) == IMS_ERR_FORMAT &&
                   strstr(err.msg, "int beyond 64 bits"),
               "magic: %s", err.msg);
    TEST_OK(imsi_pickle_skip(magic, sizeof magic, &used, &err), err);
    TEST_CHECK(imsi_pickle_load_int((const unsigned char *)"\x80\x02N.", 4, &v, &used, &err) != IMS_OK &&
                   strstr(err.msg, "not an int"),
               "None as int: %s", err.msg);

    /* the storage key list */
    char **keys = NULL;
    size_t count = 0;
    static const char list[] = "\x80\x02]q\x00(X\x01\x00\x00\x00" "1X\x02\x00\x00\x00" "22e.";
    TEST_OK(imsi_pickle_load_string_list((const unsigned char *)list, sizeof list - 1, &keys, &count, &used, &err), err);
    TEST_CHECK(count == 2 && strcmp(keys[0], "1") == 0 && strcmp(keys[1], "22") == 0, "key list");
    imsi_pickle_string_list_free(keys, count);
    static const char empty_list[] = "\x80\x02].";
    TEST_OK(imsi_pickle_load_string_list((const unsigned char *)empty_list, 4, &keys, &count, &used, &err), err);
    TEST_CHECK(count == 0, "empty key list");
    imsi_pickle_string_list_free(keys, count);
    static const char bad_list[] = "\x80\x02](X\x01\x00\x00\x00" "1K\x05" "e.";
    TEST_CHECK(imsi_pickle_load_string_list((const unsigned char *)bad_list, sizeof bad_list - 1, &keys, &count, &used,
                                            &err) != IMS_OK &&
                   strstr(err.msg, "list item 1 is a int") && keys == NULL && count == 0,
               "bad key list: %s", err.msg);
    TEST_CHECK(imsi_pickle_load_string_list((const unsigned char *)"\x80\x02}.", 4, &keys, &count, &used, &err) != IMS_OK &&
                   strstr(err.msg, "not a list of str"),
               "dict as key list: %s", err.msg);
}

/* ---- Part 1: refusals ------------------------------------------------------------------- */

/* PROTO 2, the given body, STOP. */
static pk wrap(const void *body, size_t len)
{
    pk b = {0};
    proto(&b, 2);
    test_buf_put(&b, body, len);
    op(&b, '.');
    return b;
}

#define REFUSE(rule, body, needle)                                                                                 \
    do {                                                                                                           \
        pk b_ = wrap(body, sizeof body - 1);                                                                       \
        expect_refused(rule, &b_, needle);                                                                         \
        free(b_.p);                                                                                                \
    } while (0)

static void test_hostile_globals(void)
{
    REFUSE("os.system", "cos\nsystem\nX\x02\x00\x00\x00ls\x85R", "GLOBAL (0x63 'c') os.system is not allowed");
    REFUSE("posix.system", "cposix\nsystem\n", "posix.system is not allowed");
    REFUSE("nt.system", "cnt\nsystem\n", "nt.system is not allowed");
    REFUSE("builtins.eval", "cbuiltins\neval\n", "builtins.eval is not allowed");
    REFUSE("__builtin__.eval", "c__builtin__\neval\n", "__builtin__.eval");
    REFUSE("subprocess.Popen", "csubprocess\nPopen\n", "subprocess.Popen is not allowed");
    REFUSE("torch.load", "ctorch\nload\n", "torch.load is not allowed");
    REFUSE("torch.serialization.load", "ctorch.serialization\nload\n", "torch.serialization.load");
    REFUSE("_rebuild_tensor_v3", "ctorch._utils\n_rebuild_tensor_v3\n", "torch._utils._rebuild_tensor_v3 is not");
    REFUSE("parameter_with_state", "ctorch._utils\n_rebuild_parameter_with_state\n", "_rebuild_parameter_with_state");
    REFUSE("UntypedStorage", "ctorch\nUntypedStorage\n", "torch.UntypedStorage is not allowed");
    REFUSE("ComplexFloatStorage", "ctorch\nComplexFloatStorage\n", "torch.ComplexFloatStorage");
    REFUSE("Counter", "ccollections\nCounter\n", "collections.Counter is not allowed");
    REFUSE("copyreg", "ccopyreg\n_reconstructor\n", "copyreg._reconstructor");
    REFUSE("non-printable global", "cos\x01\nsys\xfftem\n", "os?.sys?tem");
    REFUSE("prefix only", "ctorch\nFloatStorageX\n", "torch.FloatStorageX");
    REFUSE("STACK_GLOBAL os.system", "\x8c\x02os\x8c\x06system\x93", "STACK_GLOBAL (0x93) os.system is not allowed");
    REFUSE("STACK_GLOBAL on ints", "K\x01K\x02\x93", "STACK_GLOBAL on a int and a int");
    REFUSE("GLOBAL without newline", "cos system", "no newline");
    REFUSE("GLOBAL name too long",
           "caaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
           "x\n",
           "no newline within 256 bytes");
}

static void test_hostile_opcodes(void)
{
    REFUSE("INST", "(ios\nsystem\n", "opcode INST (0x69 'i') is not allowed");
    REFUSE("OBJ", "(cos\nsystem\no", "os.system");
    REFUSE("OBJ alone", "(o", "opcode OBJ (0x6f 'o') is not allowed");
    REFUSE("EXT1", "\x82\x01", "opcode EXT1 (0x82) is not allowed");
    REFUSE("EXT2", "\x83\x01\x00", "opcode EXT2 (0x83)");
    REFUSE("EXT4", "\x84\x01\x00\x00\x00", "opcode EXT4 (0x84)");
    REFUSE("PERSID", "P0\n", "opcode PERSID (0x50 'P') is not allowed");
    REFUSE("POP", "N0", "opcode POP (0x30 '0')");
    REFUSE("POP_MARK", "(1", "opcode POP_MARK");
    REFUSE("DUP", "N2", "opcode DUP (0x32 '2')");
    REFUSE("INT", "I1\n", "opcode INT (0x49 'I')");
    REFUSE("LONG", "L1\n", "opcode LONG (0x4c 'L')");
    REFUSE("FLOAT", "F1.0\n", "opcode FLOAT");
    REFUSE("STRING", "S'x'\n", "opcode STRING");
    REFUSE("UNICODE", "Vx\n", "opcode UNICODE");
    REFUSE("GET", "g0\n", "opcode GET (0x67 'g')");
    REFUSE("PUT", "Np0\n", "opcode PUT (0x70 'p')");
    REFUSE("LIST", "(l", "opcode LIST");
    REFUSE("DICT", "(d", "opcode DICT");
    REFUSE("LONG4", "\x8b\x01\x00\x00\x00\x01", "opcode LONG4 (0x8b)");
    REFUSE("NEWOBJ_EX", "\x92", "opcode NEWOBJ_EX (0x92)");
    REFUSE("BYTEARRAY8", "\x96\0\0\0\0\0\0\0\0", "opcode BYTEARRAY8");
    REFUSE("NEXT_BUFFER", "\x97", "opcode NEXT_BUFFER (0x97)");
    REFUSE("READONLY_BUFFER", "\x98", "opcode READONLY_BUFFER");
    REFUSE("unknown opcode", "\xff", "pickle offset 2: unknown opcode 0xff");
    REFUSE("unknown opcode 0x00", "\x00", "unknown opcode 0x00");
    REFUSE("protocol 6", "\x80\x06", "pickle protocol 6 is not supported");
    REFUSE("protocol 1", "\x80\x01", "pickle protocol 1");
}

static void test_hostile_calls(void)
{
    /* REDUCE on allowed-but-wrong callables and arguments */
    REFUSE("call a storage type", "ctorch\nFloatStorage\nK\x04\x85R", "a storage type cannot be called");
    REFUSE("REDUCE on a str", "X\x01\x00\x00\x00x)R", "on a str, which is not an allowed callable");
    REFUSE("REDUCE args not a tuple", "ccollections\nOrderedDict\n]R", "the arguments are a list, not a tuple");
    REFUSE("OrderedDict with an int", "ccollections\nOrderedDict\nK\x01\x85R", "OrderedDict takes ()");
    REFUSE("OrderedDict with bad pairs", "ccollections\nOrderedDict\n]K\x01" "a\x85R", "item 0 is not a [key, value]");
    REFUSE("v2 with 3 arguments", "ctorch._utils\n_rebuild_tensor_v2\n(NNNtR", "takes 6 or 7 arguments, got 3");
    REFUSE("v1 with 6 arguments", "ctorch._utils\n_rebuild_tensor\n(NNNNNNtR", "takes 4 arguments, got 6");
    REFUSE("v2 on a str storage",
           "ctorch._utils\n_rebuild_tensor_v2\n(X\x01\x00\x00\x00xK\x00)))\x89}tR",
           "the storage argument is a str, not a persistent storage");
    REFUSE("parameter of an int", "ctorch._utils\n_rebuild_parameter\nK\x01\x88}\x87R", "data is a int, not a tensor");
    REFUSE("parameter with 2 args", "ctorch._utils\n_rebuild_parameter\nK\x01\x88\x86R", "takes 3 arguments, got 2");
    REFUSE("torch.Size of a str", "ctorch\nSize\nX\x01\x00\x00\x00x\x85R", "torch.Size is a str, not a tuple");
    REFUSE("torch.Size negative", "ctorch\nSize\nJ\xff\xff\xff\xff\x85\x85R", "torch.Size[0] = -1 is below 0");
    REFUSE("NEWOBJ of a rebuild function", "ctorch._utils\n_rebuild_tensor_v2\n)\x81",
           "NEWOBJ of torch._utils._rebuild_tensor_v2 is not allowed");
    REFUSE("NEWOBJ of OrderedDict with args", "ccollections\nOrderedDict\nK\x01\x85\x81", "NEWOBJ of collections");
    REFUSE("NEWOBJ on an int", "K\x01)\x81", "NEWOBJ on a int");
    REFUSE("BUILD on a dict", "}}b", "BUILD on a dict");
    REFUSE("BUILD on a list", "]}b", "BUILD on a list");
    REFUSE("BUILD with a list state", "ccollections\nOrderedDict\n)R]b", "BUILD state is a list, not a dict");
    REFUSE("BUILD state holds a global",
           "ccollections\nOrderedDict\n)R}X\x01\x00\x00\x00xcos\nsep\nsb", "os.sep is not allowed");
    REFUSE("BUILD state holds a callable",
           "ccollections\nOrderedDict\n)R}X\x01\x00\x00\x00xccollections\nOrderedDict\nsb",
           "holds the global collections.OrderedDict, not plain data");
    REFUSE("BUILD state int key", "ccollections\nOrderedDict\n)R}K\x01K\x02sb", "BUILD state has a int attribute name");
}

/* A state_dict {"t": _rebuild_tensor_v2(<storage>, <offset>, <size>, <stride>, False, <hooks>[, meta])}
 * with one part replaced by raw bytes. */
typedef struct bytes {
    const char *p; /* NULL: the default */
    size_t n;
} bytes;

#define B(s) ((bytes){s, sizeof s - 1})

typedef struct tparts {
    bytes pid, offset, size, stride, hooks, extra;
} tparts;

static void put_or(pk *b, bytes v, const char *dflt, size_t n)
{
    if (v.p)
        test_buf_put(b, v.p, v.n);
    else
        test_buf_put(b, dflt, n);
}

static pk tensor_with(tparts p)
{
    pk b = {0};
    proto(&b, 2);
    op(&b, '}');
    binunicode(&b, "t");
    global(&b, "torch._utils", "_rebuild_tensor_v2");
    op(&b, '(');
    if (p.pid.p) {
        test_buf_put(&b, p.pid.p, p.pid.n);
    } else {
        tspec s = {"FloatStorage", "0", 6, 0, 0, {0}, {0}};
        persid(&b, &s, 1);
    }
    put_or(&b, p.offset, "K\x00", 2);
    put_or(&b, p.size, "K\x02K\x03\x86", 5);
    put_or(&b, p.stride, "K\x03K\x01\x86", 5);
    op(&b, 0x89);
    if (p.hooks.p)
        test_buf_put(&b, p.hooks.p, p.hooks.n);
    else
        ordered_dict(&b);
    put_or(&b, p.extra, "", 0);
    op(&b, 't');
    op(&b, 'R');
    op(&b, 's');
    op(&b, '.');
    return b;
}

static void refuse_tensor(const char *rule, tparts p, const char *needle)
{
    pk b = tensor_with(p);
    expect_refused(rule, &b, needle);
    free(b.p);
}

static void test_hostile_tensors(void)
{
    pk ok = tensor_with((tparts){0});
    pickle_state_dict sd = {0};
    ims_error err = {0};
    TEST_OK(imsi_pickle_load_state_dict(ok.p, ok.len, &sd, NULL, &err), err);
    imsi_pickle_state_dict_free(&sd);
    free(ok.p);

    refuse_tensor("negative offset", (tparts){.offset = B("J\xff\xff\xff\xff")}, "storage_offset = -1 is below 0");
    refuse_tensor("float offset", (tparts){.offset = B("G\0\0\0\0\0\0\0\0")}, "storage_offset is a float, not an int");
    refuse_tensor("big offset", (tparts){.offset = B("\x8a\x09\0\0\0\0\0\0\0\0\x01")}, "storage_offset is a int beyond");
    refuse_tensor("size not a tuple", (tparts){.size = B("]")}, "size is a list, not a tuple");
    refuse_tensor("size of str", (tparts){.size = B("X\x01\x00\x00\x00x\x85")}, "size[0] is a str, not an int");
    refuse_tensor("negative stride", (tparts){.stride = B("K\x03J\xff\xff\xff\xff\x86")}, "stride[1] = -1 is below 0");
    refuse_tensor("size/stride ndim", (tparts){.stride = B("K\x03\x85")}, "size has 2 dims but stride has 1");
    refuse_tensor("9 dims", (tparts){.size = B("(K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01K\x01t")}, "size has 9 dims");
    refuse_tensor("hooks non-empty", (tparts){.hooks = B("}K\x01K\x02s")}, "backward_hooks is a dict with 1 entries");
    refuse_tensor("hooks a list", (tparts){.hooks = B("]")}, "backward_hooks is a list");
    refuse_tensor("metadata neg", (tparts){.extra = B("}X\x03\x00\x00\x00neg\x88s")}, "tensor metadata 'neg' is True");
    refuse_tensor("metadata a list", (tparts){.extra = B("]")}, "tensor metadata is a list");
    refuse_tensor("metadata int value", (tparts){.extra = B("}X\x03\x00\x00\x00negK\x01s")}, "str: bool");
    refuse_tensor("8 arguments", (tparts){.extra = B("NN")}, "takes 6 or 7 arguments, got 8");
    /* metadata None and all-false metadata are accepted */
    static const bytes fine[] = {B("N"), B("}X\x04\x00\x00\x00" "conj\x89s")};
    for (int i = 0; i < 2; i++) {
        pk b = tensor_with((tparts){.extra = fine[i]});
        TEST_OK(imsi_pickle_load_state_dict(b.p, b.len, &sd, NULL, &err), err);
        imsi_pickle_state_dict_free(&sd);
        free(b.p);
    }

    /* persistent ids */
    refuse_tensor("view_metadata",
                  (tparts){.pid = B("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00"
                                  "cpuK\x06X\x01\x00\x00\x00" "1K\x01K\x02\x87tQ")},
                  "storage '0' is a view of another storage (view_metadata is a tuple, not None)");
    refuse_tensor("module pid",
                  (tparts){.pid = B("(X\x06\x00\x00\x00modulectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00"
                                  "cpuK\x06tQ")},
                  "persistent id of kind 'module'");
    refuse_tensor("pid not a tuple", (tparts){.pid = B("X\x01\x00\x00\x00" "0Q")}, "persistent id is a str");
    refuse_tensor("pid of 4", (tparts){.pid = B("(NNNNtQ")}, "persistent id is a tuple of 4 values");
    refuse_tensor("pid type not storage",
                  (tparts){.pid = B("(X\x07\x00\x00\x00storagectorch\nSize\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00"
                                  "cpuK\x06tQ")},
                  "the storage type is torch.Size, not a torch.<X>Storage");
    refuse_tensor("pid type a str",
                  (tparts){.pid = B("(X\x07\x00\x00\x00storageX\x01\x00\x00\x00xX\x01\x00\x00\x00" "0X\x03\x00\x00\x00"
                                  "cpuK\x06tQ")},
                  "the storage type is a str");
    refuse_tensor("pid key an int",
                  (tparts){.pid = B("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nK\x00X\x03\x00\x00\x00"
                                  "cpuK\x06tQ")},
                  "the storage key is a int, not a str");
    refuse_tensor("pid key empty",
                  (tparts){.pid = B("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x00\x00\x00\x00X\x03\x00\x00\x00"
                                  "cpuK\x06tQ")},
                  "the storage key has 0 bytes");
    refuse_tensor("pid key with a newline", /* found by the fuzzer: the key reached a message */
                  (tparts){.pid = B("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x02\x00\x00\x00" "9\nX\x03\x00\x00\x00"
                                    "cpuK\x06tQ")},
                  "the storage key is not valid UTF-8 without control characters");
    refuse_tensor("pid negative numel",
                  (tparts){.pid = B("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0X\x03\x00\x00\x00"
                                  "cpuJ\xff\xff\xff\xfftQ")},
                  "the storage numel = -1 is below 0");
    refuse_tensor("pid location an int",
                  (tparts){.pid = B("(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0K\x00K\x06tQ")},
                  "the location is a int");

    /* BINPERSID outside the state_dict pickle */
    pk b = {0};
    proto(&b, 2);
    persid(&b, &spec_w, 0);
    op(&b, '.');
    expect_skip_refused("persid in imsi_pickle_skip", &b, "persistent id (BINPERSID) outside the state_dict pickle");
    free(b.p);
}

static void test_hostile_structure(void)
{
    REFUSE("memo get out of range", "h\x05", "memo index 5 was never set");
    REFUSE("long memo get", "j\xff\xff\xff\xff", "memo index 4294967295 was never set");
    REFUSE("memo put out of range", "Nr\xff\xff\xff\xff", "memo index 4294967295 is out of range");
    REFUSE("memo put past offset", "Nr\x00\x01\x00\x00", "memo index 256 is out of range");
    REFUSE("memo put on empty stack", "q\x00", "stack underflow");
    REFUSE("MARK underflow: TUPLE", "Nt", "TUPLE (0x74 't') without a MARK (MARK underflow)");
    REFUSE("MARK underflow: SETITEMS", "}K\x01K\x02u", "SETITEMS (0x75 'u') without a MARK");
    REFUSE("MARK underflow: APPENDS", "]e", "APPENDS (0x65 'e') without a MARK");
    REFUSE("stack underflow: SETITEM", "s", "stack underflow: SETITEM (0x73 's') needs 3 values");
    REFUSE("stack underflow: TUPLE3", "NN\x87", "stack underflow: TUPLE3");
    REFUSE("stack underflow across MARK", "}(K\x01K\x02s", "stack underflow: SETITEM");
    REFUSE("stack underflow: APPENDS target", "(Ne", "stack underflow: APPENDS");
    REFUSE("stack underflow: REDUCE", ")R", "stack underflow: REDUCE");
    REFUSE("stack underflow: STOP", "", "STOP with 0 values");
    REFUSE("two values at STOP", "NN", "STOP with 2 values");
    REFUSE("open MARK at STOP", "N(", "1 open MARKs");
    REFUSE("APPEND on a dict", "}Na", "APPEND (0x61 'a') on a dict");
    REFUSE("SETITEM on a list", "]NNs", "SETITEM (0x73 's') on a list");
    REFUSE("SETITEMS odd", "}(Nu", "odd number (1)");
    REFUSE("ADDITEMS on a list", "](N\x90", "ADDITEMS (0x90) on a list");
    REFUSE("BINUNICODE past the end", "X\xff\xff\xff\xff", "BINUNICODE (0x58 'X') needs 4294967295 bytes");
    REFUSE("BINUNICODE8 past the end", "\x8d\xff\xff\xff\xff\xff\xff\xff\xff",
           "needs 18446744073709551615 bytes");
    REFUSE("SHORT_BINUNICODE past the end", "\x8c\x10xy", "needs 16 bytes, but the pickle has 3 left");
    REFUSE("BINBYTES8 past the end", "\x8e\x00\x00\x00\x00\x00\x00\x00\x80", "BINBYTES8");
    REFUSE("BINSTRING negative", "T\xff\xff\xff\xff", "BINSTRING length is negative");
    REFUSE("LONG1 past the end", "\x8a\x20\x01", "LONG1 needs 32 bytes");
    REFUSE("BININT cut", "J\x01", "BININT (0x4a 'J') needs 4 bytes");
    REFUSE("FRAME past the end", "\x95\x00\x10\x00\x00\x00\x00\x00\x00", "FRAME needs 4096 bytes");
    REFUSE("root a list", "]", "the pickle holds a list, not a state_dict");
    REFUSE("value an int", "}X\x01\x00\x00\x00xK\x01s", "state_dict entry 'x' is a int, not a tensor");
    REFUSE("key an int", "}K\x01K\x01s", "a state_dict key is a int, not a str");
    REFUSE("root OrderedDict value None", "ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00" "aNu", "'a' is a None");

    /* names: UTF-8 without control characters (messages stay one line), not empty */
    static const char *const bad_names[] = {"a\0b", "\xff", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe4\xb8",
                                            "", "a\nb", "\x7f"};
    static const size_t bad_len[] = {3, 1, 2, 3, 4, 2, 0, 3, 1};
    for (size_t i = 0; i < sizeof bad_len / sizeof bad_len[0]; i++) {
        pk b = {0};
        proto(&b, 2);
        op(&b, '}');
        op_arg(&b, 'X', bad_len[i], 4);
        test_buf_put(&b, bad_names[i], bad_len[i]);
        tensor_v2(&b, &spec_w, 0);
        op(&b, 's');
        op(&b, '.');
        expect_refused("bad name", &b, i == 6 ? "has 0 bytes" : "is not valid UTF-8 without control characters");
        free(b.p);
    }

    /* the same name twice; one storage as two types */
    pk b = {0};
    proto(&b, 2);
    op(&b, '}');
    op(&b, '(');
    binunicode(&b, "w");
    tensor_v2(&b, &spec_w, 0);
    binunicode(&b, "w");
    tensor_v2(&b, &spec_w, 0);
    op(&b, 'u');
    op(&b, '.');
    expect_refused("duplicate name", &b, "state_dict key 'w' appears twice");
    free(b.p);
    tspec as_long = spec_w;
    as_long.storage_type = "LongStorage";
    b = (pk){0};
    proto(&b, 2);
    op(&b, '}');
    op(&b, '(');
    binunicode(&b, "w");
    tensor_v2(&b, &spec_w, 0);
    binunicode(&b, "v");
    tensor_v2(&b, &as_long, 0);
    op(&b, 'u');
    op(&b, '.');
    expect_refused("storage as two dtypes", &b, "storage '0' is 6 float32 elements for tensor 'w' but 6 int64");
    free(b.p);

    /* empty input; every truncation of a valid pickle */
    pk whole = two_tensor_pickle();
    for (size_t n = 0; n < whole.len; n++) {
        pk cut = {whole.p, n, n};
        pickle_state_dict sd = {0};
        ims_error err = {0};
        ims_status st = imsi_pickle_load_state_dict(cut.p, cut.len, &sd, NULL, &err);
        TEST_CHECK(st == IMS_ERR_FORMAT && err.msg[0] && sd.count == 0, "truncated at %zu: %s", n, err.msg);
        if (n == 0)
            TEST_CHECK(strstr(err.msg, "the pickle is empty") != NULL, "empty: %s", err.msg);
    }
    free(whole.p);
}

/* Hostile resource use: nesting, stack size, memo and copy amplification. */
static void test_limits(void)
{
    pk b = {0};
    proto(&b, 2);
    for (int i = 0; i < 300; i++)
        op(&b, '(');
    op(&b, '.');
    expect_refused("deep MARK nesting", &b, "MARKs nested deeper than 256");
    free(b.p);

    b = (pk){0};
    proto(&b, 2);
    for (int i = 0; i < 256; i++)
        op(&b, '(');
    for (int i = 0; i < 256; i++)
        op(&b, ')'), op(&b, 't');
    op(&b, '.');
    ims_error err = {0};
    TEST_OK(imsi_pickle_skip(b.p, b.len, NULL, &err), err); /* 256 is allowed */
    free(b.p);

    b = (pk){0};
    proto(&b, 2);
    for (int i = 0; i < (1 << 20) + 1; i++)
        op(&b, 'N');
    op(&b, '.');
    expect_refused("stack exhaustion", &b, "stack deeper than 1048576 values");
    free(b.p);

    /* deep structure without MARKs: 100000 nested 1-tuples; no recursion anywhere */
    b = (pk){0};
    proto(&b, 2);
    op(&b, 'N');
    for (int i = 0; i < 100000; i++)
        op(&b, 0x85);
    op(&b, '.');
    TEST_OK(imsi_pickle_skip(b.p, b.len, NULL, &err), err);
    free(b.p);

    /* one long list fed to OrderedDict again and again through the memo */
    b = (pk){0};
    proto(&b, 2);
    global(&b, "collections", "OrderedDict");
    op_arg(&b, 'q', 0, 1);
    op(&b, ']');
    op(&b, '(');
    for (int i = 0; i < 2000; i++)
        op(&b, 'N'), op(&b, 'N'), op(&b, 0x86); /* (None, None) */
    op(&b, 'e');
    op(&b, 0x85);
    op_arg(&b, 'q', 1, 1);
    op(&b, 'R');
    for (int i = 0; i < 2000; i++)
        op_arg(&b, 'h', 0, 1), op_arg(&b, 'h', 1, 1), op(&b, 'R'), op(&b, 0x85);
    op(&b, '.');
    expect_skip_refused("container amplification", &b, "containers hold more than");
    free(b.p);

    /* one large dict walked by BUILD again and again */
    b = (pk){0};
    proto(&b, 2);
    op(&b, '}');
    op_arg(&b, 'q', 0, 1);
    op(&b, '(');
    for (int i = 0; i < 1000; i++)
        binunicode(&b, "k"), op(&b, 'N');
    op(&b, 'u');
    global(&b, "collections", "OrderedDict");
    op(&b, ')');
    op(&b, 'R');
    for (int i = 0; i < 3000; i++)
        op_arg(&b, 'h', 0, 1), op(&b, 'b');
    op(&b, 0x86);
    op(&b, '.');
    expect_skip_refused("walk amplification", &b, "values visited in all");
    free(b.p);

    /* one long name shared by many entries through the memo */
    b = (pk){0};
    proto(&b, 2);
    op(&b, '}');
    op(&b, '(');
    char name[1001];
    memset(name, 'n', 1000);
    name[1000] = '\0';
    binunicode(&b, name);
    op_arg(&b, 'q', 0, 1);
    tensor_v2(&b, &spec_w, 0);
    op_arg(&b, 'q', 1, 1);
    for (int i = 0; i < 500; i++)
        op_arg(&b, 'h', 0, 1), op_arg(&b, 'h', 1, 1);
    op(&b, 'u');
    op(&b, '.');
    expect_refused("copy amplification", &b, "names and storage keys add up to more than");
    free(b.p);
    name[1000] = 'n';
    b = (pk){0};
    proto(&b, 2);
    op(&b, '}');
    op_arg(&b, 'X', 1025, 4);
    test_buf_put(&b, name, 1001);
    test_buf_put(&b, "nnnnnnnnnnnnnnnnnnnnnnnn", 24);
    tensor_v2(&b, &spec_w, 0);
    op(&b, 's');
    op(&b, '.');
    expect_refused("long name", &b, "has 1025 bytes (1..1024 allowed)");
    free(b.p);
}

/* ---- Part 2: fixtures ------------------------------------------------------------------------ */

static const char *fixture_dir; /* argv[1], or NULL: next to this file */

static char *fixture_path(const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", fixture_dir, name);
    return path;
}

static unsigned char *read_fixture(const char *name, size_t *size)
{
    const char *path = fixture_path(name);
    unsigned char *p = (unsigned char *)test_read_file(path, size);
    TEST_CHECK(p != NULL, "cannot read fixture %s", path);
    return p;
}

/* Reads a legacy file with the legacy reader alone (no sniffing). */
static ims_status legacy_read(const unsigned char *data, size_t size, ckpt **out, ims_error *err)
{
    ckpt *c = calloc(1, sizeof *c);
    c->data = data;
    c->size = size;
    ims_status st = imsi_ckpt_read_torch_legacy(c, err);
    if (st) {
        imsi_ckpt_free(c);
        c = NULL;
    }
    *out = c;
    return st;
}

static uint64_t element_bits(const ckpt_tensor *t, uint64_t index)
{
    size_t es = imsi_ckpt_dtype_size(t->dtype);
    uint64_t v = 0;
    for (size_t i = 0; i < es; i++)
        v |= (uint64_t)t->storage[index * es + i] << (8 * i);
    return v;
}

static void compare_tensor(const char *file, const ckpt_tensor *t, const expected_tensor *e)
{
    TEST_CHECK(strcmp(t->name, e->name) == 0, "%s: name '%s', expected '%s'", file, t->name, e->name);
    TEST_CHECK(t->dtype == e->dtype, "%s '%s': dtype %s", file, e->name, imsi_ckpt_dtype_name(t->dtype));
    TEST_CHECK(t->ndim == e->ndim, "%s '%s': ndim %d", file, e->name, t->ndim);
    TEST_CHECK(t->storage_offset == e->offset, "%s '%s': offset %lld", file, e->name, (long long)t->storage_offset);
    TEST_CHECK(t->storage_nbytes == e->storage_numel * imsi_ckpt_dtype_size(e->dtype), "%s '%s': storage %llu bytes", file,
               e->name, (unsigned long long)t->storage_nbytes);
    TEST_CHECK(!t->big_endian, "%s '%s': big-endian", file, e->name);
    for (int d = 0; d < e->ndim; d++)
        TEST_CHECK(t->shape[d] == e->shape[d] && t->stride[d] == e->stride[d], "%s '%s' dim %d: %lld/%lld", file,
                   e->name, d, (long long)t->shape[d], (long long)t->stride[d]);
    if (t->dtype != e->dtype || t->ndim != e->ndim || imsi_ckpt_tensor_numel(t) != (int64_t)e->count)
        return;
    /* walk the view in row-major order, as the expectation lists it */
    int64_t idx[CKPT_MAX_DIMS] = {0};
    size_t bad = 0;
    for (size_t i = 0; i < e->count; i++) {
        uint64_t pos = (uint64_t)t->storage_offset;
        for (int d = 0; d < t->ndim; d++)
            pos += (uint64_t)(idx[d] * t->stride[d]);
        if (element_bits(t, pos) != e->bits[i] && bad++ < 3)
            TEST_CHECK(0, "%s '%s' element %zu: bits 0x%llx, expected 0x%llx", file, e->name, i,
                       (unsigned long long)element_bits(t, pos), (unsigned long long)e->bits[i]);
        for (int d = t->ndim - 1; d >= 0 && ++idx[d] == t->shape[d]; d--)
            idx[d] = 0;
    }
    TEST_CHECK(bad == 0, "%s '%s': %zu elements differ", file, e->name, bad);
}

static void test_legacy_fixture(const expected_file *e)
{
    size_t size = 0;
    unsigned char *data = read_fixture(e->file, &size);
    if (!data)
        return;
    ckpt *c = NULL;
    ims_error err = {0};
    TEST_OK(imsi_ckpt_open_memory(data, size, &c, &err), err);
    if (c) {
        TEST_CHECK(c->format == CKPT_FORMAT_TORCH_LEGACY, "%s: format %s", e->file, imsi_ckpt_format_name(c->format));
        TEST_CHECK(c->count == e->count, "%s: %zu tensors, expected %zu", e->file, c->count, e->count);
        for (size_t i = 0; i < c->count && i < e->count; i++)
            compare_tensor(e->file, &c->tensors[i], &e->tensors[i]);
        imsi_ckpt_free(c);
    }
    free(data);
    /* through the file path and mmap as well */
    TEST_OK(imsi_ckpt_open(fixture_path(e->file), &c, &err), err);
    TEST_CHECK(c && c->count == e->count, "%s via imsi_ckpt_open", e->file);
    imsi_ckpt_free(c);
}

static void test_legacy_details(void)
{
    size_t size = 0;
    unsigned char *data = read_fixture("views.pt", &size);
    ckpt *c = NULL;
    ims_error err = {0};
    if (!data)
        return;
    TEST_OK(imsi_ckpt_open_memory(data, size, &c, &err), err);
    if (c && c->count == 5) {
        /* base, transposed, rows, every_other_col share one storage record */
        for (int i = 1; i < 4; i++)
            TEST_CHECK(c->tensors[i].storage == c->tensors[0].storage, "views: tensor %d has its own storage", i);
        TEST_CHECK(c->tensors[4].storage != c->tensors[0].storage, "views: 'other' shares a storage");
        float col[12];
        imsi_ckpt_tensor_read_f32(&c->tensors[3], col);
        TEST_CHECK(col[0] == 0 && col[1] == 2 && col[3] == 6 && col[11] == 22, "every_other_col: %g %g %g %g", col[0],
                   col[1], col[3], col[11]);
    }
    imsi_ckpt_free(c);
    free(data);

    data = read_fixture("dtypes.pt", &size);
    if (!data)
        return;
    TEST_OK(imsi_ckpt_open_memory(data, size, &c, &err), err);
    const ckpt_tensor *t = c ? imsi_ckpt_find(c, "i64") : NULL;
    if (t) {
        double v[5];
        imsi_ckpt_tensor_read_f64(t, v);
        TEST_CHECK(v[1] == -9223372036854775808.0 && v[4] == -1, "i64 as f64: %g %g", v[1], v[4]);
    }
    TEST_CHECK(c && imsi_ckpt_find(c, "unicode.\303\251\344\270\255") != NULL, "UTF-8 name");
    imsi_ckpt_free(c);
    free(data);
}

/* The data.pkl of zip saves at protocols 2, 4 and 5 (FRAME, MEMOIZE, STACK_GLOBAL...). */
static void test_zip_pickles(void)
{
    static const char *const files[] = {"zip_proto2.pkl", "zip_proto4.pkl", "zip_proto5.pkl"};
    for (int f = 0; f < 3; f++) {
        size_t size = 0;
        unsigned char *data = read_fixture(files[f], &size);
        if (!data)
            continue;
        pickle_state_dict sd = {0};
        ims_error err = {0};
        size_t used = 0;
        TEST_OK(imsi_pickle_load_state_dict(data, size, &sd, &used, &err), err);
        TEST_CHECK(used == size, "%s: consumed %zu of %zu", files[f], used, size);
        TEST_CHECK(sd.count == expected_zip.count, "%s: %zu tensors", files[f], sd.count);
        for (size_t i = 0; i < sd.count && i < expected_zip.count; i++) {
            const pickle_tensor *t = &sd.tensors[i];
            const expected_tensor *e = &expected_zip.tensors[i];
            TEST_CHECK(strcmp(t->name, e->name) == 0 && t->dtype == e->dtype && t->ndim == e->ndim &&
                           t->storage_offset == e->offset && t->storage_numel == e->storage_numel,
                       "%s: tensor %zu '%s'", files[f], i, t->name);
            for (int d = 0; d < e->ndim && d < t->ndim; d++)
                TEST_CHECK(t->shape[d] == e->shape[d] && t->stride[d] == e->stride[d], "%s '%s' dim %d", files[f],
                           t->name, d);
        }
        if (sd.count == 6) {
            for (int i = 1; i < 4; i++)
                TEST_CHECK(strcmp(sd.tensors[i].storage_key, sd.tensors[0].storage_key) == 0, "%s: shared key",
                           files[f]);
            TEST_CHECK(strcmp(sd.tensors[0].storage_key, "0") == 0 && strcmp(sd.tensors[4].storage_key, "1") == 0 &&
                           strcmp(sd.tensors[5].storage_key, "2") == 0,
                       "%s: keys", files[f]);
        }
        imsi_pickle_state_dict_free(&sd);
        free(data);
    }
}

static void test_hostile_fixtures(void)
{
    static const struct {
        const char *file, *needle;
    } pickles[] = {
        {"hostile_os_system.pkl", "GLOBAL (0x63 'c') posix.system is not allowed"},
        {"hostile_os_system_p4.pkl", "STACK_GLOBAL (0x93) posix.system is not allowed"},
        {"hostile_eval.pkl", "__builtin__.eval is not allowed"},
        {"hostile_builtins_eval.pkl", "builtins.eval is not allowed"},
        {"hostile_subprocess.pkl", "subprocess.Popen is not allowed"},
        {"hostile_torch_load.pkl", "torch.serialization.load is not allowed"},
        {"hostile_namespace.pkl", "argparse.Namespace is not allowed"},
    };
    for (size_t i = 0; i < sizeof pickles / sizeof pickles[0]; i++) {
        size_t size = 0;
        unsigned char *data = read_fixture(pickles[i].file, &size);
        if (!data)
            continue;
        pk b = {data, size, size};
        expect_refused(pickles[i].file, &b, pickles[i].needle);
        expect_skip_refused(pickles[i].file, &b, pickles[i].needle);
        free(data);
    }

    static const struct {
        const char *file, *needle;
        ims_status status;
    } files[] = {
        {"hostile_legacy_os_system.pt", "state_dict pickle at offset 137: pickle offset", IMS_ERR_FORMAT},
        {"hostile_legacy_os_system.pt", "posix.system is not allowed", IMS_ERR_FORMAT},
        {"hostile_missing_record.pt", "tensor 'b' uses storage '200', which has no record", IMS_ERR_FORMAT},
        {"hostile_no_keys.pt", "tensor 'a' uses storage '100', which has no record", IMS_ERR_FORMAT},
        {"hostile_wrapper_tensor.pt", "checkpoint entry 'optimizer' (beside 'state_dict') holds a tensor",
         IMS_ERR_FORMAT},
        {"hostile_numel_mismatch.pt", "storage '200' record holds 3 elements, but tensor 'b' says 2", IMS_ERR_FORMAT},
        {"hostile_unused_record.pt", "storage '300' is used by no tensor", IMS_ERR_FORMAT},
        {"hostile_duplicate_key.pt", "storage key '100' is listed twice", IMS_ERR_FORMAT},
        {"hostile_trailing.pt", "1 trailing bytes after the last storage record", IMS_ERR_FORMAT},
        {"hostile_past_storage.pt", "tensor 'a': reaches element 4 of a storage of 4", IMS_ERR_FORMAT},
        {"hostile_view.pt", "storage views are not supported", IMS_ERR_FORMAT},
        {"hostile_big_endian.pt", "big-endian", IMS_ERR_UNSUPPORTED},
        {"hostile_version.pt", "bad protocol version 1000 (expected 1001)", IMS_ERR_FORMAT},
        {"hostile_complex.pt", "torch.ComplexFloatStorage is not allowed", IMS_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        size_t size = 0;
        unsigned char *data = read_fixture(files[i].file, &size);
        if (!data)
            continue;
        ckpt *c = NULL;
        ims_error err = {0};
        ims_status st = imsi_ckpt_open_memory(data, size, &c, &err);
        TEST_CHECK(st == files[i].status && c == NULL, "%s: %s", files[i].file, ims_status_name(st));
        TEST_CHECK(strstr(err.msg, files[i].needle) != NULL, "%s: message '%s' does not name '%s'", files[i].file,
                   err.msg, files[i].needle);
        free(data);
    }
    /* the hand-built file the hostile ones derive from is fine */
    size_t size = 0;
    unsigned char *data = read_fixture("good_by_hand.pt", &size);
    ckpt *c = NULL;
    ims_error err = {0};
    if (data) {
        TEST_OK(imsi_ckpt_open_memory(data, size, &c, &err), err);
        TEST_CHECK(c && c->count == 2, "good_by_hand");
        imsi_ckpt_free(c);
        free(data);
    }
}

/* Where each pickle of a legacy file ends, found with imsi_pickle_skip. */
static size_t pickle_ends(const unsigned char *data, size_t size, size_t ends[5])
{
    size_t pos = 0;
    for (int i = 0; i < 5; i++) {
        size_t used = 0;
        ims_error err = {0};
        pickle_state_dict sd = {0};
        ims_status st = i == 3 ? imsi_pickle_load_state_dict(data + pos, size - pos, &sd, &used, &err)
                               : imsi_pickle_skip(data + pos, size - pos, &used, &err);
        imsi_pickle_state_dict_free(&sd);
        TEST_OK(st, err);
        pos += used;
        ends[i] = pos;
    }
    return pos;
}

static void test_legacy_truncation(const char *file)
{
    size_t size = 0;
    unsigned char *data = read_fixture(file, &size);
    if (!data)
        return;
    size_t ends[5];
    size_t records = pickle_ends(data, size, ends);
    TEST_CHECK(ends[0] == 15, "%s: magic pickle ends at %zu", file, ends[0]);
    ckpt *c = NULL;
    ims_error err = {0};
    for (size_t n = 0; n < size; n++) {
        /* a copy of exactly n bytes, so that ASan sees any read past it */
        unsigned char *cut = malloc(n ? n : 1);
        memcpy(cut, data, n);
        err = (ims_error){0};
        ims_status st = legacy_read(cut, n, &c, &err);
        TEST_CHECK(st == IMS_ERR_FORMAT && c == NULL && err.msg[0], "%s cut at %zu: %s", file, n, err.msg);
        const char *needle = NULL;
        if (n < 15)
            needle = "bad magic number";
        else if (n == ends[0])
            needle = "protocol version pickle at offset 15: pickle offset 0: the pickle is empty";
        else if (n == ends[1])
            needle = "sys_info pickle at offset";
        else if (n == ends[2])
            needle = "state_dict pickle at offset";
        else if (n == ends[3])
            needle = "storage key list pickle at offset";
        else if (n == ends[4])
            needle = "ends inside the element count";
        else if (n > records)
            needle = "ends inside"; /* the count or the elements of a record */
        if (needle)
            TEST_CHECK(strstr(err.msg, needle) != NULL, "%s cut at %zu: '%s' does not name '%s'", file, n, err.msg,
                       needle);
        if (n >= 15 && n < ends[4]) /* a pickle cut short, whatever opcode it was in */
            TEST_CHECK(strstr(err.msg, "ends without STOP") || strstr(err.msg, "is empty") ||
                           strstr(err.msg, "needs") || strstr(err.msg, "no newline"),
                       "%s cut at %zu inside the pickles: %s", file, n, err.msg);
        free(cut);
    }
    /* the whole file reads; one byte more does not */
    TEST_OK(legacy_read(data, size, &c, &err), err);
    imsi_ckpt_free(c);
    unsigned char *longer = malloc(size + 1);
    memcpy(longer, data, size);
    longer[size] = 0;
    TEST_CHECK(legacy_read(longer, size + 1, &c, &err) == IMS_ERR_FORMAT && strstr(err.msg, "1 trailing bytes"),
               "%s + 1 byte: %s", file, err.msg);
    free(longer);

    /* bad magic, bad version, a record count that disagrees */
    unsigned char *copy = malloc(size);
    memcpy(copy, data, size);
    copy[5] ^= 1;
    TEST_CHECK(legacy_read(copy, size, &c, &err) == IMS_ERR_FORMAT && strstr(err.msg, "bad magic number"), "%s: %s",
               file, err.msg);
    TEST_CHECK(imsi_ckpt_open_memory(copy, size, &c, &err) == IMS_ERR_FORMAT && strstr(err.msg, "not a PyTorch"), "%s: %s",
               file, err.msg);
    memcpy(copy, data, size);
    TEST_CHECK(copy[17] == 'M' && copy[18] == 0xe9 && copy[19] == 0x03, "%s: version is BININT2 1001", file);
    copy[18] = 0xea;
    TEST_CHECK(legacy_read(copy, size, &c, &err) == IMS_ERR_FORMAT && strstr(err.msg, "bad protocol version 1002"),
               "%s: %s", file, err.msg);
    memcpy(copy, data, size);
    copy[ends[4]] ^= 1; /* the first record's element count */
    TEST_CHECK(legacy_read(copy, size, &c, &err) == IMS_ERR_FORMAT && strstr(err.msg, "record holds"), "%s: %s", file,
               err.msg);
    memcpy(copy, data, size);
    copy[ends[4] + 7] = 0x80; /* a negative count */
    TEST_CHECK(legacy_read(copy, size, &c, &err) == IMS_ERR_FORMAT && strstr(err.msg, "record holds"), "%s: %s", file,
               err.msg);
    free(copy);
    free(data);
}

int main(int argc, char **argv)
{
    fixture_dir = test_fixture_dir(argc, argv);
    test_basic_state_dict();
    test_storage_types();
    test_protocol4_paths();
    test_plain_values();
    test_hostile_globals();
    test_hostile_opcodes();
    test_hostile_calls();
    test_hostile_tensors();
    test_hostile_structure();
    test_limits();

    const expected_file *files[] = {&expected_dtypes, &expected_views, &expected_batchnorm,
                                    &expected_params, &expected_wrapped, &expected_model};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        test_legacy_fixture(files[i]);
    test_legacy_details();
    test_zip_pickles();
    test_hostile_fixtures();
    test_legacy_truncation("dtypes.pt");
    test_legacy_truncation("views.pt");
    test_legacy_truncation("batchnorm.pt");
    return test_finish();
}
