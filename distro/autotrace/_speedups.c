/*
 * The auto-instrumentor's hot path in C: what a rewritten function runs on every call when
 * the call records nothing.
 *
 * Why C: a rewritten function calls its site's ``__enter__`` and, at its end, ``__exit__`` (or
 * ``leave``/``ret_leave``). Written in Python, those two calls alone cost about 100 ns before doing
 * anything, which leaves no room for the "not sampled" and "below min_duration" cases to stay
 * under their budget of 300 ns per call. As C methods they cost a few ns, and the checks
 * behind them (is the current span a not-sampled marker? has this timed call stayed below its
 * threshold?) are a handful of pointer comparisons.
 *
 * What is here is deliberately small. ``SiteCore`` is the base of the Python class ``Site``
 * (distro/autotrace/_runtime.py), which holds all the recording logic. The C methods answer
 * only the cases that record nothing and hand every other case to ``Site``'s Python methods
 * ``_enter_slow``, ``_exit_slow``, ``_exit_timed`` and ``_ret_slow``, which are also what the
 * pure-Python core calls, so both cores share one implementation of everything that records. Called from C, those
 * methods see the rewritten function's frame as ``sys._getframe(1)``, exactly as when called
 * from Python code in that function.
 *
 * Nothing here may raise into the host program: an internal failure is cleared and the call
 * goes on as if it were not selected.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <time.h>

/* A timed call in flight: a call of a site with a min_duration, not decided yet. */
typedef struct {
    /* The calling frame's interpreter frame (see caller_key). */
    const void *key;
    /* When it started, as time.time_ns(). */
    long long start;
    /* The value its ``return`` computed (a new reference), or NULL before it returned. */
    PyObject *returned;
} TimedCall;

typedef struct {
    PyObject_HEAD
    /* The recording level (0: this site records nothing). */
    int level;
    /* Calls shorter than this leave no span (0: every call is recorded when sampled). */
    long long min_duration_ns;
    /* 1 if a call below min_duration is timed here, in ``timed`` (the site is not a
     * generator, whose state must count yields). */
    int timed_in_c;
    /* 1 if a timed call an exception escapes is recorded however short it was (the governor's
     * "errors only" level). */
    int record_errors;
    /* Calls that left no span, by rule: below a trace that is not sampled; ended before
     * min_duration; returned under the governor's "errors only" level. Read by the status;
     * bumped under the interpreter lock. */
    long long calls_not_sampled;
    long long calls_short;
    long long calls_shed;
    /* Calling frame -> per-call state, shared with the Python methods. */
    PyObject *frames;
    /* The timed calls in flight, most recent last: an array rather than entries in
     * ``frames``, so a timed call makes no frame object, no int and no dict entry. Calls end
     * mostly in the reverse order they started, so the one ending is found at the top. */
    TimedCall *timed;
    Py_ssize_t timed_count;
    Py_ssize_t timed_capacity;
} SiteCore;

/* Set once by configure(): the OpenTelemetry context variable, the key of the current span in
 * a context, the type of the not-sampled marker, and the one-item list holding the last
 * not-sampled span of another tracer. */
static PyObject *context_var = NULL;
static PyObject *span_key = NULL;
static PyObject *unsampled_type = NULL;
static PyObject *dropped_parent = NULL;
static PyObject *call_type = NULL;

static PyObject *str_enter_slow = NULL;
static PyObject *str_exit_slow = NULL;
static PyObject *str_exit_timed = NULL;
static PyObject *str_ret_slow = NULL;
static PyObject *str_returned = NULL;
static PyObject *str_has_return = NULL;

/* What identifies the calling function's frame while it runs, without making its frame
 * object (which the first PyEval_GetFrame() does, ~35 ns, and which its exit frees again).
 * On CPython 3.11 and 3.12 that is the interpreter frame the thread is running: it stays at
 * one address for the whole call (on the thread's frame stack, or inside a coroutine object)
 * and no other running frame has that address. Elsewhere, the frame object. */
