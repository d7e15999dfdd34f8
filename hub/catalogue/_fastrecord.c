/*
 * hub.catalogue._fastrecord: the admission of a record into a resource's source topic
 * (catalogue quality rules, then Confluent-framed Avro) in one compiled step.
 *
 * A Program is compiled once per (writer schema, catalogue entry) by
 * hub/catalogue/admission.py. For each record (a dict of JSON-typed values, as sources
 * produce them) it either proves that the record passes every quality rule and encodes
 * it, or it gives up. It never decides a rejection itself: whatever it is not sure about
 * (a rule that fails, a value of an unexpected type, a form it does not parse) goes to
 * the Python path, which gives the exact reason and detail. So the native path returns
 * results byte-identical to the Python path (check_record, AvroCodec.from_json, encode,
 * frame) by construction, as long as it only accepts what the Python path accepts and
 * encodes it the same way.
 *
 * Program(fields, schema_id, key_index, region_index, fallback)
 *
 *   fields: one tuple per top-level field of the writer record, in writer order:
 *     (name, required, encoding, union, missing_null, checks)
 *
 *     required      catalogue "required": None and blank strings fail
 *     encoding      ("string",) ("int",) ("long",) ("float",) ("double",) ("boolean",)
 *                   ("bytes",) ("date",) ("timestamp-millis",) ("timestamp-micros",)
 *                   ("decimal", precision, scale) ("enum", {symbol: index})
 *     union         None, or (null_branch, value_branch): a union of null and the
 *                   encoding's type
 *     missing_null  an absent key is written as the null branch (a null default)
 *     checks        a tuple of:
 *                     ("max_length", n) ("id_card",) ("uscc",) ("mobile",) ("region",)
 *                     ("pattern", fullmatch) ("allowed", frozenset)
 *                     ("range", low, high)       bounds None or (negative, coefficient,
 *                                                exponent, as_double) with a 64-bit
 *                                                coefficient; as_double is the bound as
 *                                                a float when it is one exactly, else None
 *                     ("dates", not_future, not_before_days or None, timestamp)
 *
 *   key_index, region_index: the fields whose values become the message key and the
 *   region header. fallback(record, regions) is the Python path.
 *
 * program.fast(record, regions) -> (value, key, region) or None (not sure)
 * program.admit(record, regions) -> fast, else fallback(record, regions)
 * program.admit_batch(records, regions) -> [admit(r) for r in records], None for None
 *
 * value is the framed Avro bytes; key and region are the field values as str (the
 * producer sends them UTF-8 encoded).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__)
#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define LIKELY(x) (x)
#define UNLIKELY(x) (x)
#endif

#define MAX_FIELDS 1024
#define STACK_FIELDS 64
#define STACK_BUF 1024

typedef unsigned __int128 u128;

/* The dates Python can represent: 0001-01-01 .. 9999-12-31, in days since 1970-01-01,
 * and the same span in milliseconds. */
#define MIN_DAYS (-719162LL)
#define MAX_DAYS 2932896LL
#define MIN_MS (-62135596800000LL)
#define MAX_MS 253402300799999LL
#define CST_OFFSET_S (8 * 3600)
#define CLOCK_SKEW_MS (5 * 60 * 1000)
#define SKEW_MARGIN_MS 1000

/* ---------------------------------------------------------------------------------- */
/* The compiled program. */

enum encoding {
    EN_STRING, EN_INT, EN_LONG, EN_FLOAT, EN_DOUBLE, EN_BOOLEAN, EN_BYTES, EN_DATE,
    EN_TIMESTAMP_MILLIS, EN_TIMESTAMP_MICROS, EN_DECIMAL, EN_ENUM, EN_COUNT
};

static const char *const encoding_names[EN_COUNT] = {
    "string", "int", "long", "float", "double", "boolean", "bytes", "date",
    "timestamp-millis", "timestamp-micros", "decimal", "enum",
};

enum check_kind {
    CK_MAX_LENGTH, CK_ID_CARD, CK_USCC, CK_MOBILE, CK_REGION, CK_PATTERN, CK_ALLOWED,
    CK_RANGE, CK_DATES, CK_COUNT
};

static const char *const check_names[CK_COUNT] = {
    "max_length", "id_card", "uscc", "mobile", "region", "pattern", "allowed", "range",
    "dates",
};

typedef struct {
    int negative;
    u128 coefficient;
    int32_t exponent;
    int exact;      /* the bound is a double exactly: floats compare with `as_double` */
    double as_double;
} Dec;

typedef struct {
    uint8_t kind;
    uint8_t has_low, has_high;
    uint8_t not_future, has_not_before, timestamp;
    Py_ssize_t max_length;
    int64_t not_before_days;
    PyObject *object; /* pattern: fullmatch callable; allowed: frozenset */
    Dec low, high;
} Check;

typedef struct {
    PyObject *name;
    uint8_t required;
    uint8_t encoding;
    uint8_t in_union;
    uint8_t missing_null;
    int32_t precision, scale; /* decimal */
    int32_t null_branch, value_branch;
    PyObject *symbols; /* enum: dict symbol -> index */
    Check *checks;
    Py_ssize_t nchecks;
} Field;

typedef struct {
    PyObject_HEAD
    Field *fields;
    Py_ssize_t nfields;
    Py_ssize_t key_index;
    Py_ssize_t region_index;
    uint32_t schema_id;
    PyObject *fallback;
} Program;

static PyTypeObject ProgramType;

/* ---------------------------------------------------------------------------------- */
/* An output buffer: on the stack for ordinary records, on the heap beyond. */

typedef struct {
    char *data;
    size_t len;
    size_t cap;
    int heap;
    char stack[STACK_BUF];
} Buf;

static void
buf_init(Buf *b)
{
    b->data = b->stack;
    b->len = 0;
    b->cap = STACK_BUF;
    b->heap = 0;
}

static void
buf_free(Buf *b)
{
    if (b->heap)
        PyMem_Free(b->data);
}

