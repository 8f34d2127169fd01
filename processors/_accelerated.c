/*
 * The span pipeline's per-span work in C, for the common span:
 *
 * - on the application's thread, ``compact_span``: an ended SDK span as the pipeline's plain
 *   tuple (``_compact.compact_span``);
 * - on the export worker, ``clean_span``: whether masking is already known to change nothing in
 *   it (``_redaction.redact_attributes``), and ``span_field``: its OTLP ``Span`` field
 *   (``_otlp_encoding._encode_span``).
 *
 * Why C: with spans made in a tight loop, these are most of what execscope adds to making a span,
 * and the application shares the machine with the export worker. Written in Python they cost about
 * 5, 3 and 7 µs per span of five attributes and one event; here a small fraction of that
 * (README: "Span pipeline", and ``python -m bench otlp_encoding`` for the encoder alone).
 *
 * What is here is deliberately the common case only. Each function answers None (or False) for
 * anything outside it, without raising, and the caller then runs the Python implementation,
 * which stays the specification: a value of a type other than str, bool, int, float, bytes,
 * None or a tuple or list of those; a str or int subclass; a string with lone surrogates; an
 * integer or timestamp out of range; an attribute map that is not a dict underneath; an
 * attribute the masking has not already seen to be clean. The results are exactly what the
 * Python code makes (tests compare the two on generated spans).
 *
 * ``clean_span`` and ``span_field`` never call back into Python code: they read only exact
 * built-in types, whose hashing and comparison are the interpreter's own. ``compact_span`` calls
 * Python for what it does not read itself (a trace state header, a link, the origin key), as the
 * Python code would.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* The compact span's fields (processors/_compact.py). */
enum {
    NAME = 0,
    TRACE_ID = 1,
    SPAN_ID = 2,
    TRACE_STATE = 4,
    PARENT_ID = 5,
    PARENT_IS_REMOTE = 6,
    KIND = 7,
    START = 8,
    END = 9,
    ATTRIBUTES = 10,
    DROPPED_ATTRIBUTES = 11,
    EVENTS = 12,
    DROPPED_EVENTS = 13,
    LINKS = 14,
    DROPPED_LINKS = 15,
    STATUS_CODE = 16,
    STATUS_DESCRIPTION = 17,
    FIELDS = 19,
};

/* Nested arrays deeper than this are left to the Python encoder. */
#define MAX_DEPTH 8

/* An output buffer: starts on the stack, moves to the heap when it outgrows it. */
typedef struct {
    unsigned char *data;
    size_t length;
    size_t capacity;
    int on_heap;
} Buffer;

/* Returned by the writers: OK, or FALLBACK (leave the span to the Python encoder). */
enum { OK = 0, FALLBACK = -1 };

static int
reserve(Buffer *out, size_t more)
{
    if (out->length + more <= out->capacity) {
        return OK;
    }
    size_t capacity = out->capacity * 2;
    while (capacity < out->length + more) {
        capacity *= 2;
    }
    unsigned char *data;
    if (out->on_heap) {
        data = PyMem_Realloc(out->data, capacity);
    }
    else {
        data = PyMem_Malloc(capacity);
        if (data != NULL) {
            memcpy(data, out->data, out->length);
        }
    }
    if (data == NULL) {
        return FALLBACK;
    }
    out->data = data;
    out->capacity = capacity;
    out->on_heap = 1;
    return OK;
}

static int
varint_size(uint64_t value)
{
    int size = 1;
    while (value >= 0x80) {
        value >>= 7;
        size++;
    }
    return size;
}

static void
put_varint_at(unsigned char *at, uint64_t value)
{
    while (value >= 0x80) {
        *at++ = (unsigned char)((value & 0x7F) | 0x80);
        value >>= 7;
    }
    *at = (unsigned char)value;
}

static int
put_varint(Buffer *out, uint64_t value)
{
    if (reserve(out, 10) != OK) {
        return FALLBACK;
    }
    put_varint_at(out->data + out->length, value);
    out->length += (size_t)varint_size(value);
    return OK;
}

static int
put_bytes(Buffer *out, const void *bytes, size_t size)
{
    if (reserve(out, size) != OK) {
        return FALLBACK;
    }
    memcpy(out->data + out->length, bytes, size);
    out->length += size;
    return OK;
}

static int
put_byte(Buffer *out, unsigned char byte)
{
    return put_bytes(out, &byte, 1);
}

/* Little-endian, as protobuf writes fixed64 and fixed32. */
static int
put_fixed(Buffer *out, uint64_t value, int width)
{
    unsigned char bytes[8];
    for (int index = 0; index < width; index++) {
        bytes[index] = (unsigned char)(value >> (8 * index));
    }
    return put_bytes(out, bytes, (size_t)width);
}

/* A nested message: its tag, then one byte kept for its length, which ``close_nested`` writes
 * once the body is known (moving the body when the length needs more than one byte). */
