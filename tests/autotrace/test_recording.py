"""What a rewritten function records: the span's name and code attributes, its arguments,
return value and exception, its timing, and what each recording level adds.

Every module here is imported inside an active ``recording()``, through the real import hook.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from autotrace_helpers import Recording, import_source, recording, unique_module_name
from opentelemetry.trace import StatusCode
from recording_helpers import attr, attributes, captured, event, source

from execscope.autotrace import sites_of
from execscope.autotrace._levels import ARGS, TIMING
from execscope.capture import BUDGET_EXHAUSTED, CaptureLimits
from execscope.plan import Plan, Target


@pytest.fixture
def rec() -> Iterator[Recording]:
    with recording() as active:
        yield active


SHOP = source(
    '''
    """A small module with the usual kinds of functions."""
    import functools


    def total(prices, discount=0, *extra, currency="EUR", **options):
        return sum(prices) - discount


    def label(item, /, upper, *, suffix):
        return item.upper() + suffix if upper else item + suffix


    @functools.lru_cache(maxsize=None)
    def cached(x):
        return x * 2


    class Shop:
        def price(self, item):
            return 3

        @classmethod
        def create(cls, name):
            return cls()

        @staticmethod
        def tax(amount):
            return amount // 5


    def outer(x):
        def inner(y):
            return y + 1

        return inner(x)


    def mutate(items):
        items.append(4)
        items = None
        return 0


    def nothing():
        pass
    '''
)


# --------------------------------------------------------------------------- name and code attributes


def test_span_is_named_after_the_qualname_with_code_attributes(rec: Recording, tmp_path: Path) -> None:
    name = unique_module_name("shop")
    shop = import_source(tmp_path, SHOP, name=name)

    shop.total([1, 2])
    shop.Shop().price("pen")
    shop.outer(1)

    path = str((tmp_path / f"{name}.py").absolute())
    lines = SHOP.splitlines()
    for qualname, line in (
        ("total", "def total("),
        ("Shop.price", "    def price("),
        ("outer.<locals>.inner", "    def inner("),
    ):
        span = rec.span(qualname)
        lineno = next(i for i, text in enumerate(lines, 1) if text.startswith(line))
        assert attr(span, "code.function.name") == f"{name}.{qualname}"
        assert attr(span, "code.file.path") == path
        assert attr(span, "code.line.number") == lineno
        # Only the stable names: the deprecated duplicates would double the export cost.
        assert not {"code.function", "code.namespace", "code.filepath", "code.lineno"} & set(span.attributes)
        assert span.instrumentation_scope is not None
        assert span.instrumentation_scope.name == "execscope.autotrace"


def test_decorated_function_reports_its_def_line(rec: Recording, tmp_path: Path) -> None:
    shop = import_source(tmp_path, SHOP)

    assert shop.cached(4) == 8
    assert shop.cached(4) == 8  # served by the cache: the function body does not run

    spans = [s for s in rec.spans() if s.name == "cached"]
    assert len(spans) == 1
    lineno = SHOP.splitlines().index("def cached(x):") + 1
    assert attr(spans[0], "code.line.number") == lineno


# --------------------------------------------------------------------------- arguments and return value


def test_arguments_are_bound_to_parameter_names(rec: Recording, tmp_path: Path) -> None:
    shop = import_source(tmp_path, SHOP)

    assert shop.total([1, 2, 3], 1, "x", "y", currency="USD", rounding="up") == 5

    assert captured(rec.span("total")) == {
        "execscope.args.prices": "[1, 2, 3]",
        "execscope.args.discount": "1",
        "execscope.args.extra": "('x', 'y')",
        "execscope.args.currency": "'USD'",
        "execscope.args.options": "{'rounding': 'up'}",
        "execscope.return": "5",
    }


def test_defaults_positional_only_and_keyword_only_arguments(rec: Recording, tmp_path: Path) -> None:
    shop = import_source(tmp_path, SHOP)

    shop.total([5])
    shop.label("pen", True, suffix="!")

    assert captured(rec.span("total")) == {
        "execscope.args.prices": "[5]",
        "execscope.args.discount": "0",
        "execscope.args.extra": "()",
        "execscope.args.currency": "'EUR'",
        "execscope.args.options": "{}",
        "execscope.return": "5",
    }
    assert captured(rec.span("label")) == {
        "execscope.args.item": "'pen'",
        "execscope.args.upper": "True",
        "execscope.args.suffix": "'!'",
        "execscope.return": "'PEN!'",
    }


def test_self_and_cls_are_not_arguments_but_a_staticmethods_first_parameter_is(
    rec: Recording, tmp_path: Path
) -> None:
    shop = import_source(tmp_path, SHOP)

    shop.Shop().price("pen")
    shop.Shop.create("corner")
    shop.Shop.tax(10)

    assert captured(rec.span("Shop.price")) == {
        "execscope.args.item": "'pen'",
        "execscope.return": "3",
    }
    create = captured(rec.span("Shop.create"))
    assert create["execscope.args.name"] == "'corner'"
    assert "execscope.args.cls" not in create
    assert captured(rec.span("Shop.tax")) == {
        "execscope.args.amount": "10",
        "execscope.return": "2",
    }


def test_arguments_are_recorded_as_passed_before_the_body_changes_them(
    rec: Recording, tmp_path: Path
) -> None:
    shop = import_source(tmp_path, SHOP)
    items = [1, 2, 3]

    shop.mutate(items)

    assert items == [1, 2, 3, 4]
    assert attr(rec.span("mutate"), "execscope.args.items") == "[1, 2, 3]"


MIXED = source(
    """
    def mixed(numbers, count, name, blob, ratio, flag, nothing, z, huge):
        return name
    """
)


def test_immutable_values_rendered_later_read_as_any_value_and_keep_the_signatures_order(
    rec: Recording, tmp_path: Path
) -> None:
    """Immutable builtin values (int, float, bool, None, str, bytes, complex) are rendered by the
    recorder's thread, other values by the calling thread: a reader can tell neither apart."""
    module = import_source(tmp_path, MIXED)
    name = "token is Bearer abcdefghijklmnop"

    module.mixed([1, 2], 3, name, b"\x00ab", 0.5, True, None, 1j, 10**20)

    assert list(captured(rec.span("mixed")).items()) == [
        ("execscope.args.numbers", "[1, 2]"),
        ("execscope.args.count", "3"),
        ("execscope.args.name", "'token is Bearer [redacted]'"),
        ("execscope.args.blob", "b'\\x00ab'"),
        ("execscope.args.ratio", "0.5"),
        ("execscope.args.flag", "True"),
        ("execscope.args.nothing", "None"),
        ("execscope.args.z", "1j"),
        ("execscope.args.huge", "100000000000000000000"),
        ("execscope.return", "'token is Bearer [redacted]'"),
    ]


