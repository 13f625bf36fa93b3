"""Properties of flow templates: typed whole values, nothing outside the context, bounded text."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from addon_core.flows.templates import TemplateError, make_context, render
from addon_core.redaction import MASK, is_secret_key
from tests.property.strategies import KEY_ALPHABET, events, json_values, keys

#: Text with no placeholder opening in it.
literals = st.text(max_size=20).filter(lambda text: "{" not in text and "}" not in text)


def context_of(event: Any, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    return make_context(
        event=event, event_type="NEW_PROJECT", workspace_id="ws-1", settings=settings or {}
    )


@given(key=keys, value=json_values)
def test_a_whole_placeholder_keeps_the_values_json_type(key: str, value: Any) -> None:
    assume(not is_secret_key(key))
    rendered = render("{{ event.%s }}" % key, context_of({key: value}))  # noqa: UP031
    assert rendered == value
    assert type(rendered) is type(value)


@given(
    parts=st.lists(
        st.tuples(literals, keys.filter(lambda key: not is_secret_key(key))), min_size=1, max_size=4
    ),
    tail=literals,
    values=st.lists(json_values, min_size=4, max_size=4),
)
def test_text_templates_format_each_value_into_bounded_text(
    parts: list[tuple[str, str]], tail: str, values: list[Any]
) -> None:
    event = {key: values[index] for index, (_, key) in enumerate(parts)}
    assume(len(parts) > 1 or parts[0][0] or tail)
    template = "".join(f"{literal}{{{{event.{key}}}}}" for literal, key in parts) + tail
    rendered = render(template, context_of(event))
    expected = "".join(
        literal
        + (
            event[key]
            if isinstance(event[key], str)
            else json.dumps(event[key], separators=(",", ":"), ensure_ascii=False)
        )
        for literal, key in parts
    )
    assert rendered == expected + tail
    # Bounded: the literals plus each value's text, nothing else.
    budget = sum(len(literal) for literal, _ in parts) + len(tail)
    budget += sum(len(json.dumps(event[key], ensure_ascii=False)) for _, key in parts)
    assert len(rendered) <= budget


@given(key=keys, event=events)
def test_a_missing_path_is_an_error_naming_the_field_never_empty_text(
    key: str, event: dict[str, Any]
) -> None:
    assume(not is_secret_key(key))
    event.pop(key, None)
    with pytest.raises(TemplateError) as raised:
        render({"note": "x {{ event.%s }}" % key}, context_of(event), field="body")  # noqa: UP031
    assert raised.value.field == "body.note"


@given(
    path=st.text(alphabet=KEY_ALPHABET + "._[]()'\" ", min_size=1, max_size=30),
    event=events,
)
def test_any_placeholder_yields_context_data_or_a_template_error(
    path: str, event: dict[str, Any]
) -> None:
    context = context_of(event, {"region": "eu"})
    try:
        rendered = render("{{ %s }}" % path, context)  # noqa: UP031
    except TemplateError as exc:
        assert exc.detail  # noqa: PT017
        return
    # Whatever renders is plain JSON data found in the context: no object, callable or code.
    assert json.loads(json.dumps(rendered)) == rendered
    assert path.split(".")[0].split("[")[0].strip() in context


@given(secret_key=st.sampled_from(["apiToken", "secret", "password", "x-api-key"]), event=events)
def test_secret_keys_are_unreachable_and_masked_inside_objects(
    secret_key: str, event: dict[str, Any]
) -> None:
    settings = {secret_key: "hunter2-value", "plain": {secret_key: "hunter2-value"}}
    context = context_of(event, settings)
    with pytest.raises(TemplateError):
        render("{{ settings.%s }}" % secret_key, context)  # noqa: UP031
    whole = render("{{ settings }}", context)
    assert "hunter2-value" not in json.dumps(whole)
    assert whole[secret_key] == MASK