static int
open_nested(Buffer *out, unsigned char tag, size_t *body_start)
{
    if (put_byte(out, tag) != OK || put_byte(out, 0) != OK) {
        return FALLBACK;
    }
    *body_start = out->length;
    return OK;
}

static int
close_nested(Buffer *out, size_t body_start)
{
    size_t body = out->length - body_start;
    int size = varint_size(body);
    if (size > 1) {
        if (reserve(out, (size_t)size - 1) != OK) {
            return FALLBACK;
        }
        memmove(out->data + body_start + size - 1, out->data + body_start, body);
        out->length += (size_t)size - 1;
    }
    put_varint_at(out->data + body_start - 1, body);
    return OK;
}

/* The UTF-8 of an exact str; FALLBACK for anything else or a string UTF-8 cannot hold. */
static int
utf8_of(PyObject *text, const char **data, Py_ssize_t *size)
{
    if (!PyUnicode_CheckExact(text)) {
        return FALLBACK;
    }
    *data = PyUnicode_AsUTF8AndSize(text, size);
    if (*data == NULL) {
        PyErr_Clear();
        return FALLBACK;
    }
    return OK;
}

static int
put_string_field(Buffer *out, unsigned char tag, PyObject *text)
{
    const char *data;
    Py_ssize_t size;
    if (utf8_of(text, &data, &size) != OK) {
        return FALLBACK;
    }
    if (put_byte(out, tag) != OK || put_varint(out, (uint64_t)size) != OK) {
        return FALLBACK;
    }
    return put_bytes(out, data, (size_t)size);
}

/* An exact int in [0, 2**64). */
static int
unsigned_of(PyObject *number, uint64_t *value)
{
    if (!PyLong_CheckExact(number)) {
        return FALLBACK;
    }
    unsigned long long result = PyLong_AsUnsignedLongLong(number);
    if (result == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return FALLBACK;
    }
    *value = (uint64_t)result;
    return OK;
}

/* Python's truth of a value that must be a bool or 0/1-like exact int (never calls Python). */
static int
flag_of(PyObject *value, int *flag)
{
    if (value == Py_True || value == Py_False) {
        *flag = value == Py_True;
        return OK;
    }
    uint64_t number;
    if (unsigned_of(value, &number) != OK) {
        return FALLBACK;
    }
    *flag = number != 0;
    return OK;
}

/* An ID as ``int.to_bytes(size, "big")`` writes it (the int must fit). */
static int
put_id(Buffer *out, PyObject *id, size_t size)
{
    if (!PyLong_CheckExact(id) || reserve(out, size) != OK) {
        return FALLBACK;
    }
    if (size == 8) {
        uint64_t value;
        if (unsigned_of(id, &value) != OK) {
            return FALLBACK;
        }
        unsigned char *at = out->data + out->length;
        for (size_t index = 0; index < 8; index++) {
            at[index] = (unsigned char)(value >> (8 * (7 - index)));
        }
        out->length += 8;
        return OK;
    }
    /* 128 bits: as two 64-bit halves. A negative or too large ID has a high half that is not
     * in [0, 2**64), which ``unsigned_of`` refuses. */
    PyObject *shift = PyLong_FromLong(64);
    if (shift == NULL) {
        PyErr_Clear();
        return FALLBACK;
    }
    PyObject *high_part = PyNumber_Rshift(id, shift);
    Py_DECREF(shift);
    if (high_part == NULL) {
        PyErr_Clear();
        return FALLBACK;
    }
    uint64_t high;
    int status = unsigned_of(high_part, &high);
    Py_DECREF(high_part);
    if (status != OK) {
        return FALLBACK;
    }
    uint64_t low = (uint64_t)PyLong_AsUnsignedLongLongMask(id);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return FALLBACK;
    }
    unsigned char *at = out->data + out->length;
    for (size_t index = 0; index < 8; index++) {
        at[index] = (unsigned char)(high >> (8 * (7 - index)));
        at[8 + index] = (unsigned char)(low >> (8 * (7 - index)));
    }
    out->length += 16;
    return OK;
}

