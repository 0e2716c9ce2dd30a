"""The deliverability guard (issue 19): a sending campaign that burns the account is
paused before SES does it (`guard`), and the workspace's last 30 days are weighed against
SES's review levels before "Send now" (`standing`).

`guard.check_campaigns` runs in the worker's SNS drain (core.ingest.inbox), in the
transaction that stored the feedback, so a pause lands within a drain tick (about a second)
of the notification reaching the webhook; the sending loop re-reads the status before each
claim (core.sending.pipeline), so nothing more is claimed once the pause commits.

May import: `core.infra`, `core.models`, `core.mail`. Sits below `core.ingest` (which calls
it) and above `core.contacts` in `.importlinter`'s layers.
"""

from core.deliverability.guard import (
    GUARD_MIN_FEEDBACK,
    GuardAlert,
    GuardOverrideNeeded,
    acknowledge,
    check_campaigns,
    guard_of,
    limits_for,
    next_arming,
    notify_later,
    open_alerts,
    overridden_by,
    override_pause,
    override_question,
    pending_override,
    resume_question,
    send_pause_notices,
)
from core.deliverability.standing import (
    SES_BOUNCE_PAUSE,
    SES_BOUNCE_REVIEW,
    SES_COMPLAINT_PAUSE,
    SES_COMPLAINT_REVIEW,
    GuardLimits,
    SendOverrideNeeded,
    Standing,
    get_limits,
    require_send_allowed,
    update_limits,
    workspace_standing,
)

__all__ = [
    "GUARD_MIN_FEEDBACK",
    "SES_BOUNCE_PAUSE",
    "SES_BOUNCE_REVIEW",
    "SES_COMPLAINT_PAUSE",
    "SES_COMPLAINT_REVIEW",
    "GuardAlert",
    "GuardLimits",
    "GuardOverrideNeeded",
    "SendOverrideNeeded",
    "Standing",
    "acknowledge",
    "check_campaigns",
    "get_limits",
    "guard_of",
    "limits_for",
    "next_arming",
    "notify_later",
    "open_alerts",
    "overridden_by",
    "override_pause",
    "override_question",
    "pending_override",
    "require_send_allowed",
    "resume_question",
    "send_pause_notices",
    "update_limits",
    "workspace_standing",
]