static int
buf_reserve(Buf *b, size_t more)
{
    size_t cap;
    char *grown;

    if (LIKELY(b->len + more <= b->cap))
        return 0;
    if (more > (size_t)PY_SSIZE_T_MAX - b->len)
        return -1;
    cap = b->cap * 2;
    while (cap < b->len + more)
        cap *= 2;
    if (b->heap) {
        grown = PyMem_Realloc(b->data, cap);
    } else {
        grown = PyMem_Malloc(cap);
        if (grown != NULL)
            memcpy(grown, b->data, b->len);
    }
    if (grown == NULL)
        return -1;
    b->data = grown;
    b->cap = cap;
    b->heap = 1;
    return 0;
}

static int
put_bytes(Buf *b, const char *p, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* Avro int and long: zig-zag, then a little-endian base-128 varint. */
static int
put_long(Buf *b, int64_t v)
{
    uint64_t n = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);

    if (buf_reserve(b, 10) < 0)
        return -1;
    while (n & ~(uint64_t)0x7F) {
        b->data[b->len++] = (char)((n & 0x7F) | 0x80);
        n >>= 7;
    }
    b->data[b->len++] = (char)n;
    return 0;
}

static int
put_le(Buf *b, uint64_t bits, int size)
{
    if (buf_reserve(b, (size_t)size) < 0)
        return -1;
    for (int i = 0; i < size; i++)
        b->data[b->len++] = (char)((bits >> (8 * i)) & 0xFF);
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Text forms the native path understands (anything else goes to the Python path). */

static inline int
is_digit(Py_UCS4 c)
{
    return c >= '0' && c <= '9';
}

/* Days since 1970-01-01 of a proleptic Gregorian date (valid input only). */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int
days_in_month(int64_t y, int64_t m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* "YYYY-MM-DD" exactly (what date.fromisoformat reads the same way): 0 and the day
 * number, or -1. */
static int
parse_iso_date(PyObject *s, int64_t *days)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind;
    const void *data;
    int64_t y = 0, m = 0, d = 0;

    if (n != 10)
        return -1;
    kind = PyUnicode_KIND(s);
    data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < 10; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (i == 4 || i == 7) {
            if (c != '-')
                return -1;
        } else if (!is_digit(c)) {
            return -1;
        } else if (i < 4) {
            y = y * 10 + (c - '0');
        } else if (i < 7) {
            m = m * 10 + (c - '0');
        } else {
            d = d * 10 + (c - '0');
        }
    }
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return -1;
    *days = days_from_civil(y, m, d);
    return 0;
}

/* Two ASCII digits at i, or -1. */
static int
two_digits(int kind, const void *data, Py_ssize_t i)
{
    Py_UCS4 a = PyUnicode_READ(kind, data, i), b = PyUnicode_READ(kind, data, i + 1);
    if (!is_digit(a) || !is_digit(b))
        return -1;
    return (int)(a - '0') * 10 + (int)(b - '0');
}

/* "YYYY-MM-DDTHH:MM:SS[.fff|.ffffff](Z|+HH:MM|-HH:MM)": a moment with its offset, read
 * the way datetime.fromisoformat reads it, as microseconds since 1970-01-01 UTC. Text
 * without an offset (a local time) is not read: fastavro converts those by the host's
 * time zone. 0 on success, -1 otherwise. */
static int
parse_iso_timestamp(PyObject *s, int64_t *micros)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s), i;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    int64_t days, fraction = 0;
    int hour, minute, second, sign = 0, off_hour = 0, off_minute = 0;
    PyObject *date;
    Py_UCS4 c;

    if (n < 20 || n > 32 || PyUnicode_READ(kind, data, 10) != 'T')
        return -1;
    date = PyUnicode_Substring(s, 0, 10);
    if (date == NULL) {
        PyErr_Clear();
        return -1;
    }
    i = parse_iso_date(date, &days);
    Py_DECREF(date);
    if (i < 0)
        return -1;
    if (PyUnicode_READ(kind, data, 13) != ':' || PyUnicode_READ(kind, data, 16) != ':')
        return -1;
    hour = two_digits(kind, data, 11);
    minute = two_digits(kind, data, 14);
    second = two_digits(kind, data, 17);
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59)
        return -1;
    i = 19;
    if (PyUnicode_READ(kind, data, i) == '.') {
        Py_ssize_t start = ++i;
        while (i < n && is_digit(PyUnicode_READ(kind, data, i))) {
            fraction = fraction * 10 + (PyUnicode_READ(kind, data, i) - '0');
            i++;
        }
        if (i - start == 3)
            fraction *= 1000;
        else if (i - start != 6)
            return -1;
    }
    if (i >= n)
        return -1;
    c = PyUnicode_READ(kind, data, i);
    if (c == 'Z') {
        if (i + 1 != n)
            return -1;
    } else if (c == '+' || c == '-') {
        if (i + 6 != n || PyUnicode_READ(kind, data, i + 3) != ':')
            return -1;
        off_hour = two_digits(kind, data, i + 1);
        off_minute = two_digits(kind, data, i + 4);
        if (off_hour < 0 || off_hour > 23 || off_minute < 0 || off_minute > 59)
            return -1;
        sign = c == '+' ? 1 : -1;
    } else {
        return -1;
    }
    *micros = ((days * 86400 + hour * 3600 + minute * 60 + second) -
               sign * (off_hour * 3600 + off_minute * 60)) * 1000000LL + fraction;
    return 0;
}

/* A decimal as Decimal(text) reads it, for the plain form [+-]digits[.digits] only.
 * `digits` is the length of the coefficient as Decimal.as_tuple() gives it (leading
 * zeros dropped, at least one). 0 on success, -1 otherwise (other forms, or more digits
 * than 128 bits hold). */
