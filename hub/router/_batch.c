/*
 * The router's per-record loop in C: headers, routing-plan lookup, view shaping calls and
 * frame-entry encoding, for a whole consumed batch at once.
 *
 * route(messages, cache, resolve, max_entries, max_bytes) -> (blocks, dead, stats)
 *
 *   messages     list of confluent_kafka.Message (errors already filtered out)
 *   cache        dict (topic, region bytes, schema id) -> plan, filled here from resolve
 *   resolve      callable(topic, region bytes, schema id) -> plan | exception instance
 *   plan         (stats index, ((shaper | None, view schema id, (slot, ...)), ...))
 *                shaper(payload bytes) -> bytes | None (None: the view's filter rejects)
 *
 *   blocks       [(slot, source partition, entries block bytes, count, first, last)]
 *                an entries block is the frame plaintext of docs/wire-format.md
 *   dead         [(message index, reason str, detail str) | (index, exception, None)]
 *   stats        [(records in, unrouted, oldest ingest ms or -1)] by stats index
 *
 * The pure-Python equivalent is hub.router.engine.route_batch_python; both must produce
 * the same blocks for the same input (tests/unit/router/test_batch_native.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_FIXED 32 /* >iiqqHHI */
#define MAX_VIEWS 64

static PyObject *s_headers, *s_value, *s_topic, *s_partition, *s_offset;

/* ---- pending frames: open-addressing map keyed by (slot, partition) ---------------- */
typedef struct {
    uint64_t key;
    int used;
    long slot;
    long partition;
    char *buf;
    size_t len, cap;
    uint32_t count;
    int64_t first, last;
} Pending;

typedef struct {
    Pending *items;
    size_t cap, n;
} PendingMap;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static int map_init(PendingMap *m, size_t cap) {
    m->items = PyMem_Calloc(cap, sizeof(Pending));
    if (!m->items) return -1;
    m->cap = cap;
    m->n = 0;
    return 0;
}

static void map_free(PendingMap *m) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->items[i].used) PyMem_Free(m->items[i].buf);
    PyMem_Free(m->items);
    m->items = NULL;
}

static Pending *map_get(PendingMap *m, long slot, long partition);

static int map_grow(PendingMap *m) {
    PendingMap bigger;
    if (map_init(&bigger, m->cap * 2) < 0) return -1;
    for (size_t i = 0; i < m->cap; i++) {
        Pending *old = &m->items[i];
        if (!old->used) continue;
        size_t j = mix64(old->key) & (bigger.cap - 1);
        while (bigger.items[j].used) j = (j + 1) & (bigger.cap - 1);
        bigger.items[j] = *old;
        bigger.n++;
    }
    PyMem_Free(m->items);
    *m = bigger;
    return 0;
}

static Pending *map_get(PendingMap *m, long slot, long partition) {
    uint64_t key = ((uint64_t)(uint32_t)slot << 32) | (uint32_t)partition;
    size_t j = mix64(key) & (m->cap - 1);
    while (m->items[j].used) {
        if (m->items[j].key == key) return &m->items[j];
        j = (j + 1) & (m->cap - 1);
    }
    if ((m->n + 1) * 2 > m->cap) {
        if (map_grow(m) < 0) return NULL;
        return map_get(m, slot, partition);
    }
    Pending *p = &m->items[j];
    memset(p, 0, sizeof(*p));
    p->used = 1;
    p->key = key;
    p->slot = slot;
    p->partition = partition;
    m->n++;
    return p;
}

static int pending_reserve(Pending *p, size_t extra) {
    if (p->len + extra <= p->cap) return 0;
    size_t cap = p->cap ? p->cap : 4096;
    while (cap < p->len + extra) cap *= 2;
    char *buf = PyMem_Realloc(p->buf, cap);
    if (!buf) {
        PyErr_NoMemory();
        return -1;
    }
    p->buf = buf;
    p->cap = cap;
    return 0;
}