def test_values_rendered_later_still_share_the_spans_budget(tmp_path: Path) -> None:
    with recording(limits=CaptureLimits(budget=300, span_budget=300)) as rec:
        module = import_source(tmp_path, MIXED)
        long = "x" * 1000

        module.mixed(["y" * 1000], 3, long, b"", 0.5, True, None, 1j, 2)

        values = captured(rec.span("mixed"))
    assert sum(len(text) for text in values.values() if text != BUDGET_EXHAUSTED) <= 300
    assert values["execscope.args.numbers"].startswith("['yyy")  # rendered first, by the caller
    assert values["execscope.args.count"] == "3"
    assert values["execscope.return"] == BUDGET_EXHAUSTED


def test_function_without_return_statement_records_no_return_value(rec: Recording, tmp_path: Path) -> None:
    shop = import_source(tmp_path, SHOP)

    assert shop.nothing() is None

    assert captured(rec.span("nothing")) == {}


def test_return_value_is_returned_unchanged(rec: Recording, tmp_path: Path) -> None:
    module = import_source(
        tmp_path,
        source(
            """
            SENTINEL = object()

            def give():
                return SENTINEL

            def several():
                return 1, [2]
            """
        ),
    )

    assert module.give() is module.SENTINEL
    assert module.several() == (1, [2])
    assert attr(rec.span("several"), "execscope.return") == "(1, [2])"
    assert "execscope.return" in attributes(rec.span("give"))


# --------------------------------------------------------------------------- exceptions

