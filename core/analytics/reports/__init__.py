"""Campaign reports and dashboard figures.

A campaign's live numbers are named queries over the SQL database (message ledger and
events) that read covering indexes only; the dashboard's trends read the DuckDB rollups
(core.analytics.rollups). Opens and clicks count only from the workspace's tracking source ("own"
pixel and links, or "ses"), so a campaign tracked by both is never counted twice, and
machine opens (prefetchers, image proxies) are kept apart from human ones.

Modules: `campaign` (a campaign's figures, timeline, links, comparisons), `recipients`
(the recipients table and CSV), `dashboard` (deliverability, recent and upcoming).
"""

from core.analytics.reports.campaign import (
    FIGURE_LABELS,
    RATE_DEFINITIONS,
    RATE_HELP,
    RATE_LABELS,
    CampaignChoice,
    CampaignFigures,
    CampaignReport,
    LinkClicks,
    TimelinePoint,
    campaign_figures,
    campaign_report,
    campaign_timeline,
    compare_campaigns,
    comparison_rows,
    rate,
    reportable_campaigns,
    top_links,
)
from core.analytics.reports.dashboard import (
    Dashboard,
    Deliverability,
    dashboard,
    deliverability,
)
from core.analytics.reports.recipients import (
    RECIPIENT_LABELS,
    RecipientRow,
    delivery_is_estimated,
    recipients_csv,
    recipients_page,
)

__all__ = [
    "FIGURE_LABELS",
    "RATE_DEFINITIONS",
    "RATE_HELP",
    "RATE_LABELS",
    "CampaignChoice",
    "CampaignFigures",
    "CampaignReport",
    "Dashboard",
    "Deliverability",
    "LinkClicks",
    "RECIPIENT_LABELS",
    "RecipientRow",
    "TimelinePoint",
    "campaign_figures",
    "campaign_report",
    "campaign_timeline",
    "compare_campaigns",
    "comparison_rows",
    "dashboard",
    "deliverability",
    "delivery_is_estimated",
    "rate",
    "recipients_csv",
    "recipients_page",
    "reportable_campaigns",
    "top_links",
]