static const void *
caller_key(void)
{
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000 && !defined(Py_LIMITED_API)
    PyThreadState *tstate = PyThreadState_Get();
    if (tstate->cframe != NULL && tstate->cframe->current_frame != NULL) {
        return tstate->cframe->current_frame;
    }
    return NULL;
#else
    return PyEval_GetFrame();
#endif
}

static Py_ssize_t
find_timed(SiteCore *self, const void *key)
{
    for (Py_ssize_t i = self->timed_count - 1; i >= 0; i--) {
        if (self->timed[i].key == key) {
            return i;
        }
    }
    return -1;
}

static int
push_timed(SiteCore *self, const void *key, long long start)
{
    if (self->timed_count == self->timed_capacity) {
        Py_ssize_t capacity = self->timed_capacity ? self->timed_capacity * 2 : 4;
        TimedCall *grown = PyMem_Realloc(self->timed, (size_t)capacity * sizeof(TimedCall));
        if (grown == NULL) {
            return -1;
        }
        self->timed = grown;
        self->timed_capacity = capacity;
    }
    TimedCall *call = &self->timed[self->timed_count++];
    call->key = key;
    call->start = start;
    call->returned = NULL;
    return 0;
}

/* Take the timed call at ``index`` out (its ``returned`` reference passes to the caller). */
static TimedCall
pop_timed(SiteCore *self, Py_ssize_t index)
{
    TimedCall call = self->timed[index];
    Py_ssize_t after = self->timed_count - index - 1;
    if (after > 0) {
        memmove(&self->timed[index], &self->timed[index + 1], (size_t)after * sizeof(TimedCall));
    }
    self->timed_count--;
    return call;
}