FAILING = source(
    """
    class PaymentError(Exception):
        pass


    def charge(amount):
        validate(amount)


    def validate(amount):
        if amount < 0:
            raise ValueError(f"negative amount {amount}")
        raise PaymentError("card declined", 402)


    def recover():
        try:
            validate(-1)
        except ValueError:
            return "recovered"
    """
)


def test_escaping_exception_is_an_event_with_status_error(rec: Recording, tmp_path: Path) -> None:
    name = unique_module_name("payments")
    payments = import_source(tmp_path, FAILING, name=name)

    with pytest.raises(ValueError, match="negative amount -5"):
        payments.charge(-5)

    for span_name in ("charge", "validate"):
        span = rec.span(span_name)
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "ValueError: negative amount -5"
        assert [e.name for e in span.events] == ["exception"]
        assert event(span)["exception.type"] == "ValueError"
        assert event(span)["exception.message"] == "negative amount -5"
        stacktrace = event(span)["exception.stacktrace"]
        assert isinstance(stacktrace, str)
        assert stacktrace.startswith("Traceback (most recent call last):\n")
        assert stacktrace.endswith("ValueError: negative amount -5\n")
        assert "in validate" in stacktrace
        assert "execscope.return" not in attributes(span)
    # Each span's stack trace starts at its own function's frame.
    assert "in charge" in event(rec.span("charge"))["exception.stacktrace"]
    assert "in charge" not in event(rec.span("validate"))["exception.stacktrace"]


def test_exception_type_of_a_user_class_is_qualified_by_its_module(rec: Recording, tmp_path: Path) -> None:
    name = unique_module_name("payments")
    payments = import_source(tmp_path, FAILING, name=name)

    with pytest.raises(payments.PaymentError):
        payments.charge(10)

    validate = rec.span("validate")
    assert event(validate)["exception.type"] == f"{name}.PaymentError"
    assert event(validate)["exception.message"] == "('card declined', 402)"


def test_exception_caught_inside_is_not_an_error_of_the_caller(rec: Recording, tmp_path: Path) -> None:
    payments = import_source(tmp_path, FAILING)

    assert payments.recover() == "recovered"

    assert rec.span("validate").status.status_code is StatusCode.ERROR
    recover = rec.span("recover")
    assert recover.status.status_code is StatusCode.UNSET
    assert recover.events == ()
    assert attr(recover, "execscope.return") == "'recovered'"


def test_exception_is_reraised_unchanged(rec: Recording, tmp_path: Path) -> None:
    """The program gets the very same exception object, with the same traceback entries
    (functions, lines and source) as without execscope."""
    traced = import_source(tmp_path, FAILING)
    plain = import_source(tmp_path, FAILING, rewritten=False)

    def failure(module: object) -> BaseException:
        try:
            module.charge(-1)  # type: ignore[attr-defined]
        except ValueError as error:
            return error
        raise AssertionError("charge(-1) did not raise")

    def entries(error: BaseException) -> list[tuple[str, int | None, str | None]]:
        return [(f.name, f.lineno, f.line) for f in traceback.extract_tb(error.__traceback__)]

    raised = failure(traced)
    assert entries(raised) == entries(failure(plain))
    assert [name for name, _, _ in entries(raised)] == ["failure", "charge", "validate"]
    assert raised.__context__ is None
    assert raised.__cause__ is None

    # The very object raised inside reaches the caller.
    module = import_source(
        tmp_path,
        source(
            """
            ERROR = KeyError("k")

            def fail():
                raise ERROR
            """
        ),
    )
    with pytest.raises(KeyError) as caught:
        module.fail()
    assert caught.value is module.ERROR


# --------------------------------------------------------------------------- timing


def test_span_times_cover_the_call(rec: Recording, tmp_path: Path) -> None:
    module = import_source(
        tmp_path,
        source(
            """
            import time

            def wait():
                time.sleep(0.002)
            """
        ),
    )

    before = time.time_ns()
    module.wait()
    after = time.time_ns()

    span = rec.span("wait")
    assert span.start_time is not None
    assert span.end_time is not None
    assert before <= span.start_time <= span.end_time <= after
    assert span.end_time - span.start_time >= 1_900_000  # slept 2 ms
    assert span.end_time - span.start_time < 1_000_000_000