static int
parse_decimal(PyObject *s, Dec *out, int32_t *digits)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s), i = 0, point = -1, count = 0;
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    u128 coefficient = 0;
    int32_t significant = 0;
    const u128 limit = (~(u128)0) / 10 - 9;

    out->negative = 0;
    if (n == 0 || n > 60)
        return -1;
    if (PyUnicode_READ(kind, data, 0) == '-' || PyUnicode_READ(kind, data, 0) == '+') {
        out->negative = PyUnicode_READ(kind, data, 0) == '-';
        i = 1;
    }
    for (; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == '.') {
            if (point >= 0 || count == 0)
                return -1;
            point = count;
            continue;
        }
        if (!is_digit(c))
            return -1;
        if (coefficient > limit)
            return -1;
        coefficient = coefficient * 10 + (c - '0');
        if (coefficient != 0)
            significant++;
        count++;
    }
    if (count == 0 || (point >= 0 && point == count))
        return -1;
    out->coefficient = coefficient;
    out->exponent = point >= 0 ? -(int32_t)(count - point) : 0;
    *digits = significant > 0 ? significant : 1;
    return 0;
}

static int
u128_mul10(u128 *v, int32_t times)
{
    for (int32_t i = 0; i < times; i++) {
        if (*v > (~(u128)0) / 10)
            return -1;
        *v *= 10;
    }
    return 0;
}

/* -1, 0, 1 for a < b, a == b, a > b; 2 when it does not fit 128 bits. */
static int
dec_compare(const Dec *a, const Dec *b)
{
    int a_neg = a->negative && a->coefficient != 0;
    int b_neg = b->negative && b->coefficient != 0;
    u128 ma = a->coefficient, mb = b->coefficient;
    int32_t e = a->exponent < b->exponent ? a->exponent : b->exponent;
    int magnitude;

    if (a_neg != b_neg)
        return a_neg ? -1 : 1;
    if (a->exponent - e > 40 || b->exponent - e > 40)
        return 2;
    if (u128_mul10(&ma, a->exponent - e) < 0 || u128_mul10(&mb, b->exponent - e) < 0)
        return 2;
    magnitude = ma < mb ? -1 : (ma > mb ? 1 : 0);
    return a_neg ? -magnitude : magnitude;
}

/* ---------------------------------------------------------------------------------- */
/* Quality rules: 1 when the value certainly passes, 0 when not sure. */

static int
check_region_code(PyObject *s)
{
    int kind;
    const void *data;
    static const int ends[5] = {2, 4, 6, 9, 12};
    int start = 0, seen_zero = 0;

    if (!PyUnicode_CheckExact(s) || PyUnicode_GET_LENGTH(s) != 12)
        return 0;
    kind = PyUnicode_KIND(s);
    data = PyUnicode_DATA(s);
    for (Py_ssize_t i = 0; i < 12; i++)
        if (!is_digit(PyUnicode_READ(kind, data, i)))
            return 0;
    if (PyUnicode_READ(kind, data, 0) == '0' && PyUnicode_READ(kind, data, 1) == '0')
        return 0;
    for (int level = 0; level < 5; level++) {
        int zero = 1;
        for (int i = start; i < ends[level]; i++)
            if (PyUnicode_READ(kind, data, i) != '0')
                zero = 0;
        if (zero)
            seen_zero = 1;
        else if (seen_zero)
            return 0;
        start = ends[level];
    }
    return 1;
}

static int
check_id_card(PyObject *s)
{
    static const int weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    static const char check_chars[] = "10X98765432";
    int kind;
    const void *data;
    int total = 0;
    Py_UCS4 last;

    if (PyUnicode_GET_LENGTH(s) != 18)
        return 0;
    kind = PyUnicode_KIND(s);
    data = PyUnicode_DATA(s);
    for (int i = 0; i < 17; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (!is_digit(c))
            return 0;
        total += (int)(c - '0') * weights[i];
    }
    last = PyUnicode_READ(kind, data, 17);
    if (last == 'x')
        last = 'X';
    return last == (Py_UCS4)check_chars[total % 11];
}

static int
uscc_value(Py_UCS4 c)
{
    static const char alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    for (int i = 0; i < 31; i++)
        if (c == (Py_UCS4)alphabet[i])
            return i;
    return -1;
}

static int
check_uscc(PyObject *s)
{
    static const int weights[17] = {1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24,
                                    10, 30, 28};
    static const char alphabet[] = "0123456789ABCDEFGHJKLMNPQRTUWXY";
    int kind;
    const void *data;
    int total = 0, v;

    if (PyUnicode_GET_LENGTH(s) != 18)
        return 0;
    kind = PyUnicode_KIND(s);
    data = PyUnicode_DATA(s);
    for (int i = 0; i < 18; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        v = uscc_value(c);
        if (v < 0)
            return 0;
        if (i >= 2 && i < 8 && !is_digit(c))
            return 0;
        if (i < 17)
            total += v * weights[i];
    }
    return PyUnicode_READ(kind, data, 17) == (Py_UCS4)alphabet[(31 - total % 31) % 31];
}

static int
check_mobile(PyObject *s)
{
    int kind;
    const void *data;
    Py_UCS4 c;

    if (PyUnicode_GET_LENGTH(s) != 11)
        return 0;
    kind = PyUnicode_KIND(s);
    data = PyUnicode_DATA(s);
    if (PyUnicode_READ(kind, data, 0) != '1')
        return 0;
    c = PyUnicode_READ(kind, data, 1);
    if (c < '3' || c > '9')
        return 0;
    for (int i = 2; i < 11; i++)
        if (!is_digit(PyUnicode_READ(kind, data, i)))
            return 0;
    return 1;
}

