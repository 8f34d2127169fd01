/*
 * The bytecode rewrite's pass over one code object, in C: _bytecode.py's ``function_additions``
 * and ``rebuild`` (and the module header's placement), with the same output byte for byte.
 *
 * Why C: the pass touches every instruction of every selected function. Written in Python it
 * costs about twice what compiling the module did, which is the cost the bytecode rewrite exists
 * to avoid (see _bytecode.py); here it is a few per cent of it. _bytecode.py stays the
 * specification: the tests compare the two on whole modules.
 *
 * The interpreter's tables (inline cache sizes, which opcodes jump and which way, the opcode
 * numbers used) are handed over by ``configure`` from the ``opcode`` module of the running
 * interpreter, so nothing here is copied from a header of one Python version.
 *
 * Every entry point returns new bytes or raises; it never changes its arguments. The caller
 * (_code_rewrite.py) falls back to the ``ast`` rewrite on any error.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>

static unsigned char caches[256];
/* 0: not a jump; 1: a relative jump forward; 2: a relative jump backward. */
static unsigned char jump_kind[256];
static int configured = 0;

enum {
    K_RESUME, K_RETURN_VALUE, K_YIELD_VALUE, K_ASYNC_GEN_WRAP, K_GET_YIELD_FROM_ITER, K_SEND,
    K_PUSH_EXC_INFO, K_WITH_EXCEPT_START, K_LOAD_GLOBAL, K_LOAD_ATTR, K_LOAD_CONST, K_LOAD_METHOD,
    K_BINARY_SUBSCR, K_PRECALL, K_CALL, K_POP_TOP, K_SWAP, K_COPY, K_POP_EXCEPT, K_RERAISE,
    K_EXTENDED_ARG, K_BEFORE_WITH, K_COUNT
};
static int op_of[K_COUNT];
#define OP(k) (op_of[K_##k])

typedef struct { int op; int arg; } Ins;
typedef struct { int line, end_line, col, end_col; } Pos;
typedef struct { int start, end, target, depth, lasti; } Entry;

/* Indexes the added code uses (see _bytecode.SiteNames). */
typedef struct { int registry, key, index, none, exit, ret_leave, leave, suspend, resume, delegate; } Names;

/* A growable array of instructions to add at one place. */
typedef struct { Ins *items; int n, cap; } Snippet;

static int
snippet_add(Snippet *s, int op, int arg)
{
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 32;
        Ins *items = PyMem_Realloc(s->items, sizeof(Ins) * cap);
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        s->items = items;
        s->cap = cap;
    }
    s->items[s->n].op = op;
    s->items[s->n].arg = arg;
    s->n++;
    return 0;
}

static int
extended(int arg)
{
    return arg < 0x100 ? 0 : arg < 0x10000 ? 1 : arg < 0x1000000 ? 2 : 3;
}

static int
snippet_size(const Snippet *s)
{
    int size = 0;
    for (int i = 0; i < s->n; i++) {
        size += extended(s->items[i].arg) + 1 + caches[s->items[i].op];
    }
    return size;
}

/* -- the code added (see the functions of the same names in _bytecode.py) ------------------- */

static int
add_site(Snippet *s, const Names *n)
{
    return (snippet_add(s, OP(LOAD_GLOBAL), n->registry << 1) || snippet_add(s, OP(LOAD_ATTR), n->key)
            || snippet_add(s, OP(LOAD_CONST), n->index) || snippet_add(s, OP(BINARY_SUBSCR), 0)) ? -1 : 0;
}

static int
add_enter(Snippet *s, const Names *n)
{
    return (add_site(s, n) || snippet_add(s, OP(COPY), 1) || snippet_add(s, OP(BEFORE_WITH), 0)
            || snippet_add(s, OP(POP_TOP), 0) || snippet_add(s, OP(POP_TOP), 0)) ? -1 : 0;
}

/* With the site on top of the stack and a value below it: the value replaced by
 * ``site.<method>(value)``, the site taken off. */
static int
add_call_on_value(Snippet *s, int method)
{
    return (snippet_add(s, OP(LOAD_METHOD), method) || snippet_add(s, OP(SWAP), 2) || snippet_add(s, OP(SWAP), 3)
            || snippet_add(s, OP(PRECALL), 1) || snippet_add(s, OP(CALL), 1)) ? -1 : 0;
}

static int
add_passes_through(Snippet *s, const Names *n, int method)
{
    return (add_site(s, n) || add_call_on_value(s, method)) ? -1 : 0;
}