def test_nested_call_times_lie_within_the_callers(rec: Recording, tmp_path: Path) -> None:
    shop = import_source(tmp_path, SHOP)

    shop.outer(1)

    outer, inner = rec.span("outer"), rec.span("outer.<locals>.inner")
    assert outer.start_time is not None and inner.start_time is not None
    assert outer.end_time is not None and inner.end_time is not None
    assert outer.start_time <= inner.start_time <= inner.end_time <= outer.end_time


# --------------------------------------------------------------------------- levels

LEVELS = source(
    """
    class Counter:
        def __init__(self):
            self.count = 0

        def add(self, n):
            self.count += n
            return self.count

        def fail(self, n):
            self.count += n
            raise RuntimeError("too many")


    def double(x):
        return x * 2


    def off_target(x):
        return x


    def fast(x):
        return x
    """
)


def test_timing_level_records_only_the_call(tmp_path: Path) -> None:
    with recording() as rec:
        module = import_source(tmp_path, LEVELS, level=TIMING)
        counter = module.Counter()
        assert counter.add(2) == 2
        assert module.double(4) == 8
        with pytest.raises(RuntimeError):
            counter.fail(1)

        for name in ("Counter.add", "double"):
            span = rec.span(name)
            assert captured(span) == {}
            assert attr(span, "code.function.name").endswith("." + name)
            assert span.start_time is not None and span.end_time is not None
            assert span.start_time <= span.end_time
        # A failure is still visible at this level.
        assert rec.span("Counter.fail").status.status_code is StatusCode.ERROR
        assert captured(rec.span("Counter.fail")) == {}


def test_args_level_records_values_but_no_state_diff(tmp_path: Path) -> None:
    with recording() as rec:
        module = import_source(tmp_path, LEVELS, level=ARGS)
        counter = module.Counter()
        counter.add(2)
        with pytest.raises(RuntimeError):
            counter.fail(1)

        assert captured(rec.span("Counter.add")) == {
            "execscope.args.n": "2",
            "execscope.return": "2",
        }
        failed = rec.span("Counter.fail")
        assert captured(failed) == {"execscope.args.n": "1"}
        assert event(failed)["exception.message"] == "too many"


def test_full_level_adds_the_state_diff(rec: Recording, tmp_path: Path) -> None:
    module = import_source(tmp_path, LEVELS)  # FULL is the default level
    module.Counter().add(2)

    assert captured(rec.span("Counter.add")) == {
        "execscope.args.n": "2",
        "execscope.return": "2",
        "execscope.state.diff": '{"v":1,"changed":{"count":["0","2"]}}',
    }


def test_plan_sets_the_level_of_each_function(rec: Recording, tmp_path: Path) -> None:
    name = unique_module_name("levels")
    plan = Plan(
        targets=(
            Target(name, level="args"),
            Target(f"{name}:Counter", level="full"),
            Target(f"{name}:fast", level="timing"),
            Target(f"{name}:off_target", level="off"),
        )
    )
    module = import_source(tmp_path, LEVELS, name=name, plan=plan)

    module.Counter().add(1)
    module.double(2)
    module.fast(3)
    module.off_target(4)

    assert "execscope.state.diff" in captured(rec.span("Counter.add"))
    assert captured(rec.span("double")) == {
        "execscope.args.x": "2",
        "execscope.return": "4",
    }
    assert captured(rec.span("fast")) == {}
    assert sorted(s.name for s in rec.spans()) == ["Counter.__init__", "Counter.add", "double", "fast"]


def test_plan_target_with_level_off_leaves_the_function_unrewritten(rec: Recording, tmp_path: Path) -> None:
    name = unique_module_name("levels")
    plan = Plan(targets=(Target(name, level="full"), Target(f"{name}:off_target", level="off")))
    module = import_source(tmp_path, LEVELS, name=name, plan=plan)

    sites = [site.qualname for site in sites_of(name) or []]
    assert "off_target" not in sites
    assert "double" in sites
    assert "__execscope_sites__" not in module.off_target.__code__.co_names
    assert "__execscope_sites__" in module.double.__code__.co_names
    assert module.off_target(5) == 5
    assert rec.spans() == []
