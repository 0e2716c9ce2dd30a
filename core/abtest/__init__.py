"""A/B tests: variants, a seeded split of the audience, an honest winner, the rest released.

Lifecycle of an A/B campaign:

1. `settings.configure_ab_test` (wizard) stores 2-5 variants and the rule on a draft campaign.
2. Sending snapshots the audience into the ledger, then calls `core.campaigns.split.assign_variants`: a seeded
   shuffle gives every variant its share of the test to within one recipient; the rest of
   the ledger is "held" (`Message.ab_rest`), with no variant.
3. Beat asks `lifecycle.due_ab_tests`; `lifecycle.evaluate_ab_test` computes per variant the metric's rate, a
   95% Wilson interval, the probability to be best (Beta(1+x, 1+n-x) posteriors, exact by
   numerical integration) and a pooled two-proportion z-test of the leader against the
   runner-up. The leader wins when every variant has `MIN_SAMPLE` recipients counted and
   its probability to be best reaches the campaign's minimum confidence (more than 50%,
   so a tie can never produce a winner: ties wait for the marketer).
4. `release_rest` hands the held rest to the winner with one conditional UPDATE
   (held -> queued), so it happens exactly once however often it runs, and queues its
   batches (`core.campaigns.dispatch`). `choose_winner_manually` works at any time
   before the rest is sent.

Counting: a message counts as opened when it has a human (not machine) open or a click (a
click proves the open); as clicked when it has a human click. Rates are over messages
sent (`sent` or `uncertain`) minus those that bounced, so bounces do not punish a variant.

Modules: `settings` (variants and rules on a draft), `statistics` (pure functions),
`figures` (per-variant counts from the ledger), `lifecycle` (decide and release),
`report` (the report's A/B section), `review` (the wizard's review of a test before it is
sent: rendered subjects, the split, whether an automatic winner is possible). The split itself is `core.campaigns.split` (the
snapshot needs it). This module is the interface pages, the worker and tests use.

May import: everything below it, `core.campaigns` included; never `core.sending`.
"""

from core.abtest.lifecycle import (
    RELEASE_TASK,
    choose_winner_manually,
    due_ab_tests,
    evaluate_ab_test,
    pending_releases,
    release_and_dispatch,
    release_rest,
    run_due_tests,
    wait_ends_at,
)
from core.abtest.report import ab_report
from core.abtest.review import ab_review, sample_size_warning
from core.abtest.settings import (
    AIUnavailable,
    ab_settings,
    configure_ab_test,
    remove_ab_test,
    suggest_subject_variants,
    validate_settings,
)
from core.abtest.statistics import decide, probability_best, two_proportion_p_value, wilson_interval

__all__ = [
    "RELEASE_TASK",
    "AIUnavailable",
    "ab_report",
    "ab_review",
    "ab_settings",
    "choose_winner_manually",
    "configure_ab_test",
    "decide",
    "due_ab_tests",
    "evaluate_ab_test",
    "pending_releases",
    "probability_best",
    "release_and_dispatch",
    "release_rest",
    "remove_ab_test",
    "run_due_tests",
    "sample_size_warning",
    "suggest_subject_variants",
    "two_proportion_p_value",
    "validate_settings",
    "wait_ends_at",
    "wilson_interval",
]
