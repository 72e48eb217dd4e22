"""The normalized store: SQLAlchemy 2 typed models and the statements that write them."""

from models.base import Base
from models.crm import (
    TABLE_BY_KIND,
    Call,
    CallList,
    CallListMember,
    CrmRecord,
    Deal,
    Email,
    FollowUpTask,
    Lead,
    Meeting,
    Rep,
    Team,
)
from models.sync import QuarantinedRecord, StoreMeta, SyncLock, SyncRun, SyncState

__all__ = [
    "TABLE_BY_KIND",
    "Base",
    "Call",
    "CallList",
    "CallListMember",
    "CrmRecord",
    "Deal",
    "Email",
    "FollowUpTask",
    "Lead",
    "Meeting",
    "QuarantinedRecord",
    "Rep",
    "StoreMeta",
    "SyncLock",
    "SyncRun",
    "SyncState",
    "Team",
]

# The KPI engine's tables (rollups, lead first touches, targets, costs, forecast snapshots).
from models.kpi import (  # noqa: E402
    ROLLUP_BY_KIND,
    DailyCalls,
    DailyEmails,
    DailyMeetings,
    DailyRollup,
    DailyTasks,
    DataChange,
    ForecastSnapshot,
    KpiCost,
    KpiTarget,
    KpiTargetRevision,
    LeadDirty,
    LeadFirstTouch,
    RollupDirtyDay,
    RollupState,
)

__all__ += [
    "ROLLUP_BY_KIND",
    "DailyCalls",
    "DailyEmails",
    "DailyMeetings",
    "DailyRollup",
    "DailyTasks",
    "DataChange",
    "ForecastSnapshot",
    "KpiCost",
    "KpiTarget",
    "KpiTargetRevision",
    "LeadDirty",
    "LeadFirstTouch",
    "RollupDirtyDay",
    "RollupState",
]

# The write-back's tables (push audits, their rows, the last value pushed per CRM field).
from models.writeback import WritebackPush, WritebackPushRow, WritebackState  # noqa: E402

__all__ += ["WritebackPush", "WritebackPushRow", "WritebackState"]

# The review sheets' tables (notes, their audit log, improvement actions).
from models.sheets import ImprovementAction, SheetNote, SheetNoteWrite  # noqa: E402

__all__ += ["ImprovementAction", "SheetNote", "SheetNoteWrite"]

# The alerts sent to the webhook (pacing checks, the weekly digest).
from models.alerts import Alert  # noqa: E402

__all__ += ["Alert"]