/* The body of the AnyValue of ``value`` (``_otlp_encoding._any_value`` for the common types). */
static int
put_any_value(Buffer *out, PyObject *value, int depth)
{
    if (value == Py_None) {
        return OK;
    }
    if (value == Py_True || value == Py_False) {
        return put_byte(out, 0x10) == OK && put_byte(out, value == Py_True) == OK ? OK : FALLBACK;
    }
    if (PyUnicode_CheckExact(value)) {
        return put_string_field(out, 0x0A, value);
    }
    if (PyLong_CheckExact(value)) {
        int overflow = 0;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (number == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return FALLBACK;
        }
        return put_byte(out, 0x18) == OK && put_varint(out, (uint64_t)number) == OK ? OK : FALLBACK;
    }
    if (PyFloat_CheckExact(value)) {
        double number = PyFloat_AS_DOUBLE(value);
        uint64_t bits;
        memcpy(&bits, &number, sizeof bits);
        return put_byte(out, 0x21) == OK && put_fixed(out, bits, 8) == OK ? OK : FALLBACK;
    }
    if (PyBytes_CheckExact(value)) {
        Py_ssize_t size = PyBytes_GET_SIZE(value);
        if (put_byte(out, 0x3A) != OK || put_varint(out, (uint64_t)size) != OK) {
            return FALLBACK;
        }
        return put_bytes(out, PyBytes_AS_STRING(value), (size_t)size);
    }
    if ((PyTuple_CheckExact(value) || PyList_CheckExact(value)) && depth < MAX_DEPTH) {
        size_t array_start, item_start;
        if (open_nested(out, 0x2A, &array_start) != OK) {
            return FALLBACK;
        }
        /* A list's size is read on every turn: nothing here runs Python code, but a list is
         * mutable and this must never read past its end. */
        for (Py_ssize_t index = 0; index < PySequence_Fast_GET_SIZE(value); index++) {
            PyObject *item = PySequence_Fast_GET_ITEM(value, index);
            if (open_nested(out, 0x0A, &item_start) != OK || put_any_value(out, item, depth + 1) != OK ||
                close_nested(out, item_start) != OK) {
                return FALLBACK;
            }
        }
        return close_nested(out, array_start);
    }
    return FALLBACK;
}

/* One ``tag`` field (a KeyValue) per ``(key, value)`` pair of a compact span's attributes. */
static int
put_attributes(Buffer *out, PyObject *pairs, unsigned char tag)
{
    if (!PyTuple_CheckExact(pairs)) {
        return FALLBACK;
    }
    for (Py_ssize_t index = 0; index < PyTuple_GET_SIZE(pairs); index++) {
        PyObject *pair = PyTuple_GET_ITEM(pairs, index);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
            return FALLBACK;
        }
        PyObject *key = PyTuple_GET_ITEM(pair, 0);
        const char *key_data;
        Py_ssize_t key_size;
        size_t entry_start, value_start;
        if (utf8_of(key, &key_data, &key_size) != OK || open_nested(out, tag, &entry_start) != OK) {
            return FALLBACK;
        }
        if (key_size > 0) {  /* proto3 leaves an empty string out */
            if (put_byte(out, 0x0A) != OK || put_varint(out, (uint64_t)key_size) != OK ||
                put_bytes(out, key_data, (size_t)key_size) != OK) {
                return FALLBACK;
            }
        }
        if (open_nested(out, 0x12, &value_start) != OK ||
            put_any_value(out, PyTuple_GET_ITEM(pair, 1), 0) != OK || close_nested(out, value_start) != OK ||
            close_nested(out, entry_start) != OK) {
            return FALLBACK;
        }
    }
    return OK;
}

/* A varint field written only when the (exact, non-negative) count is not zero. */
static int
put_count(Buffer *out, unsigned char tag, PyObject *count)
{
    uint64_t value;
    if (unsigned_of(count, &value) != OK) {
        return FALLBACK;
    }
    if (value == 0) {
        return OK;
    }
    return put_byte(out, tag) == OK && put_varint(out, value) == OK ? OK : FALLBACK;
}

/* A fixed64 timestamp field written only when not zero. */
static int
put_time(Buffer *out, unsigned char tag, PyObject *timestamp)
{
    uint64_t value;
    if (unsigned_of(timestamp, &value) != OK) {
        return FALLBACK;
    }
    if (value == 0) {
        return OK;
    }
    return put_byte(out, tag) == OK && put_fixed(out, value, 8) == OK ? OK : FALLBACK;
}

/* A string field written only when the string is not empty (Python's ``if text:``). */
static int
put_text(Buffer *out, unsigned char tag, PyObject *text)
{
    if (!PyUnicode_CheckExact(text)) {
        return FALLBACK;
    }
    if (PyUnicode_GET_LENGTH(text) == 0) {
        return OK;
    }
    return put_string_field(out, tag, text);
}

static int
put_event(Buffer *out, PyObject *event)
{
    if (!PyTuple_CheckExact(event) || PyTuple_GET_SIZE(event) != 4) {
        return FALLBACK;
    }
    size_t start;
    if (open_nested(out, 0x5A, &start) != OK || put_time(out, 0x09, PyTuple_GET_ITEM(event, 1)) != OK ||
        put_text(out, 0x12, PyTuple_GET_ITEM(event, 0)) != OK ||
        put_attributes(out, PyTuple_GET_ITEM(event, 2), 0x1A) != OK ||
        put_count(out, 0x20, PyTuple_GET_ITEM(event, 3)) != OK) {
        return FALLBACK;
    }
    return close_nested(out, start);
}