static int
check_range(const Check *ck, PyObject *v)
{
    Dec value;
    int32_t digits;
    int cmp;

    if (PyFloat_CheckExact(v)) {
        /* Python compares a float with a Decimal bound exactly: so do doubles, when the
         * bound is a double exactly. */
        double x = PyFloat_AS_DOUBLE(v);
        if (!isfinite(x))
            return 0;
        if (ck->has_low && (!ck->low.exact || x < ck->low.as_double))
            return 0;
        if (ck->has_high && (!ck->high.exact || x > ck->high.as_double))
            return 0;
        return 1;
    }
    if (PyLong_CheckExact(v)) {
        int overflow = 0;
        long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
        if (overflow || (n == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return 0;
        }
        value.negative = n < 0;
        value.coefficient = n < 0 ? (u128)(-(n + 1)) + 1 : (u128)n;
        value.exponent = 0;
    } else if (PyUnicode_CheckExact(v)) {
        if (parse_decimal(v, &value, &digits) < 0)
            return 0;
    } else {
        return 0;
    }
    if (ck->has_low) {
        cmp = dec_compare(&value, &ck->low);
        if (cmp == 2 || cmp < 0)
            return 0;
    }
    if (ck->has_high) {
        cmp = dec_compare(&value, &ck->high);
        if (cmp == 2 || cmp > 0)
            return 0;
    }
    return 1;
}

static int64_t
floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int
check_dates(const Check *ck, PyObject *v)
{
    int64_t days;
    struct timespec now;

    if (clock_gettime(CLOCK_REALTIME, &now) != 0)
        return 0;
    if (ck->timestamp) {
        /* Integers are epoch milliseconds, text an ISO moment with its offset. */
        int64_t us;
        int64_t now_us = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
        if (PyLong_CheckExact(v)) {
            int overflow = 0;
            long long ms = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow || (ms == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                return 0;
            }
            if (ms < MIN_MS || ms > MAX_MS)
                return 0;
            us = ms * 1000;
        } else if (PyUnicode_CheckExact(v)) {
            if (parse_iso_timestamp(v, &us) < 0)
                return 0;
        } else {
            return 0;
        }
        if (ck->not_future && us > now_us + (CLOCK_SKEW_MS - SKEW_MARGIN_MS) * 1000LL)
            return 0;
        days = floor_div(us / 1000000 - (us % 1000000 < 0) + CST_OFFSET_S, 86400);
        if (days < MIN_DAYS || days > MAX_DAYS)
            return 0; /* its date in China Standard Time is past what Python represents */
    } else {
        int64_t today = floor_div((int64_t)now.tv_sec + CST_OFFSET_S, 86400);
        if (PyUnicode_CheckExact(v)) {
            if (parse_iso_date(v, &days) < 0)
                return 0;
        } else if (PyLong_CheckExact(v)) {
            int overflow = 0;
            long long n = PyLong_AsLongLongAndOverflow(v, &overflow);
            if (overflow || (n == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                return 0;
            }
            if (n < MIN_DAYS || n > MAX_DAYS)
                return 0;
            days = n;
        } else {
            return 0;
        }
        if (ck->not_future && days > today)
            return 0;
    }
    if (ck->has_not_before && days < ck->not_before_days)
        return 0;
    return 1;
}

static int
run_check(const Check *ck, PyObject *v)
{
    PyObject *r;
    int ok;

    switch (ck->kind) {
    case CK_MAX_LENGTH:
        return PyUnicode_CheckExact(v) && PyUnicode_GET_LENGTH(v) <= ck->max_length;
    case CK_ID_CARD:
        return PyUnicode_CheckExact(v) && check_id_card(v);
    case CK_USCC:
        return PyUnicode_CheckExact(v) && check_uscc(v);
    case CK_MOBILE:
        return PyUnicode_CheckExact(v) && check_mobile(v);
    case CK_REGION:
        return check_region_code(v);
    case CK_PATTERN:
        if (!PyUnicode_CheckExact(v))
            return 0;
        r = PyObject_CallOneArg(ck->object, v);
        if (r == NULL) {
            PyErr_Clear();
            return 0;
        }
        ok = r != Py_None;
        Py_DECREF(r);
        return ok;
    case CK_ALLOWED:
        if (!PyUnicode_CheckExact(v))
            return 0;
        ok = PySet_Contains(ck->object, v);
        if (ok < 0) {
            PyErr_Clear();
            return 0;
        }
        return ok;
    case CK_RANGE:
        return check_range(ck, v);
    case CK_DATES:
        return check_dates(ck, v);
    }
    return 0;
}

/* A value that counts as missing: None, or a string of white space only. */
static int
is_blank(PyObject *v)
{
    Py_ssize_t n;
    int kind;
    const void *data;

    if (v == NULL || v == Py_None)
        return 1;
    if (!PyUnicode_CheckExact(v))
        return PyUnicode_Check(v); /* a str subclass: let the Python path judge it */
    n = PyUnicode_GET_LENGTH(v);
    kind = PyUnicode_KIND(v);
    data = PyUnicode_DATA(v);
    for (Py_ssize_t i = 0; i < n; i++)
        if (!Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i)))
            return 0;
    return 1;
}

/* ---------------------------------------------------------------------------------- */
/* Encoding one value: 0 written, -1 not sure (nothing raised). */

static int
put_string(Buf *b, PyObject *v)
{
    Py_ssize_t n;
    const char *utf8;

    if (!PyUnicode_CheckExact(v))
        return -1;
    utf8 = PyUnicode_AsUTF8AndSize(v, &n);
    if (utf8 == NULL) {
        PyErr_Clear();
        return -1;
    }
    if (put_long(b, n) < 0 || put_bytes(b, utf8, (size_t)n) < 0)
        return -1;
    return 0;
}

static int
long_value(PyObject *v, int64_t low, int64_t high, int64_t *out)
{
    int overflow = 0;
    long long n;

    if (!PyLong_CheckExact(v))
        return -1;
    n = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || (n == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return -1;
    }
    if (n < low || n > high)
        return -1;
    *out = n;
    return 0;
}

/* The two's-complement big-endian bytes fastavro writes for a bytes decimal:
 * (bit_length + 8) // 8 bytes of the unscaled magnitude, then negated. */