/* Before a RETURN_VALUE the site kept since the entry is below the value: swapped on top. */
static int
add_leave(Snippet *s, const Names *n, int keep_value)
{
    return (snippet_add(s, OP(SWAP), 2) || add_call_on_value(s, keep_value ? n->ret_leave : n->leave)) ? -1 : 0;
}

static int
add_reattach(Snippet *s, const Names *n)
{
    return (add_site(s, n) || snippet_add(s, OP(LOAD_METHOD), n->resume) || snippet_add(s, OP(LOAD_CONST), n->none)
            || snippet_add(s, OP(PRECALL), 1) || snippet_add(s, OP(CALL), 1) || snippet_add(s, OP(POP_TOP), 0))
               ? -1 : 0;
}

/* -- reading the code object's tables -------------------------------------------------------- */

typedef struct {
    int *starts, *ops, *args;
    int count, length;
} Code;

static void
code_free(Code *c)
{
    PyMem_Free(c->starts);
    PyMem_Free(c->ops);
    PyMem_Free(c->args);
}

static int
decode(const unsigned char *bytes, Py_ssize_t size, Code *c)
{
    int capacity = (int)(size / 2) + 1;
    c->starts = PyMem_Malloc(sizeof(int) * capacity);
    c->ops = PyMem_Malloc(sizeof(int) * capacity);
    c->args = PyMem_Malloc(sizeof(int) * capacity);
    c->count = 0;
    c->length = (int)(size / 2);
    if (c->starts == NULL || c->ops == NULL || c->args == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t position = 0;
    int argument = 0, start = -1;
    while (position + 1 < size) {
        int op = bytes[position];
        if (start < 0) {
            start = (int)(position >> 1);
        }
        argument = argument << 8 | bytes[position + 1];
        position += 2;
        if (op == OP(EXTENDED_ARG)) {
            continue;
        }
        c->starts[c->count] = start;
        c->ops[c->count] = op;
        c->args[c->count] = argument;
        c->count++;
        position += 2 * caches[op];
        argument = 0;
        start = -1;
    }
    return 0;
}

static int
instruction_end(const Code *c, int i)
{
    return i + 1 < c->count ? c->starts[i + 1] : c->length;
}

static int
jump_target(const Code *c, int i)
{
    int end = instruction_end(c, i);
    return jump_kind[c->ops[i]] == 2 ? end - c->args[i] : end + c->args[i];
}

/* The instruction starting at code unit ``unit`` (``count`` for the end of the code), or -1:
 * a binary search, ``starts`` ascends. */
static int
index_at(const Code *c, int unit)
{
    if (unit == c->length) {
        return c->count;
    }
    int low = 0, high = c->count - 1;
    while (low <= high) {
        int middle = low + (high - low) / 2;
        if (c->starts[middle] == unit) {
            return middle;
        }
        if (c->starts[middle] < unit) {
            low = middle + 1;
        }
        else {
            high = middle - 1;
        }
    }
    return -1;
}

static int
read_varint(const unsigned char *table, Py_ssize_t size, Py_ssize_t *position, int *value)
{
    if (*position >= size) {
        return -1;
    }
    unsigned int byte = table[(*position)++];
    unsigned int result = byte & 63;
    while (byte & 64) {
        if (*position >= size) {
            return -1;
        }
        byte = table[(*position)++];
        result = result << 6 | (byte & 63);
    }
    *value = (int)result;
    return 0;
}

static Entry *
parse_exceptions(const unsigned char *table, Py_ssize_t size, int *count)
{
    Entry *entries = PyMem_Malloc(sizeof(Entry) * (size / 4 + 1));
    if (entries == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    Py_ssize_t position = 0;
    int n = 0;
    while (position < size) {
        int start, length, target, depth_lasti;
        if (read_varint(table, size, &position, &start) || read_varint(table, size, &position, &length)
            || read_varint(table, size, &position, &target) || read_varint(table, size, &position, &depth_lasti)) {
            PyMem_Free(entries);
            PyErr_SetString(PyExc_ValueError, "a malformed exception table");
            return NULL;
        }
        entries[n].start = start;
        entries[n].end = start + length;
        entries[n].target = target;
        entries[n].depth = depth_lasti >> 1;
        entries[n].lasti = depth_lasti & 1;
        n++;
    }
    *count = n;
    return entries;
}

static unsigned int
read_location_varint(const unsigned char *table, Py_ssize_t size, Py_ssize_t *position)
{
    unsigned int value = 0;
    int shift = 0;
    while (*position < size) {
        unsigned int byte = table[(*position)++];
        value |= (byte & 63) << shift;
        shift += 6;
        if (!(byte & 64)) {
            break;
        }
    }
    return value;
}

static int
read_signed_location_varint(const unsigned char *table, Py_ssize_t size, Py_ssize_t *position)
{
    unsigned int value = read_location_varint(table, size, position);
    return (value & 1) ? -(int)(value >> 1) : (int)(value >> 1);
}

/* One position per code unit, as ``code.co_positions()`` gives them (-1 for None). */
static Pos *
parse_positions(const unsigned char *table, Py_ssize_t size, int first_line, int length)
{
    Pos *positions = PyMem_Malloc(sizeof(Pos) * (length + 1));
    if (positions == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (int i = 0; i < length; i++) {
        positions[i].line = positions[i].end_line = positions[i].col = positions[i].end_col = -1;
    }
    Py_ssize_t position = 0;
    int line = first_line, unit = 0;
    while (position < size && unit < length) {
        int first = table[position++];
        int code = (first >> 3) & 15;
        int units = (first & 7) + 1;
        Pos p = {-1, -1, -1, -1};
        if (code == 15) {
            /* no location */
        }
        else if (code == 14) {
            line += read_signed_location_varint(table, size, &position);
            p.line = line;
            p.end_line = line + (int)read_location_varint(table, size, &position);
            p.col = (int)read_location_varint(table, size, &position) - 1;
            p.end_col = (int)read_location_varint(table, size, &position) - 1;
        }
        else if (code == 13) {
            line += read_signed_location_varint(table, size, &position);
            p.line = p.end_line = line;
        }
        else if (code >= 10) {
            line += code - 10;
            p.line = p.end_line = line;
            p.col = position < size ? table[position++] : 0;
            p.end_col = position < size ? table[position++] : 0;
        }
        else {
            int second = position < size ? table[position++] : 0;
            p.line = p.end_line = line;
            p.col = code * 8 + ((second >> 4) & 7);
            p.end_col = p.col + (second & 15);
        }
        for (int k = 0; k < units && unit < length; k++) {
            positions[unit++] = p;
        }
    }
    return positions;
}

/* -- writing --------------------------------------------------------------------------------- */

typedef struct { unsigned char *data; Py_ssize_t n, cap; } Buffer;

static int
put(Buffer *b, unsigned char byte)
{
    if (b->n == b->cap) {
        Py_ssize_t cap = b->cap ? b->cap * 2 : 256;
        unsigned char *data = PyMem_Realloc(b->data, cap);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->data = data;
        b->cap = cap;
    }
    b->data[b->n++] = byte;
    return 0;
}

static int
emit(Buffer *out, int op, int arg, int prefixes)
{
    for (int shift = prefixes; shift > 0; shift--) {
        if (put(out, (unsigned char)OP(EXTENDED_ARG)) || put(out, (unsigned char)((arg >> (8 * shift)) & 0xFF))) {
            return -1;
        }
    }
    if (put(out, (unsigned char)op) || put(out, (unsigned char)(arg & 0xFF))) {
        return -1;
    }
    for (int k = 0; k < caches[op]; k++) {
        if (put(out, 0) || put(out, 0)) {
            return -1;
        }
    }
    return 0;
}

static int
emit_snippet(Buffer *out, const Snippet *s)
{
    for (int i = 0; i < s->n; i++) {
        if (emit(out, s->items[i].op, s->items[i].arg, extended(s->items[i].arg))) {
            return -1;
        }
    }
    return 0;
}

static int
exception_varint(Buffer *out, int value, int first)
{
    static const int shifts[] = {24, 18, 12, 6};
    for (int k = 0; k < 4; k++) {
        if (value >= (1 << shifts[k])) {
            if (put(out, (unsigned char)(((value >> shifts[k]) & 63) | 64 | first))) {
                return -1;
            }
            first = 0;
        }
    }
    return put(out, (unsigned char)((value & 63) | first));
}

static int
location_varint(Buffer *out, unsigned int value)
{
    while (value >= 64) {
        if (put(out, (unsigned char)(64 | (value & 63)))) {
            return -1;
        }
        value >>= 6;
    }
    return put(out, (unsigned char)value);
}

static int
signed_location_varint(Buffer *out, int value)
{
    return location_varint(out, value < 0 ? ((unsigned int)(-value) << 1) | 1 : (unsigned int)value << 1);
}

static int
same_position(const Pos *a, const Pos *b)
{
    return a->line == b->line && a->end_line == b->end_line && a->col == b->col && a->end_col == b->end_col;
}

/* See _bytecode.encode_locations. */
static int
encode_locations(Buffer *out, const Pos *positions, int count, int first_line)
{
    int line = first_line, unit = 0;
    while (unit < count) {
        const Pos *p = &positions[unit];
        int run = 1;
        while (run < 8 && unit + run < count && same_position(&positions[unit + run], p)) {
            run++;
        }
        unit += run;
        if (p->line < 0) {
            if (put(out, (unsigned char)(0x80 | 15 << 3 | (run - 1)))) {
                return -1;
            }
            continue;
        }
        int delta = p->line - line;
        line = p->line;
        if (p->col < 0 || p->end_col < 0) {
            if (p->end_line == p->line || p->end_line < 0) {
                if (put(out, (unsigned char)(0x80 | 13 << 3 | (run - 1))) || signed_location_varint(out, delta)) {
                    return -1;
                }
                continue;
            }
        }
        else if (p->end_line == p->line) {
            if (delta == 0 && p->col < 80 && p->end_col - p->col >= 0 && p->end_col - p->col < 16) {
                if (put(out, (unsigned char)(0x80 | (p->col >> 3) << 3 | (run - 1)))
                    || put(out, (unsigned char)((p->col & 7) << 4 | (p->end_col - p->col)))) {
                    return -1;
                }
                continue;
            }
            if (delta >= 0 && delta < 3 && p->col < 128 && p->end_col < 128) {
                if (put(out, (unsigned char)(0x80 | (10 + delta) << 3 | (run - 1)))
                    || put(out, (unsigned char)p->col) || put(out, (unsigned char)p->end_col)) {
                    return -1;
                }
                continue;
            }
        }
        if (put(out, (unsigned char)(0x80 | 14 << 3 | (run - 1))) || signed_location_varint(out, delta)
            || location_varint(out, (unsigned int)(p->end_line - p->line))
            || location_varint(out, (unsigned int)(p->col + 1)) || location_varint(out, (unsigned int)(p->end_col + 1))) {
            return -1;
        }
    }
    return 0;
}

static int
compare_entries(const void *a, const void *b)
{
    const Entry *x = a, *y = b;
    if (x->start != y->start) {
        return x->start < y->start ? -1 : 1;
    }
    if (x->end != y->end) {
        return x->end < y->end ? -1 : 1;
    }
    return x->target < y->target ? -1 : x->target > y->target;
}

/* -- the pass -------------------------------------------------------------------------------- */

typedef struct {
    Snippet *before, *after;  /* one per instruction */
    int first;                /* the instruction after which the added code takes the next one's position */
    int handler;              /* add the handler (functions) */
    int covered_from;
    Names names;
} Additions;

static void
additions_free(Additions *a, int count)
{
    if (a->before != NULL) {
        for (int i = 0; i < count; i++) {
            PyMem_Free(a->before[i].items);
        }
    }
    if (a->after != NULL) {
        for (int i = 0; i < count; i++) {
            PyMem_Free(a->after[i].items);
        }
    }
    PyMem_Free(a->before);
    PyMem_Free(a->after);
}

static int
prefixes_for(int arg)
{
    return extended(arg);
}

/* See _bytecode.rebuild; returns (code, locations, exceptions). */
static PyObject *
rebuild(const Code *c, const Pos *positions, Entry *entries, int entry_count, int first_line, const Additions *a)
{
    PyObject *result = NULL;
    int count = c->count;
    int *targets = PyMem_Malloc(sizeof(int) * (count + 1));
    int *before_size = PyMem_Calloc(count + 1, sizeof(int));
    int *after_size = PyMem_Calloc(count + 1, sizeof(int));
    int *prefixes = PyMem_Malloc(sizeof(int) * (count + 1));
    int *new_args = PyMem_Malloc(sizeof(int) * (count + 1));
    int *group = PyMem_Malloc(sizeof(int) * (count + 1));
    int *at = PyMem_Malloc(sizeof(int) * (count + 1));
    Entry *rebuilt = PyMem_Malloc(sizeof(Entry) * (2 * entry_count + 3));
    Buffer out = {NULL, 0, 0}, locations = {NULL, 0, 0}, exceptions = {NULL, 0, 0};
    Pos *new_positions = NULL;
    int new_positions_n = 0, new_positions_cap = 0;
    Snippet handler_before = {NULL, 0, 0}, handler_body = {NULL, 0, 0}, handler_cleanup = {NULL, 0, 0};
    if (targets == NULL || before_size == NULL || after_size == NULL || prefixes == NULL
        || new_args == NULL || group == NULL || at == NULL || rebuilt == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (int i = 0; i < count; i++) {
        targets[i] = -1;
        if (jump_kind[c->ops[i]]) {
            targets[i] = index_at(c, jump_target(c, i));
            if (targets[i] < 0) {
                PyErr_SetString(PyExc_ValueError, "a jump into the middle of an instruction");
                goto done;
            }
        }
        before_size[i] = snippet_size(&a->before[i]);
        after_size[i] = snippet_size(&a->after[i]);
        prefixes[i] = prefixes_for(c->args[i]);
        new_args[i] = c->args[i];
    }
    for (;;) {
        int position = 0;
        for (int i = 0; i < count; i++) {
            group[i] = position;
            position += before_size[i];
            at[i] = position;
            position += prefixes[i] + 1 + caches[c->ops[i]] + after_size[i];
        }
        group[count] = position;
        int grown = 0;
        for (int i = 0; i < count; i++) {
            if (targets[i] < 0) {
                continue;
            }
            int end = at[i] + prefixes[i] + 1 + caches[c->ops[i]];
            int argument = jump_kind[c->ops[i]] == 2 ? end - group[targets[i]] : group[targets[i]] - end;
            if (argument < 0) {
                PyErr_SetString(PyExc_ValueError, "a jump cannot be re-aimed");
                goto done;
            }
            new_args[i] = argument;
            if (extended(argument) > prefixes[i]) {
                prefixes[i] = extended(argument);
                grown = 1;
            }
        }
        if (!grown) {
            break;
        }
    }

    /* Each unit written gets a position: grow new_positions to the code's length as we go. */
#define ADD_POSITIONS(value, how_many)                                                               \
    do {                                                                                             \
        int _n = (how_many);                                                                         \
        if (new_positions_n + _n > new_positions_cap) {                                              \
            int _cap = (new_positions_n + _n) * 2 + 64;                                              \
            Pos *_grown = PyMem_Realloc(new_positions, sizeof(Pos) * _cap);                          \
            if (_grown == NULL) {                                                                    \
                PyErr_NoMemory();                                                                    \
                goto done;                                                                           \
            }                                                                                        \
            new_positions = _grown;                                                                  \
            new_positions_cap = _cap;                                                                \
        }                                                                                            \
        for (int _k = 0; _k < _n; _k++) {                                                            \
            new_positions[new_positions_n++] = (value);                                              \
        }                                                                                            \
    } while (0)

    Pos none = {-1, -1, -1, -1};
    Pos previous = none;
    for (int i = 0; i < count; i++) {
        if (a->before[i].n) {
            if (emit_snippet(&out, &a->before[i])) {
                goto done;
            }
            ADD_POSITIONS(previous, before_size[i]);
        }
        if (emit(&out, c->ops[i], new_args[i], prefixes[i])) {
            goto done;
        }
        int start = c->starts[i];
        int own = instruction_end(c, i) - start;
        int own_units = prefixes[i] + 1 + caches[c->ops[i]];
        if (own_units >= own) {
            ADD_POSITIONS(positions[start], own_units - own);
            for (int k = 0; k < own; k++) {
                ADD_POSITIONS(positions[start + k], 1);
            }
        }
        else {
            for (int k = own - own_units; k < own; k++) {
                ADD_POSITIONS(positions[start + k], 1);
            }
        }
        previous = new_positions[new_positions_n - 1];
        if (a->after[i].n) {
            if (emit_snippet(&out, &a->after[i])) {
                goto done;
            }
            Pos where = (i == a->first && i + 1 < count) ? positions[c->starts[i + 1]] : previous;
            ADD_POSITIONS(where, after_size[i]);
            previous = where;
        }
    }

    int n = 0;
    for (int k = 0; k < entry_count; k++) {
        int s = index_at(c, entries[k].start);
        int e = index_at(c, entries[k].end);
        int t = index_at(c, entries[k].target);
        if (s < 0 || e < 0 || t < 0) {
            PyErr_SetString(PyExc_ValueError, "an exception table entry inside an instruction");
            goto done;
        }
        rebuilt[n].start = group[s];
        rebuilt[n].end = group[e];
        rebuilt[n].target = group[t];
        /* With a handler (a function), the site stays on the stack below the body's values. */
        rebuilt[n].depth = entries[k].depth + (a->handler ? 1 : 0);
        rebuilt[n].lasti = entries[k].lasti;
        n++;
    }
    if (a->handler) {
        const Names *names = &a->names;
        if (snippet_add(&handler_before, OP(COPY), 3) || snippet_add(&handler_before, OP(LOAD_ATTR), names->exit)
            || snippet_add(&handler_before, OP(SWAP), 4) || snippet_add(&handler_before, OP(POP_TOP), 0)
            || snippet_add(&handler_before, OP(PUSH_EXC_INFO), 0)
            || snippet_add(&handler_body, OP(WITH_EXCEPT_START), 0) || snippet_add(&handler_body, OP(POP_TOP), 0)
            || snippet_add(&handler_body, OP(RERAISE), 2) || snippet_add(&handler_cleanup, OP(COPY), 3)
            || snippet_add(&handler_cleanup, OP(POP_EXCEPT), 0) || snippet_add(&handler_cleanup, OP(RERAISE), 1)) {
            goto done;
        }
        int handler_start = (int)(out.n >> 1);
        if (emit_snippet(&out, &handler_before) || emit_snippet(&out, &handler_body)
            || emit_snippet(&out, &handler_cleanup)) {
            goto done;
        }
        int body_start = handler_start + snippet_size(&handler_before);
        int cleanup_start = body_start + snippet_size(&handler_body);
        ADD_POSITIONS(none, (int)(out.n >> 1) - new_positions_n);
        /* The gaps of [group[covered_from], group[count]) no entry covers go to the handler. */
        qsort(rebuilt, n, sizeof(Entry), compare_entries);
        int original = n;
        int position = group[a->covered_from], end = group[count];
        for (int k = 0; k < original && position < end; k++) {
            if (rebuilt[k].end <= position) {
                continue;
            }
            if (rebuilt[k].start > position) {
                int gap_end = rebuilt[k].start < end ? rebuilt[k].start : end;
                if (position < gap_end) {
                    Entry gap = {position, gap_end, handler_start, 1, 1};
                    rebuilt[n++] = gap;
                }
            }
            if (rebuilt[k].end > position) {
                position = rebuilt[k].end;
            }
        }
        if (position < end) {
            Entry gap = {position, end, handler_start, 1, 1};
            rebuilt[n++] = gap;
        }
        qsort(rebuilt, n, sizeof(Entry), compare_entries);
        Entry cleanup = {body_start, cleanup_start, cleanup_start, 3, 1};
        rebuilt[n++] = cleanup;
    }
    for (int k = 0; k < n; k++) {
        if (exception_varint(&exceptions, rebuilt[k].start, 128)
            || exception_varint(&exceptions, rebuilt[k].end - rebuilt[k].start, 0)
            || exception_varint(&exceptions, rebuilt[k].target, 0)
            || exception_varint(&exceptions, rebuilt[k].depth << 1 | rebuilt[k].lasti, 0)) {
            goto done;
        }
    }
    if (encode_locations(&locations, new_positions, new_positions_n, first_line)) {
        goto done;
    }
    result = Py_BuildValue(
        "(y#y#y#)", out.data ? (const char *)out.data : "", out.n, locations.data ? (const char *)locations.data : "",
        locations.n, exceptions.data ? (const char *)exceptions.data : "", exceptions.n);
#undef ADD_POSITIONS
done:
    PyMem_Free(targets);
    PyMem_Free(before_size);
    PyMem_Free(after_size);
    PyMem_Free(prefixes);
    PyMem_Free(new_args);
    PyMem_Free(group);
    PyMem_Free(at);
    PyMem_Free(rebuilt);
    PyMem_Free(out.data);
    PyMem_Free(locations.data);
    PyMem_Free(exceptions.data);
    PyMem_Free(new_positions);
    PyMem_Free(handler_before.items);
    PyMem_Free(handler_body.items);
    PyMem_Free(handler_cleanup.items);
    return result;
}

/* The tables of a code object, read once. */
typedef struct {
    PyObject *code_bytes, *linetable, *exceptiontable;
    Code code;
    Pos *positions;
    Entry *entries;
    int entry_count, first_line;
} Read;

static void
read_free(Read *r)
{
    Py_XDECREF(r->code_bytes);
    Py_XDECREF(r->linetable);
    Py_XDECREF(r->exceptiontable);
    code_free(&r->code);
    PyMem_Free(r->positions);
    PyMem_Free(r->entries);
}

static int
read_code(PyObject *code, Read *r)
{
    memset(r, 0, sizeof(*r));
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "configure() was not called");
        return -1;
    }
    if (!PyCode_Check(code)) {
        PyErr_SetString(PyExc_TypeError, "a code object is required");
        return -1;
    }
    PyCodeObject *co = (PyCodeObject *)code;
    r->first_line = co->co_firstlineno;
    r->code_bytes = PyObject_GetAttrString(code, "co_code");
    r->linetable = PyObject_GetAttrString(code, "co_linetable");
    r->exceptiontable = PyObject_GetAttrString(code, "co_exceptiontable");
    if (r->code_bytes == NULL || r->linetable == NULL || r->exceptiontable == NULL) {
        return -1;
    }
    if (!PyBytes_Check(r->code_bytes) || !PyBytes_Check(r->linetable) || !PyBytes_Check(r->exceptiontable)) {
        PyErr_SetString(PyExc_TypeError, "a code object's tables are bytes");
        return -1;
    }
    if (decode((const unsigned char *)PyBytes_AS_STRING(r->code_bytes), PyBytes_GET_SIZE(r->code_bytes), &r->code)) {
        return -1;
    }
    r->positions = parse_positions((const unsigned char *)PyBytes_AS_STRING(r->linetable),
                                   PyBytes_GET_SIZE(r->linetable), r->first_line, r->code.length);
    if (r->positions == NULL) {
        return -1;
    }
    r->entries = parse_exceptions((const unsigned char *)PyBytes_AS_STRING(r->exceptiontable),
                                  PyBytes_GET_SIZE(r->exceptiontable), &r->entry_count);
    return r->entries == NULL ? -1 : 0;
}

static int
first_resume(const Code *c)
{
    for (int i = 0; i < c->count; i++) {
        if (c->ops[i] == OP(RESUME)) {
            return i;
        }
    }
    PyErr_SetString(PyExc_ValueError, "no RESUME in the code");
    return -1;
}

static int
additions_alloc(Additions *a, int count)
{
    memset(a, 0, sizeof(*a));
    a->before = PyMem_Calloc(count + 1, sizeof(Snippet));
    a->after = PyMem_Calloc(count + 1, sizeof(Snippet));
    if (a->before == NULL || a->after == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* Is ``(line, column)`` in the set ``none_returned``? -1 on error. */
static int
spelled_none(PyObject *none_returned, int line, int column)
{
    PyObject *key = Py_BuildValue("(ii)", line, column);
    if (key == NULL) {
        return -1;
    }
    int found = PySet_Contains(none_returned, key);
    Py_DECREF(key);
    return found;
}

/* See _bytecode.function_additions. */
static int
function_additions(const Read *r, Additions *a, int capture_return, int generator, int async_generator,
                   PyObject *none_returned)
{
    const Code *c = &r->code;
    const Names *n = &a->names;
    int count = c->count;
    int first = first_resume(c);
    if (first < 0) {
        return -1;
    }
    a->first = first;
    a->handler = 1;
    a->covered_from = first + 1;
    if (add_enter(&a->after[first], n)) {
        return -1;
    }
    unsigned char *is_target = NULL;
    int status = -1;
    for (int i = first + 1; i < count; i++) {
        int op = c->ops[i];
        if (op == OP(RETURN_VALUE)) {
            int keep = capture_return;
            if (capture_return && c->ops[i - 1] == OP(LOAD_CONST) && c->args[i - 1] == n->none) {
                if (is_target == NULL) {
                    is_target = PyMem_Calloc(count + 1, 1);
                    if (is_target == NULL) {
                        PyErr_NoMemory();
                        goto done;
                    }
                    for (int j = 0; j < count; j++) {
                        if (jump_kind[c->ops[j]]) {
                            int target = index_at(c, jump_target(c, j));
                            if (target >= 0) {
                                is_target[target] = 1;
                            }
                        }
                    }
                }
                const Pos *p = &r->positions[c->starts[i - 1]];
                int spelled = spelled_none(none_returned, p->line, p->col);
                if (spelled < 0) {
                    goto done;
                }
                if (!is_target[i] && !spelled) {
                    keep = 0;
                }
            }
            if (add_leave(&a->before[i], n, keep)) {
                goto done;
            }
        }
        else if (!generator) {
            continue;
        }
        else if ((op == OP(YIELD_VALUE) && !async_generator && c->ops[i - 1] != OP(SEND)) || op == OP(ASYNC_GEN_WRAP)) {
            if (add_passes_through(&a->before[i], n, n->suspend)) {
                goto done;
            }
        }
        else if (op == OP(RESUME) && c->args[i] == 1) {
            if (add_passes_through(&a->after[i], n, n->resume)) {
                goto done;
            }
        }
        else if (op == OP(GET_YIELD_FROM_ITER)) {
            if (add_passes_through(&a->before[i], n, n->delegate)) {
                goto done;
            }
            int send = i + 2;
            if (send < count && c->ops[send] == OP(SEND)) {
                int end = index_at(c, jump_target(c, send));
                if (end < 0 || end == count) {
                    PyErr_SetString(PyExc_ValueError, "a yield from that ends inside an instruction or past the code");
                    goto done;
                }
                if (add_passes_through(&a->before[end], n, n->resume)) {
                    goto done;
                }
            }
        }
        else if (op == OP(PUSH_EXC_INFO) && i + 1 < count && c->ops[i + 1] != OP(WITH_EXCEPT_START)) {
            if (add_reattach(&a->before[i + 1], n)) {
                goto done;
            }
        }
    }
    status = 0;
done:
    PyMem_Free(is_target);
    return status;
}

/* What to add to a code object read into ``r``, from the entry point's arguments. */
typedef int (*Fill)(const Read *r, Additions *a, PyObject *const *args);

/* Read ``code``, fill in what to add, and rebuild it. */
static PyObject *
run_pass(PyObject *code, Fill fill, PyObject *const *args)
{
    Read r;
    Additions a;
    PyObject *result = NULL;
    memset(&a, 0, sizeof(a));
    if (read_code(code, &r) == 0 && additions_alloc(&a, r.code.count) == 0 && fill(&r, &a, args) == 0) {
        result = rebuild(&r.code, r.positions, r.entries, r.entry_count, r.first_line, &a);
    }
    additions_free(&a, r.code.count);
    read_free(&r);
    return result;
}

/* args: (code, names: tuple of 10 ints, capture_return, generator, async_generator, none_returned) */
static int
fill_function(const Read *r, Additions *a, PyObject *const *args)
{
    int v[10];
    for (int k = 0; k < 10; k++) {
        v[k] = (int)PyLong_AsLong(PyTuple_GET_ITEM(args[1], k));
        if (v[k] == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    Names names = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9]};
    a->names = names;
    return function_additions(r, a, PyObject_IsTrue(args[2]), PyObject_IsTrue(args[3]), PyObject_IsTrue(args[4]),
                              args[5]);
}

static PyObject *
patch_function(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyTuple_Check(args[1]) || PyTuple_GET_SIZE(args[1]) != 10 || !PyAnySet_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "patch_function(code, names, capture_return, generator, async_generator, none_returned)");
        return NULL;
    }
    return run_pass(args[0], fill_function, args);
}

/* args: (code, header: tuple of (op, arg)), the header run first, after the module's RESUME */
static int
fill_module(const Read *r, Additions *a, PyObject *const *args)
{
    int first = first_resume(&r->code);
    if (first < 0) {
        return -1;
    }
    a->first = first;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(args[1]); k++) {
        int op, arg;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(args[1], k), "ii", &op, &arg) || snippet_add(&a->after[first], op, arg)) {
            return -1;
        }
    }
    return 0;
}