static int
put_link(Buffer *out, PyObject *link)
{
    if (!PyTuple_CheckExact(link) || PyTuple_GET_SIZE(link) != 7) {
        return FALLBACK;
    }
    int is_remote;
    size_t start;
    if (flag_of(PyTuple_GET_ITEM(link, 4), &is_remote) != OK || open_nested(out, 0x6A, &start) != OK ||
        put_byte(out, 0x0A) != OK || put_byte(out, 0x10) != OK || put_id(out, PyTuple_GET_ITEM(link, 0), 16) != OK ||
        put_byte(out, 0x12) != OK || put_byte(out, 0x08) != OK || put_id(out, PyTuple_GET_ITEM(link, 1), 8) != OK ||
        put_attributes(out, PyTuple_GET_ITEM(link, 5), 0x22) != OK ||
        put_count(out, 0x28, PyTuple_GET_ITEM(link, 6)) != OK || put_byte(out, 0x35) != OK ||
        put_fixed(out, is_remote ? 0x300 : 0x100, 4) != OK) {
        return FALLBACK;
    }
    return close_nested(out, start);
}

static int
put_status(Buffer *out, PyObject *code, PyObject *description)
{
    if (code == Py_None) {
        return OK;
    }
    uint64_t value;
    if (unsigned_of(code, &value) != OK) {
        return FALLBACK;
    }
    int described = 0;
    if (description != Py_None) {
        if (!PyUnicode_CheckExact(description)) {
            return FALLBACK;
        }
        described = PyUnicode_GET_LENGTH(description) > 0;
    }
    size_t start;
    if (open_nested(out, 0x7A, &start) != OK) {
        return FALLBACK;
    }
    if (described && put_string_field(out, 0x12, description) != OK) {
        return FALLBACK;
    }
    if (value && (put_byte(out, 0x18) != OK || put_varint(out, value) != OK)) {
        return FALLBACK;
    }
    return close_nested(out, start);
}

static int
put_span(Buffer *out, PyObject *span)
{
    PyObject *const *field = &PyTuple_GET_ITEM(span, 0);
    uint64_t parent, kind;
    int parent_is_remote;
    size_t start;
    if (unsigned_of(field[PARENT_ID], &parent) != OK || flag_of(field[PARENT_IS_REMOTE], &parent_is_remote) != OK ||
        !PyLong_CheckExact(field[KIND])) {
        return FALLBACK;
    }
    if (open_nested(out, 0x12, &start) != OK) { /* ScopeSpans.spans */
        return FALLBACK;
    }
    if (put_byte(out, 0x0A) != OK || put_byte(out, 0x10) != OK || put_id(out, field[TRACE_ID], 16) != OK ||
        put_byte(out, 0x12) != OK || put_byte(out, 0x08) != OK || put_id(out, field[SPAN_ID], 8) != OK ||
        put_text(out, 0x1A, field[TRACE_STATE]) != OK) {
        return FALLBACK;
    }
    if (parent && (put_byte(out, 0x22) != OK || put_byte(out, 0x08) != OK || put_id(out, field[PARENT_ID], 8) != OK)) {
        return FALLBACK;
    }
    if (put_text(out, 0x2A, field[NAME]) != OK) {
        return FALLBACK;
    }
    /* A SpanKind's value (0 to 4) is written as that value plus one; anything else is
     * SPAN_KIND_UNSPECIFIED, which is not written. */
    int kind_overflow = 0;
    long long kind_value = PyLong_AsLongLongAndOverflow(field[KIND], &kind_overflow);
    if (kind_value == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return FALLBACK;
    }
    if (!kind_overflow && kind_value >= 0 && kind_value <= 4) {
        kind = (uint64_t)kind_value + 1;
        if (put_byte(out, 0x30) != OK || put_byte(out, (unsigned char)kind) != OK) {
            return FALLBACK;
        }
    }
    if (put_time(out, 0x39, field[START]) != OK || put_time(out, 0x41, field[END]) != OK ||
        put_attributes(out, field[ATTRIBUTES], 0x4A) != OK ||
        put_count(out, 0x50, field[DROPPED_ATTRIBUTES]) != OK || !PyTuple_CheckExact(field[EVENTS])) {
        return FALLBACK;
    }
    for (Py_ssize_t index = 0; index < PyTuple_GET_SIZE(field[EVENTS]); index++) {
        if (put_event(out, PyTuple_GET_ITEM(field[EVENTS], index)) != OK) {
            return FALLBACK;
        }
    }
    if (put_count(out, 0x60, field[DROPPED_EVENTS]) != OK || !PyTuple_CheckExact(field[LINKS])) {
        return FALLBACK;
    }
    for (Py_ssize_t index = 0; index < PyTuple_GET_SIZE(field[LINKS]); index++) {
        if (put_link(out, PyTuple_GET_ITEM(field[LINKS], index)) != OK) {
            return FALLBACK;
        }
    }
    if (put_count(out, 0x70, field[DROPPED_LINKS]) != OK ||
        put_status(out, field[STATUS_CODE], field[STATUS_DESCRIPTION]) != OK) {
        return FALLBACK;
    }
    /* Span.flags (16, fixed32): "has is-remote", and "is remote" for a remote parent. */
    if (put_byte(out, 0x85) != OK || put_byte(out, 0x01) != OK ||
        put_fixed(out, parent && parent_is_remote ? 0x300 : 0x100, 4) != OK) {
        return FALLBACK;
    }
    return close_nested(out, start);
}

