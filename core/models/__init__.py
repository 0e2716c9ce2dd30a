"""The SQL schema: one set of typed models for SQLite and PostgreSQL, by domain
(`accounts`, `contacts`, `campaigns`, `activity`, `forms`, `deliverability`, on `base`), and `statuses`: every status
a row can be in and the campaign action table. Import models from here.

May import: `core.infra`.
"""

from core.models.accounts import (
    AuditLog,
    Invitation,
    PasswordResetToken,
    RevokedSession,
    User,
    Workspace,
)
from core.models.activity import (
    Event,
    Job,
    RateLimit,
    SnsMessage,
)
from core.models.automations import Automation, AutomationMatch, BeatMark, Enrollment
from core.models.base import (
    CAMPAIGN_STATUSES,
    CONSENT_ACTIONS,
    CONSENT_SOURCES,
    CONTACT_STATUSES,
    EVENT_TYPES,
    FIELD_TYPES,
    JOB_STATUSES,
    LIST_OPT_INS,
    LIST_VISIBILITIES,
    MESSAGE_STATUSES,
    NAMING,
    ROLES,
    Base,
    BigId,
    JSONType,
)
from core.models.campaigns import (
    Campaign,
    Message,
    Segment,
    Template,
    Variant,
)
from core.models.contacts import (
    Contact,
    ContactList,
    CustomField,
    ListMembership,
    SunsetPolicy,
    Suppression,
)
from core.models.deliverability import CampaignGuard
from core.models.forms import Consent, Form, FormThrottle, SignupInbox

__all__ = [
    "AuditLog",
    "Automation",
    "AutomationMatch",
    "BeatMark",
    "CampaignGuard",
    "Enrollment",
    "Base",
    "BigId",
    "CAMPAIGN_STATUSES",
    "CONSENT_ACTIONS",
    "CONSENT_SOURCES",
    "CONTACT_STATUSES",
    "Consent",
    "Campaign",
    "Contact",
    "ContactList",
    "CustomField",
    "EVENT_TYPES",
    "Event",
    "FIELD_TYPES",
    "Form",
    "FormThrottle",
    "SignupInbox",
    "Invitation",
    "JOB_STATUSES",
    "JSONType",
    "LIST_OPT_INS",
    "LIST_VISIBILITIES",
    "Job",
    "ListMembership",
    "MESSAGE_STATUSES",
    "Message",
    "NAMING",
    "PasswordResetToken",
    "ROLES",
    "RateLimit",
    "RevokedSession",
    "Segment",
    "SnsMessage",
    "SunsetPolicy",
    "Suppression",
    "Template",
    "User",
    "Variant",
    "Workspace",
]