static int
put_decimal(Buf *b, const Field *f, PyObject *v)
{
    Dec d;
    int32_t digits, delta;
    u128 unscaled;
    int bits = 0, size;
    unsigned char out[20];

    if (PyLong_CheckExact(v)) {
        /* Decimal(int): the integer's digits, exponent 0. */
        int64_t n;
        if (long_value(v, INT64_MIN + 1, INT64_MAX, &n) < 0)
            return -1;
        d.negative = n < 0;
        d.coefficient = (u128)(n < 0 ? -n : n);
        d.exponent = 0;
        digits = 1;
        for (u128 x = d.coefficient; x >= 10; x /= 10)
            digits++;
    } else if (!PyUnicode_CheckExact(v) || parse_decimal(v, &d, &digits) < 0) {
        return -1;
    }
    if (digits > f->precision)
        return -1;
    delta = d.exponent + f->scale;
    if (delta < 0)
        return -1;
    unscaled = d.coefficient;
    if (u128_mul10(&unscaled, delta) < 0)
        return -1;
    if (unscaled >> 126)
        return -1;
    for (u128 x = unscaled; x != 0; x >>= 1)
        bits++;
    size = (bits + 8) / 8;
    if (d.negative)
        unscaled = ~unscaled + 1;
    for (int i = size - 1; i >= 0; i--) {
        out[i] = (unsigned char)(unscaled & 0xFF);
        unscaled >>= 8;
    }
    if (put_long(b, size) < 0 || put_bytes(b, (const char *)out, (size_t)size) < 0)
        return -1;
    return 0;
}

static int
put_value(Buf *b, const Field *f, PyObject *v)
{
    int64_t n;
    Py_ssize_t size;
    char *bytes;

    switch (f->encoding) {
    case EN_STRING:
        return put_string(b, v);
    case EN_INT:
        /* A plain int field takes any 64-bit value (fastavro writes it as a long); in
         * a union the branch only matches 32-bit values. */
        if (f->in_union) {
            if (long_value(v, INT32_MIN, INT32_MAX, &n) < 0)
                return -1;
        } else if (long_value(v, INT64_MIN, INT64_MAX, &n) < 0) {
            return -1;
        }
        return put_long(b, n);
    case EN_LONG:
        if (long_value(v, INT64_MIN, INT64_MAX, &n) < 0)
            return -1;
        return put_long(b, n);
    case EN_TIMESTAMP_MILLIS:
    case EN_TIMESTAMP_MICROS:
        /* Integers as they are; ISO text with an offset as fastavro converts the
         * datetime AvroCodec.from_json makes of it. */
        if (PyUnicode_CheckExact(v)) {
            if (parse_iso_timestamp(v, &n) < 0)
                return -1;
            if (f->encoding == EN_TIMESTAMP_MILLIS)
                n = floor_div(n, 1000);
            return put_long(b, n);
        }
        if (long_value(v, INT64_MIN, INT64_MAX, &n) < 0)
            return -1;
        return put_long(b, n);
    case EN_FLOAT: {
        union { float f; uint32_t n; } bits;
        if (!PyFloat_CheckExact(v))
            return -1;
        bits.f = (float)PyFloat_AS_DOUBLE(v);
        return put_le(b, bits.n, 4);
    }
    case EN_DOUBLE: {
        union { double d; uint64_t n; } bits;
        if (!PyFloat_CheckExact(v))
            return -1;
        bits.d = PyFloat_AS_DOUBLE(v);
        return put_le(b, bits.n, 8);
    }
    case EN_BOOLEAN:
        if (!PyBool_Check(v))
            return -1;
        return put_le(b, v == Py_True ? 1 : 0, 1);
    case EN_BYTES:
        if (!PyBytes_CheckExact(v))
            return -1;
        size = PyBytes_GET_SIZE(v);
        bytes = PyBytes_AS_STRING(v);
        if (put_long(b, size) < 0 || put_bytes(b, bytes, (size_t)size) < 0)
            return -1;
        return 0;
    case EN_DATE:
        if (PyUnicode_CheckExact(v)) {
            if (parse_iso_date(v, &n) < 0)
                return -1;
        } else if (long_value(v, INT64_MIN, INT64_MAX, &n) < 0) {
            return -1;
        }
        return put_long(b, n);
    case EN_DECIMAL:
        return put_decimal(b, f, v);
    case EN_ENUM: {
        PyObject *index;
        if (!PyUnicode_CheckExact(v))
            return -1;
        index = PyDict_GetItemWithError(f->symbols, v);
        if (index == NULL) {
            PyErr_Clear();
            return -1;
        }
        return put_long(b, PyLong_AsLongLong(index));
    }
    }
    return -1;
}

static int
put_field(Buf *b, const Field *f, PyObject *v)
{
    if (v == NULL) {
        /* An absent key: the null default, if the field has one. */
        if (!f->missing_null)
            return -1;
        return put_long(b, f->null_branch);
    }
    if (f->in_union) {
        if (v == Py_None)
            return put_long(b, f->null_branch);
        if (put_long(b, f->value_branch) < 0)
            return -1;
    }
    return put_value(b, f, v);
}

/* ---------------------------------------------------------------------------------- */
/* One record. Returns a new (value, key, region) tuple, Py_None (new reference) when not
 * sure, or NULL with an exception (out of memory). */