static PyObject *
patch_module(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "patch_module(code, header)");
        return NULL;
    }
    return run_pass(args[0], fill_module, args);
}

static PyObject *
configure(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    /* (caches: bytes(256), jump_kinds: bytes(256), opcodes: tuple in the K_ order) */
    if (nargs != 3 || !PyBytes_Check(args[0]) || PyBytes_GET_SIZE(args[0]) != 256 || !PyBytes_Check(args[1])
        || PyBytes_GET_SIZE(args[1]) != 256 || !PyTuple_Check(args[2]) || PyTuple_GET_SIZE(args[2]) != K_COUNT) {
        PyErr_SetString(PyExc_TypeError, "configure(caches, jump_kinds, opcodes)");
        return NULL;
    }
    for (int k = 0; k < K_COUNT; k++) {
        long op = PyLong_AsLong(PyTuple_GET_ITEM(args[2], k));
        if (op < 0 || op > 255) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "an opcode out of range");
            }
            return NULL;
        }
        op_of[k] = (int)op;
    }
    memcpy(caches, PyBytes_AS_STRING(args[0]), 256);
    memcpy(jump_kind, PyBytes_AS_STRING(args[1]), 256);
    configured = 1;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_FASTCALL,
     "configure(caches, jump_kinds, opcodes): the running interpreter's instruction tables."},
    {"patch_function", (PyCFunction)(void (*)(void))patch_function, METH_FASTCALL,
     "patch_function(code, names, capture_return, generator, async_generator, none_returned) -> "
     "(code bytes, location table, exception table)."},
    {"patch_module", (PyCFunction)(void (*)(void))patch_module, METH_FASTCALL,
     "patch_module(code, header) -> (code bytes, location table, exception table)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef bytecode_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "execscope.autotrace._bytecode_speedups",
    .m_doc = "The bytecode rewrite's pass over one code object (see _bytecode.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__bytecode_speedups(void)
{
    return PyModule_Create(&bytecode_module);
}