static PyObject *
span_field(PyObject *module, PyObject *span)
{
    (void)module;
    if (!PyTuple_CheckExact(span) || PyTuple_GET_SIZE(span) != FIELDS) {
        Py_RETURN_NONE;
    }
    unsigned char stack[2048];
    Buffer out = {stack, 0, sizeof stack, 0};
    PyObject *result = NULL;
    if (put_span(&out, span) == OK) {
        result = PyBytes_FromStringAndSize((const char *)out.data, (Py_ssize_t)out.length);
    }
    if (out.on_heap) {
        PyMem_Free(out.data);
    }
    if (result == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return result;
}

/* Whether masking is known to change none of ``pairs`` (see clean_span). */
static int
pairs_are_clean(PyObject *pairs, PyObject *clean, PyObject *skip_keys, PyObject *unmasked_key,
                Py_ssize_t max_length)
{
    if (!PyTuple_CheckExact(pairs)) {
        return 0;
    }
    for (Py_ssize_t index = 0; index < PyTuple_GET_SIZE(pairs); index++) {
        PyObject *pair = PyTuple_GET_ITEM(pairs, index);
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2) {
            return 0;
        }
        PyObject *key = PyTuple_GET_ITEM(pair, 0), *value = PyTuple_GET_ITEM(pair, 1);
        if (!PyUnicode_CheckExact(key) || PySet_Contains(skip_keys, key) != 0) {
            return 0;
        }
        if (value == Py_None || value == Py_True || value == Py_False || PyLong_CheckExact(value) ||
            PyFloat_CheckExact(value)) {
            continue; /* numbers are never masked */
        }
        if (!PyUnicode_CheckExact(value)) {
            return 0;
        }
        if (key == unmasked_key || PyUnicode_Compare(key, unmasked_key) == 0) {
            continue;
        }
        if (PyUnicode_GET_LENGTH(value) > max_length || PySet_Contains(clean, pair) != 1) {
            return 0;
        }
    }
    return 1;
}

/* clean_span(span, clean, skip_keys, unmasked_key, max_length) */
static PyObject *
clean_span(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "clean_span takes 5 arguments");
        return NULL;
    }
    PyObject *span = args[0], *clean = args[1], *skip_keys = args[2], *unmasked_key = args[3];
    Py_ssize_t max_length = PyLong_AsSsize_t(args[4]);
    if (max_length == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyTuple_CheckExact(span) || PyTuple_GET_SIZE(span) != FIELDS || !PyAnySet_Check(clean) ||
        !PyAnySet_Check(skip_keys) || !PyUnicode_CheckExact(unmasked_key)) {
        Py_RETURN_FALSE;
    }
    int result = pairs_are_clean(PyTuple_GET_ITEM(span, ATTRIBUTES), clean, skip_keys, unmasked_key, max_length);
    PyObject *events = PyTuple_GET_ITEM(span, EVENTS);
    if (!PyTuple_CheckExact(events)) {
        result = 0;
    }
    for (Py_ssize_t index = 0; result && index < PyTuple_GET_SIZE(events); index++) {
        PyObject *event = PyTuple_GET_ITEM(events, index);
        result = PyTuple_CheckExact(event) && PyTuple_GET_SIZE(event) == 4 &&
                 pairs_are_clean(PyTuple_GET_ITEM(event, 2), clean, skip_keys, unmasked_key, max_length);
    }
    /* A failed set lookup (an unhashable value cannot be in a pair of strings) means "not known". */
    PyErr_Clear();
    return PyBool_FromLong(result);
}

/* -- compact_span: an ended SDK span as the pipeline's plain tuple (processors/_compact.py) -- */

/* What compact_span reads, set once by configure(). */
static PyObject *SpanContextType, *TraceStateType, *EventType, *BoundedListType, *SpanKindType,
    *StatusType, *StatusCodeType, *DictBackedTypes, *TraceStateHeader, *CompactLink;
/* Interned attribute names. */
static PyObject *s_name, *s_context, *s_parent, *s_kind, *s_start_time, *s_end_time, *s_status,
    *s_resource, *s_instrumentation_scope, *s_attributes, *s_events, *s_links, *s_dict, *s_dropped,
    *s_dq, *s_timestamp, *s_value, *s_status_code, *s_description;

