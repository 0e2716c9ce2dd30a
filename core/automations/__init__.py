"""Automations (issue 18): flows that enroll contacts (a list joined, a segment entered, a
date reached, by hand) and walk each through send, wait, branch, update and exit steps,
every send exactly once.

Modules: `model` (the definition, its validation with JSON paths, the step-path walk),
`enrollment` (beat's set-based enrollment of new list members), `triggers` (segment and
date triggers: beat's bounded looks for newly matching contacts and today's dates),
`service` (create, activate, pause, resume, enroll by hand, status figures), `editing`
(changing a saved definition: the rules once contacts are in; `reshape` holds its pure
JSON edits and the line-up of an edited flow with the saved one), `report` (read models of the
Automations and Reports pages: the list, per-step figures, sends per day), `engine`
(beat's pass: enroll new list members, let unsubscribed contacts go, advance due
enrollments, send through the campaign pipeline's transports and shared rate limiter).

Contacts sit below this package, so joining a list calls nothing here: beat's pass finds
list memberships made since the automation was activated (set-based, watermarked by
`Automation.activated_at` and the enrollment's unique key), whichever way they were made:
import, form confirmation, a manual add or another automation's update step.

May import: everything below it, `core.sending` (transports, rate limiter), `core.segments`
(conditions), `core.content` (rendering) and `core.mail` (the MIME builder) included.
"""

from core.automations.editing import (
    RUNNING_RULES,
    EditRefused,
    add_step,
    duplicate_as_draft,
    enroll_for_test,
    has_entrants,
    human_path,
    remove_step,
    save_step,
    update_automation,
)
from core.automations.engine import PassResult, run_pass
from core.automations.model import InvalidAutomation, parse_definition
from core.automations.report import (
    AutomationReport,
    AutomationRow,
    DaySends,
    StepFigures,
    automation_report,
    describe_step,
    describe_trigger,
    editor_options,
    list_automations,
    sends_per_day,
    step_figures,
)
from core.automations.service import (
    AutomationNotRunnable,
    activate_automation,
    automation_status,
    create_automation,
    enroll_contact,
    get_automation,
    pause_automation,
    resume_automation,
)
from core.contacts.service import check_timezone  # contacts' optional IANA time zone

__all__ = [
    "RUNNING_RULES",
    "AutomationNotRunnable",
    "AutomationReport",
    "AutomationRow",
    "DaySends",
    "EditRefused",
    "StepFigures",
    "add_step",
    "automation_report",
    "describe_step",
    "describe_trigger",
    "duplicate_as_draft",
    "editor_options",
    "enroll_for_test",
    "has_entrants",
    "human_path",
    "list_automations",
    "remove_step",
    "save_step",
    "sends_per_day",
    "step_figures",
    "update_automation",
    "InvalidAutomation",
    "PassResult",
    "activate_automation",
    "automation_status",
    "check_timezone",
    "create_automation",
    "enroll_contact",
    "get_automation",
    "parse_definition",
    "pause_automation",
    "resume_automation",
    "run_pass",
]
