"""The deliverability guard's record of a campaign (core.deliverability): its automatic
pause, who overrode it, who looked, and an owner's override of the workspace's rates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, JSONType, _ts


class CampaignGuard(Base):
    """One row per campaign the guard acted on (or an owner sent past it); none otherwise.

    `paused_at`, `reason`, `metric`, `rate` and `feedback` describe the latest automatic
    pause. `overrides` counts resumes past the guard: it picks the limits the guard
    re-arms at (core.deliverability.guard.limits_for). `acknowledged_at` ends the banner."""

    __tablename__ = "campaign_guard"
    __table_args__ = (Index("ix_campaign_guard_workspace", "workspace_id", "acknowledged_at"),)

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaign.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    metric: Mapped[str] = mapped_column(String(16), default="", server_default="")
    rate: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    feedback: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    pauses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    overrides: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    overridden_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    overridden_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acknowledged_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # "Send now" past the workspace's 30-day rates: the owner, when, and the rates then.
    send_override_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    send_override_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    send_override_detail: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict, server_default="{}"
    )
    created_at: Mapped[datetime] = _ts()