/* A new reference to ``owner.name``; NULL (with the error cleared) where it has none. */
static PyObject *
field_of(PyObject *owner, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(owner, name);
    if (value == NULL) {
        PyErr_Clear();
    }
    return value;
}

/* Whether ``type(value)`` is exactly ``expected``. */
static int
is_a(PyObject *value, PyObject *expected)
{
    return expected != NULL && (PyObject *)Py_TYPE(value) == expected;
}

/* ``_compact._pairs``: the pairs of a dict, or of a dict-backed attribute map, and its drop count,
 * as two new references; OK on success, FALLBACK for any other map. */
static int
pairs_of(PyObject *attributes, PyObject **pairs, PyObject **dropped)
{
    if (attributes == Py_None) {
        *pairs = PyTuple_New(0);
        *dropped = PyLong_FromLong(0);
        return *pairs != NULL && *dropped != NULL ? OK : FALLBACK;
    }
    PyObject *items;
    if (PyDict_CheckExact(attributes)) { /* a hand-made ReadableSpan's (the recorder's) */
        items = Py_NewRef(attributes);
        *dropped = PyLong_FromLong(0);
        if (*dropped == NULL) {
            Py_DECREF(items);
            return FALLBACK;
        }
    }
    else {
        int backed = PySequence_Contains(DictBackedTypes, (PyObject *)Py_TYPE(attributes));
        if (backed != 1) {
            PyErr_Clear();
            return FALLBACK;
        }
        items = field_of(attributes, s_dict);
        /* A plain dict only: an OrderedDict's own order may differ from the dict underneath. */
        if (items == NULL || !PyDict_CheckExact(items)) {
            Py_XDECREF(items);
            return FALLBACK;
        }
        *dropped = field_of(attributes, s_dropped);
        if (*dropped == NULL || !PyLong_CheckExact(*dropped)) {
            Py_XDECREF(*dropped);
            Py_DECREF(items);
            return FALLBACK;
        }
    }
    *pairs = PyTuple_New(PyDict_GET_SIZE(items));
    Py_ssize_t position = 0, index = 0;
    PyObject *key, *value;
    while (*pairs != NULL && PyDict_Next(items, &position, &key, &value)) {
        PyObject *pair = PyTuple_Pack(2, key, value);
        if (pair == NULL) {
            Py_CLEAR(*pairs);
            break;
        }
        PyTuple_SET_ITEM(*pairs, index++, pair);
    }
    Py_DECREF(items);
    if (*pairs == NULL) {
        Py_DECREF(*dropped);
        return FALLBACK;
    }
    return OK;
}

/* ``int(flags)`` of TraceFlags (an int subclass) or an int. */
static PyObject *
flags_of(PyObject *flags)
{
    return PyLong_Check(flags) ? PyNumber_Long(flags) : NULL;
}

/* ``_compact._trace_state_header``: "" for None or an empty TraceState, else its header. */
static PyObject *
trace_state_of(PyObject *state)
{
    if (state == Py_None) {
        return PyUnicode_FromStringAndSize("", 0);
    }
    if (is_a(state, TraceStateType)) {
        PyObject *entries = field_of(state, s_dict);
        if (entries != NULL && PyDict_Check(entries) && PyDict_GET_SIZE(entries) == 0) {
            Py_DECREF(entries);
            return PyUnicode_FromStringAndSize("", 0);
        }
        Py_XDECREF(entries);
    }
    return PyObject_CallOneArg(TraceStateHeader, state);
}

/* An enum member's value (``member.value`` reads ``_value_`` through a descriptor). */
static PyObject *
enum_value(PyObject *member, PyObject *enum_type)
{
    return is_a(member, enum_type) ? field_of(member, s_value) : NULL;
}

/* The items of a BoundedList (a new reference to its deque) and its drop count, or of a tuple or
 * list (none dropped); for None, no items. FALLBACK for anything else. */
static int
bounded_list(PyObject *list, PyObject **items, PyObject **dropped)
{
    if (list == Py_None) {
        *items = NULL;
        *dropped = PyLong_FromLong(0);
        return *dropped != NULL ? OK : FALLBACK;
    }
    if (PyTuple_CheckExact(list) || PyList_CheckExact(list)) { /* a hand-made ReadableSpan's */
        *items = Py_NewRef(list);
        *dropped = PyLong_FromLong(0);
        return *dropped != NULL ? OK : FALLBACK;
    }
    if (!is_a(list, BoundedListType)) {
        return FALLBACK;
    }
    *items = field_of(list, s_dq);
    *dropped = field_of(list, s_dropped);
    if (*items == NULL || *dropped == NULL || !PyLong_CheckExact(*dropped)) {
        Py_XDECREF(*items);
        Py_XDECREF(*dropped);
        return FALLBACK;
    }
    return OK;
}

