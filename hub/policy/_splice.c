/*
 * hub.policy._splice: subscriber views (projection and masking) applied to Avro binary
 * records without decoding them.
 *
 * A Program is compiled once per (writer schema, view) by hub/policy/splice.py. Per
 * record it walks the top-level fields of the writer record and, per field, copies the
 * field's bytes, skips them, or writes a masked value. For records as fastavro writes them
 * (canonical varints, one block per array or map) the output is byte-identical to the
 * Python path: decode with the writer schema, CompiledView.apply, encode with the view
 * schema. Copied fields keep their bytes exactly as they came.
 *
 * Program(types, ops)
 *
 *   types: a tuple of type nodes; nodes refer to each other by position, so named and
 *   recursive types are plain indices:
 *     ("null",) ("boolean",) ("int",) ("long",) ("float",) ("double",) ("bytes",)
 *     ("string",) ("fixed", size) ("enum", symbol_count) ("array", item_node)
 *     ("map", value_node) ("union", (branch_node, ...)) ("record", (field_node, ...))
 *
 *   ops: one per top-level field of the writer record, in writer order:
 *     ("copy", name, node)               keep the field's bytes
 *     ("drop", name, node)               skip them
 *     ("keep", name, node, head, tail)   string: keep the first `head` and last `tail`
 *                                        code points, '*' for each one between; all '*'
 *                                        when the string has at most head + tail
 *     ("redact", name, node)             string: "******"
 *     ("null", name, node)               the null branch of a nullable field
 *     ("month", name, node)              date (int days since 1970-01-01): first day of
 *     ("year", name, node)               its month / 1 January of its year
 *
 *   For keep and redact the node is a string or a union of null and string; for month
 *   and year an int or a union of null and int; for null, null or a union with a null
 *   branch. A null in a masked union stays null (same branch index).
 *
 * program(payload) and program.apply(payload) take bytes or any contiguous buffer and
 * return bytes. Malformed input raises SpliceError (a ValueError); the input is never
 * read out of bounds. Strings in copied or dropped fields are not checked for UTF-8.
 *
 * Native callers (the router's batch loop) can skip the Python call and the result
 * object through the capsule "hub.policy._splice._C_API", a HubSpliceAPI (see below).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define COLD __attribute__((cold, noinline))
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define COLD
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#endif

#define MAX_DEPTH 1000  /* nesting of records, unions, arrays and maps within one field */
#define STACK_OUT 4096  /* outputs up to this size are built on the stack */
#define MAX_KEEP (1 << 20)

/* Days since 1970-01-01 of 0001-01-01 and 9999-12-31: the dates Python can represent. */
#define MIN_DAYS (-719162)
#define MAX_DAYS 2932896

/* ---------------------------------------------------------------------------------- */
/* The C API for native callers. */

typedef struct {
    unsigned int version; /* 1 */
    PyTypeObject *program_type;
    /* The most bytes apply_into can write for `len` input bytes. */
    Py_ssize_t (*max_output)(PyObject *program, Py_ssize_t len);
    /* Splices `len` bytes at `in` into `out`, which has room for max_output(program, len)
     * bytes. Returns the output length, or -1 with SpliceError set. Needs the GIL only to
     * raise; `program` must be a Program (check with program_type). */
    Py_ssize_t (*apply_into)(PyObject *program, const char *in, Py_ssize_t len, char *out);
} HubSpliceAPI;

/* ---------------------------------------------------------------------------------- */
/* Programs. */

enum kind {
    K_NULL, K_BOOLEAN, K_INT, K_LONG, K_FLOAT, K_DOUBLE, K_BYTES, K_STRING,
    K_FIXED, K_ENUM, K_ARRAY, K_MAP, K_UNION, K_RECORD, K_COUNT
};

static const char *const kind_names[K_COUNT] = {
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
    "fixed", "enum", "array", "map", "union", "record",
};

enum action { A_COPY, A_DROP, A_KEEP, A_REDACT, A_NULL, A_MONTH, A_YEAR, A_COUNT };

static const char *const action_names[A_COUNT] = {
    "copy", "drop", "keep", "redact", "null", "month", "year",
};

/* How many bytes an action's output can exceed its input by. A kept string never grows
 * (each masked code point becomes one byte); "******" takes 7 bytes where the input took
 * at least 1; a null branch index takes at most 5; a date at most 5 where it took 1. */
static const Py_ssize_t action_growth[A_COUNT] = {0, 0, 0, 7, 5, 5, 5};

typedef struct {
    uint8_t kind;
    uint8_t zero;  /* every value encodes to no bytes (null, fixed(0), records of those) */
    int32_t n;     /* fixed: size; enum: symbols; union, record: children */
    int32_t child; /* array, map: item node; union, record: first child in kids */
} Node;

typedef struct {
    uint8_t action;
    int32_t node;
    int32_t head;
    int32_t tail;
} Op;

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    Node *nodes;
    int32_t *kids;
    Op *ops;
    Py_ssize_t nnodes;
    Py_ssize_t nkids;
    Py_ssize_t nops;
    Py_ssize_t growth; /* the most bytes an output can exceed its input by */
    PyObject *names;   /* tuple of the writer's field names, for messages */
} Program;

static PyTypeObject ProgramType;
static PyObject *SpliceError;

/* ---------------------------------------------------------------------------------- */
/* Faults: the walk records what went wrong; the message is formatted once, at the top. */

