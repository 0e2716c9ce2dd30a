"""Pure edits of an automation's JSON (a step replaced, added or removed, with the step
paths of conditions renumbered), the line-up of an edited definition with the saved one,
and the rules a running automation's changes must follow. No database: `editing` applies
them."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from core.automations.model import BranchStep, Definition, parse_definition, step_kind, walk
from core.infra.errors import ValidationFailed

# What a marketer may change once contacts are in (the editor shows it as help).
RUNNING_RULES = (
    "Contacts are in this automation, so it takes changes to waits, subjects, templates "
    "and conditions; steps can be removed while it is paused. Adding or moving steps, "
    "changing a step's kind, an update step or the trigger would move contacts from the "
    "place they stand: duplicate it as a new draft instead."
)


class EditRefused(ValidationFailed):
    """A change an automation contacts have entered cannot take; the message says why."""


# --- pure edits on the JSON ----------------------------------------------------------------


def _arm(data: dict[str, Any], prefix: str) -> list[Any]:
    """The step list a path prefix names: "" is the top, "2.then." an arm of step 2."""
    steps: list[Any] = data["steps"]
    if not prefix:
        return steps
    parts = prefix.rstrip(".").split(".")
    step = steps[int(parts[0])]
    for i in range(1, len(parts), 2):
        arm = parts[i]
        branch = step["branch"]
        steps = branch.setdefault(arm, [])
        if i + 1 < len(parts):
            step = steps[int(parts[i + 1])]
    return steps


def _split(path: str) -> tuple[str, int]:
    """ "2.then.1" -> ("2.then.", 1)."""
    head, _, last = path.rpartition(".")
    return (head + "." if head else ""), int(last)


def with_step(data: dict[str, Any], path: str, step: dict[str, Any]) -> dict[str, Any]:
    """A copy of `data` with the step at `path` replaced (a branch keeps its arms unless
    `step` gives them)."""
    out = copy.deepcopy(data)
    prefix, index = _split(path)
    steps = _arm(out, prefix)
    old = steps[index]
    new = copy.deepcopy(step)
    if "branch" in old and "branch" in new:
        for arm in ("then", "else"):
            new["branch"].setdefault(arm, old["branch"].get(arm, []))
    steps[index] = new
    return out


def with_step_added(
    data: dict[str, Any], prefix: str, index: int, step: dict[str, Any]
) -> dict[str, Any]:
    """A copy of `data` with `step` inserted at `index` of the list `prefix` names."""
    out = copy.deepcopy(data)
    steps = _arm(out, prefix)
    steps.insert(max(0, min(index, len(steps))), copy.deepcopy(step))
    return out


def without_step(data: dict[str, Any], path: str) -> tuple[dict[str, Any], dict[str, str | None]]:
    """A copy of `data` without the step at `path`, the references in conditions renumbered,
    and where each old step path went (None: removed)."""
    definition = parse_definition(data)
    prefix, index = _split(path)
    mapping: dict[str, str | None] = {}
    for old, _ in walk(definition.steps):
        if old == path or old.startswith(path + "."):
            mapping[old] = None
        elif old.startswith(prefix) and _index_at(old, prefix) > index:
            rest = old[len(prefix) :]
            first, _, tail = rest.partition(".")
            mapping[old] = f"{prefix}{int(first) - 1}" + (f".{tail}" if tail else "")
        else:
            mapping[old] = old
    out = copy.deepcopy(data)
    del _arm(out, prefix)[index]
    _renumber_references(out["steps"], mapping, path)
    return out, mapping


def _index_at(path: str, prefix: str) -> int:
    return int(path[len(prefix) :].split(".")[0])


def _renumber_references(steps: list[Any], mapping: dict[str, str | None], removed: str) -> None:
    for step in steps:
        branch = step.get("branch") if isinstance(step, dict) else None
        if not branch:
            continue
        condition = branch.get("if") or {}
        for key in ("opened", "clicked"):
            ref = condition.get(key)
            if ref is None or ref == "previous":
                continue
            if ref in mapping and mapping[ref] is None:
                raise EditRefused(
                    f"A condition looks at step {human_path(ref)}: change that condition "
                    f"before removing step {human_path(removed)}."
                )
            condition[key] = mapping.get(ref) or ref
        _renumber_references(branch.get("then", []), mapping, removed)
        _renumber_references(branch.get("else", []), mapping, removed)


def human_path(path: str) -> str:
    """A step path as the editor numbers it: "2.then.1" -> "3 → then 2"."""
    parts = path.split(".")
    out = str(int(parts[0]) + 1)
    for arm, index in zip(parts[1::2], parts[2::2], strict=True):
        out += f" → {arm} {int(index) + 1}"
    return out


# --- lining up an edited definition with the saved one -------------------------------------


@dataclass
class _Match:
    score: int  # steps left exactly as they were: prefer the reading that keeps most
    mapping: dict[str, str | None]


def same_step(a: Any, b: Any) -> bool:
    return bool(
        a.model_dump(by_alias=True, exclude_none=True)
        == b.model_dump(by_alias=True, exclude_none=True)
    )


def _pair(old: Any, new: Any, old_path: str, new_path: str) -> _Match | None:
    """How `new` may stand in for `old` on a running automation, or None."""
    kind = step_kind(old)
    if kind != step_kind(new):
        return None
    if kind in ("send", "wait"):
        return _Match(int(same_step(old, new)), {old_path: new_path})
    if kind in ("update", "exit"):
        return _Match(1, {old_path: new_path}) if same_step(old, new) else None
    assert isinstance(old, BranchStep) and isinstance(new, BranchStep)
    then = align(old.branch.then, new.branch.then, f"{old_path}.then.", f"{new_path}.then.")
    other = align(old.branch.else_, new.branch.else_, f"{old_path}.else.", f"{new_path}.else.")
    if then is None or other is None:
        return None
    same_if = old.branch.if_.model_dump(by_alias=True) == new.branch.if_.model_dump(by_alias=True)
    return _Match(
        then.score + other.score + int(same_if), {old_path: new_path} | then.mapping | other.mapping
    )


def align(old: list[Any], new: list[Any], old_prefix: str, new_prefix: str) -> _Match | None:
    """`new` as `old` with steps removed (never a branch) and steps edited in place, keeping
    as many steps unchanged as possible; None when it is not."""
    n, m = len(old), len(new)
    # best[i][j]: the best way to place new[j:] onto old[i:].
    best: list[list[_Match | None]] = [[None] * (m + 1) for _ in range(n + 1)]
    best[n][m] = _Match(0, {})
    for i in range(n - 1, -1, -1):
        for j in range(m, -1, -1):
            options = []
            rest = best[i + 1][j]
            if rest is not None and not isinstance(old[i], BranchStep):
                dropped: dict[str, str | None] = {f"{old_prefix}{i}": None}
                options.append(_Match(rest.score, dropped | rest.mapping))
            if j < m and best[i + 1][j + 1] is not None:
                pair = _pair(old[i], new[j], f"{old_prefix}{i}", f"{new_prefix}{j}")
                if pair is not None:
                    after = best[i + 1][j + 1]
                    assert after is not None
                    options.append(_Match(pair.score + after.score, pair.mapping | after.mapping))
            if options:
                best[i][j] = max(options, key=lambda o: o.score)
    return best[0][0]


def refusal(old: Definition, new: Definition) -> str:
    old_trigger = old.trigger.model_dump(exclude={"list_id"})
    if old_trigger != new.trigger.model_dump(exclude={"list_id"}):
        return "The trigger cannot change once contacts have entered the automation."
    before, after = sum(1 for _ in walk(old.steps)), sum(1 for _ in walk(new.steps))
    if after > before:
        return (
            "Steps cannot be added once contacts have entered the automation: they stand "
            "at numbered steps. Duplicate it as a new draft instead."
        )
    return RUNNING_RULES