/* ``_compact._event``. */
static PyObject *
compact_event(PyObject *event)
{
    if (!is_a(event, EventType)) {
        return NULL;
    }
    PyObject *name = field_of(event, s_name), *timestamp = field_of(event, s_timestamp);
    PyObject *attributes = field_of(event, s_attributes), *pairs = NULL, *dropped = NULL, *result = NULL;
    if (name != NULL && timestamp != NULL && attributes != NULL && pairs_of(attributes, &pairs, &dropped) == OK) {
        result = PyTuple_Pack(4, name, timestamp, pairs, dropped);
    }
    Py_XDECREF(name);
    Py_XDECREF(timestamp);
    Py_XDECREF(attributes);
    Py_XDECREF(pairs);
    Py_XDECREF(dropped);
    return result;
}

/* The compact forms of a deque's items (``convert`` each), as a tuple; () for no deque. */
static PyObject *
compact_items(PyObject *items, PyObject *(*convert)(PyObject *))
{
    if (items == NULL) {
        return PyTuple_New(0);
    }
    PyObject *list = PySequence_List(items);
    if (list == NULL) {
        return NULL;
    }
    Py_ssize_t size = PyList_GET_SIZE(list);
    PyObject *result = PyTuple_New(size);
    for (Py_ssize_t index = 0; result != NULL && index < size; index++) {
        PyObject *item = convert(PyList_GET_ITEM(list, index));
        if (item == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyTuple_SET_ITEM(result, index, item);
    }
    Py_DECREF(list);
    return result;
}

static PyObject *
compact_link(PyObject *link)
{
    return PyObject_CallOneArg(CompactLink, link);
}

/* ``start or 0`` for None or an exact int. */
static PyObject *
time_of(PyObject *value)
{
    if (value == Py_None) {
        return PyLong_FromLong(0);
    }
    if (!PyLong_CheckExact(value)) {
        return NULL;
    }
    Py_INCREF(value);
    return value;
}

enum { F_NAME, F_CONTEXT, F_PARENT, F_KIND, F_START, F_END, F_STATUS, F_RESOURCE, F_SCOPE, F_ATTRIBUTES,
       F_EVENTS, F_LINKS, F_COUNT };

/* compact_span(span, origin_key): the span's compact tuple, or None for the Python code to make. */
static PyObject *
compact_span(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "compact_span takes 2 arguments");
        return NULL;
    }
    if (SpanContextType == NULL) {
        Py_RETURN_NONE;
    }
    PyObject *span = args[0], *origin_key = args[1];
    PyObject *const names[F_COUNT] = {s_name, s_context, s_parent, s_kind, s_start_time, s_end_time, s_status,
                                      s_resource, s_instrumentation_scope, s_attributes, s_events, s_links};
    PyObject *field[F_COUNT] = {NULL};
    PyObject *out[FIELDS + 1] = {NULL};
    PyObject *event_items = NULL, *link_items = NULL, *result = NULL;
    for (int index = 0; index < F_COUNT; index++) {
        if ((field[index] = field_of(span, names[index])) == NULL) {
            goto done;
        }
    }
    PyObject *context = field[F_CONTEXT], *parent = field[F_PARENT], *status = field[F_STATUS];
    if (!is_a(context, SpanContextType) || PyTuple_GET_SIZE(context) < 5) {
        goto done;
    }
    out[NAME] = Py_NewRef(field[F_NAME]);
    out[TRACE_ID] = Py_NewRef(PyTuple_GET_ITEM(context, 0));
    out[SPAN_ID] = Py_NewRef(PyTuple_GET_ITEM(context, 1));
    if ((out[3] = flags_of(PyTuple_GET_ITEM(context, 3))) == NULL ||
        (out[TRACE_STATE] = trace_state_of(PyTuple_GET_ITEM(context, 4))) == NULL) {
        goto done;
    }
    if (parent == Py_None) {
        out[PARENT_ID] = PyLong_FromLong(0);
        out[PARENT_IS_REMOTE] = Py_NewRef(Py_False);
    }
    else {
        if (!is_a(parent, SpanContextType) || PyTuple_GET_SIZE(parent) < 3) {
            goto done;
        }
        PyObject *remote = PyTuple_GET_ITEM(parent, 2);
        if (remote != Py_True && remote != Py_False) {
            goto done;
        }
        out[PARENT_ID] = Py_NewRef(PyTuple_GET_ITEM(parent, 1));
        out[PARENT_IS_REMOTE] = Py_NewRef(remote);
    }
    out[KIND] = is_a(field[F_KIND], SpanKindType) ? enum_value(field[F_KIND], SpanKindType) : PyLong_FromLong(-1);
    out[START] = time_of(field[F_START]);
    out[END] = time_of(field[F_END]);
    if (out[PARENT_ID] == NULL || out[KIND] == NULL || out[START] == NULL || out[END] == NULL ||
        pairs_of(field[F_ATTRIBUTES], &out[ATTRIBUTES], &out[DROPPED_ATTRIBUTES]) != OK ||
        bounded_list(field[F_EVENTS], &event_items, &out[DROPPED_EVENTS]) != OK ||
        bounded_list(field[F_LINKS], &link_items, &out[DROPPED_LINKS]) != OK ||
        (out[EVENTS] = compact_items(event_items, compact_event)) == NULL ||
        (out[LINKS] = compact_items(link_items, compact_link)) == NULL) {
        goto done;
    }
    if (status == Py_None) {
        out[STATUS_CODE] = Py_NewRef(Py_None);
        out[STATUS_DESCRIPTION] = Py_NewRef(Py_None);
    }
    else {
        if (!is_a(status, StatusType)) {
            goto done;
        }
        PyObject *code = field_of(status, s_status_code);
        if (code != NULL) {
            out[STATUS_CODE] = enum_value(code, StatusCodeType);
            Py_DECREF(code);
        }
        out[STATUS_DESCRIPTION] = field_of(status, s_description);
        if (out[STATUS_CODE] == NULL || out[STATUS_DESCRIPTION] == NULL) {
            goto done;
        }
    }
    /* ``scope or None``, as the Python code asks it. */
    PyObject *scope = field[F_SCOPE];
    int scope_is_true = PyObject_IsTrue(scope);
    if (scope_is_true < 0) {
        goto done;
    }
    PyObject *key_args[2] = {field[F_RESOURCE], scope_is_true ? scope : Py_None};
    if ((out[FIELDS - 1] = PyObject_Vectorcall(origin_key, key_args, 2, NULL)) == NULL) {
        goto done;
    }
    result = PyTuple_New(FIELDS);
    if (result != NULL) {
        for (int index = 0; index < FIELDS; index++) {
            PyTuple_SET_ITEM(result, index, out[index]);
            out[index] = NULL;
        }
    }