enum fault_code {
    E_NONE, E_TRUNCATED, E_PAST_END, E_VARINT, E_LENGTH, E_COUNT, E_UNION, E_ENUM,
    E_BOOLEAN, E_UTF8, E_DEPTH, E_BLOCK, E_DATE, E_TRAILING
};

typedef struct {
    int code;
    const uint8_t *at;
    int64_t value;
    int64_t limit;
} Fault;

static COLD const uint8_t *
fault(Fault *f, int code, const uint8_t *at, int64_t value, int64_t limit)
{
    f->code = code;
    f->at = at;
    f->value = value;
    f->limit = limit;
    return NULL;
}

static COLD void
raise_fault(const Program *pg, Py_ssize_t op_index, const Fault *f, const uint8_t *in,
            Py_ssize_t len)
{
    PyObject *where;
    Py_ssize_t at = f->at ? (Py_ssize_t)(f->at - in) : 0;
    long long v = (long long)f->value, lim = (long long)f->limit;
    PyObject *msg = NULL;

    if (op_index >= 0)
        where = PyUnicode_FromFormat("field %R: ", PyTuple_GET_ITEM(pg->names, op_index));
    else
        where = PyUnicode_FromString("");
    if (where == NULL)
        return;
    switch (f->code) {
    case E_TRUNCATED:
        msg = PyUnicode_FromFormat("%Upayload truncated: the value at byte %zd runs past "
                                   "its end (%zd bytes)", where, at, len);
        break;
    case E_PAST_END:
        msg = PyUnicode_FromFormat("%Ua length of %lld bytes at byte %zd runs past the end "
                                   "of the payload (%lld bytes left)", where, v, at, lim);
        break;
    case E_VARINT:
        msg = PyUnicode_FromFormat("%Uvarint at byte %zd is too long or out of range",
                                   where, at);
        break;
    case E_LENGTH:
        msg = PyUnicode_FromFormat("%Unegative length %lld at byte %zd", where, v, at);
        break;
    case E_COUNT:
        msg = PyUnicode_FromFormat("%Ublock count %lld at byte %zd is impossible with %lld "
                                   "bytes left", where, v, at, lim);
        break;
    case E_UNION:
        msg = PyUnicode_FromFormat("%Uunion branch index %lld at byte %zd is out of range "
                                   "(%lld branches)", where, v, at, lim);
        break;
    case E_ENUM:
        msg = PyUnicode_FromFormat("%Uenum index %lld at byte %zd is out of range "
                                   "(%lld symbols)", where, v, at, lim);
        break;
    case E_BOOLEAN:
        msg = PyUnicode_FromFormat("%Uboolean byte 0x%x at byte %zd is neither 0 nor 1",
                                   where, (int)v, at);
        break;
    case E_UTF8:
        msg = PyUnicode_FromFormat("%Uinvalid UTF-8 in a masked string at byte %zd",
                                   where, at);
        break;
    case E_DEPTH:
        msg = PyUnicode_FromFormat("%Uvalues nested more than %d levels deep at byte %zd",
                                   where, MAX_DEPTH, at);
        break;
    case E_BLOCK:
        msg = PyUnicode_FromFormat("%Ublock at byte %zd declares %lld bytes but its items "
                                   "take %lld", where, at, v, lim);
        break;
    case E_DATE:
        msg = PyUnicode_FromFormat("%Udate %lld (days since 1970-01-01) at byte %zd is "
                                   "outside the years 1 to 9999", where, v, at);
        break;
    case E_TRAILING:
        msg = PyUnicode_FromFormat("%lld bytes left over after the record ends at byte %zd "
                                   "(does the payload match the writer schema?)", v, at);
        break;
    default:
        msg = PyUnicode_FromFormat("%Umalformed payload at byte %zd", where, at);
        break;
    }
    Py_DECREF(where);
    if (msg != NULL) {
        PyErr_SetObject(SpliceError, msg);
        Py_DECREF(msg);
    }
}

/* ---------------------------------------------------------------------------------- */
/* Varints. */

static inline int64_t
unzigzag(uint64_t u)
{
    return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

static inline uint64_t
zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (v < 0 ? UINT64_MAX : 0);
}

static const uint8_t *
read_varint_slow(const uint8_t *p, const uint8_t *end, int64_t *out, int last_shift,
                 unsigned last_max, Fault *f)
{
    uint64_t u = 0;
    const uint8_t *q = p;
    for (int shift = 0;; shift += 7) {
        if (q >= end)
            return fault(f, E_TRUNCATED, p, 0, 0);
        uint8_t b = *q++;
        if (shift == last_shift && b > last_max)
            return fault(f, E_VARINT, p, 0, 0);
        u |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80)
            break;
    }
    *out = unzigzag(u);
    return q;
}

/* A zigzag long: at most 10 bytes, the last holding bit 63 only. */
static inline const uint8_t *
read_long(const uint8_t *p, const uint8_t *end, int64_t *out, Fault *f)
{
    if (LIKELY(p < end && *p < 0x80)) {
        *out = unzigzag(*p);
        return p + 1;
    }
    return read_varint_slow(p, end, out, 63, 1, f);
}

/* A zigzag int: at most 5 bytes, 32 bits. */
static inline const uint8_t *
read_int(const uint8_t *p, const uint8_t *end, int64_t *out, Fault *f)
{
    if (LIKELY(p < end && *p < 0x80)) {
        *out = unzigzag(*p);
        return p + 1;
    }
    return read_varint_slow(p, end, out, 28, 0x0F, f);
}

