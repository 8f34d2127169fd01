"""State diffs (``execscope.state.diff``, the JSON of distro/capture/STATE_DIFF.md): what a
method of a stateful object or a reducer-style function records about the state it changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from autotrace_helpers import Recording, import_source, recording, unique_module_name
from recording_helpers import attr, attributes, source

from execscope.plan import Plan, Target

DIFF = "execscope.state.diff"


@pytest.fixture
def rec() -> Iterator[Recording]:
    with recording() as active:
        yield active


def diff_of(rec: Recording, name: str) -> str:
    value = attr(rec.span(name), DIFF)
    assert isinstance(value, str)
    return value


ACCOUNT = source(
    """
    class Account:
        def __init__(self, owner):
            self.owner = owner
            self.balance = 0
            self.pending = True
            self.history = []

        def deposit(self, amount):
            self.balance += amount
            self.history.append(amount)
            self.last = amount
            del self.pending
            return self.balance

        def peek(self):
            return self.balance

        def overdraw(self, amount):
            self.balance -= amount
            raise ValueError("insufficient funds")

        def login(self, password):
            self.password = password

        @classmethod
        def open(cls, owner):
            return cls(owner)


    class Savings(Account):
        def rate(self):
            return 0.02


    class Calculator:
        def __init__(self, base):
            pass

        def add(self, a, b):
            return a + b


    def reduce(state, action):
        if action == "fail":
            raise KeyError(action)
        new = dict(state)
        new["count"] = state.get("count", 0) + 1
        new.pop("draft", None)
        return new


    def apply(state, amount):
        return state + amount
    """
)


def test_method_records_added_changed_and_removed_fields(rec: Recording, tmp_path: Path) -> None:
    bank = import_source(tmp_path, ACCOUNT)
    account = bank.Account("ann")
    rec.clear()

    assert account.deposit(10) == 10

    document = diff_of(rec, "Account.deposit")
    assert document == (
        '{"v":1,"changed":{"balance":["0","10"],"history":["[]","[10]"]},'
        '"added":{"last":"10"},"removed":{"pending":"True"}}'
    )
    assert json.loads(document) == {
        "v": 1,
        "changed": {"balance": ["0", "10"], "history": ["[]", "[10]"]},
        "added": {"last": "10"},
        "removed": {"pending": "True"},
    }


def test_constructor_records_the_fields_it_creates(rec: Recording, tmp_path: Path) -> None:
    bank = import_source(tmp_path, ACCOUNT)

    bank.Account("ann")

    assert json.loads(diff_of(rec, "Account.__init__")) == {
        "v": 1,
        "added": {"balance": "0", "history": "[]", "owner": "'ann'", "pending": "True"},
    }


def test_method_that_changes_nothing_records_an_empty_diff(rec: Recording, tmp_path: Path) -> None:
    bank = import_source(tmp_path, ACCOUNT)
    account = bank.Account("ann")

    account.peek()

    assert diff_of(rec, "Account.peek") == '{"v":1}'


def test_method_that_raises_records_what_it_changed_before(rec: Recording, tmp_path: Path) -> None:
    bank = import_source(tmp_path, ACCOUNT)
    account = bank.Account("ann")

    with pytest.raises(ValueError):
        account.overdraw(5)

    assert diff_of(rec, "Account.overdraw") == '{"v":1,"changed":{"balance":["0","-5"]}}'


def test_sensitive_fields_are_redacted_in_the_diff(rec: Recording, tmp_path: Path) -> None:
    bank = import_source(tmp_path, ACCOUNT)
    account = bank.Account("ann")

    account.login("hunter2")

    assert diff_of(rec, "Account.login") == '{"v":1,"added":{"password":"[redacted]"}}'
    assert attr(rec.span("Account.login"), "execscope.args.password") == "[redacted]"
    assert "hunter2" not in str(rec.spans())


def test_subclass_of_a_stateful_class_is_stateful(rec: Recording, tmp_path: Path) -> None:
    bank = import_source(tmp_path, ACCOUNT)
    savings = bank.Savings("bo")

    savings.rate()

    assert diff_of(rec, "Savings.rate") == '{"v":1}'


def test_classmethod_records_no_diff(rec: Recording, tmp_path: Path) -> None:
    bank = import_source(tmp_path, ACCOUNT)

    bank.Account.open("cy")

    assert DIFF not in attributes(rec.span("Account.open"))


def test_class_without_self_assignment_records_no_diff(rec: Recording, tmp_path: Path) -> None:
    bank = import_source(tmp_path, ACCOUNT)
    calculator = bank.Calculator(1)

    assert calculator.add(1, 2) == 3

    add = rec.span("Calculator.add")
    assert DIFF not in attributes(add)
    assert attr(add, "execscope.return") == "3"
    assert DIFF not in attributes(rec.span("Calculator.__init__"))


def test_reducer_diffs_the_state_against_the_returned_state(rec: Recording, tmp_path: Path) -> None:
    bank = import_source(tmp_path, ACCOUNT)
    state = {"count": 1, "draft": "x", "user": "ann"}

    new = bank.reduce(state, "increment")

    assert state == {"count": 1, "draft": "x", "user": "ann"}
    assert new == {"count": 2, "user": "ann"}
    assert json.loads(diff_of(rec, "reduce")) == {
        "v": 1,
        "changed": {"count": ["1", "2"]},
        "removed": {"draft": "'x'"},
    }
    # The state is an argument like any other.
    assert attr(rec.span("reduce"), "execscope.args.state") == "{'count': 1, 'draft': 'x', 'user': 'ann'}"


def test_reducer_over_a_plain_value_diffs_it_as_one_field(rec: Recording, tmp_path: Path) -> None:
    bank = import_source(tmp_path, ACCOUNT)

    bank.apply(1, 2)

    assert diff_of(rec, "apply") == '{"v":1,"changed":{"<value>":["1","3"]}}'


def test_reducer_that_raises_records_no_diff(rec: Recording, tmp_path: Path) -> None:
    bank = import_source(tmp_path, ACCOUNT)

    with pytest.raises(KeyError):
        bank.reduce({"count": 1}, "fail")

    assert DIFF not in attributes(rec.span("reduce"))


def test_plan_can_declare_a_class_stateful(rec: Recording, tmp_path: Path) -> None:
    """A class whose methods change it without assigning ``self.x`` (here through its
    ``__dict__``) is not seen as stateful; a plan target with ``stateful = true`` says it is."""
    code = source(
        """
        class Settings:
            def load(self, values):
                vars(self).update(values)
        """
    )
    name = unique_module_name("settings")
    plan = Plan(targets=(Target(name, level="full", stateful=True),))
    declared = import_source(tmp_path, code, name=name, plan=plan)
    undeclared = import_source(tmp_path, code)

    declared.Settings().load({"debug": True})
    undeclared.Settings().load({"debug": True})

    recorded = [attributes(s).get(DIFF) for s in rec.spans()]
    assert sorted(map(str, recorded)) == ["None", '{"v":1,"added":{"debug":"True"}}']
