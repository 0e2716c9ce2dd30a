"""Who is acting, for which workspace, and what their role allows."""

from __future__ import annotations

from dataclasses import dataclass

from core.infra.errors import PermissionDenied

# Each role includes the ones after it.
ROLE_RANK = {"owner": 4, "admin": 3, "editor": 2, "viewer": 1}
# What each capability needs at least.
NEEDS = {"read": "viewer", "edit": "editor", "admin": "admin", "owner": "owner"}


@dataclass(frozen=True)
class Actor:
    """The acting user (or the system) and the one workspace every query is scoped to."""

    workspace_id: int
    role: str
    user_id: int | None = None
    email: str = ""

    @classmethod
    def system(cls, workspace_id: int) -> Actor:
        """The worker, the webhook and the CLI act with full rights in one workspace."""
        return cls(workspace_id=workspace_id, role="owner", user_id=None, email="system")

    def can(self, capability: str) -> bool:
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK[NEEDS[capability]]

    def require(self, capability: str) -> None:
        if not self.can(capability):
            raise PermissionDenied(
                f"Your role ({self.role}) does not allow this; it needs {NEEDS[capability]} or above."
            )