static inline uint8_t *
write_varint(uint8_t *o, uint64_t u)
{
    while (u >= 0x80) {
        *o++ = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    *o++ = (uint8_t)u;
    return o;
}

/* A length prefix (bytes, string, block size): non-negative and within the payload. */
static inline const uint8_t *
read_length(const uint8_t *p, const uint8_t *end, int64_t *len, Fault *f)
{
    const uint8_t *q = read_long(p, end, len, f);
    if (UNLIKELY(q == NULL))
        return NULL;
    if (UNLIKELY(*len < 0))
        return fault(f, E_LENGTH, p, *len, 0);
    if (UNLIKELY(*len > end - q))
        return fault(f, E_PAST_END, p, *len, end - q);
    return q;
}

/* ---------------------------------------------------------------------------------- */
/* Skipping values of any type. */

static const uint8_t *skip_value(const Program *pg, const Node *nd, const uint8_t *p,
                                 const uint8_t *end, Fault *f, int depth);

static const uint8_t *
skip_blocks(const Program *pg, const Node *nd, const uint8_t *p, const uint8_t *end,
            Fault *f, int depth)
{
    const Node *item = &pg->nodes[nd->child];
    int is_map = nd->kind == K_MAP;
    int empty_items = item->zero && !is_map; /* a map entry has at least its key */

    if (depth >= MAX_DEPTH)
        return fault(f, E_DEPTH, p, 0, 0);
    for (;;) {
        const uint8_t *at = p, *first;
        int64_t count, size = -1;
        p = read_long(p, end, &count, f);
        if (p == NULL)
            return NULL;
        if (count == 0)
            return p;
        if (count < 0) {
            /* A negative count is followed by the block's size in bytes. */
            if (count == INT64_MIN)
                return fault(f, E_COUNT, at, count, end - p);
            count = -count;
            p = read_length(p, end, &size, f);
            if (p == NULL)
                return NULL;
        }
        first = p;
        if (!empty_items) {
            /* Every item takes at least one byte. */
            if (count > end - p)
                return fault(f, E_COUNT, at, count, end - p);
            for (int64_t i = 0; i < count; i++) {
                if (is_map) {
                    int64_t klen;
                    p = read_length(p, end, &klen, f);
                    if (p == NULL)
                        return NULL;
                    p += klen;
                }
                p = skip_value(pg, item, p, end, f, depth + 1);
                if (p == NULL)
                    return NULL;
            }
        }
        if (size >= 0 && p - first != size)
            return fault(f, E_BLOCK, at, size, p - first);
    }
}

static const uint8_t *
skip_value(const Program *pg, const Node *nd, const uint8_t *p, const uint8_t *end, Fault *f,
           int depth)
{
    int64_t v;
    const uint8_t *q;

    switch (nd->kind) {
    case K_NULL:
        return p;
    case K_BOOLEAN:
        if (p >= end)
            return fault(f, E_TRUNCATED, p, 0, 0);
        if (*p > 1)
            return fault(f, E_BOOLEAN, p, *p, 0);
        return p + 1;
    case K_INT:
        return read_int(p, end, &v, f);
    case K_LONG:
        return read_long(p, end, &v, f);
    case K_FLOAT:
        if (end - p < 4)
            return fault(f, E_TRUNCATED, p, 0, 0);
        return p + 4;
    case K_DOUBLE:
        if (end - p < 8)
            return fault(f, E_TRUNCATED, p, 0, 0);
        return p + 8;
    case K_BYTES:
    case K_STRING:
        q = read_length(p, end, &v, f);
        return q == NULL ? NULL : q + v;
    case K_FIXED:
        if (end - p < nd->n)
            return fault(f, E_TRUNCATED, p, 0, 0);
        return p + nd->n;
    case K_ENUM:
        q = read_int(p, end, &v, f);
        if (q == NULL)
            return NULL;
        if (v < 0 || v >= nd->n)
            return fault(f, E_ENUM, p, v, nd->n);
        return q;
    case K_UNION:
        q = read_long(p, end, &v, f);
        if (q == NULL)
            return NULL;
        if (v < 0 || v >= nd->n)
            return fault(f, E_UNION, p, v, nd->n);
        if (depth >= MAX_DEPTH)
            return fault(f, E_DEPTH, p, 0, 0);
        return skip_value(pg, &pg->nodes[pg->kids[nd->child + v]], q, end, f, depth + 1);
    case K_RECORD:
        if (depth >= MAX_DEPTH)
            return fault(f, E_DEPTH, p, 0, 0);
        for (int32_t i = 0; i < nd->n; i++) {
            p = skip_value(pg, &pg->nodes[pg->kids[nd->child + i]], p, end, f, depth + 1);
            if (p == NULL)
                return NULL;
        }
        return p;
    case K_ARRAY:
    case K_MAP:
        return skip_blocks(pg, nd, p, end, f, depth);
    default:
        return fault(f, E_NONE, p, 0, 0); /* unreachable: kinds are checked on construction */
    }
}

/* The common top-level cases inline, the rest through skip_value. */
static inline const uint8_t *
skip_field(const Program *pg, const Node *nd, const uint8_t *p, const uint8_t *end, Fault *f)
{
    int64_t v;
    const uint8_t *q;
    switch (nd->kind) {
    case K_STRING:
    case K_BYTES:
        q = read_length(p, end, &v, f);
        return q == NULL ? NULL : q + v;
    case K_INT:
        return read_int(p, end, &v, f);
    case K_LONG:
        return read_long(p, end, &v, f);
    default:
        return skip_value(pg, nd, p, end, f, 0);
    }
}

/* ---------------------------------------------------------------------------------- */
/* Strings. */

/* Validates s[0, n) as UTF-8 exactly as Python's strict decoder does and counts its code
 * points. *head_end is the byte offset after the first `head` code points (n when there
 * are fewer). Returns the count, or -1 with *bad the offset of the offending sequence. */
static Py_ssize_t
utf8_scan(const uint8_t *s, Py_ssize_t n, Py_ssize_t head, Py_ssize_t *head_end,
          Py_ssize_t *bad)
{
    Py_ssize_t i = 0, count, hb = -1;

    while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & UINT64_C(0x8080808080808080))
            break;
        i += 8;
    }
    while (i < n && s[i] < 0x80)
        i++;
    count = i;
    if (head <= count)
        hb = head;
    while (i < n) {
        uint8_t c = s[i];
        if (count == head)
            hb = i;
        if (c < 0x80) {
            i += 1;
        }
        else if (c < 0xC2) {
            goto invalid; /* a continuation byte, or an overlong 2-byte lead */
        }
        else if (c < 0xE0) {
            if (n - i < 2 || (s[i + 1] & 0xC0) != 0x80)
                goto invalid;
            i += 2;
        }
        else if (c < 0xF0) {
            if (n - i < 3 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80)
                goto invalid;
            if (c == 0xE0 && s[i + 1] < 0xA0)
                goto invalid; /* overlong */
            if (c == 0xED && s[i + 1] >= 0xA0)
                goto invalid; /* a surrogate */
            i += 3;
        }
        else if (c < 0xF5) {
            if (n - i < 4 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
                (s[i + 3] & 0xC0) != 0x80)
                goto invalid;
            if (c == 0xF0 && s[i + 1] < 0x90)
                goto invalid; /* overlong */
            if (c == 0xF4 && s[i + 1] >= 0x90)
                goto invalid; /* past U+10FFFF */
            i += 4;
        }
        else {
            goto invalid;
        }
        count++;
    }
    *head_end = hb < 0 ? n : hb;
    return count;