/* Move a non-empty pending frame into `blocks` and reset it. */
static int pending_finish(Pending *p, PyObject *blocks) {
    if (p->count == 0) return 0;
    uint32_t c = p->count;
    p->buf[0] = (char)(c >> 24);
    p->buf[1] = (char)(c >> 16);
    p->buf[2] = (char)(c >> 8);
    p->buf[3] = (char)c;
    PyObject *block = PyBytes_FromStringAndSize(p->buf, (Py_ssize_t)p->len);
    if (!block) return -1;
    PyObject *item = Py_BuildValue("(llNILL)", p->slot, p->partition, block, (unsigned int)c,
                                   (long long)p->first, (long long)p->last);
    if (!item) return -1;
    int rc = PyList_Append(blocks, item);
    Py_DECREF(item);
    p->len = 4;
    p->count = 0;
    return rc;
}

/* ---- helpers ------------------------------------------------------------------------ */
static void put_be32(char *o, uint32_t v) {
    o[0] = (char)(v >> 24);
    o[1] = (char)(v >> 16);
    o[2] = (char)(v >> 8);
    o[3] = (char)v;
}

static void put_be64(char *o, uint64_t v) {
    put_be32(o, (uint32_t)(v >> 32));
    put_be32(o + 4, (uint32_t)v);
}

static int add_dead(PyObject *dead, Py_ssize_t index, const char *reason, const char *detail) {
    PyObject *item = Py_BuildValue("(nss)", index, reason, detail);
    if (!item) return -1;
    int rc = PyList_Append(dead, item);
    Py_DECREF(item);
    return rc;
}

/* The pending Python exception becomes a dead letter for message `index`; only
 * Exception subclasses are caught (KeyboardInterrupt and the like propagate). */
static int add_dead_exception(PyObject *dead, Py_ssize_t index) {
    if (!PyErr_ExceptionMatches(PyExc_Exception)) return -1;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    if (!value) {
        Py_INCREF(Py_None);
        value = Py_None;
    }
    PyObject *item = Py_BuildValue("(nNO)", index, value, Py_None);
    if (!item) return -1;
    int rc = PyList_Append(dead, item);
    Py_DECREF(item);
    return rc;
}

typedef struct {
    long long records_in, unrouted, oldest;
} Stat;

typedef struct {
    PyObject *owner; /* a reference held while the record is handled (or NULL) */
    const char *data;
    Py_ssize_t len;
    long schema_id;
    PyObject *slots;
    int skip;
} Shaped;

static int utf8_ok(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) {
            PyObject *u = PyUnicode_DecodeUTF8(s, n, "strict");
            if (!u) {
                PyErr_Clear();
                return 0;
            }
            Py_DECREF(u);
            return 1;
        }
    return 1;
}

