"""Properties of flow conditions: every operator on any JSON, missing paths, all and any."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from addon_core.flows.conditions import OPERATORS, Conditions, Rule, evaluate, explain, judge
from addon_core.flows.templates import make_context
from tests.property.strategies import events, json_values, keys, scalars

operators = st.sampled_from(OPERATORS)


def context_of(event: Any) -> dict[str, Any]:
    return make_context(event=event, event_type="NEW_TIME_ENTRY", workspace_id="ws", settings={})


def outcome(op: str, left: Any, right: Any) -> bool:
    return judge(Rule(path="event.x", op=op, value=right), context_of({"x": left})).outcome  # type: ignore[arg-type]


@given(op=operators, event=events, key=keys, value=json_values)
def test_any_rule_on_any_event_is_judged_true_or_false_without_raising(
    op: str, event: dict[str, Any], key: str, value: Any
) -> None:
    result = judge(Rule(path=f"event.{key}", op=op, value=value), context_of(event))  # type: ignore[arg-type]
    assert isinstance(result.outcome, bool)
    assert result.as_dict()["outcome"] is result.outcome


@given(op=operators, event=events, key=keys, value=json_values)
def test_a_missing_path_passes_only_not_exists(
    op: str, event: dict[str, Any], key: str, value: Any
) -> None:
    event.pop(key, None)
    result = judge(Rule(path=f"event.{key}", op=op, value=value), context_of(event))  # type: ignore[arg-type]
    assert result.outcome is (op == "not_exists")


@given(left=json_values, right=json_values)
def test_each_negated_operator_is_the_opposite_of_its_pair(left: Any, right: Any) -> None:
    assert outcome("ne", left, right) is not outcome("eq", left, right)
    assert outcome("exists", left, right) is not outcome("not_exists", left, right)
    if isinstance(right, list):
        assert outcome("not_in", left, right) is not outcome("in", left, right)
    if isinstance(left, list) or (isinstance(left, str) and isinstance(right, str)):
        assert outcome("not_contains", left, right) is not outcome("contains", left, right)


@given(value=json_values)
def test_every_value_equals_itself_and_is_in_a_list_holding_it(value: Any) -> None:
    assert outcome("eq", value, value)
    assert outcome("in", value, [1, value])
    assert outcome("contains", [value], value)


@given(left=scalars, right=scalars)
def test_orderings_agree_with_each_other(left: Any, right: Any) -> None:
    gt, lt = outcome("gt", left, right), outcome("lt", left, right)
    gte, lte = outcome("gte", left, right), outcome("lte", left, right)
    assert not (gt and lt)
    assert gt == outcome("lt", right, left)
    assert gte == outcome("lte", right, left)
    if gt or lt:
        assert not outcome("eq", left, right)
        assert gte == gt
        assert lte == lt


@given(
    a=st.integers(min_value=-(10**9), max_value=10**9) | st.floats(-1e9, 1e9),
    b=st.integers(min_value=-(10**9), max_value=10**9) | st.floats(-1e9, 1e9),
    as_text=st.booleans(),
)
def test_numbers_and_numeric_text_compare_by_value(a: float, b: float, as_text: bool) -> None:
    left = repr(a) if as_text else a
    assert outcome("gt", left, b) is (a > b)
    assert outcome("lte", left, b) is (a <= b)
    assert outcome("eq", left, b) is (a == b)


@given(digits=st.integers(min_value=4301, max_value=6000), op=st.sampled_from(["gt", "eq", "lt"]))
def test_numeric_text_past_pythons_integer_limit_still_compares(digits: int, op: str) -> None:
    # A 5000-digit string used to raise from int() instead of being judged.
    assert outcome(op, "9" * digits, 1) is (op == "gt")


@given(text=st.text(max_size=40), prefix=st.text(max_size=5), suffix=st.text(max_size=5))
def test_text_operators_agree_with_python(text: str, prefix: str, suffix: str) -> None:
    whole = prefix + text + suffix
    assert outcome("starts_with", whole, prefix)
    assert outcome("ends_with", whole, suffix)
    assert outcome("contains", whole, text)
    assert outcome("matches", whole, "^")
    assert not outcome("matches", 5, "^")


@given(
    event=events,
    rules=st.lists(
        st.builds(Rule, path=keys.map(lambda key: f"event.{key}"), op=operators, value=json_values),
        max_size=5,
    ),
)
def test_all_and_any_combine_the_rules_judgements(event: dict[str, Any], rules: list[Rule]) -> None:
    context = context_of(event)
    judged = [judge(rule, context).outcome for rule in rules]
    for mode, combine in (("all", all), ("any", any)):
        conditions = Conditions(mode=mode, rules=rules)  # type: ignore[arg-type]
        expected = combine(judged) if rules else True
        assert evaluate(conditions, context) is expected
        assert explain(conditions, context).outcome is expected