invalid:
    *bad = i;
    return -1;
}

/* Writes the string s[0, n) masked: head and tail code points kept, '*' between. */
static uint8_t *
write_kept(const uint8_t *s, Py_ssize_t n, Py_ssize_t head, Py_ssize_t tail, uint8_t *o,
           Fault *f)
{
    Py_ssize_t head_bytes = 0, bad = 0, tail_bytes = 0, stars, count;

    count = utf8_scan(s, n, head, &head_bytes, &bad);
    if (count < 0) {
        fault(f, E_UTF8, s + bad, 0, 0);
        return NULL;
    }
    if (count <= head + tail) {
        o = write_varint(o, zigzag(count));
        memset(o, '*', (size_t)count);
        return o + count;
    }
    if (tail > 0) {
        Py_ssize_t j = n;
        for (Py_ssize_t k = 0; k < tail; k++) {
            do
                j--;
            while ((s[j] & 0xC0) == 0x80);
        }
        tail_bytes = n - j;
    }
    stars = count - head - tail;
    o = write_varint(o, zigzag(head_bytes + stars + tail_bytes));
    memcpy(o, s, (size_t)head_bytes);
    o += head_bytes;
    memset(o, '*', (size_t)stars);
    o += stars;
    memcpy(o, s + n - tail_bytes, (size_t)tail_bytes);
    return o + tail_bytes;
}

/* A string field (or a null/string union) masked by a keep or redact op. */
static const uint8_t *
mask_string(const Program *pg, const Op *op, const uint8_t *p, const uint8_t *end,
            uint8_t **out, Fault *f)
{
    const Node *nd = &pg->nodes[op->node];
    uint8_t *o = *out;
    const uint8_t *s;
    int64_t len;

    if (nd->kind == K_UNION) {
        int64_t branch;
        const uint8_t *at = p;
        p = read_long(p, end, &branch, f);
        if (p == NULL)
            return NULL;
        if (branch < 0 || branch >= nd->n)
            return fault(f, E_UNION, at, branch, nd->n);
        o = write_varint(o, zigzag(branch));
        if (pg->nodes[pg->kids[nd->child + branch]].kind == K_NULL) {
            *out = o;
            return p;
        }
    }
    s = read_length(p, end, &len, f);
    if (s == NULL)
        return NULL;
    if (op->action == A_KEEP) {
        o = write_kept(s, (Py_ssize_t)len, op->head, op->tail, o, f);
        if (o == NULL)
            return NULL;
    }
    else {
        Py_ssize_t head_bytes, bad;
        /* The Python path decodes the value before replacing it. */
        if (utf8_scan(s, (Py_ssize_t)len, 0, &head_bytes, &bad) < 0)
            return fault(f, E_UTF8, s + bad, 0, 0);
        memcpy(o, "\x0c******", 7);
        o += 7;
    }
    *out = o;
    return s + len;
}

/* ---------------------------------------------------------------------------------- */
/* Dates. */

static int
is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