static PyObject *
fast_record(Program *pg, PyObject *record, PyObject *regions)
{
    PyObject *stack_values[STACK_FIELDS];
    PyObject **values = stack_values;
    Py_ssize_t nf = pg->nfields, matched = 0, i, j;
    PyObject *result = NULL, *region, *key = NULL, *framed;
    Buf b;
    int ok = 0;

    if (!PyDict_CheckExact(record))
        Py_RETURN_NONE;
    if (nf > STACK_FIELDS) {
        values = PyMem_Malloc(sizeof(PyObject *) * (size_t)nf);
        if (values == NULL)
            return PyErr_NoMemory();
    }
    for (i = 0; i < nf; i++) {
        PyObject *v = PyDict_GetItemWithError(record, pg->fields[i].name);
        if (v == NULL && PyErr_Occurred()) {
            PyErr_Clear();
            for (j = 0; j < i; j++)
                Py_XDECREF(values[j]);
            goto done;
        }
        Py_XINCREF(v);
        values[i] = v;
        matched += v != NULL;
    }
    buf_init(&b);
    /* More keys than fields: the schema refuses them (strict encoding). */
    if (matched != PyDict_GET_SIZE(record))
        goto release;
    for (i = 0; i < nf; i++)
        if (pg->fields[i].required && is_blank(values[i]))
            goto release;
    region = values[pg->region_index];
    if (!check_region_code(region))
        goto release;
    if (regions != Py_None) {
        int known = PySequence_Contains(regions, region);
        if (known <= 0) {
            PyErr_Clear();
            goto release;
        }
    }
    for (i = 0; i < nf; i++) {
        const Field *f = &pg->fields[i];
        PyObject *v = values[i];
        if (f->nchecks == 0 || v == NULL || v == Py_None)
            continue;
        if (PyUnicode_Check(v) && PyUnicode_GET_LENGTH(v) == 0)
            continue;
        for (j = 0; j < f->nchecks; j++)
            if (!run_check(&f->checks[j], v))
                goto release;
    }
    if (buf_reserve(&b, 5) < 0)
        goto release;
    b.data[0] = 0;
    b.data[1] = (char)((pg->schema_id >> 24) & 0xFF);
    b.data[2] = (char)((pg->schema_id >> 16) & 0xFF);
    b.data[3] = (char)((pg->schema_id >> 8) & 0xFF);
    b.data[4] = (char)(pg->schema_id & 0xFF);
    b.len = 5;
    for (i = 0; i < nf; i++)
        if (put_field(&b, &pg->fields[i], values[i]) < 0)
            goto release;
    {
        PyObject *k = values[pg->key_index];
        if (PyUnicode_CheckExact(k)) {
            if (PyUnicode_AsUTF8AndSize(k, NULL) == NULL) {
                PyErr_Clear();
                goto release;
            }
            Py_INCREF(k);
            key = k;
        } else if (PyLong_CheckExact(k)) {
            key = PyObject_Str(k);
            if (key == NULL) {
                PyErr_Clear();
                goto release;
            }
        } else {
            goto release;
        }
    }
    framed = PyBytes_FromStringAndSize(b.data, (Py_ssize_t)b.len);
    if (framed == NULL) {
        Py_DECREF(key);
        goto release;
    }
    result = PyTuple_New(3);
    if (result == NULL) {
        Py_DECREF(framed);
        Py_DECREF(key);
        goto release;
    }
    Py_INCREF(region);
    PyTuple_SET_ITEM(result, 0, framed);
    PyTuple_SET_ITEM(result, 1, key);
    PyTuple_SET_ITEM(result, 2, region);
    ok = 1;
release:
    buf_free(&b);
    for (i = 0; i < nf; i++)
        Py_XDECREF(values[i]);
done:
    if (values != stack_values)
        PyMem_Free(values);
    if (!ok) {
        if (PyErr_Occurred() && PyErr_ExceptionMatches(PyExc_MemoryError))
            return NULL;
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return result;
}

static PyObject *
admit_one(Program *pg, PyObject *record, PyObject *regions)
{
    PyObject *r = fast_record(pg, record, regions);
    if (r != Py_None)
        return r;
    Py_DECREF(r);
    return PyObject_CallFunctionObjArgs(pg->fallback, record, regions, NULL);
}

/* ---------------------------------------------------------------------------------- */
/* Python methods. */

static PyObject *
Program_fast(Program *pg, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "fast(record, regions) takes 2 arguments");
        return NULL;
    }
    return fast_record(pg, args[0], args[1]);
}

static PyObject *
Program_admit(Program *pg, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "admit(record, regions) takes 2 arguments");
        return NULL;
    }
    return admit_one(pg, args[0], args[1]);
}

static PyObject *
Program_admit_batch(Program *pg, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *records, *regions, *seq, *out;
    Py_ssize_t n;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "admit_batch(records, regions) takes 2 arguments");
        return NULL;
    }
    records = args[0];
    regions = args[1];
    seq = PySequence_Fast(records, "records must be a sequence");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    out = PyList_New(n);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *record = PySequence_Fast_GET_ITEM(seq, i), *r;
        if (record == Py_None) {
            Py_INCREF(Py_None);
            r = Py_None;
        } else {
            /* The fallback may run Python code: keep the record alive meanwhile. */
            Py_INCREF(record);
            r = admit_one(pg, record, regions);
            Py_DECREF(record);
            if (r == NULL) {
                Py_DECREF(out);
                Py_DECREF(seq);
                return NULL;
            }
        }
        PyList_SET_ITEM(out, i, r);
    }
    Py_DECREF(seq);
    return out;
}

/* ---------------------------------------------------------------------------------- */
/* Compiling: the field tuples from hub/catalogue/admission.py. */

static int
kind_index(PyObject *name, const char *const *names, int count, const char *what)
{
    const char *text = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    if (text == NULL) {
        PyErr_Format(PyExc_ValueError, "%s kind must be a str", what);
        return -1;
    }
    for (int i = 0; i < count; i++)
        if (strcmp(text, names[i]) == 0)
            return i;
    PyErr_Format(PyExc_ValueError, "unknown %s %R", what, name);
    return -1;
}

static int
parse_bound(PyObject *bound, Dec *out, uint8_t *has)
{
    int negative;
    unsigned long long coefficient;
    int exponent;
    PyObject *as_double;

    *has = 0;
    if (bound == Py_None)
        return 0;
    if (!PyArg_ParseTuple(bound, "pKiO;a bound is (negative, coefficient, exponent, as_double)",
                          &negative, &coefficient, &exponent, &as_double))
        return -1;
    out->exact = 0;
    if (as_double != Py_None) {
        if (!PyFloat_CheckExact(as_double)) {
            PyErr_SetString(PyExc_TypeError, "a bound's as_double is a float or None");
            return -1;
        }
        out->exact = 1;
        out->as_double = PyFloat_AS_DOUBLE(as_double);
    }
    if (exponent < -1000 || exponent > 1000) {
        PyErr_SetString(PyExc_ValueError, "a bound's exponent is out of range");
        return -1;
    }
    out->negative = negative;
    out->coefficient = coefficient;
    out->exponent = exponent;
    *has = 1;
    return 0;
}