done:
    for (int index = 0; index < F_COUNT; index++) {
        Py_XDECREF(field[index]);
    }
    for (int index = 0; index < FIELDS; index++) {
        Py_XDECREF(out[index]);
    }
    Py_XDECREF(event_items);
    Py_XDECREF(link_items);
    if (result == NULL) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return result;
}

static PyObject *
intern(const char *text)
{
    return PyUnicode_InternFromString(text);
}

/* configure(span_context, trace_state, event, bounded_list, dict_backed, span_kind, status,
 *           status_code, trace_state_header, compact_link) */
static PyObject *
configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 10) {
        PyErr_SetString(PyExc_TypeError, "configure takes 10 arguments");
        return NULL;
    }
    PyObject **targets[10] = {&SpanContextType, &TraceStateType, &EventType, &BoundedListType, &DictBackedTypes,
                              &SpanKindType, &StatusType, &StatusCodeType, &TraceStateHeader, &CompactLink};
    for (int index = 0; index < 10; index++) {
        Py_XSETREF(*targets[index], Py_NewRef(args[index]));
    }
    if (s_name == NULL) {
        s_name = intern("_name");
        s_context = intern("_context");
        s_parent = intern("_parent");
        s_kind = intern("_kind");
        s_start_time = intern("_start_time");
        s_end_time = intern("_end_time");
        s_status = intern("_status");
        s_resource = intern("_resource");
        s_instrumentation_scope = intern("_instrumentation_scope");
        s_attributes = intern("_attributes");
        s_events = intern("_events");
        s_links = intern("_links");
        s_dict = intern("_dict");
        s_dropped = intern("dropped");
        s_dq = intern("_dq");
        s_timestamp = intern("_timestamp");
        s_value = intern("_value_");
        s_status_code = intern("_status_code");
        s_description = intern("_description");
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(span_context, trace_state, event, bounded_list, dict_backed, span_kind, status, "
     "status_code, trace_state_header, compact_link): the types compact_span reads."},
    {"compact_span", (PyCFunction)(void (*)(void))compact_span, METH_FASTCALL,
     "compact_span(span, origin_key): an ended SDK span's compact tuple, or None where the Python "
     "code must make it."},
    {"span_field", (PyCFunction)span_field, METH_O,
     "span_field(span): the ScopeSpans.spans field of a compact span, or None where the Python "
     "encoder must write it."},
    {"clean_span", (PyCFunction)(void (*)(void))clean_span, METH_FASTCALL,
     "clean_span(span, clean, skip_keys, unmasked_key, max_length): True when masking changes "
     "none of a compact span's attributes or its events', as far as the clean set tells."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef accelerated_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "execscope.processors._accelerated",
    .m_doc = "The export worker's per-span encoding and masking check (see _otlp_encoding).",
    .m_size = 0,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__accelerated(void)
{
    return PyModule_Create(&accelerated_module);
}