/* Days since 1970-01-01 of the first day of the month (or year) of `days`, which must lie
 * within MIN_DAYS and MAX_DAYS. */
static int64_t
generalise_days(int64_t days, int to_year)
{
    static const int before[2][13] = {
        {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365},
        {0, 31, 60, 91, 121, 152, 182, 213, 244, 274, 305, 335, 366},
    };
    int64_t d = days - MIN_DAYS; /* days since 0001-01-01, >= 0 */
    int64_t c400 = d / 146097, r = d % 146097;
    int64_t c100 = r / 36524;
    int64_t c4, c1, year, day_of_year;
    const int *table;
    int m;

    r -= c100 * 36524;
    c4 = r / 1461;
    r -= c4 * 1461;
    c1 = r / 365;
    r -= c1 * 365;
    year = 400 * c400 + 100 * c100 + 4 * c4 + c1 + 1;
    if (c100 == 4 || c1 == 4) {
        /* The last day of a leap year closing a 4- or 400-year cycle. */
        year -= 1;
        day_of_year = 365;
    }
    else {
        day_of_year = r;
    }
    if (to_year)
        return days - day_of_year;
    table = before[is_leap(year)];
    for (m = 11; table[m] > day_of_year; m--)
        ;
    return days - (day_of_year - table[m]);
}

static const uint8_t *
mask_date(const Program *pg, const Op *op, const uint8_t *p, const uint8_t *end,
          uint8_t **out, Fault *f)
{
    const Node *nd = &pg->nodes[op->node];
    uint8_t *o = *out;
    const uint8_t *at;
    int64_t days;

    if (nd->kind == K_UNION) {
        int64_t branch;
        at = p;
        p = read_long(p, end, &branch, f);
        if (p == NULL)
            return NULL;
        if (branch < 0 || branch >= nd->n)
            return fault(f, E_UNION, at, branch, nd->n);
        o = write_varint(o, zigzag(branch));
        if (pg->nodes[pg->kids[nd->child + branch]].kind == K_NULL) {
            *out = o;
            return p;
        }
    }
    at = p;
    p = read_int(p, end, &days, f);
    if (p == NULL)
        return NULL;
    if (days < MIN_DAYS || days > MAX_DAYS)
        return fault(f, E_DATE, at, days, 0);
    *out = write_varint(o, zigzag(generalise_days(days, op->action == A_YEAR)));
    return p;
}

/* A redacted nullable field: its value skipped, the null branch written. */
static const uint8_t *
mask_null(const Program *pg, const Op *op, const uint8_t *p, const uint8_t *end,
          uint8_t **out, Fault *f)
{
    const Node *nd = &pg->nodes[op->node];
    p = skip_value(pg, nd, p, end, f, 0);
    if (p != NULL && nd->kind == K_UNION)
        *out = write_varint(*out, zigzag(op->head)); /* head holds the null branch */
    return p;
}

/* ---------------------------------------------------------------------------------- */
/* The record walk. */

/* Writes the view of in[0, len) to out (room for len + pg->growth bytes). Returns the
 * output length, or -1 with *f and *op_index (-1: after the last field) describing why. */
static Py_ssize_t
splice(const Program *pg, const uint8_t *in, Py_ssize_t len, uint8_t *out, Fault *f,
       Py_ssize_t *op_index)
{
    const uint8_t *p = in, *end = in + len, *run = NULL;
    uint8_t *o = out;
    Py_ssize_t i;

    for (i = 0; i < pg->nops; i++) {
        const Op *op = &pg->ops[i];
        if (op->action == A_COPY) {
            /* Consecutive copies are one memcpy. */
            if (run == NULL)
                run = p;
            p = skip_field(pg, &pg->nodes[op->node], p, end, f);
            if (UNLIKELY(p == NULL))
                goto failed;
            continue;
        }
        if (run != NULL) {
            memcpy(o, run, (size_t)(p - run));
            o += p - run;
            run = NULL;
        }
        switch (op->action) {
        case A_DROP:
            p = skip_field(pg, &pg->nodes[op->node], p, end, f);
            break;
        case A_KEEP:
        case A_REDACT:
            p = mask_string(pg, op, p, end, &o, f);
            break;
        case A_NULL:
            p = mask_null(pg, op, p, end, &o, f);
            break;
        default: /* A_MONTH, A_YEAR */
            p = mask_date(pg, op, p, end, &o, f);
            break;
        }
        if (UNLIKELY(p == NULL))
            goto failed;
    }
    if (run != NULL) {
        memcpy(o, run, (size_t)(p - run));
        o += p - run;
    }
    if (UNLIKELY(p != end)) {
        fault(f, E_TRAILING, p, end - p, 0);
        *op_index = -1;
        return -1;
    }
    return o - out;
failed:
    *op_index = i;
    return -1;
}