/* ---- route ---------------------------------------------------------------------------- */
static PyObject *route(PyObject *self, PyObject *args) {
    PyObject *messages, *cache, *resolve;
    Py_ssize_t max_entries, max_bytes;
    if (!PyArg_ParseTuple(args, "O!O!Onn", &PyList_Type, &messages, &PyDict_Type, &cache,
                          &resolve, &max_entries, &max_bytes))
        return NULL;
    if (max_entries < 1 || max_bytes < 64) {
        PyErr_SetString(PyExc_ValueError, "max_entries must be >= 1 and max_bytes >= 64");
        return NULL;
    }
    PyObject *blocks = PyList_New(0), *dead = PyList_New(0), *result = NULL;
    Stat *stats = NULL;
    size_t nstats = 0, used_stats = 0;
    PendingMap map = {0};
    if (!blocks || !dead || map_init(&map, 1024) < 0) goto fail;

    Py_ssize_t n = PyList_GET_SIZE(messages);
    char *entry = NULL;
    size_t entry_cap = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *msg = PyList_GET_ITEM(messages, i);
        PyObject *headers = NULL, *value = NULL, *topic = NULL, *key = NULL, *region = NULL;
        PyObject *payload = NULL;
        Shaped shaped[MAX_VIEWS];
        Py_ssize_t nviews = 0;
        const char *rid = NULL;
        Py_ssize_t rid_len = 0;
        long long ingested = 0;
        int bad = 0;

        headers = PyObject_CallMethodNoArgs(msg, s_headers);
        if (!headers) goto fail;
        if (headers != Py_None) {
            if (!PyList_Check(headers)) {
                Py_DECREF(headers);
                PyErr_SetString(PyExc_TypeError, "message headers must be a list");
                goto fail;
            }
            Py_ssize_t nh = PyList_GET_SIZE(headers);
            for (Py_ssize_t h = 0; h < nh; h++) {
                PyObject *pair = PyList_GET_ITEM(headers, h);
                if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) continue;
                PyObject *name = PyTuple_GET_ITEM(pair, 0), *raw = PyTuple_GET_ITEM(pair, 1);
                if (!PyUnicode_Check(name) || !PyBytes_Check(raw)) continue;
                Py_ssize_t name_len;
                const char *nm = PyUnicode_AsUTF8AndSize(name, &name_len);
                if (!nm) goto fail_headers;
                if (name_len == 13 && memcmp(nm, "govhub-region", 13) == 0) {
                    region = raw;
                } else if (name_len == 16 && memcmp(nm, "govhub-record-id", 16) == 0) {
                    rid = PyBytes_AS_STRING(raw);
                    rid_len = PyBytes_GET_SIZE(raw);
                } else if (name_len == 18 && memcmp(nm, "govhub-ingested-at", 18) == 0) {
                    const char *d = PyBytes_AS_STRING(raw);
                    Py_ssize_t dl = PyBytes_GET_SIZE(raw);
                    long long v = 0;
                    int ok = dl > 0 && dl <= 18;
                    for (Py_ssize_t k = 0; ok && k < dl; k++) {
                        if (d[k] < '0' || d[k] > '9') ok = 0;
                        else v = v * 10 + (d[k] - '0');
                    }
                    if (!ok) {
                        if (add_dead(dead, i, "bad-header", "govhub-ingested-at is not an integer") < 0)
                            goto fail_headers;
                        bad = 1;
                        break;
                    }
                    ingested = v;
                }
            }
        }
        if (!bad && region == NULL) {
            if (add_dead(dead, i, "missing-region", "header govhub-region is missing") < 0)
                goto fail_headers;
            bad = 1;
        }
        if (!bad && rid_len == 0) {
            if (add_dead(dead, i, "missing-record-id", "header govhub-record-id is missing") < 0)
                goto fail_headers;
            bad = 1;
        }
        if (!bad && (rid_len > 0xFFFF || !utf8_ok(rid, rid_len))) {
            if (add_dead(dead, i, "bad-header", "govhub-record-id is not 1..65535 bytes of UTF-8") < 0)
                goto fail_headers;
            bad = 1;
        }
        if (bad) {
            Py_DECREF(headers);
            continue;
        }
        value = PyObject_CallMethodNoArgs(msg, s_value);
        if (!value) goto fail_headers;
        if (value == Py_None || !PyBytes_Check(value) || PyBytes_GET_SIZE(value) == 0) {
            if (add_dead(dead, i, "empty-value", "record has no value") < 0) goto fail_value;
            goto next;
        }
        const char *v = PyBytes_AS_STRING(value);
        Py_ssize_t vlen = PyBytes_GET_SIZE(value);
        if (vlen < 5 || v[0] != 0) {
            if (add_dead(dead, i, "bad-framing",
                         vlen < 5 ? "value shorter than the 5-byte schema-id framing"
                                  : "value does not start with the magic byte 0") < 0)
                goto fail_value;
            goto next;
        }
        long schema_id = (long)(((uint32_t)(unsigned char)v[1] << 24) |
                                ((uint32_t)(unsigned char)v[2] << 16) |
                                ((uint32_t)(unsigned char)v[3] << 8) | (uint32_t)(unsigned char)v[4]);
        topic = PyObject_CallMethodNoArgs(msg, s_topic);
        if (!topic) goto fail_value;
        key = Py_BuildValue("(OOl)", topic, region, schema_id);
        if (!key) goto fail_topic;
        PyObject *plan = PyDict_GetItemWithError(cache, key); /* borrowed */
        if (!plan) {
            if (PyErr_Occurred()) goto fail_key;
            PyObject *got = PyObject_CallFunctionObjArgs(resolve, topic, region, PyTuple_GET_ITEM(key, 2), NULL);
            if (!got) goto fail_key;
            if (PyExceptionInstance_Check(got)) {
                PyObject *item = Py_BuildValue("(nNO)", i, got, Py_None);
                if (!item || PyList_Append(dead, item) < 0) {
                    Py_XDECREF(item);
                    goto fail_key;
                }
                Py_DECREF(item);
                goto next;
            }
            if (PyDict_SetItem(cache, key, got) < 0) {
                Py_DECREF(got);
                goto fail_key;
            }
            Py_DECREF(got);
            plan = PyDict_GetItemWithError(cache, key);
            if (!plan) goto fail_key;
        }
        if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) != 2) {
            PyErr_SetString(PyExc_TypeError, "a routing plan is (stats index, views)");
            goto fail_key;
        }
        long stats_index = PyLong_AsLong(PyTuple_GET_ITEM(plan, 0));
        if (stats_index < 0 || stats_index > 1000000) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "stats index out of range");
            goto fail_key;
        }
        if ((size_t)stats_index >= nstats) {
            size_t grow = (size_t)stats_index + 8;
            Stat *bigger = PyMem_Realloc(stats, grow * sizeof(Stat));
            if (!bigger) {
                PyErr_NoMemory();
                goto fail_key;
            }
            for (size_t k = nstats; k < grow; k++) {
                bigger[k].records_in = bigger[k].unrouted = 0;
                bigger[k].oldest = -1;
            }
            stats = bigger;
            nstats = grow;
        }
        if ((size_t)stats_index >= used_stats) used_stats = (size_t)stats_index + 1;
        Stat *st = &stats[stats_index];
        st->records_in++;
        PyObject *views = PyTuple_GET_ITEM(plan, 1);
        if (!PyTuple_Check(views) || PyTuple_GET_SIZE(views) > MAX_VIEWS) {
            PyErr_SetString(PyExc_TypeError, "plan views must be a tuple of at most 64 views");
            goto fail_key;
        }
        nviews = PyTuple_GET_SIZE(views);
        if (nviews == 0) {
            st->unrouted++;
            goto next;
        }
        Py_INCREF(plan); /* keep it alive while shapers run (they may clear the cache) */

        /* Shape for every view first: a record that fails for one view is dead-lettered
         * whole, never delivered to some recipients and not to others. */
        int failed = 0, any = 0;
        Py_ssize_t done = 0;
        for (; done < nviews; done++) {
            PyObject *view = PyTuple_GET_ITEM(views, done);
            Shaped *sh = &shaped[done];
            sh->owner = NULL;
            sh->skip = 0;
            if (!PyTuple_Check(view) || PyTuple_GET_SIZE(view) != 3) {
                PyErr_SetString(PyExc_TypeError, "a plan view is (shaper, schema id, slots)");
                Py_DECREF(plan);
                goto fail_shaped;
            }
            PyObject *shaper = PyTuple_GET_ITEM(view, 0);
            sh->schema_id = PyLong_AsLong(PyTuple_GET_ITEM(view, 1));
            sh->slots = PyTuple_GET_ITEM(view, 2);
            if (shaper == Py_None) {
                sh->data = v + 5;
                sh->len = vlen - 5;
                sh->schema_id = schema_id;
            } else {
                if (!payload) {
                    payload = PyBytes_FromStringAndSize(v + 5, vlen - 5);
                    if (!payload) {
                        Py_DECREF(plan);
                        goto fail_shaped;
                    }
                }
                PyObject *out = PyObject_CallOneArg(shaper, payload);
                if (!out) {
                    if (add_dead_exception(dead, i) < 0) {
                        Py_DECREF(plan);
                        goto fail_shaped;
                    }
                    failed = 1;
                    done++;
                    break;
                }
                if (out == Py_None) {
                    Py_DECREF(out);
                    sh->skip = 1;
                    continue;
                }
                if (!PyBytes_Check(out)) {
                    Py_DECREF(out);
                    PyErr_SetString(PyExc_TypeError, "a shaper must return bytes or None");
                    Py_DECREF(plan);
                    goto fail_shaped;
                }
                sh->owner = out;
                sh->data = PyBytes_AS_STRING(out);
                sh->len = PyBytes_GET_SIZE(out);
            }
            any = 1;
        }
        if (!failed && any) {
            PyObject *po = PyObject_CallMethodNoArgs(msg, s_partition);
            PyObject *oo = po ? PyObject_CallMethodNoArgs(msg, s_offset) : NULL;
            long partition = po ? PyLong_AsLong(po) : -1;
            long long offset = oo ? PyLong_AsLongLong(oo) : -1;
            Py_XDECREF(po);
            Py_XDECREF(oo);
            if (PyErr_Occurred()) {
                Py_DECREF(plan);
                goto fail_shaped;
            }
            Py_ssize_t tlen;
            const char *t = PyUnicode_AsUTF8AndSize(topic, &tlen);
            if (!t) {
                Py_DECREF(plan);
                goto fail_shaped;
            }
            if (st->oldest < 0 || ingested < st->oldest) st->oldest = ingested;
            for (Py_ssize_t k = 0; k < nviews; k++) {
                Shaped *sh = &shaped[k];
                if (sh->skip) continue;
                size_t esize = ENTRY_FIXED + (size_t)tlen + (size_t)rid_len + (size_t)sh->len;
                if (esize > entry_cap) {
                    char *bigger = PyMem_Realloc(entry, esize);
                    if (!bigger) {
                        PyErr_NoMemory();
                        Py_DECREF(plan);
                        goto fail_shaped;
                    }
                    entry = bigger;
                    entry_cap = esize;
                }
                put_be32(entry, (uint32_t)sh->schema_id);
                put_be32(entry + 4, (uint32_t)partition);
                put_be64(entry + 8, (uint64_t)offset);
                put_be64(entry + 16, (uint64_t)ingested);
                entry[24] = (char)(tlen >> 8);
                entry[25] = (char)tlen;
                entry[26] = (char)(rid_len >> 8);
                entry[27] = (char)rid_len;
                put_be32(entry + 28, (uint32_t)sh->len);
                memcpy(entry + ENTRY_FIXED, t, (size_t)tlen);
                memcpy(entry + ENTRY_FIXED + tlen, rid, (size_t)rid_len);
                memcpy(entry + ENTRY_FIXED + tlen + rid_len, sh->data, (size_t)sh->len);
                Py_ssize_t nslots = PyTuple_GET_SIZE(sh->slots);
                for (Py_ssize_t s = 0; s < nslots; s++) {
                    long slot = PyLong_AsLong(PyTuple_GET_ITEM(sh->slots, s));
                    if (slot == -1 && PyErr_Occurred()) {
                        Py_DECREF(plan);
                        goto fail_shaped;
                    }
                    Pending *p = map_get(&map, slot, partition);
                    if (!p) {
                        PyErr_NoMemory();
                        Py_DECREF(plan);
                        goto fail_shaped;
                    }
                    if (p->count > 0 && p->len + esize > (size_t)max_bytes) {
                        if (pending_finish(p, blocks) < 0) {
                            Py_DECREF(plan);
                            goto fail_shaped;
                        }
                    }
                    if (p->len == 0) p->len = 4; /* room for the entry count */
                    if (pending_reserve(p, esize) < 0) {
                        Py_DECREF(plan);
                        goto fail_shaped;
                    }
                    memcpy(p->buf + p->len, entry, esize);
                    p->len += esize;
                    if (p->count == 0) p->first = offset;
                    p->last = offset;
                    p->count++;
                    if ((Py_ssize_t)p->count >= max_entries || p->len >= (size_t)max_bytes) {
                        if (pending_finish(p, blocks) < 0) {
                            Py_DECREF(plan);
                            goto fail_shaped;
                        }
                    }
                }
            }
        }
        for (Py_ssize_t k = 0; k < done; k++) Py_XDECREF(shaped[k].owner);
        Py_DECREF(plan);
        goto next;

    fail_shaped:
        for (Py_ssize_t k = 0; k < done && k < nviews; k++) Py_XDECREF(shaped[k].owner);
        Py_XDECREF(payload);
        goto fail_key;

    next:
        Py_XDECREF(payload);
        Py_XDECREF(key);
        Py_XDECREF(topic);
        Py_XDECREF(value);
        Py_DECREF(headers);
        continue;

    fail_key:
        Py_XDECREF(key);
    fail_topic:
        Py_XDECREF(topic);
    fail_value:
        Py_XDECREF(value);
    fail_headers:
        Py_DECREF(headers);
        PyMem_Free(entry);
        goto fail;
    }
    PyMem_Free(entry);

    for (size_t k = 0; k < map.cap; k++)
        if (map.items[k].used && pending_finish(&map.items[k], blocks) < 0) goto fail;
    PyObject *stat_list = PyList_New((Py_ssize_t)used_stats);
    if (!stat_list) goto fail;
    for (size_t k = 0; k < used_stats; k++) {
        PyObject *item = Py_BuildValue("(LLL)", stats[k].records_in, stats[k].unrouted, stats[k].oldest);
        if (!item) {
            Py_DECREF(stat_list);
            goto fail;
        }
        PyList_SET_ITEM(stat_list, (Py_ssize_t)k, item);
    }
    result = Py_BuildValue("(OON)", blocks, dead, stat_list);

