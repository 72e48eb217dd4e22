"""A seeded inside-sales team in HubSpot's own property names (docs/sync.md), for the demo portal.

Owners sit in inside-sales teams plus one field-sales team; contacts (leads) arrive
every business day and are worked by calls and emails within minutes; effective calls
book meetings, completed meetings become deals handed to field sales, and deals close
at the seed article's win rates. Activity happens on weekdays, 9:00–19:00 Tokyo time
(00:00–10:00 UTC), with per-rep differences in volume, connect rate, conversion and
the hours they call. Rates land in the seed article's bands: connect 0.20–0.35, reach
0.85–0.95, effective contacts 0.15–0.25, talk time 180–300 s, opens 0.20–0.35, clicks
0.03–0.08, replies 0.05–0.15, meeting conversion 0.05–0.15, appointments 0.80–0.90,
cancellations ≤ 0.10, BANT 0.70–0.85, win rate 0.20–0.35, handoff rating ≥ 4.0.

The same seed and ``end`` always give the same dataset. Records are generated
column-wise (datetime properties as epoch milliseconds) so that a benchmark can ask
for a million calls and load them into the portal in seconds.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter

from simulators.hubspot.lists import GeneratedList
from simulators.hubspot.store import GeneratedOwner, ObjectTable, PortalDataset, gc_paused
from simulators.hubspot.wire import DEFAULT_DEAL_STAGES, EPOCH, OBJECT_TYPES, Value, to_ms

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# Business hours 9:00–19:00 Asia/Tokyo are 00:00–10:00 UTC of the same date.
WORKDAY = 10 * HOUR

# HubSpot's default call dispositions (docs/sync.md).
CALL_DISPOSITIONS: dict[str, str] = {
    "connected": "f240bbac-87c9-4f6e-bf70-924b57d47db7",
    "no_answer": "73a0d17f-1163-4015-bdd5-ec830791da20",
    "voicemail": "b2cf5968-551e-4856-9783-52b3da59a7d0",
    "live_message": "a4c4c377-d246-4b32-a13b-75a56a4cd0ff",
    "wrong_number": "17b47fee-58de-441e-a44c-c6300d46f273",
    "busy": "9d9162e7-6cf3-4944-bf63-4dff82258764",
}

LEAD_SOURCES: tuple[tuple[str, float], ...] = (
    ("ORGANIC_SEARCH", 0.24),
    ("PAID_SEARCH", 0.17),
    ("EMAIL_MARKETING", 0.10),
    ("SOCIAL_MEDIA", 0.09),
    ("REFERRALS", 0.09),
    ("OTHER_CAMPAIGNS", 0.07),
    ("DIRECT_TRAFFIC", 0.12),
    ("OFFLINE", 0.12),
)
INDUSTRIES: tuple[tuple[str, float], ...] = (
    ("COMPUTER_SOFTWARE", 0.18),
    ("INFORMATION_TECHNOLOGY_AND_SERVICES", 0.15),
    ("MARKETING_AND_ADVERTISING", 0.09),
    ("FINANCIAL_SERVICES", 0.09),
    ("HOSPITAL_HEALTH_CARE", 0.07),
    ("LOGISTICS_AND_SUPPLY_CHAIN", 0.07),
    ("REAL_ESTATE", 0.06),
    ("RETAIL", 0.08),
    ("MACHINERY", 0.07),
    ("STAFFING_AND_RECRUITING", 0.06),
    ("CONSTRUCTION", 0.04),
    ("EDUCATION_MANAGEMENT", 0.03),
)
# HubSpot's numemployees enumeration.
COMPANY_SIZES: tuple[tuple[str, float], ...] = (
    ("1-5", 0.07),
    ("5-25", 0.19),
    ("25-50", 0.18),
    ("50-100", 0.17),
    ("100-500", 0.21),
    ("500-1000", 0.08),
    ("1000+", 0.10),
)

_FAMILY = (
    "Sato",
    "Suzuki",
    "Takahashi",
    "Tanaka",
    "Watanabe",
    "Ito",
    "Yamamoto",
    "Nakamura",
    "Kobayashi",
    "Kato",
    "Yoshida",
    "Yamada",
    "Sasaki",
    "Yamaguchi",
    "Matsumoto",
    "Inoue",
    "Kimura",
    "Hayashi",
    "Shimizu",
    "Yamazaki",
    "Mori",
    "Abe",
    "Ikeda",
    "Hashimoto",
)
_GIVEN = (
    "Haruto",
    "Yuto",
    "Sota",
    "Yui",
    "Aoi",
    "Hina",
    "Ren",
    "Minato",
    "Riku",
    "Sakura",
    "Mei",
    "Yuna",
    "Kaito",
    "Daiki",
    "Mio",
    "Saki",
    "Takumi",
    "Kenta",
    "Nanami",
    "Ayaka",
)
_COMPANY_A = (
    "Aozora",
    "Hikari",
    "Sakura",
    "Fuji",
    "Kaze",
    "Midori",
    "Tsubasa",
    "Nami",
    "Hoshi",
    "Yama",
    "Kawa",
    "Mirai",
    "Asahi",
    "Kumo",
    "Hana",
    "Sora",
    "Umi",
    "Tomo",
)
_COMPANY_B = (
    "Systems",
    "Logistics",
    "Foods",
    "Labs",
    "Works",
    "Trading",
    "Robotics",
    "Health",
    "Media",
    "Capital",
    "Retail",
    "Energy",
)
_TEAM_NAMES = (
    "Inside Sales East",
    "Inside Sales West",
    "Inside Sales Enterprise",
    "Inside Sales SMB",
    "Inside Sales Partners",
)
_PRODUCTS = (
    "Cloud CRM",
    "Analytics Suite",
    "Support Plan",
    "Onboarding Package",
    "Enterprise License",
)
_BANT = {
    "bant_budget": (
        "Approved: 3M JPY",
        "Approved: 1.5M JPY",
        "Planned for next FY",
        "Up to 5M JPY",
    ),
    "bant_authority": ("CEO", "CTO", "Head of Sales", "IT Manager", "Procurement lead"),
    "bant_need": (
        "Replace spreadsheets",
        "Raise connect rates",
        "Pipeline visibility",
        "Reduce churn",
    ),
    "bant_timing": ("This quarter", "Next quarter", "Within 6 months", "Next fiscal year"),
}
# Call volume by hour of the Tokyo working day, 9:00 to 18:00 (lunch dip at 12:00).
_CALL_HOURS = (0.7, 1.15, 1.2, 0.45, 1.0, 1.2, 1.2, 1.1, 0.95, 0.6)

# Call outcomes besides "connected", as shares of the non-connected three quarters:
# (label, disposition, hs_call_status, weight). No disposition: the status tells.
_OTHER_OUTCOMES: tuple[tuple[str, str | None, str, float], ...] = (
    ("no_answer", CALL_DISPOSITIONS["no_answer"], "COMPLETED", 0.36),
    ("voicemail", CALL_DISPOSITIONS["voicemail"], "COMPLETED", 0.19),
    ("live_message", CALL_DISPOSITIONS["live_message"], "COMPLETED", 0.07),
    ("wrong_number", CALL_DISPOSITIONS["wrong_number"], "COMPLETED", 0.03),
    ("busy", CALL_DISPOSITIONS["busy"], "COMPLETED", 0.04),
    ("busy", None, "BUSY", 0.015),
    ("no_answer", None, "NO_ANSWER", 0.015),
    ("failed", None, "FAILED", 0.02),
    ("unknown", None, "COMPLETED", 0.01),
)


# ---------------------------------------------------------------------------------------


class _Weighted:
    """A fast weighted choice from a fixed table."""

    def __init__(self, items: Sequence[tuple[str, float]]) -> None:
        self.values = [v for v, _ in items]
        self.cum: list[float] = []
        total = 0.0
        for _, w in items:
            total += w
            self.cum.append(total)
        self.total = total

    def pick(self, rnd: Callable[[], float]) -> str:
        return self.values[min(len(self.values) - 1, bisect.bisect(self.cum, rnd() * self.total))]


@dataclass
class _Rep:
    owner_id: str
    team: int
    activity: float  # volume multiplier
    connect: float  # share of calls that connect
    conversion: float  # meetings booked per effective contact
    open_rate: float
    win: float  # win-rate multiplier of the deals this rep hands over
    response_minutes: float  # median minutes to first touch of a new lead
    hour_cum: list[float]
    outcome_cum: list[float]
    contact_created: list[int] = field(default_factory=list)
    contact_ids: list[int] = field(default_factory=list)


def _months_before(moment: datetime, months: int) -> datetime:
    year, month = moment.year, moment.month - months
    while month <= 0:
        month += 12
        year -= 1
    day = min(moment.day, 28)
    return moment.replace(year=year, month=month, day=day)


def _weekdays(first: date, last: date) -> list[date]:
    """Weekdays in [first, last)."""
    out: list[date] = []
    day = first
    while day < last:
        if day.weekday() < 5:
            out.append(day)
        day += timedelta(days=1)
    return out


def _midnight_ms(day: date) -> int:
    return to_ms(datetime(day.year, day.month, day.day, tzinfo=UTC))


def generate_dataset(
    *,
    seed: int = 7,
    teams: int = 3,
    reps_per_team: int = 4,
    months: int = 6,
    end: datetime | None = None,
    calls_per_rep_day: float = 60.0,
    total_calls: int | None = None,
) -> PortalDataset:
    """A deterministic demo portal: the same arguments always give the same data.

    ``end`` (default: today 00:00 UTC) is exclusive; activity covers the ``months``
    before it. ``total_calls`` overrides ``calls_per_rep_day`` to produce exactly that
    many calls; emails keep their proportion to the calls.
    """
    if teams < 1 or reps_per_team < 1 or months < 1:
        raise ValueError("teams, reps_per_team and months must be at least 1")
    if total_calls is not None and total_calls < 0:
        raise ValueError("total_calls must not be negative")
    if end is None:
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    elif end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    end = end.astimezone(UTC)
    start = _months_before(end, months).replace(hour=0, minute=0, second=0, microsecond=0)
    with gc_paused():  # a six-month team is half a million values: no cycles to look for
        builder = _Builder(random.Random(seed), start, end, teams, reps_per_team)
        builder.contacts()
        if total_calls is not None and builder.days:
            # Other activity keeps its proportion to the calls.
            calls_per_rep_day = total_calls / (len(builder.reps) * len(builder.days))
        builder.calls(calls_per_rep_day, total_calls)
        builder.emails(calls_per_rep_day * 0.7)
        builder.meetings()
        builder.deals()
        _deal_types(builder.tables["deals"], seed)
        builder.tasks()
        builder.finish_contacts()
        builder.archive_a_few()
        # A separate random stream: the records above are the same with or without lists.
        lists = _call_lists(builder, random.Random(seed * 7919 + 15))
    return PortalDataset(
        seed=seed,
        start=start,
        end=end,
        owners=builder.owners,
        objects=builder.tables,
        pipeline_stages=list(DEFAULT_DEAL_STAGES),
        lists=lists,
    )


def _deal_types(table: ObjectTable, seed: int) -> None:
    """Each deal's dealtype: mostly new business, some existing, a few unset.

    Drawn from a random stream of its own, so adding the attribute left every other
    generated value as it was.
    """
    rng = random.Random(f"dealtype-{seed}")
    kinds = _Weighted((("newbusiness", 0.68), ("existingbusiness", 0.26), ("", 0.06)))
    table.columns["dealtype"] = [kinds.pick(rng.random) or None for _ in table.ids]


LISTS_PER_TEAM = 3
FIRST_LIST_ID = 501


def _touched_in_month(times: Sequence[int], moment: int) -> bool:
    """Whether a sorted list of touch times has one from ``moment`` to its month's end (UTC)."""
    day = EPOCH + timedelta(milliseconds=moment)
    month_end = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    at = bisect.bisect_left(times, moment)
    return at < len(times) and times[at] < to_ms(month_end)