static PyObject *
program_run(Program *pg, PyObject *payload)
{
    Py_buffer view;
    const uint8_t *in;
    Py_ssize_t len, cap, n, op_index = -1;
    Fault f = {0};
    PyObject *result;
    int owned = 0;

    if (PyBytes_CheckExact(payload)) {
        in = (const uint8_t *)PyBytes_AS_STRING(payload);
        len = PyBytes_GET_SIZE(payload);
    }
    else {
        if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        in = (const uint8_t *)view.buf;
        len = view.len;
        owned = 1;
    }
    if (len > PY_SSIZE_T_MAX - pg->growth) {
        result = PyErr_NoMemory();
        goto done;
    }
    cap = len + pg->growth;
    if (cap <= STACK_OUT) {
        uint8_t buf[STACK_OUT];
        n = splice(pg, in, len, buf, &f, &op_index);
        if (n < 0) {
            raise_fault(pg, op_index, &f, in, len);
            result = NULL;
        }
        else {
            result = PyBytes_FromStringAndSize((const char *)buf, n);
        }
    }
    else {
        result = PyBytes_FromStringAndSize(NULL, cap);
        if (result == NULL)
            goto done;
        n = splice(pg, in, len, (uint8_t *)PyBytes_AS_STRING(result), &f, &op_index);
        if (n < 0) {
            raise_fault(pg, op_index, &f, in, len);
            Py_CLEAR(result);
        }
        else if (n != cap) {
            (void)_PyBytes_Resize(&result, n); /* NULL with MemoryError on failure */
        }
    }
done:
    if (owned)
        PyBuffer_Release(&view);
    return result;
}

static PyObject *
program_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "a splice program takes one payload argument");
        return NULL;
    }
    return program_run((Program *)self, args[0]);
}

static PyObject *
program_apply(PyObject *self, PyObject *payload)
{
    return program_run((Program *)self, payload);
}

/* ---------------------------------------------------------------------------------- */
/* Construction from the op list. */

static int
lookup_name(PyObject *name, const char *const *names, int count, const char *what)
{
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what,
                     Py_TYPE(name)->tp_name);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        if (PyUnicode_CompareWithASCIIString(name, names[i]) == 0)
            return i;
    }
    PyErr_Format(PyExc_ValueError, "unknown %s %R", what, name);
    return -1;
}

/* An int in [lo, hi], or -1 with an exception (callers use ranges that exclude -1). */
static long
int_in(PyObject *obj, long lo, long hi, const char *what)
{
    long v;
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < lo || v > hi) {
        PyErr_Format(PyExc_ValueError, "%s %ld is out of range [%ld, %ld]", what, v, lo, hi);
        return -1;
    }
    return v;
}

static int
parse_types(Program *pg, PyObject *types)
{
    PyObject *seq = PySequence_Fast(types, "types must be a sequence of type nodes");
    Py_ssize_t n, nkids = 0, i;
    int rc = -1;

    if (seq == NULL)
        return -1;
    n = PySequence_Fast_GET_SIZE(seq);
    if (n > INT32_MAX - 1) {
        PyErr_SetString(PyExc_ValueError, "too many type nodes");
        goto out;
    }
    /* First pass: count the children of unions and records. */
    for (i = 0; i < n; i++) {
        PyObject *node = PySequence_Fast_GET_ITEM(seq, i), *kids;
        if (!PyTuple_Check(node) || PyTuple_GET_SIZE(node) < 1) {
            PyErr_Format(PyExc_TypeError, "type node %zd must be a non-empty tuple", i);
            goto out;
        }
        if (PyTuple_GET_SIZE(node) == 2 && PyTuple_Check(kids = PyTuple_GET_ITEM(node, 1)))
            nkids += PyTuple_GET_SIZE(kids);
    }
    if (nkids > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many child nodes");
        goto out;
    }
    pg->nodes = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Node));
    pg->kids = PyMem_Calloc((size_t)(nkids ? nkids : 1), sizeof(int32_t));
    if (pg->nodes == NULL || pg->kids == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    pg->nnodes = n;
    pg->nkids = 0;
    for (i = 0; i < n; i++) {
        PyObject *node = PySequence_Fast_GET_ITEM(seq, i);
        Py_ssize_t size = PyTuple_GET_SIZE(node);
        Node *nd = &pg->nodes[i];
        int kind = lookup_name(PyTuple_GET_ITEM(node, 0), kind_names, K_COUNT, "type kind");
        long v;
        if (kind < 0)
            goto out;
        nd->kind = (uint8_t)kind;
        if (kind <= K_STRING) {
            if (size != 1) {
                PyErr_Format(PyExc_ValueError, "type node %zd (%s) takes no argument", i,
                             kind_names[kind]);
                goto out;
            }
            continue;
        }
        if (size != 2) {
            PyErr_Format(PyExc_ValueError, "type node %zd (%s) takes one argument", i,
                         kind_names[kind]);
            goto out;
        }
        if (kind == K_UNION || kind == K_RECORD) {
            PyObject *kids = PyTuple_GET_ITEM(node, 1);
            Py_ssize_t k, count;
            if (!PyTuple_Check(kids)) {
                PyErr_Format(PyExc_TypeError, "type node %zd (%s) needs a tuple of nodes", i,
                             kind_names[kind]);
                goto out;
            }
            count = PyTuple_GET_SIZE(kids);
            nd->n = (int32_t)count;
            nd->child = (int32_t)pg->nkids;
            for (k = 0; k < count; k++) {
                v = int_in(PyTuple_GET_ITEM(kids, k), 0, (long)n - 1, "child node");
                if (v < 0)
                    goto out;
                pg->kids[pg->nkids++] = (int32_t)v;
            }
        }
        else if (kind == K_ARRAY || kind == K_MAP) {
            v = int_in(PyTuple_GET_ITEM(node, 1), 0, (long)n - 1, "item node");
            if (v < 0)
                goto out;
            nd->child = (int32_t)v;
        }
        else { /* K_FIXED, K_ENUM */
            v = int_in(PyTuple_GET_ITEM(node, 1), 0, INT32_MAX, "size");
            if (v < 0)
                goto out;
            nd->n = (int32_t)v;
        }
    }
    /* Nodes that never take a byte, found by growing the set until it stops changing
     * (a record that contains itself without a union or array in between never ends, so
     * it is not counted: skipping it stops at the depth limit). */
    for (int changed = 1; changed;) {
        changed = 0;
        for (i = 0; i < n; i++) {
            Node *nd = &pg->nodes[i];
            int zero;
            if (nd->zero)
                continue;
            if (nd->kind == K_NULL)
                zero = 1;
            else if (nd->kind == K_FIXED)
                zero = nd->n == 0;
            else if (nd->kind == K_RECORD) {
                zero = 1;
                for (int32_t k = 0; k < nd->n && zero; k++)
                    zero = pg->nodes[pg->kids[nd->child + k]].zero;
            }
            else
                zero = 0;
            if (zero) {
                nd->zero = 1;
                changed = 1;
            }
        }
    }
    rc = 0;
out:
    Py_DECREF(seq);
    return rc;
}

