"""A template cannot exhaust memory or time: every render has a budget (issue 14.6)."""

from __future__ import annotations

import pytest

from core.content import templates
from core.content.rendering import TemplateProblem, TemplateTooCostly, compile_template
from core.content.templates import TemplateDraft
from tests.helpers import actor_of, make_user, make_workspace

HOSTILE = {
    "string formatting": "{{ '%0500000000d' % 1 }}",
    "a wide filter": "{{ 'a'|center(500000000) }}",
    "chained replace": "{% set a = 'a' * 10000 %}{{ a.replace('a', 'b' * 40).replace('b', 'c' * 30) }}",
    "doubling with +": "{% set a = 'a' * 10000 %}" + "{% set a = a + a %}" * 6 + "{{ a }}",
    "doubling with ~": "{% set a = 'a' * 10000 %}" + "{% set a = a ~ a %}" * 6 + "{{ a }}",
    "huge integers": "{{ (9 ** 99) ** 99 * (9 ** 99) ** 99 }}",
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "a huge output": "{% set a = 'a' * 10000 %}{% for i in range(1000) %}{{ a }}{% endfor %}",
}


@pytest.mark.parametrize("source", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_template_fails_fast_with_a_clear_error(source):
    with pytest.raises(TemplateProblem) as problem:
        compile_template("Hi", source, None).render({"first_name": "Ann"})
    assert (
        "not allowed" in str(problem.value)
        or "too costly" in str(problem.value)
        or ("No filter named" in str(problem.value))
    )


def test_ordinary_templates_still_render():
    source = (
        "Hello {{ first_name | default('there') | title }}, "
        "{% for i in range(3) %}{{ i + 1 }}{% endfor %} {{ 'x' ~ first_name }} "
        "{{ (price * 2) | round(2) }} {{ ['a', 'b'] | join(', ') }}"
    )
    html = compile_template("Hi", source, None).render({"first_name": "ann", "price": 2.5}).html
    assert "Hello Ann, 123 xann 5.0 a, b" in html


def test_a_template_too_costly_for_sample_data_is_refused_at_save(session):
    actor = actor_of(make_user(session, make_workspace(session)))
    draft = TemplateDraft(name="Bomb", subject="Hi", html=HOSTILE["a huge output"], text=None)
    with pytest.raises(TemplateTooCostly):
        templates.create_template(session, actor, draft)
