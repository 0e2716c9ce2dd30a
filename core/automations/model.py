"""The automation definition: its pydantic model, the shape check with errors that carry
the JSON path of what is wrong, the check against the workspace (templates, lists, fields,
segments) and the walk over step paths ("0", "2.then.1") the engine moves along."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.infra.errors import ValidationFailed
from core.models import ContactList, CustomField, Segment, Template
from core.segments import validate_rules

MAX_STEPS = 200
MAX_DEPTH = 5
TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
STANDARD_FIELDS = ("first_name", "last_name", "company", "city", "country", "phone")


class InvalidAutomation(ValidationFailed):
    """A definition that cannot run; `path` is where in the JSON ("steps[2].wait.days")."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.detail = message


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- triggers --------------------------------------------------------------------------------


class ListJoined(_Strict):
    type: Literal["list_joined"]
    list: str = Field(min_length=1)
    list_id: int | None = None  # resolved when saved


class SegmentEntered(_Strict):
    type: Literal["segment_entered"]
    segment_id: int


class DateField(_Strict):
    """Enrolls contacts whose date plus `offset_days` is today in the workspace's time zone
    (-7: a week before the date). `field` is a custom date field or `created_at`. A one-off
    date (`yearly` false) enrolls once per date value; a yearly one (birthdays) once a year,
    on its anniversary (29 February: on 28 February in other years)."""

    type: Literal["date_field"]
    field: str = Field(pattern=r"^(custom_fields\.[a-z][a-z0-9_]{0,39}|created_at)$")
    offset_days: int = Field(default=0, ge=-3650, le=3650)
    yearly: bool = False


class Manual(_Strict):
    type: Literal["manual"]


Trigger = Annotated[ListJoined | SegmentEntered | DateField | Manual, Field(discriminator="type")]


# --- conditions ------------------------------------------------------------------------------


class Opened(_Strict):
    opened: str = Field(min_length=1)  # "previous" or a step path


class Clicked(_Strict):
    clicked: str = Field(min_length=1)
    url_contains: str | None = None


class InSegment(_Strict):
    segment_id: int


class RuleTree(BaseModel):
    """A segment rule tree (core.segments' format), checked against the workspace later."""

    model_config = ConfigDict(extra="allow")
    match: Literal["all", "any"] = "all"
    rules: list[Any] = Field(default_factory=list)


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {Opened: "~opened", Clicked: "~clicked", InSegment: "~segment", RuleTree: "~rules"}[
            type(value)
        ]
    if isinstance(value, dict):
        for key, tag in (("opened", "~opened"), ("clicked", "~clicked")):
            if key in value:
                return tag
        if "segment_id" in value:
            return "~segment"
        if "rules" in value or "match" in value:
            return "~rules"
    return None


Condition = Annotated[
    Annotated[Opened, Tag("~opened")]
    | Annotated[Clicked, Tag("~clicked")]
    | Annotated[InSegment, Tag("~segment")]
    | Annotated[RuleTree, Tag("~rules")],
    Discriminator(
        _condition_kind,
        custom_error_type="unknown_condition",
        custom_error_message=(
            "is not a condition (needs 'opened', 'clicked', 'segment_id' or a rule tree)"
        ),
    ),
]


# --- steps -----------------------------------------------------------------------------------


class SendSpec(_Strict):
    template_id: int
    subject: str | None = Field(default=None, max_length=998)
    from_name: str | None = Field(default=None, max_length=200)


class SendStep(_Strict):
    send: SendSpec


class WaitSpec(_Strict):
    minutes: int | None = Field(default=None, ge=0, le=525600)
    hours: int | None = Field(default=None, ge=0, le=8760)
    days: int | None = Field(default=None, ge=0, le=365)
    until_time: str | None = None

    @model_validator(mode="after")
    def _one_unit(self) -> WaitSpec:
        units = [u for u in (self.minutes, self.hours, self.days) if u is not None]
        if len(units) != 1:
            raise ValueError("give exactly one of 'minutes', 'hours' or 'days'")
        return self

    @property
    def minutes_total(self) -> int:
        return (self.minutes or 0) + (self.hours or 0) * 60 + (self.days or 0) * 1440


class WaitStep(_Strict):
    wait: WaitSpec
    until_time: str | None = None  # the form: beside "wait"; inside it works too

    @property
    def until(self) -> str | None:
        return self.until_time or self.wait.until_time


class BranchSpec(_Strict):
    if_: Condition = Field(alias="if")
    then: list[Step] = Field(default_factory=list)
    else_: list[Step] = Field(default_factory=list, alias="else")


class BranchStep(_Strict):
    branch: BranchSpec


