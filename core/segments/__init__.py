"""Segments: a rule tree over contact fields, list membership and email activity,
validated, then compiled to one SQL condition that the database evaluates.

Rule format (stored as JSON on `Segment.rules`):

    group    = {"match": "all" | "any", "rules": [rule | group, ...]}   nesting up to 5 levels
    field    = {"field": NAME, "op": OP, "value": V}
    activity = {"activity": "received" | "opened" | "clicked" | "bounced" | "unsubscribed",
                "campaign_id": ID | None, "within_days": N | None, "negate": bool}
    list     = {"list": LIST_ID, "negate": bool}

Custom field values are compared by their defined type, reading the JSON value's own type:
a number field holds JSON numbers, a boolean field JSON true/false, a date field a string
that begins with YYYY-MM-DD, a text field a string. Any other value counts as empty.

Modules: `model` (the rule model and its validation), `compiler` (rules to SQL),
`service` (counts, samples, the builder's options, saved segments). This module is the
interface pages, campaigns and the CLI use.

May import: `core.infra`, `core.models`, `core.contacts`.
"""

from core.segments.compiler import compile_rules, matching_query, segment_condition
from core.segments.model import (
    ACTIVITIES,
    ACTIVITY_EVENTS,
    MAX_DEPTH,
    NO_VALUE_OPS,
    OPERATOR_LABELS,
    OPERATORS,
    STANDARD_TYPES,
    ActivityRule,
    FieldRule,
    Group,
    InvalidRule,
    ListRule,
    dump_rules,
    field_type,
    parse_rules,
    validate_rules,
)
from core.segments.service import (
    CAMPAIGN_STATES_USING_SEGMENT,
    BuilderOptions,
    CountResult,
    SegmentInUse,
    builder_options,
    campaigns_using,
    count_matching,
    count_segment,
    create_segment,
    delete_segment,
    duplicate_segment,
    get_segment,
    list_segments,
    sample_matching,
    update_segment,
)

__all__ = [
    "ACTIVITIES",
    "ACTIVITY_EVENTS",
    "CAMPAIGN_STATES_USING_SEGMENT",
    "MAX_DEPTH",
    "NO_VALUE_OPS",
    "OPERATORS",
    "OPERATOR_LABELS",
    "STANDARD_TYPES",
    "ActivityRule",
    "BuilderOptions",
    "CountResult",
    "FieldRule",
    "Group",
    "InvalidRule",
    "ListRule",
    "SegmentInUse",
    "builder_options",
    "campaigns_using",
    "compile_rules",
    "count_matching",
    "count_segment",
    "create_segment",
    "delete_segment",
    "dump_rules",
    "duplicate_segment",
    "field_type",
    "get_segment",
    "list_segments",
    "matching_query",
    "parse_rules",
    "sample_matching",
    "segment_condition",
    "update_segment",
    "validate_rules",
]