fail:
    Py_XDECREF(blocks);
    Py_XDECREF(dead);
    PyMem_Free(stats);
    if (map.items) map_free(&map);
    return result;
}

/* ---- lineage(block): what the delivery audit keeps of one entries block ------------- */
static uint32_t get_be32(const unsigned char *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get_be64(const unsigned char *p) {
    return ((uint64_t)get_be32(p) << 32) | get_be32(p + 4);
}

static int append_run(PyObject *runs, int64_t first, int64_t last) {
    PyObject *run = PyList_New(2);
    if (!run) return -1;
    PyObject *a = PyLong_FromLongLong(first), *b = PyLong_FromLongLong(last);
    if (!a || !b) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        Py_DECREF(run);
        return -1;
    }
    PyList_SET_ITEM(run, 0, a);
    PyList_SET_ITEM(run, 1, b);
    int rc = PyList_Append(runs, run);
    Py_DECREF(run);
    return rc;
}

static int cmp_int32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/*
 * lineage(block) -> (record ids, offset runs, view schema ids)
 *
 *   record ids     [str] in entry order (govhub-record-id of each entry)
 *   offset runs    [[first, last], ...] of the entries' source offsets, consecutive merged
 *   view schemas   sorted distinct view schema ids of the entries
 *
 * The pure-Python equivalent is hub.audit.digest.FrameLineage's reference path.
 */