class UpdateSpec(_Strict):
    add_list: str | None = None
    remove_list: str | None = None
    set_field: str | None = None
    value: Any = None
    list_id: int | None = None  # resolved when saved

    @model_validator(mode="after")
    def _one_change(self) -> UpdateSpec:
        given = [k for k in ("add_list", "remove_list", "set_field") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of 'add_list', 'remove_list' or 'set_field'")
        return self


class UpdateStep(_Strict):
    update: UpdateSpec


class ExitSpec(_Strict):
    pass


class ExitStep(_Strict):
    exit: ExitSpec = Field(default_factory=ExitSpec)


STEP_KINDS = ("send", "wait", "branch", "update", "exit")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {
            SendStep: "~send",
            WaitStep: "~wait",
            BranchStep: "~branch",
            UpdateStep: "~update",
            ExitStep: "~exit",
        }[type(value)]
    if isinstance(value, dict):
        for kind in STEP_KINDS:
            if kind in value:
                return f"~{kind}"
    return None


Step = Annotated[
    Annotated[SendStep, Tag("~send")]
    | Annotated[WaitStep, Tag("~wait")]
    | Annotated[BranchStep, Tag("~branch")]
    | Annotated[UpdateStep, Tag("~update")]
    | Annotated[ExitStep, Tag("~exit")],
    Discriminator(
        _step_kind,
        custom_error_type="unknown_step",
        custom_error_message="is not a step (needs 'send', 'wait', 'branch', 'update' or 'exit')",
    ),
]


class Definition(_Strict):
    name: str = Field(min_length=1, max_length=200)
    trigger: Trigger
    reentry: bool = False
    steps: list[Step] = Field(min_length=1)


BranchSpec.model_rebuild()
Definition.model_rebuild()


def step_kind(step: Any) -> str:
    return (_step_kind(step) or "?").lstrip("~")


# --- paths -----------------------------------------------------------------------------------


def json_path(loc: tuple[Any, ...]) -> str:
    """pydantic's loc as a JSON path: ('steps', 2, '~branch', 'branch', 'if') -> 'steps[2].branch.if'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.startswith("~"):
            continue  # a union's tag, not a key of the JSON
        elif (
            part in ("list_joined", "segment_entered", "date_field", "manual") and out == "trigger"
        ):
            continue  # the trigger union's tag
        else:
            out += f".{part}" if out else str(part)
    return out


def to_json_path(step_path: str) -> str:
    """A step path ("2.then.1") as where it sits in the JSON ("steps[2].branch.then[1]")."""
    parts = step_path.split(".")
    out = f"steps[{parts[0]}]"
    for arm, index in zip(parts[1::2], parts[2::2], strict=True):
        out += f".branch.{arm}[{index}]"
    return out


def parse_definition(data: Any) -> Definition:
    """The definition as a model, or InvalidAutomation with the first error's JSON path."""
    if not isinstance(data, dict):
        raise InvalidAutomation("", "An automation is a JSON object with a trigger and steps.")
    try:
        definition = Definition.model_validate(data)
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidAutomation(json_path(tuple(first["loc"])), message) from None
    count = sum(1 for _ in walk(definition.steps))
    if count > MAX_STEPS:
        raise InvalidAutomation("steps", f"at most {MAX_STEPS} steps ({count} given)")
    for path, step in walk(definition.steps):
        if path.count(".") // 2 + 1 > MAX_DEPTH:
            raise InvalidAutomation(to_json_path(path), f"branches nest at most {MAX_DEPTH} deep")
        if isinstance(step, WaitStep) and step.until and not TIME_RE.match(step.until):
            raise InvalidAutomation(
                to_json_path(path) + ".until_time", "must be a time such as '09:00'"
            )
    return definition


def walk(steps: list[Any], prefix: str = ""):
    """Every (path, step) in document order, branches' arms included."""
    for index, step in enumerate(steps):
        path = f"{prefix}{index}"
        yield path, step
        if isinstance(step, BranchStep):
            yield from walk(step.branch.then, f"{path}.then.")
            yield from walk(step.branch.else_, f"{path}.else.")


def step_at(definition: Definition, path: str) -> Any | None:
    """The step at `path`, or None when the path no longer exists (an edited flow)."""
    parts = path.split(".")
    steps: list[Any] = definition.steps
    step: Any = None
    try:
        step = steps[int(parts[0])]
        for arm, index in zip(parts[1::2], parts[2::2], strict=True):
            if not isinstance(step, BranchStep):
                return None
            steps = step.branch.then if arm == "then" else step.branch.else_
            step = steps[int(index)]
    except (IndexError, ValueError):
        return None
    return step


def next_path(definition: Definition, path: str) -> str | None:
    """The step after `path` (after a branch's arm ends: the step after the branch), or None
    at the end of the flow."""
    parts = path.split(".")
    while parts:
        parts[-1] = str(int(parts[-1]) + 1)
        candidate = ".".join(parts)
        if step_at(definition, candidate) is not None:
            return candidate
        if len(parts) == 1:
            return None
        parts = parts[:-2]  # leave the arm: continue after the branch step
    return None


def arm_start(definition: Definition, branch_path: str, arm: str) -> str | None:
    """The first step of a branch's arm, or the step after the branch when the arm is empty."""
    candidate = f"{branch_path}.{arm}.0"
    if step_at(definition, candidate) is not None:
        return candidate
    return next_path(definition, branch_path)


def sends_before(definition: Definition, path: str) -> list[str]:
    """The send steps that may come before `path` on a contact's way to it."""
    before = []
    for other, step in walk(definition.steps):
        if other == path:
            break
        if isinstance(step, SendStep) and _is_ancestor_or_earlier(other, path):
            before.append(other)
    return before


def _is_ancestor_or_earlier(other: str, path: str) -> bool:
    """Whether `other` lies on some way to `path`: not in an arm that `path` is not in."""
    a, b = other.split("."), path.split(".")
    # `other` is in an arm of a branch; that arm must also hold `path` unless the branch
    # comes before `path` at the level they share (then either arm may have been taken).
    for i in range(1, len(a), 2):
        if b[:i] != a[:i]:
            return True  # diverged before this arm: an earlier branch, either arm leads here
        if len(b) <= i or b[i] != a[i]:
            return False  # the other arm of a branch that `path` is inside
    return True


# --- the check against the workspace ---------------------------------------------------------


@dataclass
class Checked:
    definition: Definition
    list_ids: dict[str, int]


def check_definition(session: Session, workspace_id: int, data: Any) -> Definition:
    """Shape and meaning: templates, lists, fields and segments exist in the workspace, step
    references point at earlier sends; list names are resolved to ids."""
    definition = parse_definition(data)
    lists = dict(
        session.execute(
            select(ContactList.name, ContactList.id).where(ContactList.workspace_id == workspace_id)
        ).all()
    )
    templates = set(
        session.scalars(select(Template.id).where(Template.workspace_id == workspace_id))
    )
    segments = set(session.scalars(select(Segment.id).where(Segment.workspace_id == workspace_id)))
    fields = set(
        session.scalars(select(CustomField.key).where(CustomField.workspace_id == workspace_id))
    )
    trigger = definition.trigger
    if isinstance(trigger, ListJoined):
        if trigger.list not in lists:
            raise InvalidAutomation("trigger.list", f"no list named {trigger.list!r}")
        trigger.list_id = lists[trigger.list]
    elif isinstance(trigger, SegmentEntered):
        if trigger.segment_id not in segments:
            raise InvalidAutomation("trigger.segment_id", f"no segment {trigger.segment_id} here")
    elif isinstance(trigger, DateField) and trigger.field != "created_at":
        key = trigger.field.removeprefix("custom_fields.")
        kind = session.scalar(
            select(CustomField.type).where(
                CustomField.workspace_id == workspace_id, CustomField.key == key
            )
        )
        if kind is None:
            raise InvalidAutomation("trigger.field", f"no custom field {key!r} here")
        if kind != "date":
            raise InvalidAutomation("trigger.field", f"{key!r} is a {kind} field, not a date")
    for path, step in walk(definition.steps):
        where = to_json_path(path)
        if isinstance(step, SendStep) and step.send.template_id not in templates:
            raise InvalidAutomation(
                f"{where}.send.template_id", f"no template {step.send.template_id} here"
            )
        if isinstance(step, UpdateStep):
            spec = step.update
            name = spec.add_list or spec.remove_list
            if name is not None:
                key = "add_list" if spec.add_list else "remove_list"
                if name not in lists:
                    raise InvalidAutomation(f"{where}.update.{key}", f"no list named {name!r}")
                spec.list_id = lists[name]
            elif spec.set_field not in fields and spec.set_field not in STANDARD_FIELDS:
                raise InvalidAutomation(
                    f"{where}.update.set_field", f"no field {spec.set_field!r} here"
                )
        if isinstance(step, BranchStep):
            _check_condition(session, workspace_id, definition, path, step, segments)
    return definition


def _check_condition(
    session: Session,
    workspace_id: int,
    definition: Definition,
    path: str,
    step: BranchStep,
    segments: set[int],
) -> None:
    where = f"{to_json_path(path)}.branch.if"
    condition = step.branch.if_
    if isinstance(condition, (Opened, Clicked)):
        ref = condition.opened if isinstance(condition, Opened) else condition.clicked
        key = "opened" if isinstance(condition, Opened) else "clicked"
        earlier = sends_before(definition, path)
        if ref == "previous":
            if not earlier:
                raise InvalidAutomation(f"{where}.{key}", "no send step comes before this branch")
        elif ref not in earlier:
            raise InvalidAutomation(
                f"{where}.{key}", f"{ref!r} is not a send step before this branch"
            )
    elif isinstance(condition, InSegment):
        if condition.segment_id not in segments:
            raise InvalidAutomation(f"{where}.segment_id", f"no segment {condition.segment_id}")
    else:
        try:
            validate_rules(session, workspace_id, condition.model_dump())
        except ValidationFailed as exc:
            raise InvalidAutomation(where, str(exc)) from None


def dump_definition(definition: Definition) -> dict[str, Any]:
    return definition.model_dump(mode="json", by_alias=True, exclude_none=True)