/* Whether every branch of node (or node itself, if not a union) has one of the kinds. */
static int
branches_are(const Program *pg, const Node *nd, int k1, int k2, int *has_k2, int32_t *k1_at)
{
    *has_k2 = 0;
    *k1_at = -1;
    if (nd->kind != K_UNION) {
        *has_k2 = nd->kind == k2;
        return nd->kind == k1 || nd->kind == k2;
    }
    for (int32_t b = 0; b < nd->n; b++) {
        int kind = pg->nodes[pg->kids[nd->child + b]].kind;
        if (kind == k1 && *k1_at < 0)
            *k1_at = b;
        else if (kind == k2)
            *has_k2 = 1;
        else
            return 0;
    }
    return 1;
}

static int
parse_ops(Program *pg, PyObject *ops)
{
    PyObject *seq = PySequence_Fast(ops, "ops must be a sequence of field ops");
    Py_ssize_t n, i;
    int rc = -1;

    if (seq == NULL)
        return -1;
    n = PySequence_Fast_GET_SIZE(seq);
    pg->ops = PyMem_Calloc((size_t)(n ? n : 1), sizeof(Op));
    pg->names = PyTuple_New(n);
    if (pg->ops == NULL || pg->names == NULL) {
        if (pg->ops == NULL)
            PyErr_NoMemory();
        goto out;
    }
    pg->nops = n;
    pg->growth = 0;
    for (i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i), *name;
        Op *op = &pg->ops[i];
        Py_ssize_t size;
        int action, has_other;
        int32_t null_at;
        long v;
        const Node *nd;

        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 3) {
            PyErr_Format(PyExc_TypeError, "op %zd must be a tuple (action, name, node, ...)", i);
            goto out;
        }
        size = PyTuple_GET_SIZE(item);
        action = lookup_name(PyTuple_GET_ITEM(item, 0), action_names, A_COUNT, "op action");
        if (action < 0)
            goto out;
        name = PyTuple_GET_ITEM(item, 1);
        if (!PyUnicode_Check(name)) {
            PyErr_Format(PyExc_TypeError, "op %zd: the field name must be a str", i);
            goto out;
        }
        Py_INCREF(name);
        PyTuple_SET_ITEM(pg->names, i, name);
        v = int_in(PyTuple_GET_ITEM(item, 2), 0, (long)pg->nnodes - 1, "op node");
        if (v < 0)
            goto out;
        op->action = (uint8_t)action;
        op->node = (int32_t)v;
        nd = &pg->nodes[v];
        if (size != (action == A_KEEP ? 5 : 3)) {
            PyErr_Format(PyExc_ValueError, "op %zd (%s) has %zd items, expected %d", i,
                         action_names[action], size, action == A_KEEP ? 5 : 3);
            goto out;
        }
        switch (action) {
        case A_KEEP:
            if ((v = int_in(PyTuple_GET_ITEM(item, 3), 0, MAX_KEEP, "head")) < 0)
                goto out;
            op->head = (int32_t)v;
            if ((v = int_in(PyTuple_GET_ITEM(item, 4), 0, MAX_KEEP, "tail")) < 0)
                goto out;
            op->tail = (int32_t)v;
            /* fall through */
        case A_REDACT:
            if (!branches_are(pg, nd, K_NULL, K_STRING, &has_other, &null_at) || !has_other)
                goto wrong_type;
            break;
        case A_MONTH:
        case A_YEAR:
            if (!branches_are(pg, nd, K_NULL, K_INT, &has_other, &null_at) || !has_other)
                goto wrong_type;
            break;
        case A_NULL:
            if (nd->kind == K_UNION) {
                null_at = -1;
                for (int32_t b = 0; b < nd->n && null_at < 0; b++) {
                    if (pg->nodes[pg->kids[nd->child + b]].kind == K_NULL)
                        null_at = b;
                }
                if (null_at < 0)
                    goto wrong_type;
                op->head = null_at; /* the branch to write */
            }
            else if (nd->kind != K_NULL) {
                goto wrong_type;
            }
            break;
        default:
            break;
        }
        pg->growth += action_growth[action];
        continue;
    wrong_type:
        PyErr_Format(PyExc_ValueError, "op %zd (%s) does not apply to field %R of type %s", i,
                     action_names[action], name, kind_names[nd->kind]);
        goto out;
    }
    rc = 0;