static int
parse_check(PyObject *spec, Check *ck)
{
    int kind;
    Py_ssize_t n;

    memset(ck, 0, sizeof(*ck));
    if (!PyTuple_Check(spec) || PyTuple_GET_SIZE(spec) < 1) {
        PyErr_SetString(PyExc_ValueError, "a check is a non-empty tuple");
        return -1;
    }
    n = PyTuple_GET_SIZE(spec);
    kind = kind_index(PyTuple_GET_ITEM(spec, 0), check_names, CK_COUNT, "check");
    if (kind < 0)
        return -1;
    ck->kind = (uint8_t)kind;
    switch (kind) {
    case CK_MAX_LENGTH:
        if (n != 2 || !PyLong_Check(PyTuple_GET_ITEM(spec, 1)))
            goto bad;
        ck->max_length = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 1));
        if (ck->max_length < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "max_length must not be negative");
            return -1;
        }
        return 0;
    case CK_PATTERN:
        if (n != 2 || !PyCallable_Check(PyTuple_GET_ITEM(spec, 1)))
            goto bad;
        ck->object = Py_NewRef(PyTuple_GET_ITEM(spec, 1));
        return 0;
    case CK_ALLOWED:
        if (n != 2 || !PyFrozenSet_CheckExact(PyTuple_GET_ITEM(spec, 1)))
            goto bad;
        ck->object = Py_NewRef(PyTuple_GET_ITEM(spec, 1));
        return 0;
    case CK_RANGE:
        if (n != 3)
            goto bad;
        if (parse_bound(PyTuple_GET_ITEM(spec, 1), &ck->low, &ck->has_low) < 0 ||
            parse_bound(PyTuple_GET_ITEM(spec, 2), &ck->high, &ck->has_high) < 0)
            return -1;
        return 0;
    case CK_DATES: {
        PyObject *before;
        int not_future, timestamp;
        if (n != 4)
            goto bad;
        not_future = PyObject_IsTrue(PyTuple_GET_ITEM(spec, 1));
        timestamp = PyObject_IsTrue(PyTuple_GET_ITEM(spec, 3));
        if (not_future < 0 || timestamp < 0)
            return -1;
        ck->not_future = (uint8_t)not_future;
        ck->timestamp = (uint8_t)timestamp;
        before = PyTuple_GET_ITEM(spec, 2);
        if (before != Py_None) {
            long long days = PyLong_AsLongLong(before);
            if (days == -1 && PyErr_Occurred())
                return -1;
            ck->has_not_before = 1;
            ck->not_before_days = days;
        }
        return 0;
    }
    default:
        if (n != 1)
            goto bad;
        return 0;
    }
bad:
    PyErr_Format(PyExc_ValueError, "malformed %s check %R", check_names[kind], spec);
    return -1;
}