def _call_lists(builder: _Builder, rng: random.Random) -> list[GeneratedList]:
    """Static call lists per team over the period: the team's leads, most called after joining.

    Each team gets ``LISTS_PER_TEAM`` lists, one every few weeks. A list takes about a third of
    the leads its team's reps own that exist by its end. Most members are added
    shortly before an outbound call or email they then get; the others at a moment no touch
    follows within the month (never worked from the list), so リスト消化率 lands around
    0.6–0.85.
    """
    contacts = builder.tables["contacts"]
    touches: dict[int, list[int]] = {}
    for name, direction, outbound in (
        ("calls", "hs_call_direction", "OUTBOUND"),
        ("emails", "hs_email_direction", "EMAIL"),
    ):
        table = builder.tables[name]
        for at, way, contact in zip(
            table.columns["hs_timestamp"],
            table.columns[direction],
            table.associations.get("contacts", []),
            strict=False,
        ):
            if contact and way == outbound and isinstance(at, int):
                touches.setdefault(contact, []).append(at)
    for times in touches.values():
        times.sort()
    team_of = {rep.owner_id: rep.team for rep in builder.reps}
    owners = contacts.columns["hubspot_owner_id"]
    span = max(DAY, builder.end_ms - builder.start_ms)
    out: list[GeneratedList] = []
    list_id = FIRST_LIST_ID
    teams = sorted(set(team_of.values()))
    for team in teams:
        name = _TEAM_NAMES[team] if team < len(_TEAM_NAMES) else f"Inside Sales {team + 1}"
        for k in range(LISTS_PER_TEAM):
            opens = builder.start_ms + span * k // LISTS_PER_TEAM + int(rng.uniform(0, 5) * DAY)
            closes = min(builder.end_ms - HOUR, opens + span // LISTS_PER_TEAM)
            members: dict[int, int] = {}
            for row, contact_id in enumerate(contacts.ids):
                created = contacts.created_ms[row]
                if team_of.get(str(owners[row])) != team or row in contacts.archived_ms:
                    continue
                if created >= closes or rng.random() > 0.34:
                    continue
                earliest = max(created, opens)
                times = touches.get(contact_id, [])
                later = times[bisect.bisect_right(times, earliest) :]
                if later and rng.random() < 0.6:
                    # Added a little before the touch that then works it.
                    added = max(earliest, later[0] - int(rng.uniform(0.05, 2.0) * DAY))
                else:
                    # Added at a moment no touch follows within its month: never worked.
                    tries = (earliest + int(rng.random() * (closes - earliest)) for _ in range(8))
                    found = next((t for t in tries if not _touched_in_month(times, t)), None)
                    # The running month's last days have few touches left to make: fewer
                    # never-worked joiners there, as a list being worked would have.
                    recent = found is not None and found > builder.end_ms - 7 * DAY
                    if found is None or (recent and rng.random() < 0.7):
                        continue
                    added = found
                members[contact_id] = added
            out.append(
                GeneratedList(
                    list_id=str(list_id),
                    name=f"{name} call list {k + 1}",
                    processing_type="MANUAL" if k % 2 == 0 else "SNAPSHOT",
                    created_ms=opens,
                    members=members,
                )
            )
            list_id += 1
    return out


class _Builder:
    """The generator's state while it walks through the period."""

    def __init__(
        self, rng: random.Random, start: datetime, end: datetime, teams: int, reps_per_team: int
    ) -> None:
        self.rng = rng
        self.rnd = rng.random
        self.start_ms = to_ms(start)
        self.end_ms = to_ms(end)
        self.days = _weekdays(start.date(), end.date())
        self.day_ms = [_midnight_ms(d) for d in self.days]
        self.day_index = {ms: i for i, ms in enumerate(self.day_ms)}
        self.tables: dict[str, ObjectTable] = {
            name: ObjectTable(name)
            for name in ("contacts", "calls", "emails", "meetings", "tasks", "deals")
        }
        self.sources = _Weighted(LEAD_SOURCES)
        self.industries = _Weighted(INDUSTRIES)
        self.sizes = _Weighted(COMPANY_SIZES)
        self.owners: list[GeneratedOwner] = []
        self.reps: list[_Rep] = []
        self.field_reps: list[str] = []
        self._make_owners(start, teams, reps_per_team)
        # Per-contact facts gathered while activity is generated.
        self.contact_owner: list[str] = []
        self.contact_company: list[str] = []
        self.sql_ms: dict[int, int] = {}
        self.deal_stage_of_contact: dict[int, str] = {}
        self.touch_calls: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self.touch_emails: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self.meeting_seeds: list[tuple[int, int, int]] = []  # (booked ms, rep index, contact)
        self.completed_meetings: list[tuple[int, int, int, int]] = []  # (row, start, rep, contact)
        self.contact_first_id = OBJECT_TYPES["contacts"].first_id

    # -- owners ---------------------------------------------------------------------------

    def _make_owners(self, start: datetime, teams: int, reps_per_team: int) -> None:
        rng = self.rng
        created = start - timedelta(days=400)
        used: set[str] = set()
        next_id = 41_000_001
        next_user = 9_100_001

        def person() -> tuple[str, str]:
            while True:
                first, last = rng.choice(_GIVEN), rng.choice(_FAMILY)
                if f"{first}.{last}" not in used:
                    used.add(f"{first}.{last}")
                    return first, last

        def add(team: tuple[str, str] | None, role: str, archived: bool = False) -> str:
            nonlocal next_id, next_user
            first, last = person()
            owner = GeneratedOwner(
                id=str(next_id),
                email=f"{first.lower()}.{last.lower()}@iskpi-demo.example.com",
                first_name=first,
                last_name=last,
                teams=[(team[0], team[1], True)] if team else [],
                user_id=next_user,
                created_at=created,
                role=role,
                archived=archived,
            )
            self.owners.append(owner)
            next_id += 1
            next_user += 1
            return owner.id

        base_hours = _CALL_HOURS
        for t in range(teams):
            name = _TEAM_NAMES[t] if t < len(_TEAM_NAMES) else f"Inside Sales {t + 1}"
            team = (str(6_100_001 + t), name)
            for _ in range(reps_per_team):
                owner_id = add(team, "inside_sales")
                connect = rng.uniform(0.215, 0.285)
                hours = [w * rng.uniform(0.7, 1.3) for w in base_hours]
                self.reps.append(
                    _Rep(
                        owner_id=owner_id,
                        team=t,
                        activity=rng.uniform(0.8, 1.2),
                        connect=connect,
                        conversion=rng.uniform(0.065, 0.12),
                        open_rate=rng.uniform(0.23, 0.33),
                        win=rng.uniform(0.85, 1.15),
                        response_minutes=rng.uniform(1.5, 4.0),
                        hour_cum=list(_cumulative(hours)),
                        outcome_cum=_outcome_cum(connect),
                    )
                )
        field_team = (str(6_109_001), "Field Sales")
        for _ in range(max(2, teams)):
            self.field_reps.append(add(field_team, "field_sales"))
        # A rep who left: deactivated, still listed with archived=true.
        add((str(6_100_001), _TEAM_NAMES[0]), "inside_sales", archived=True)

    # -- contacts (leads) -------------------------------------------------------------------

    def contacts(self) -> None:
        rng, rnd = self.rng, self.rnd
        born: list[tuple[int, int, bool]] = []  # (created ms, rep index, new in the period)
        for r_idx, _rep in enumerate(self.reps):
            for _ in range(45):  # the list a rep inherits at the start
                back = rng.randrange(1, 60)
                day = self.start_ms - back * DAY
                born.append((day - day % DAY + int(rnd() * WORKDAY), r_idx, False))
            for day in self.day_ms:
                rate = rng.uniform(1.5, 4.5)
                for _ in range(int(rate) + (1 if rnd() < rate - int(rate) else 0)):
                    if rnd() < 0.82:
                        at = day + int(rnd() * (WORKDAY - 20 * MINUTE))
                    else:  # web forms in the Tokyo evening
                        at = day + WORKDAY + int(rnd() * 5 * HOUR)
                    if at < self.end_ms:
                        born.append((at, r_idx, True))
        born.sort()
        table = self.tables["contacts"]
        cols: dict[str, list[Value]] = {
            name: []
            for name in (
                "firstname",
                "lastname",
                "email",
                "company",
                "hs_analytics_source",
                "industry",
                "numemployees",
                "hubspot_owner_id",
            )
        }
        for i, (created, r_idx, is_new) in enumerate(born):
            contact_id = self.contact_first_id + i
            rep = self.reps[r_idx]
            first, last = rng.choice(_GIVEN), rng.choice(_FAMILY)
            company = f"{rng.choice(_COMPANY_A)} {rng.choice(_COMPANY_B)}"
            domain = company.lower().replace(" ", "") + ".example.jp"
            table.ids.append(contact_id)
            table.created_ms.append(created)
            cols["firstname"].append(first)
            cols["lastname"].append(last)
            cols["email"].append(f"{first.lower()}.{last.lower()}{i}@{domain}")
            cols["company"].append(company)
            cols["hs_analytics_source"].append(self.sources.pick(rnd))
            cols["industry"].append(self.industries.pick(rnd) if rnd() < 0.9 else None)
            cols["numemployees"].append(self.sizes.pick(rnd) if rnd() < 0.93 else None)
            cols["hubspot_owner_id"].append(rep.owner_id)
            self.contact_owner.append(rep.owner_id)
            self.contact_company.append(company)
            rep.contact_created.append(created)
            rep.contact_ids.append(contact_id)
            if is_new:
                self._schedule_first_touch(r_idx, created, contact_id)
        table.columns.update(cols)

    def _schedule_first_touch(self, r_idx: int, created: int, contact_id: int) -> None:
        """New leads are called (or mailed) within minutes in office hours, else next morning."""
        rep, rnd = self.reps[r_idx], self.rnd
        day_start = created - created % DAY
        at: int | None = None
        if day_start in self.day_index and created - day_start < WORKDAY - 30 * MINUTE:
            delay = self.rng.lognormvariate(math.log(rep.response_minutes), 0.8) * MINUTE
            if rnd() < 0.12:  # in a meeting, on another call
                delay += self.rng.uniform(30, 240) * MINUTE
            at = created + int(delay)
            if at >= day_start + WORKDAY:
                at = None
        if at is None:  # the next working morning
            idx = bisect.bisect_right(self.day_ms, day_start)
            if idx >= len(self.day_ms):
                return
            at = self.day_ms[idx] + int(self.rng.lognormvariate(math.log(25), 0.7) * MINUTE)
        d_idx = self.day_index.get(at - at % DAY)
        if d_idx is None or at >= self.end_ms:
            return
        bucket = self.touch_calls if rnd() < 0.85 else self.touch_emails
        bucket.setdefault((r_idx, d_idx), []).append((at, contact_id))

    def _pick_contact(self, rep: _Rep, at: int) -> int:
        """A lead of the rep's that exists at ``at``: mostly fresh ones, some older ones."""
        k = bisect.bisect_right(rep.contact_created, at)
        if k == 0:
            return 0
        if self.rnd() < 0.7:
            return rep.contact_ids[k - 1 - int(self.rnd() * min(k, 25))]
        return rep.contact_ids[int(self.rnd() * k)]

    # -- calls ----------------------------------------------------------------------------

    def _quotas(self, per_day: float, exact: int | None) -> list[list[int]]:
        """Calls per [rep][day]: per-rep volume with day-to-day noise, or exactly ``exact``."""
        rng = self.rng
        weights = [[rep.activity * rng.uniform(0.85, 1.15) for _ in self.days] for rep in self.reps]
        if exact is None:
            return [[max(0, round(per_day * w)) for w in row] for row in weights]
        if exact and not self.days:
            raise ValueError("no business days to put the calls on")
        total = sum(sum(row) for row in weights)
        raw = [[exact * w / total for w in row] for row in weights]
        quotas = [[int(x) for x in row] for row in raw]
        missing = exact - sum(sum(row) for row in quotas)
        slots = sorted(
            ((r, d) for r in range(len(raw)) for d in range(len(raw[r]))),
            key=lambda rd: raw[rd[0]][rd[1]] - quotas[rd[0]][rd[1]],
            reverse=True,
        )
        for r, d in slots[:missing]:
            quotas[r][d] += 1
        return quotas

    def calls(self, per_day: float, exact: int | None) -> None:
        rng, rnd = self.rng, self.rnd
        quotas = self._quotas(per_day, exact)
        table = self.tables["calls"]
        first_id = OBJECT_TYPES["calls"].first_id
        c_ts: list[Value] = []
        c_dir: list[Value] = []
        c_disp: list[Value] = []
        c_status: list[Value] = []
        c_dur: list[Value] = []
        c_owner: list[Value] = []
        c_title: list[Value] = []
        c_contact: list[int] = []
        created_ms, modified_ms = table.created_ms, table.modified_ms
        connected = CALL_DISPOSITIONS["connected"]
        outcomes = [(connected, "COMPLETED", "connected")] + [
            (dispo, status, label) for label, dispo, status, _ in _OTHER_OUTCOMES
        ]
        end = self.end_ms
        lognorm = rng.lognormvariate
        contact_created = self.tables["contacts"].created_ms
        first_contact = self.contact_first_id
        talk_mu = math.log(230.0)
        for d_idx, day in enumerate(self.day_ms):
            todays: list[tuple[int, str, str | None, str | None, str, int, int]] = []
            for r_idx, rep in enumerate(self.reps):
                quota = quotas[r_idx][d_idx]
                firsts = self.touch_calls.get((r_idx, d_idx), [])[:quota]
                plan = [(at, cid, True) for at, cid in firsts]
                for _ in range(quota - len(firsts)):
                    hour = bisect.bisect(rep.hour_cum, rnd() * rep.hour_cum[-1])
                    at = day + min(hour, len(rep.hour_cum) - 1) * HOUR + int(rnd() * HOUR)
                    plan.append((at, self._pick_contact(rep, at), False))
                for at, cid, first in plan:
                    u = rnd()
                    direction: str | None = "OUTBOUND"
                    if not first:
                        if u < 0.003:
                            direction = None
                        elif u < 0.07:
                            direction = "INBOUND"
                    if direction == "INBOUND":
                        idx = 0 if rnd() < 0.8 else 2
                    else:
                        idx = bisect.bisect(rep.outcome_cum, rnd())
                    dispo, status, label = outcomes[idx]
                    if label == "connected":
                        v = rnd()
                        if v < 0.04:  # just under the effective-contact threshold
                            ms = 59_999 if v < 0.008 else 55_000 + int(rnd() * 5_000)
                        elif v < 0.08:  # just over (and exactly) 60 s
                            ms = 60_000 if v < 0.048 else 60_001 + int(rnd() * 1_500)
                        elif v < 0.22:
                            ms = 30_000 + int(rnd() * 25_000)
                        else:
                            ms = min(900_000, max(61_000, int(lognorm(talk_mu, 0.5) * 1000)))
                        # Fresh leads book meetings; old ones rarely do (keeps lead time 7-14 d).
                        fresh = cid and at - contact_created[cid - first_contact] < 7 * DAY
                        boost = 1.8 if fresh else 0.1
                        if direction == "OUTBOUND" and cid and rnd() < rep.conversion * boost:
                            self.meeting_seeds.append(
                                (at + ms + int((1 + rnd() * 7) * MINUTE), r_idx, cid)
                            )
                    elif label == "voicemail":
                        ms = 15_000 + int(rnd() * 30_000)
                    elif label == "live_message":
                        ms = 20_000 + int(rnd() * 40_000)
                    elif label == "wrong_number":
                        ms = 5_000 + int(rnd() * 15_000)
                    else:
                        ms = 0
                    todays.append((at, rep.owner_id, direction, dispo, status, ms, cid))
            todays.sort(key=itemgetter(0))
            for at, owner, direction, dispo, status, ms, cid in todays:
                c_ts.append(at)
                c_owner.append(owner)
                c_dir.append(direction)
                c_disp.append(dispo)
                c_status.append(status)
                c_dur.append(str(ms))
                c_title.append("Inbound call" if direction == "INBOUND" else "Outbound call")
                c_contact.append(cid)
                logged = min(end - 1, at + ms + 5_000 + int(rnd() * 60_000))
                created_ms.append(logged)
                modified_ms.append(
                    logged if rnd() > 0.05 else min(end - 1, logged + int(rnd() * 5 * DAY))
                )
        table.ids = list(range(first_id, first_id + len(c_ts)))
        table.columns.update(
            {
                "hs_timestamp": c_ts,
                "hs_call_title": c_title,
                "hs_call_direction": c_dir,
                "hs_call_disposition": c_disp,
                "hs_call_status": c_status,
                "hs_call_duration": c_dur,
                "hubspot_owner_id": c_owner,
            }
        )
        table.associations["contacts"] = c_contact

    # -- emails ---------------------------------------------------------------------------

    def emails(self, per_day: float) -> None:
        rng, rnd = self.rng, self.rnd
        table = self.tables["emails"]
        first_id = OBJECT_TYPES["emails"].first_id
        names = (
            "hs_timestamp",
            "hs_email_subject",
            "hs_email_direction",
            "hs_email_status",
            "hs_email_open_count",
            "hs_email_click_count",
            "hs_email_reply_count",
            "hubspot_owner_id",
        )
        cols: dict[str, list[Value]] = {name: [] for name in names}
        contacts: list[int] = []
        subjects = (
            "Following up on your inquiry",
            "Materials we discussed",
            "Quick question about your team",
            "Case study: 30% more meetings",
            "Scheduling a short call",
        )
        end = self.end_ms
        for d_idx, day in enumerate(self.day_ms):
            todays: list[
                tuple[int, str, str, str | None, str | None, str | None, str | None, str, int]
            ] = []
            for r_idx, rep in enumerate(self.reps):
                quota = max(0, round(per_day * rep.activity * rng.uniform(0.85, 1.15)))
                firsts = self.touch_emails.get((r_idx, d_idx), [])[:quota]
                plan = [(at, cid, True) for at, cid in firsts]
                for _ in range(quota - len(firsts)):
                    at = day + int(rnd() * WORKDAY)
                    plan.append((at, self._pick_contact(rep, at), False))
                for at, cid, first in plan:
                    incoming = not first and rnd() < 0.08
                    opens = clicks = replies = None
                    if incoming:
                        direction, status = "INCOMING_EMAIL", None
                    else:
                        direction = "EMAIL"
                        u = rnd()
                        status = "SENT" if u < 0.945 else "BOUNCED" if u < 0.985 else "FAILED"
                        if status == "SENT" and rnd() < 0.8:  # open tracking on
                            opened = rnd() < rep.open_rate
                            opens = str(1 + int(rnd() * 4)) if opened else "0"
                            clicks = str(1 + int(rnd() * 2)) if opened and rnd() < 0.2 else "0"
                            replied = rnd() < (0.3 if opened else 0.02)
                            replies = "1" if replied else "0"
                    subject = subjects[int(rnd() * len(subjects))]
                    if incoming:
                        subject = "Re: " + subject
                    todays.append(
                        (at, subject, direction, status, opens, clicks, replies, rep.owner_id, cid)
                    )
            todays.sort(key=itemgetter(0))
            for at, subject, direction, status, opens, clicks, replies, owner, cid in todays:
                for name, value in zip(
                    names,
                    (at, subject, direction, status, opens, clicks, replies, owner),
                    strict=True,
                ):
                    cols[name].append(value)
                contacts.append(cid)
                table.created_ms.append(min(end - 1, at + 2_000))
                later = int(rnd() * 3 * DAY) if opens is not None else 0
                table.modified_ms.append(min(end - 1, at + 2_000 + later))
        table.ids = list(range(first_id, first_id + len(contacts)))
        table.columns.update(cols)
        table.associations["contacts"] = contacts

    # -- meetings -------------------------------------------------------------------------

    def _working_day_after(self, moment: int, days_ahead: int) -> int:
        """Midnight (UTC) of the weekday ``days_ahead`` working days after ``moment``'s date."""
        day = (EPOCH + timedelta(milliseconds=moment)).date()
        while days_ahead > 0:
            day += timedelta(days=1)
            if day.weekday() < 5:
                days_ahead -= 1
        return _midnight_ms(day)

    def meetings(self) -> None:
        rng, rnd = self.rng, self.rnd
        table = self.tables["meetings"]
        first_id = OBJECT_TYPES["meetings"].first_id
        names = (
            "hs_timestamp",
            "hs_meeting_title",
            "hs_meeting_start_time",
            "hs_meeting_end_time",
            "hs_meeting_outcome",
            "hubspot_owner_id",
        )
        cols: dict[str, list[Value]] = {name: [] for name in names}
        contacts: list[int] = []
        end = self.end_ms
        seeds = sorted(s for s in self.meeting_seeds if s[0] < end)
        for row, (booked, r_idx, cid) in enumerate(seeds):
            rep = self.reps[r_idx]
            start: int | None = None
            if rnd() < 0.87:
                day = self._working_day_after(booked, rng.randint(1, 6))
                start = day + HOUR + int(rnd() * 14) * 30 * MINUTE  # 10:00-16:30 Tokyo
            if start is None:
                outcome = "CANCELED" if rnd() < 0.1 else "SCHEDULED"
            elif start >= end:
                outcome = "CANCELED" if rnd() < 0.07 else "SCHEDULED"
            else:
                u = rnd()
                outcome = (
                    "COMPLETED"
                    if u < 0.72
                    else "NO_SHOW"
                    if u < 0.80
                    else "RESCHEDULED"
                    if u < 0.88
                    else "CANCELED"
                    if u < 0.95
                    else "SCHEDULED"
                )
            cols["hs_timestamp"].append(start if start is not None else booked)
            cols["hs_meeting_title"].append("Discovery meeting")
            cols["hs_meeting_start_time"].append(start)
            cols["hs_meeting_end_time"].append(
                None if start is None else start + (30 if rnd() < 0.6 else 60) * MINUTE
            )
            cols["hs_meeting_outcome"].append(outcome)
            cols["hubspot_owner_id"].append(rep.owner_id)
            contacts.append(cid)
            table.created_ms.append(booked)
            if start is not None and start < end:
                table.modified_ms.append(min(end - 1, start + 90 * MINUTE))
            else:
                table.modified_ms.append(min(end - 1, booked + int(rnd() * 30 * MINUTE)))
            self.sql_ms.setdefault(cid, booked)
            if outcome == "COMPLETED" and start is not None:
                self.completed_meetings.append((row, start, r_idx, cid))
        table.ids = list(range(first_id, first_id + len(contacts)))
        table.columns.update(cols)
        table.associations["contacts"] = contacts
        table.associations["deals"] = [0] * len(contacts)

    # -- deals ----------------------------------------------------------------------------

    def deals(self) -> None:
        rng, rnd = self.rng, self.rnd
        end = self.end_ms
        # (created, IS rep index or -1, contact, meeting row or -1)
        born: list[tuple[int, int, int, int]] = []
        for row, start, r_idx, cid in self.completed_meetings:
            if rnd() < 0.62:
                created = start + HOUR + int(rnd() * 1.5 * DAY)
                if created < end:
                    born.append((created, r_idx, cid, row))
        contacts = self.tables["contacts"]
        for _ in range(len(born) * 15 // 100):  # field sales' own deals
            created = self.day_ms[int(rnd() * len(self.day_ms))] + int(rnd() * WORKDAY)
            k = bisect.bisect_right(contacts.created_ms, created)
            if k and created < end:
                born.append((created, -1, contacts.ids[int(rnd() * k)], -1))
        born.sort()
        table = self.tables["deals"]
        first_id = OBJECT_TYPES["deals"].first_id
        names = (
            "dealname",
            "amount",
            "closedate",
            "dealstage",
            "pipeline",
            "hs_is_closed",
            "hs_is_closed_won",
            "hs_deal_stage_probability",
            "hubspot_owner_id",
            "is_rep_owner_id",
            "bant_budget",
            "bant_authority",
            "bant_need",
            "bant_timing",
            "handoff_rating",
        )
        cols: dict[str, list[Value]] = {name: [] for name in names}
        deal_contacts: list[int] = []
        stages = {s[0]: s for s in DEFAULT_DEAL_STAGES}
        open_stages = [s[0] for s in DEFAULT_DEAL_STAGES if not s[3]]
        meeting_deals = self.tables["meetings"].associations["deals"]
        ratings = _Weighted((("5", 0.45), ("4", 0.38), ("3", 0.12), ("2", 0.03), ("1", 0.02)))
        for i, (created, r_idx, cid, meeting_row) in enumerate(born):
            deal_id = first_id + i
            cycle = int(rng.uniform(10, 50) * DAY)
            close_at = created + cycle
            if close_at < end:
                won = rnd() < 0.27 * (self.reps[r_idx].win if r_idx >= 0 else 1.1)
                stage = "closedwon" if won else "closedlost"
                modified = min(end - 1, close_at + int(rnd() * 2 * HOUR))
            else:
                progress = (end - created) / cycle
                stage = open_stages[min(len(open_stages) - 1, int(progress * len(open_stages)))]
                modified = created + int(rnd() * (end - created))
            _sid, _label, probability, closed, is_won = stages[stage]
            field_owner = self.field_reps[
                (self.reps[r_idx].team if r_idx >= 0 else int(rnd() * 97)) % len(self.field_reps)
            ]
            cols["dealname"].append(
                f"{self.contact_company[cid - self.contact_first_id]} - "
                f"{_PRODUCTS[int(rnd() * len(_PRODUCTS))]}"
            )
            cols["amount"].append(
                str(int(round(rng.lognormvariate(math.log(1_500_000), 0.55), -4)))
                if rnd() < 0.97
                else None
            )
            cols["closedate"].append(close_at)
            cols["dealstage"].append(stage)
            cols["pipeline"].append("default")
            cols["hs_is_closed"].append("true" if closed else "false")
            cols["hs_is_closed_won"].append("true" if closed and is_won else "false")
            cols["hs_deal_stage_probability"].append(repr(probability))
            cols["hubspot_owner_id"].append(field_owner)
            cols["is_rep_owner_id"].append(self.reps[r_idx].owner_id if r_idx >= 0 else None)
            missing: set[str] = set()
            if rnd() >= 0.78:
                missing = set(rng.sample(sorted(_BANT), rng.randint(1, 3)))
            for name, options in _BANT.items():
                if name in missing:
                    cols[name].append("" if rnd() < 0.3 else None)
                else:
                    cols[name].append(options[int(rnd() * len(options))])
            cols["handoff_rating"].append(
                ratings.pick(rnd) if r_idx >= 0 and rnd() < 0.85 else None
            )
            deal_contacts.append(cid)
            table.created_ms.append(created)
            table.modified_ms.append(modified)
            if meeting_row >= 0:
                meeting_deals[meeting_row] = deal_id
            state = "customer" if stage == "closedwon" else "opportunity"
            if self.deal_stage_of_contact.get(cid) != "customer":
                self.deal_stage_of_contact[cid] = state
        table.ids = list(range(first_id, first_id + len(deal_contacts)))
        table.columns.update(cols)
        table.associations["contacts"] = deal_contacts

    # -- tasks (follow-ups) ---------------------------------------------------------------

    def tasks(self) -> None:
        rng, rnd = self.rng, self.rnd
        end = self.end_ms
        future: list[int] = []  # follow-ups already planned for the next week
        day = self.days[-1] if self.days else (EPOCH + timedelta(milliseconds=end)).date()
        while len(future) < 5:
            day += timedelta(days=1)
            if day.weekday() < 5 and _midnight_ms(day) >= end:
                future.append(_midnight_ms(day))
        # (created, due, status, type, owner, completed, modified, contact)
        born: list[tuple[int, int, str, str, str, int | None, int, int]] = []
        kinds = _Weighted((("CALL", 0.5), ("EMAIL", 0.3), ("TODO", 0.2)))
        for day_ms in [*self.day_ms, *future]:
            for rep in self.reps:
                for _ in range(max(0, round(6 * rep.activity * rng.uniform(0.7, 1.3)))):
                    due = day_ms + HOUR + int(rnd() * 8 * HOUR)  # 10:00-18:00 Tokyo
                    created = max(self.start_ms - 7 * DAY, due - int(rng.uniform(1, 5) * DAY))
                    if created >= end:
                        continue
                    completed: int | None = None
                    status = "NOT_STARTED"
                    if due < end:
                        u = rnd()
                        if u < 0.82:
                            status = "COMPLETED"
                            if rnd() < 0.85:  # done on its due day (by 23:00 Tokyo)
                                completed = max(created, day_ms + int(rnd() * 14 * HOUR))
                            else:
                                completed = due + int(rng.uniform(1, 4) * DAY)
                            if completed >= end:
                                completed, status = None, "IN_PROGRESS"
                        elif u < 0.92:
                            status = "NOT_STARTED"
                        elif u < 0.96:
                            status = "IN_PROGRESS"
                        elif u < 0.98:
                            status = "WAITING"
                        else:
                            status = "DEFERRED"
                    modified = (
                        completed
                        if completed is not None
                        else min(end - 1, created + int(rnd() * max(1, min(due, end) - created)))
                    )
                    born.append(
                        (
                            created,
                            due,
                            status,
                            kinds.pick(rnd),
                            rep.owner_id,
                            completed,
                            modified,
                            self._pick_contact(rep, created),
                        )
                    )
        born.sort(key=lambda task: task[0])
        table = self.tables["tasks"]
        first_id = OBJECT_TYPES["tasks"].first_id
        subjects = {
            "CALL": "Call back",
            "EMAIL": "Send follow-up email",
            "TODO": "Prepare proposal",
        }
        names = (
            "hs_timestamp",
            "hs_task_status",
            "hs_task_type",
            "hubspot_owner_id",
            "hs_task_completion_date",
            "hs_task_subject",
        )
        cols: dict[str, list[Value]] = {name: [] for name in names}
        contacts: list[int] = []
        for created, due, status, kind, owner, completed, modified, cid in born:
            for name, value in zip(
                names, (due, status, kind, owner, completed, subjects[kind]), strict=True
            ):
                cols[name].append(value)
            contacts.append(cid)
            table.created_ms.append(created)
            table.modified_ms.append(modified)
        table.ids = list(range(first_id, first_id + len(contacts)))
        table.columns.update(cols)
        table.associations["contacts"] = contacts

    # -- finishing touches ----------------------------------------------------------------

    def finish_contacts(self) -> None:
        """Lifecycle stage, SQL date, score and last-modified date once activity is known."""
        rng, rnd = self.rng, self.rnd
        table = self.tables["contacts"]
        end = self.end_ms
        stage_col: list[Value] = []
        sql_col: list[Value] = []
        score_col: list[Value] = []
        others = _Weighted((("lead", 0.7), ("marketingqualifiedlead", 0.25), ("subscriber", 0.05)))
        for i, contact_id in enumerate(table.ids):
            sql = self.sql_ms.get(contact_id)
            stage = self.deal_stage_of_contact.get(contact_id)
            if stage is None:
                stage = "salesqualifiedlead" if sql is not None else others.pick(rnd)
            stage_col.append(stage)
            sql_col.append(sql)
            score_col.append(str(rng.randint(45, 100) if sql is not None else rng.randint(0, 70)))
            created = table.created_ms[i]
            touched = max(created, sql or 0)
            table.modified_ms.append(
                min(end - 1, touched + int(rnd() * max(1, (end - touched) // 4)))
            )
        table.columns["lifecyclestage"] = stage_col
        table.columns["hs_lifecyclestage_salesqualifiedlead_date"] = sql_col
        table.columns["hubspotscore"] = score_col

    def archive_a_few(self) -> None:
        """Three deleted (archived) records of every type, archived in the last weeks.

        Deleted contacts and deals are ones nothing else points at (junk leads, a deal
        entered twice), so no live activity loses its lead or deal.
        """
        rng = self.rng
        referenced: dict[str, set[int]] = {"contacts": set(), "deals": set()}
        for table in self.tables.values():
            for to_type, targets in table.associations.items():
                if to_type in referenced:
                    referenced[to_type].update(targets)
        for name, table in self.tables.items():
            if len(table) < 10:
                continue
            rows = [
                i
                for i, record_id in enumerate(table.ids)
                if record_id not in referenced.get(name, ())
            ]
            if len(rows) < 3:
                rows = list(range(len(table)))
            for row in sorted(rng.sample(rows, 3)):
                at = max(table.modified_ms[row] + HOUR, self.end_ms - int(rng.uniform(1, 20) * DAY))
                at = min(at, self.end_ms - 1)
                table.archived_ms[row] = at
                table.modified_ms[row] = max(table.modified_ms[row], at)


def _cumulative(weights: Sequence[float]) -> Iterator[float]:
    total = 0.0
    for w in weights:
        total += w
        yield total


def _outcome_cum(connect: float) -> list[float]:
    """Cumulative outcome probabilities: connected first, the rest scaled to fill 1 - connect."""
    scale = (1 - connect) / sum(w for *_, w in _OTHER_OUTCOMES)
    cum = [connect]
    for *_, w in _OTHER_OUTCOMES:
        cum.append(cum[-1] + w * scale)
    cum[-1] = 1.0
    return cum