out:
    Py_DECREF(seq);
    return rc;
}

static PyObject *
program_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"types", "ops", NULL};
    PyObject *types, *ops;
    Program *pg;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:Program", kwlist, &types, &ops))
        return NULL;
    pg = (Program *)type->tp_alloc(type, 0);
    if (pg == NULL)
        return NULL;
    pg->vectorcall = program_vectorcall;
    if (parse_types(pg, types) < 0 || parse_ops(pg, ops) < 0) {
        Py_DECREF(pg);
        return NULL;
    }
    return (PyObject *)pg;
}

static void
program_dealloc(Program *pg)
{
    PyMem_Free(pg->nodes);
    PyMem_Free(pg->kids);
    PyMem_Free(pg->ops);
    Py_XDECREF(pg->names);
    Py_TYPE(pg)->tp_free((PyObject *)pg);
}

static PyObject *
program_repr(Program *pg)
{
    Py_ssize_t counts[A_COUNT] = {0};
    for (Py_ssize_t i = 0; i < pg->nops; i++)
        counts[pg->ops[i].action]++;
    return PyUnicode_FromFormat("<splice Program: %zd fields, %zd copied, %zd dropped, "
                                "%zd masked>", pg->nops, counts[A_COPY], counts[A_DROP],
                                pg->nops - counts[A_COPY] - counts[A_DROP]);
}

static PyObject *
program_max_output(PyObject *self, PyObject *arg)
{
    Py_ssize_t len = PyLong_AsSsize_t(arg);
    if (len == -1 && PyErr_Occurred())
        return NULL;
    if (len < 0) {
        PyErr_SetString(PyExc_ValueError, "a payload length is not negative");
        return NULL;
    }
    if (len > PY_SSIZE_T_MAX - ((Program *)self)->growth)
        return PyErr_NoMemory();
    return PyLong_FromSsize_t(len + ((Program *)self)->growth);
}

static PyMethodDef program_methods[] = {
    {"apply", program_apply, METH_O,
     "apply(payload, /)\n--\n\nThe view of one Avro record (bytes or a buffer) as bytes."},
    {"max_output", program_max_output, METH_O,
     "max_output(length, /)\n--\n\nThe most bytes the view of a payload of `length` "
     "bytes can take."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef program_members[] = {
    {"fields", T_OBJECT_EX, offsetof(Program, names), READONLY,
     "The writer's top-level field names, one per op."},
    {"growth", T_PYSSIZET, offsetof(Program, growth), READONLY,
     "The most bytes a view can exceed its payload by."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ProgramType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hub.policy._splice.Program",
    .tp_basicsize = sizeof(Program),
    .tp_dealloc = (destructor)program_dealloc,
    .tp_vectorcall_offset = offsetof(Program, vectorcall),
    .tp_repr = (reprfunc)program_repr,
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Program(types, ops)\n--\n\n"
              "A subscriber view compiled to run on Avro binary records; call it with a "
              "payload.",
    .tp_methods = program_methods,
    .tp_members = program_members,
    .tp_new = program_new,
};

/* ---------------------------------------------------------------------------------- */
/* The C API. */

static Py_ssize_t
capi_max_output(PyObject *program, Py_ssize_t len)
{
    return len + ((Program *)program)->growth;
}

static Py_ssize_t
capi_apply_into(PyObject *program, const char *in, Py_ssize_t len, char *out)
{
    Program *pg = (Program *)program;
    Fault f = {0};
    Py_ssize_t op_index = -1;
    Py_ssize_t n = splice(pg, (const uint8_t *)in, len, (uint8_t *)out, &f, &op_index);
    if (n < 0)
        raise_fault(pg, op_index, &f, (const uint8_t *)in, len);
    return n;
}

static HubSpliceAPI capi = {
    1,
    &ProgramType,
    capi_max_output,
    capi_apply_into,
};

/* ---------------------------------------------------------------------------------- */

static struct PyModuleDef splice_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hub.policy._splice",
    .m_doc = "Subscriber views applied to Avro binary records without decoding them.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__splice(void)
{
    PyObject *m, *capsule;

    if (PyType_Ready(&ProgramType) < 0)
        return NULL;
    m = PyModule_Create(&splice_module);
    if (m == NULL)
        return NULL;
    SpliceError = PyErr_NewExceptionWithDoc(
        "hub.policy._splice.SpliceError",
        "An Avro payload that does not decode with the writer schema of a splice program.",
        PyExc_ValueError, NULL);
    if (SpliceError == NULL)
        goto fail;
    Py_INCREF(SpliceError); /* one reference for the module, one kept here */
    if (PyModule_AddObject(m, "SpliceError", SpliceError) < 0) {
        Py_DECREF(SpliceError);
        goto fail;
    }
    Py_INCREF(&ProgramType);
    if (PyModule_AddObject(m, "Program", (PyObject *)&ProgramType) < 0) {
        Py_DECREF(&ProgramType);
        goto fail;
    }
    capsule = PyCapsule_New(&capi, "hub.policy._splice._C_API", NULL);
    if (capsule == NULL)
        goto fail;
    if (PyModule_AddObject(m, "_C_API", capsule) < 0) {
        Py_DECREF(capsule);
        goto fail;
    }
    if (PyModule_AddIntConstant(m, "MAX_DEPTH", MAX_DEPTH) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