static PyObject *lineage(PyObject *self, PyObject *arg) {
    Py_buffer view;
    PyObject *ids = NULL, *runs = NULL, *sorted = NULL, *result = NULL;
    int32_t few[MAX_VIEWS], *schemas = few;
    size_t nschemas = 0, cap = MAX_VIEWS;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const unsigned char *p = view.buf;
    Py_ssize_t n = view.len, pos = 4;
    if (n < 4) {
        PyErr_SetString(PyExc_ValueError, "entries block shorter than its entry count");
        goto done;
    }
    uint32_t count = get_be32(p);
    if ((uint64_t)count * ENTRY_FIXED > (uint64_t)(n - 4)) {
        PyErr_Format(PyExc_ValueError, "entries block of %zd bytes cannot hold %u entries", n,
                     count);
        goto done;
    }
    ids = PyList_New(count);
    runs = PyList_New(0);
    if (!ids || !runs) goto done;
    int64_t first = 0, last = 0;
    int open_run = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (pos + ENTRY_FIXED > n) {
            PyErr_Format(PyExc_ValueError, "entry %u is truncated", i);
            goto done;
        }
        const unsigned char *e = p + pos;
        int32_t schema = (int32_t)get_be32(e);
        int64_t offset = (int64_t)get_be64(e + 8);
        Py_ssize_t topic_len = ((Py_ssize_t)e[24] << 8) | e[25];
        Py_ssize_t rid_len = ((Py_ssize_t)e[26] << 8) | e[27];
        Py_ssize_t data_len = (Py_ssize_t)get_be32(e + 28);
        Py_ssize_t start = pos + ENTRY_FIXED + topic_len;
        if (start + rid_len + data_len > n) {
            PyErr_Format(PyExc_ValueError, "entry %u runs past the end of the block", i);
            goto done;
        }
        PyObject *rid = PyUnicode_DecodeUTF8((const char *)p + start, rid_len, "strict");
        if (!rid) goto done;
        PyList_SET_ITEM(ids, i, rid);
        if (open_run && offset == last + 1) {
            last = offset;
        } else {
            if (open_run && append_run(runs, first, last) < 0) goto done;
            first = last = offset;
            open_run = 1;
        }
        size_t k = 0;
        while (k < nschemas && schemas[k] != schema) k++;
        if (k == nschemas) {
            if (nschemas == cap) {
                int32_t *grown = PyMem_Malloc(2 * cap * sizeof(int32_t));
                if (!grown) {
                    PyErr_NoMemory();
                    goto done;
                }
                memcpy(grown, schemas, nschemas * sizeof(int32_t));
                if (schemas != few) PyMem_Free(schemas);
                schemas = grown;
                cap *= 2;
            }
            schemas[nschemas++] = schema;
        }
        pos = start + rid_len + data_len;
    }
    if (open_run && append_run(runs, first, last) < 0) goto done;
    qsort(schemas, nschemas, sizeof(int32_t), cmp_int32);
    sorted = PyList_New((Py_ssize_t)nschemas);
    if (!sorted) goto done;
    for (size_t k = 0; k < nschemas; k++) {
        PyObject *sid = PyLong_FromLong(schemas[k]);
        if (!sid) goto done;
        PyList_SET_ITEM(sorted, (Py_ssize_t)k, sid);
    }
    result = PyTuple_Pack(3, ids, runs, sorted);
done:
    Py_XDECREF(ids);
    Py_XDECREF(runs);
    Py_XDECREF(sorted);
    if (schemas != few) PyMem_Free(schemas);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"route", route, METH_VARARGS,
     "route(messages, cache, resolve, max_entries, max_bytes) -> (blocks, dead, stats)"},
    {"lineage", lineage, METH_O,
     "lineage(block) -> (record ids, offset runs, view schema ids) of an entries block"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_batch", "The router's per-record loop (native).", -1, methods,
};

PyMODINIT_FUNC PyInit__batch(void) {
    s_headers = PyUnicode_InternFromString("headers");
    s_value = PyUnicode_InternFromString("value");
    s_topic = PyUnicode_InternFromString("topic");
    s_partition = PyUnicode_InternFromString("partition");
    s_offset = PyUnicode_InternFromString("offset");
    if (!s_headers || !s_value || !s_topic || !s_partition || !s_offset) return NULL;
    return PyModule_Create(&module);
}
