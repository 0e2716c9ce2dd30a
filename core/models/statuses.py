"""Every status a row can be in, and which campaign actions each campaign status allows.

The one place for these rules: core's checks, the pages' buttons and the database's CHECK
constraints (migrations 0015 and 0016) all read them from here. The enums are `StrEnum`s, so a
member equals its stored string (`CampaignStatus.SENT == "sent"`) and rows read back as
plain strings compare as expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ContactStatus(StrEnum):
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    # Signed up on a double-opt-in form and not confirmed yet: never mailed by a campaign,
    # deleted by beat after 30 days (core.forms).
    UNCONFIRMED = "unconfirmed"


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class MessageStatus(StrEnum):
    """A ledger row: queued waits to send; held is an A/B test's rest waiting for the
    winner; sending is handed to the transport with no outcome recorded yet (after a lost
    worker: uncertain, sent again once and counted as a possible duplicate); sent, failed
    and cancelled are final."""

    QUEUED = "queued"
    HELD = "held"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"
    CANCELLED = "cancelled"


class AutomationStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"


class EnrollmentStatus(StrEnum):
    """A contact in an automation: active (waiting or due), finished (walked off the end),
    exited (an exit step, or unsubscribed, bounced or complained: the reason says)."""

    ACTIVE = "active"
    FINISHED = "finished"
    EXITED = "exited"


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


C, M = CampaignStatus, MessageStatus

# Campaigns
EDITABLE = (C.DRAFT, C.SCHEDULED)  # content and audience may still change
ACTIVE = (C.SENDING, C.PAUSED)  # the ledger is being worked through
FINISHED = (C.SENT, C.FAILED, C.CANCELLED)
# Messages
PENDING = (M.QUEUED, M.UNCERTAIN)  # a batch may claim these
NOT_FINAL = (M.QUEUED, M.UNCERTAIN, M.SENDING, M.HELD)
LEFT = (M.SENT, M.UNCERTAIN)  # handed to the transport: counted as sent in reports
# The error text of a message sent again after its worker was lost (an uncertain one).
POSSIBLE_DUPLICATE = "possible duplicate"


# --- campaign actions ------------------------------------------------------------------------


class Action(StrEnum):
    EDIT = "Edit"
    SEND = "Send"
    PAUSE = "Pause"
    RESUME = "Resume"
    CANCEL = "Cancel"
    RETRY_FAILED = "Retry failed"
    CLONE = "Clone"
    DELETE = "Delete"
    REPORT = "Report"
    RESEND = "Resend to non-openers"


# The campaign statuses in which each action applies, and why it does not otherwise.
TRANSITIONS: dict[Action, tuple[tuple[CampaignStatus, ...], str]] = {
    Action.EDIT: (EDITABLE, "Only a draft or a scheduled campaign can be edited."),
    Action.SEND: (EDITABLE, "Only a draft or a scheduled campaign can be sent."),
    Action.PAUSE: ((C.SENDING,), "Only a sending campaign can be paused."),
    Action.RESUME: ((C.PAUSED,), "Only a paused campaign can be resumed."),
    Action.CANCEL: (
        (C.SCHEDULED, C.SENDING, C.PAUSED, C.FAILED),
        "Only a scheduled, sending, paused or failed campaign can be cancelled.",
    ),
    Action.RETRY_FAILED: (
        (C.SENT, C.FAILED),
        "Failed messages can be sent again once the campaign has finished.",
    ),
    Action.CLONE: (tuple(C), ""),
    Action.DELETE: (
        (C.DRAFT, C.SCHEDULED, *FINISHED),
        "Pause and cancel the campaign before deleting it.",
    ),
    Action.REPORT: ((C.SENDING, C.PAUSED, *FINISHED), "There is no report before sending."),
    Action.RESEND: ((C.SENT,), "Only a sent campaign can be resent to its non-openers."),
}


@dataclass(frozen=True)
class Allowed:
    """Whether an action applies now; `reason` says why not (a tooltip, an error)."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok


def allowed(action: Action, status: str, failed: int | None = None) -> Allowed:
    """May `action` apply to a campaign in `status` (with `failed` failed messages, when
    known)? The one table both core's checks and the page's buttons use."""
    statuses, reason = TRANSITIONS[action]
    if status not in statuses:
        return Allowed(False, reason)
    if action is Action.RETRY_FAILED and failed == 0:
        return Allowed(False, "No message failed: there is nothing to send again.")
    return Allowed(True)


def allowed_actions(status: str, failed: int | None = None) -> dict[Action, Allowed]:
    """Every action for a campaign in `status`, in button order."""
    return {action: allowed(action, status, failed) for action in Action}