static int
parse_field(PyObject *spec, Field *f)
{
    PyObject *name, *encoding, *onion, *checks, *label;
    int required, missing_null, kind;
    Py_ssize_t n;

    if (!PyArg_ParseTuple(spec, "UpOOpO!;a field is (name, required, encoding, union, "
                          "missing_null, checks)", &name, &required, &encoding, &onion,
                          &missing_null, &PyTuple_Type, &checks))
        return -1;
    f->name = Py_NewRef(name);
    PyUnicode_InternInPlace(&f->name);
    f->required = (uint8_t)required;
    f->missing_null = (uint8_t)missing_null;
    if (!PyTuple_Check(encoding) || PyTuple_GET_SIZE(encoding) < 1) {
        PyErr_SetString(PyExc_ValueError, "an encoding is a non-empty tuple");
        return -1;
    }
    kind = kind_index(PyTuple_GET_ITEM(encoding, 0), encoding_names, EN_COUNT, "encoding");
    if (kind < 0)
        return -1;
    f->encoding = (uint8_t)kind;
    n = PyTuple_GET_SIZE(encoding);
    if (kind == EN_DECIMAL) {
        if (!PyArg_ParseTuple(encoding, "Oii;(\"decimal\", precision, scale)", &label,
                              &f->precision, &f->scale))
            return -1;
        if (f->precision < 1 || f->scale < 0 || f->scale > 1000) {
            PyErr_SetString(PyExc_ValueError, "decimal precision or scale out of range");
            return -1;
        }
    } else if (kind == EN_ENUM) {
        if (n != 2 || !PyDict_CheckExact(PyTuple_GET_ITEM(encoding, 1))) {
            PyErr_SetString(PyExc_ValueError, "(\"enum\", {symbol: index})");
            return -1;
        }
        f->symbols = Py_NewRef(PyTuple_GET_ITEM(encoding, 1));
    } else if (n != 1) {
        PyErr_Format(PyExc_ValueError, "encoding %R takes no arguments", encoding);
        return -1;
    }
    if (onion != Py_None) {
        if (!PyArg_ParseTuple(onion, "ii;a union is (null_branch, value_branch)",
                              &f->null_branch, &f->value_branch))
            return -1;
        if (f->null_branch < 0 || f->value_branch < 0) {
            PyErr_SetString(PyExc_ValueError, "union branches are not negative");
            return -1;
        }
        f->in_union = 1;
    }
    if (f->missing_null && !f->in_union) {
        PyErr_SetString(PyExc_ValueError, "missing_null needs a union with null");
        return -1;
    }
    n = PyTuple_GET_SIZE(checks);
    if (n > 0) {
        f->checks = PyMem_Calloc((size_t)n, sizeof(Check));
        if (f->checks == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (parse_check(PyTuple_GET_ITEM(checks, i), &f->checks[i]) < 0)
            return -1;
        f->nchecks = i + 1;
    }
    return 0;
}

static void
clear_fields(Program *pg)
{
    Field *fields = pg->fields;
    Py_ssize_t n = pg->nfields;

    pg->fields = NULL;
    pg->nfields = 0;
    if (fields == NULL)
        return;
    for (Py_ssize_t i = 0; i < n; i++) {
        Field *f = &fields[i];
        Py_CLEAR(f->name);
        Py_CLEAR(f->symbols);
        for (Py_ssize_t j = 0; j < f->nchecks; j++)
            Py_CLEAR(f->checks[j].object);
        PyMem_Free(f->checks);
    }
    PyMem_Free(fields);
}

static PyObject *
Program_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fields", "schema_id", "key_index", "region_index", "fallback",
                             NULL};
    PyObject *fields, *fallback;
    unsigned long long schema_id;
    Py_ssize_t key_index, region_index, n;
    Program *pg;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!KnnO", kwlist, &PyTuple_Type, &fields,
                                     &schema_id, &key_index, &region_index, &fallback))
        return NULL;
    n = PyTuple_GET_SIZE(fields);
    if (n < 1 || n > MAX_FIELDS) {
        PyErr_Format(PyExc_ValueError, "a program has 1 to %d fields", MAX_FIELDS);
        return NULL;
    }
    if (schema_id > 0xFFFFFFFFULL) {
        PyErr_SetString(PyExc_ValueError, "schema id must fit 32 bits");
        return NULL;
    }
    if (key_index < 0 || key_index >= n || region_index < 0 || region_index >= n) {
        PyErr_SetString(PyExc_ValueError, "key_index and region_index must name fields");
        return NULL;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be callable");
        return NULL;
    }
    pg = (Program *)type->tp_alloc(type, 0);
    if (pg == NULL)
        return NULL;
    pg->fields = PyMem_Calloc((size_t)n, sizeof(Field));
    if (pg->fields == NULL) {
        Py_DECREF(pg);
        return PyErr_NoMemory();
    }
    pg->nfields = n;
    pg->schema_id = (uint32_t)schema_id;
    pg->key_index = key_index;
    pg->region_index = region_index;
    pg->fallback = Py_NewRef(fallback);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyTuple_Check(PyTuple_GET_ITEM(fields, i))) {
            PyErr_SetString(PyExc_ValueError, "a field is a tuple");
            Py_DECREF(pg);
            return NULL;
        }
        if (parse_field(PyTuple_GET_ITEM(fields, i), &pg->fields[i]) < 0) {
            Py_DECREF(pg);
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++)
        for (Py_ssize_t j = 0; j < i; j++)
            if (PyUnicode_Compare(pg->fields[i].name, pg->fields[j].name) == 0) {
                PyErr_Format(PyExc_ValueError, "field %R appears twice", pg->fields[i].name);
                Py_DECREF(pg);
                return NULL;
            }
    return (PyObject *)pg;
}

static int
Program_traverse(Program *pg, visitproc visit, void *arg)
{
    Py_VISIT(pg->fallback);
    for (Py_ssize_t i = 0; i < pg->nfields; i++) {
        Field *f = &pg->fields[i];
        Py_VISIT(f->symbols);
        for (Py_ssize_t j = 0; j < f->nchecks; j++)
            Py_VISIT(f->checks[j].object);
    }
    return 0;
}

static int
Program_clear(Program *pg)
{
    Py_CLEAR(pg->fallback);
    clear_fields(pg);
    return 0;
}

static void
Program_dealloc(Program *pg)
{
    PyObject_GC_UnTrack(pg);
    Program_clear(pg);
    Py_TYPE(pg)->tp_free((PyObject *)pg);
}

static PyObject *
program_live(Program *pg)
{
    if (pg->fields == NULL || pg->fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the program was cleared");
        return NULL;
    }
    return (PyObject *)pg;
}

static PyObject *
Program_fast_checked(Program *pg, PyObject *const *args, Py_ssize_t nargs)
{
    return program_live(pg) ? Program_fast(pg, args, nargs) : NULL;
}

static PyObject *
Program_admit_checked(Program *pg, PyObject *const *args, Py_ssize_t nargs)
{
    return program_live(pg) ? Program_admit(pg, args, nargs) : NULL;
}

static PyObject *
Program_admit_batch_checked(Program *pg, PyObject *const *args, Py_ssize_t nargs)
{
    return program_live(pg) ? Program_admit_batch(pg, args, nargs) : NULL;
}

static PyMethodDef Program_methods[] = {
    {"fast", (PyCFunction)(void (*)(void))Program_fast_checked, METH_FASTCALL,
     "fast(record, regions) -> (value, key, region), or None when the Python path must "
     "decide."},
    {"admit", (PyCFunction)(void (*)(void))Program_admit_checked, METH_FASTCALL,
     "admit(record, regions) -> (value, key, region), or the fallback's answer."},
    {"admit_batch", (PyCFunction)(void (*)(void))Program_admit_batch_checked, METH_FASTCALL,
     "admit_batch(records, regions) -> one answer per record (None for None)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ProgramType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hub.catalogue._fastrecord.Program",
    .tp_basicsize = sizeof(Program),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The admission of records into one resource, compiled (see the module).",
    .tp_new = Program_new,
    .tp_dealloc = (destructor)Program_dealloc,
    .tp_traverse = (traverseproc)Program_traverse,
    .tp_clear = (inquiry)Program_clear,
    .tp_methods = Program_methods,
};

static struct PyModuleDef fastrecord_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hub.catalogue._fastrecord",
    .m_doc = "Catalogue admission (quality rules and Avro encoding) compiled per resource.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fastrecord(void)
{
    PyObject *m;

    if (PyType_Ready(&ProgramType) < 0)
        return NULL;
    m = PyModule_Create(&fastrecord_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ProgramType);
    if (PyModule_AddObject(m, "Program", (PyObject *)&ProgramType) < 0) {
        Py_DECREF(&ProgramType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