static long long
now_ns(void)
{
    struct timespec ts;
    /* The clock of time.time_ns(): span start and end times are wall-clock epoch times. */
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static PyObject *
call_slow(SiteCore *self, PyObject *name, PyObject *const *args, size_t nargs)
{
    PyObject *stack[8];
    stack[0] = (PyObject *)self;
    for (size_t i = 0; i < nargs; i++) {
        stack[i + 1] = args[i];
    }
    return PyObject_VectorcallMethod(name, stack, (nargs + 1) | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* The span current in ``context`` (borrowed), or NULL. */
static PyObject *
current_span(PyObject *context)
{
    if (context == NULL || !PyDict_Check(context)) {
        return NULL;
    }
    PyObject *span = PyDict_GetItemWithError(context, span_key);
    if (span == NULL) {
        PyErr_Clear();
    }
    return span;
}

static PyObject *
SiteCore_enter(SiteCore *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->level) {
        Py_RETURN_NONE;
    }
    PyObject *context = NULL;
    if (context_var != NULL && PyContextVar_Get(context_var, NULL, &context) < 0) {
        PyErr_Clear();
        context = NULL;
    }
    PyObject *parent = current_span(context);
    if (parent != NULL
        && ((PyObject *)Py_TYPE(parent) == unsampled_type
            || parent == PyList_GET_ITEM(dropped_parent, 0))) {
        /* Below a local root head sampling dropped, or an SDK span that is not sampled. */
        self->calls_not_sampled++;
        Py_XDECREF(context);
        Py_RETURN_NONE;
    }
    if (self->timed_in_c && self->min_duration_ns > 0) {
        /* Only timed: whether it is recorded is decided when it proves slow. */
        const void *key = caller_key();
        if (key != NULL && push_timed(self, key, now_ns()) < 0) {
            PyErr_Clear();
        }
        Py_XDECREF(context);
        Py_RETURN_NONE;
    }
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) {
        Py_XDECREF(context);
        Py_RETURN_NONE;
    }
    PyObject *args[2] = {context != NULL ? context : Py_None, (PyObject *)frame};
    PyObject *result = call_slow(self, str_enter_slow, args, 2);
    Py_XDECREF(context);
    if (result == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(result);
    Py_RETURN_NONE;
}

/* A timed call that ended too soon to be recorded: short, or shed by "errors only". */
static inline void
count_unrecorded(SiteCore *self)
{
    if (self->record_errors) {
        self->calls_shed++;
    }
    else {
        self->calls_short++;
    }
}

/* The end of a timed call (taken out of ``timed``): nothing below min_duration (unless an
 * exception escaped it and the site records errors), else recorded after the fact by
 * ``Site._exit_timed``. */
static void
end_timed(SiteCore *self, TimedCall call, PyObject *const *exc_info)
{
    if (now_ns() - call.start < self->min_duration_ns
        && !(self->record_errors && exc_info[0] != Py_None)) {
        count_unrecorded(self);
        Py_XDECREF(call.returned);
        return;
    }
    PyFrameObject *frame = PyEval_GetFrame();
    PyObject *start = PyLong_FromLongLong(call.start);
    if (frame != NULL && start != NULL) {
        PyObject *args[7] = {
            (PyObject *)frame,
            start,
            call.returned != NULL ? Py_True : Py_False,
            call.returned != NULL ? call.returned : Py_None,
            exc_info[0],
            exc_info[1],
            exc_info[2],
        };
        PyObject *result = call_slow(self, str_exit_timed, args, 7);
        Py_XDECREF(result);
    }
    if (PyErr_Occurred()) {
        PyErr_Clear();
    }
    Py_XDECREF(start);
    Py_XDECREF(call.returned);
}

static PyObject *
SiteCore_exit(SiteCore *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__ takes exactly 3 arguments");
        return NULL;
    }
    if (self->timed_count) {
        Py_ssize_t index = find_timed(self, caller_key());
        if (index >= 0) {
            end_timed(self, pop_timed(self, index), args);
            Py_RETURN_FALSE;
        }
    }
    if (PyDict_GET_SIZE(self->frames) == 0) {
        Py_RETURN_FALSE;
    }
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) {
        Py_RETURN_FALSE;
    }
    PyObject *state = PyDict_GetItemWithError(self->frames, (PyObject *)frame);
    if (state == NULL) {
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    PyObject *slow_args[4] = {(PyObject *)frame, args[0], args[1], args[2]};
    PyObject *result = call_slow(self, str_exit_slow, slow_args, 4);
    if (result == NULL) {
        PyErr_Clear();
    }
    Py_XDECREF(result);
    Py_RETURN_FALSE;
}

/* ``return value`` of a call that has a state in ``frames``. */
static PyObject *
ret_recorded(SiteCore *self, PyObject *value)
{
    if (PyDict_GET_SIZE(self->frames) == 0) {
        return Py_NewRef(value);
    }
    PyFrameObject *frame = PyEval_GetFrame();
    if (frame == NULL) {
        return Py_NewRef(value);
    }
    PyObject *state = PyDict_GetItemWithError(self->frames, (PyObject *)frame);
    if (state == NULL) {
        PyErr_Clear();
        return Py_NewRef(value);
    }
    if ((PyObject *)Py_TYPE(state) == call_type) {
        /* A recorded call: Call.returned and Call.has_return (slots). */
        if (PyObject_SetAttr(state, str_returned, value) < 0
            || PyObject_SetAttr(state, str_has_return, Py_True) < 0) {
            PyErr_Clear();
        }
        return Py_NewRef(value);
    }
    PyObject *args[2] = {(PyObject *)frame, value};
    PyObject *result = call_slow(self, str_ret_slow, args, 2);
    if (result == NULL) {
        PyErr_Clear();
        return Py_NewRef(value);
    }
    return result;
}

/* A timed call's ``return value``: kept, in case the call proves slow. */
static void
keep_returned(SiteCore *self, Py_ssize_t index, PyObject *value)
{
    PyObject *previous = self->timed[index].returned;
    self->timed[index].returned = Py_NewRef(value);
    /* Last: freeing the previous value may run a __del__ that calls this site again. */
    Py_XDECREF(previous);
}

static PyObject *
SiteCore_ret(SiteCore *self, PyObject *value)
{
    if (self->timed_count) {
        Py_ssize_t index = find_timed(self, caller_key());
        if (index >= 0) {
            keep_returned(self, index, value);
            return Py_NewRef(value);
        }
    }
    return ret_recorded(self, value);
}

static PyObject *
SiteCore_ret_exit(SiteCore *self, PyObject *value)
{
    /* A ``return`` from which nothing of the function's own runs before the ``with``'s exit
     * (no enclosing ``try`` with a ``finally``, no enclosing ``with``): a timed call ends
     * here. Below min_duration it is settled now, which leaves ``__exit__`` nothing to look
     * up and spares keeping the value for a call that leaves no span. */
    if (self->timed_count) {
        Py_ssize_t index = find_timed(self, caller_key());
        if (index >= 0) {
            if (now_ns() - self->timed[index].start < self->min_duration_ns) {
                TimedCall call = pop_timed(self, index);
                count_unrecorded(self);
                Py_XDECREF(call.returned);
            }
            else {
                keep_returned(self, index, value);
            }
            return Py_NewRef(value);
        }
    }
    return ret_recorded(self, value);
}

/* ``return value`` where the call ends: the value not kept (``leave``), or kept (``ret_leave``,
 * as ``ret_exit``), then the exit a ``with`` would make, in one call from the rewritten code. */
static PyObject *
SiteCore_leave(SiteCore *self, PyObject *value)
{
    PyObject *none[3] = {Py_None, Py_None, Py_None};
    PyObject *done = SiteCore_exit(self, none, 3);
    Py_XDECREF(done);
    return Py_NewRef(value);
}

static PyObject *
SiteCore_ret_leave(SiteCore *self, PyObject *value)
{
    if (!self->timed_count && PyDict_GET_SIZE(self->frames) == 0) {
        return Py_NewRef(value);  /* nothing to keep, nothing to end */
    }
    PyObject *kept = SiteCore_ret_exit(self, value);
    PyObject *none[3] = {Py_None, Py_None, Py_None};
    PyObject *done = SiteCore_exit(self, none, 3);
    Py_XDECREF(done);
    return kept;
}

static PyObject *
SiteCore_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds))
{
    SiteCore *self = (SiteCore *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->frames = PyDict_New();
    if (self->frames == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
SiteCore_traverse(SiteCore *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->frames);
    for (Py_ssize_t i = 0; i < self->timed_count; i++) {
        Py_VISIT(self->timed[i].returned);
    }
    return 0;
}

static int
SiteCore_clear(SiteCore *self)
{
    Py_CLEAR(self->frames);
    while (self->timed_count > 0) {
        TimedCall call = pop_timed(self, self->timed_count - 1);
        Py_XDECREF(call.returned);
    }
    return 0;
}

static void
SiteCore_dealloc(SiteCore *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    SiteCore_clear(self);
    PyMem_Free(self->timed);
    self->timed = NULL;
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyMethodDef SiteCore_methods[] = {
    {"__enter__", (PyCFunction)SiteCore_enter, METH_NOARGS, "Start of the rewritten body."},
    {"__exit__", (PyCFunction)(void (*)(void))SiteCore_exit, METH_FASTCALL, "End of the rewritten body."},
    {"ret", (PyCFunction)SiteCore_ret, METH_O, "``return value``: remembered, returned unchanged."},
    {"ret_exit", (PyCFunction)SiteCore_ret_exit, METH_O,
     "``return value`` with nothing of the function's own left to run: a timed call ends here."},
    {"leave", (PyCFunction)SiteCore_leave, METH_O, "The call ends at this ``return``; its value is not kept."},
    {"ret_leave", (PyCFunction)SiteCore_ret_leave, METH_O, "The call ends at this ``return value``."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef SiteCore_members[] = {
    {"level", T_INT, offsetof(SiteCore, level), 0, "The recording level (0: records nothing)."},
    {"min_duration_ns", T_LONGLONG, offsetof(SiteCore, min_duration_ns), 0,
     "Calls shorter than this leave no span."},
    {"timed_in_c", T_INT, offsetof(SiteCore, timed_in_c), 0,
     "Whether calls below min_duration are timed by the core (not for generators)."},
    {"record_errors", T_INT, offsetof(SiteCore, record_errors), 0,
     "Whether a timed call an exception escapes is recorded however short it was."},
    {"timed_calls", T_PYSSIZET, offsetof(SiteCore, timed_count), READONLY,
     "How many timed calls are in flight."},
    {"frames", T_OBJECT, offsetof(SiteCore, frames), READONLY, "Calling frame -> per-call state."},
    {"calls_not_sampled", T_LONGLONG, offsetof(SiteCore, calls_not_sampled), 0,
     "Calls that left no span because their trace is not sampled."},
    {"calls_short", T_LONGLONG, offsetof(SiteCore, calls_short), 0,
     "Calls that left no span because they ended before min_duration."},
    {"calls_shed", T_LONGLONG, offsetof(SiteCore, calls_shed), 0,
     "Calls that left no span because they returned under the governor's errors-only level."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot SiteCore_slots[] = {
    {Py_tp_doc, "The C part of a rewritten function's Site: the cases that record nothing."},
    {Py_tp_new, SiteCore_new},
    {Py_tp_dealloc, SiteCore_dealloc},
    {Py_tp_traverse, SiteCore_traverse},
    {Py_tp_clear, SiteCore_clear},
    {Py_tp_methods, SiteCore_methods},
    {Py_tp_members, SiteCore_members},
    {0, NULL},
};

static PyType_Spec SiteCore_spec = {
    .name = "execscope.autotrace._speedups.SiteCore",
    .basicsize = sizeof(SiteCore),
    .itemsize = 0,
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = SiteCore_slots,
};

static PyObject *
speedups_configure(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "configure(context_var, span_key, unsampled_type, dropped_parent, call_type)");
        return NULL;
    }
    if (!PyType_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "call_type must be a type");
        return NULL;
    }
    if (!PyContextVar_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "context_var must be a contextvars.ContextVar");
        return NULL;
    }
    if (!PyType_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "unsampled_type must be a type");
        return NULL;
    }
    if (!PyList_CheckExact(args[3]) || PyList_GET_SIZE(args[3]) != 1) {
        PyErr_SetString(PyExc_TypeError, "dropped_parent must be a list of one item");
        return NULL;
    }
    Py_XSETREF(context_var, Py_NewRef(args[0]));
    Py_XSETREF(span_key, Py_NewRef(args[1]));
    Py_XSETREF(unsampled_type, Py_NewRef(args[2]));
    Py_XSETREF(dropped_parent, Py_NewRef(args[3]));
    Py_XSETREF(call_type, Py_NewRef(args[4]));
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))speedups_configure, METH_FASTCALL,
     "configure(context_var, span_key, unsampled_type, dropped_parent, call_type): what the fast "
     "path reads."},
    {NULL, NULL, 0, NULL},
};

static int
module_exec(PyObject *module)
{
    str_enter_slow = PyUnicode_InternFromString("_enter_slow");
    str_exit_slow = PyUnicode_InternFromString("_exit_slow");
    str_exit_timed = PyUnicode_InternFromString("_exit_timed");
    str_ret_slow = PyUnicode_InternFromString("_ret_slow");
    str_returned = PyUnicode_InternFromString("returned");
    str_has_return = PyUnicode_InternFromString("has_return");
    if (str_enter_slow == NULL || str_exit_slow == NULL || str_exit_timed == NULL || str_ret_slow == NULL
        || str_returned == NULL || str_has_return == NULL) {
        return -1;
    }
    PyObject *type = PyType_FromSpec(&SiteCore_spec);
    if (type == NULL) {
        return -1;
    }
    if (PyModule_AddObject(module, "SiteCore", type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    return 0;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "execscope.autotrace._speedups",
    .m_doc = "The auto-instrumentor's per-call fast path (see _runtime.Site).",
    .m_size = 0,
    .m_methods = module_methods,
    .m_slots = module_slots,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
