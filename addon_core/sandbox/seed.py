"""Seeded workspace data shaped like the response schemas of Clockify's OpenAPI document.

Everything derives from a `random.Random`, so one seed gives the same workspace every run;
dates count back from a fixed day rather than from the clock for the same reason. Each
entity's shape is in `entities`; this module decides how many, which and how they relate.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from addon_core.sandbox.entities import (
    CURRENCY,
    EPOCH,
    Entity,
    duration,
    iso,
    membership,
    new_id,
    rate,
    time_entry,
)

_ADJECTIVES = ("Northern", "Blue", "Rapid", "Quiet", "Bright", "Silver", "Open", "Green", "Urban")
_NOUNS = ("Harbor", "Atlas", "Falcon", "Meadow", "Beacon", "Summit", "Orbit", "Canyon", "Delta")
_WORK = ("Website", "Mobile app", "Audit", "Migration", "Onboarding", "Research", "Campaign")
_TAGS = ("meeting", "billable", "review", "support", "design", "travel", "research", "planning")
_FIRST = ("Ana", "Ben", "Chloe", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea")
_LAST = ("Novak", "Okafor", "Perez", "Quinn", "Rossi", "Sato", "Tanaka", "Ueda", "Varga")
_TASKS = ("Standup", "Code review", "Client call", "Write report", "Fix bug", "Plan sprint")
_CATEGORIES = ("Travel", "Meals", "Software", "Hardware", "Mileage", "Training", "Office")
_POLICIES = ("Vacation", "Sick leave", "Parental leave", "Remote day", "Training days")
_INVOICE_STATUSES = ("UNSENT", "SENT", "PAID", "PARTIALLY_PAID", "OVERDUE")
_APPROVAL_STATES = ("PENDING", "APPROVED", "REJECTED")
_SEEDED_WEBHOOK_EVENTS = ("NEW_PROJECT", "NEW_TIME_ENTRY", "TIMER_STOPPED", "NEW_CLIENT")


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many of each entity a seeded workspace holds."""

    projects: int = 120
    clients: int = 25
    tags: int = 40
    user_groups: int = 6
    users: int = 12
    expense_categories: int = 8
    expenses: int = 60
    invoices: int = 15
    time_entries: int = 200
    in_progress: int = 3
    policies: int = 4
    approval_requests: int = 10
    webhooks: int = 2


class Seeder:
    """Build one workspace's entities, deterministically from `rng`."""

    def __init__(self, rng: random.Random, workspace_id: str, owner_id: str) -> None:
        self.rng = rng
        self.workspace_id = workspace_id
        self.owner_id = owner_id

    def _name(self, pool: tuple[str, ...], index: int) -> str:
        return f"{self.rng.choice(pool)} {index + 1}"

    def workspace(self, name: str, user_ids: list[str]) -> Entity:
        return {
            "id": self.workspace_id,
            "name": name,
            "imageUrl": "",
            "cakeOrganizationId": new_id(self.rng),
            "memberships": [membership(u, self.workspace_id, "WORKSPACE") for u in user_ids],
            "currencies": [{"id": new_id(self.rng), "code": CURRENCY, "isDefault": True}],
            "hourlyRate": rate(5000),
            "costRate": rate(3000),
            "featureSubscriptionType": "PRO_2021",
            "subdomain": {"enabled": False, "name": ""},
            "workspaceSettings": {
                "timeRoundingInReports": False,
                "onlyAdminsSeeBillableRates": True,
                "onlyAdminsCreateProject": True,
                "onlyAdminsSeeDashboard": False,
                "defaultBillableProjects": True,
                "lockTimeEntries": None,
                "forceProjects": False,
                "forceTags": False,
                "durationFormat": "FULL",
                "timeTrackingMode": "DEFAULT",
            },
        }

    def users(self, count: int) -> list[Entity]:
        ids = [self.owner_id] + [new_id(self.rng) for _ in range(max(count, 1) - 1)]
        users = []
        for index, user_id in enumerate(ids):
            first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
            name = "Sandbox Owner" if index == 0 else f"{first} {last}"
            email = "owner" if index == 0 else f"{first}.{last}{index}".lower()
            users.append(
                {
                    "id": user_id,
                    "name": name,
                    "email": f"{email}@sandbox.example",
                    "status": "ACTIVE",
                    "activeWorkspace": self.workspace_id,
                    "defaultWorkspace": self.workspace_id,
                    "profilePicture": "",
                    "memberships": [membership(user_id, self.workspace_id, "WORKSPACE")],
                    "customFields": [],
                    "settings": {
                        "weekStart": "MONDAY",
                        "timeZone": "Europe/Berlin",
                        "timeFormat": "HOUR24",
                        "dateFormat": "YYYY-MM-DD",
                        "theme": "DEFAULT",
                        "lang": "EN",
                    },
                }
            )
        return users

    def clients(self, count: int) -> list[Entity]:
        return [
            {
                "id": new_id(self.rng),
                "name": f"{self.rng.choice(_ADJECTIVES)} {self.rng.choice(_NOUNS)} {i + 1}",
                "workspaceId": self.workspace_id,
                "archived": i % 10 == 9,
                "address": f"{i + 1} Sandbox Street",
                "email": f"billing{i + 1}@client.example",
                "note": "",
                "ccEmails": [],
                "currencyId": None,
                "currencyCode": CURRENCY,
            }
            for i in range(count)
        ]

    def projects(self, count: int, clients: list[Entity], user_ids: list[str]) -> list[Entity]:
        projects = []
        for i in range(count):
            project_id = new_id(self.rng)
            client = self.rng.choice(clients) if clients and i % 4 else None
            members = self.rng.sample(user_ids, k=min(len(user_ids), 3))
            projects.append(
                {
                    "id": project_id,
                    "name": self._name(_WORK, i),
                    "workspaceId": self.workspace_id,
                    "clientId": client["id"] if client else "",
                    "clientName": client["name"] if client else "",
                    "color": f"#{self.rng.getrandbits(24):06x}",
                    "billable": i % 3 != 0,
                    "archived": i % 15 == 14,
                    "public": i % 2 == 0,
                    "template": False,
                    "note": "",
                    "duration": duration(self.rng.randrange(0, 400) * 900),
                    "estimate": {"estimate": "PT0S", "type": "AUTO"},
                    "hourlyRate": rate(self.rng.choice((0, 4000, 6500, 9000))),
                    "costRate": None,
                    "memberships": [membership(u, project_id, "PROJECT") for u in members],
                }
            )
        return projects

    def tags(self, count: int) -> list[Entity]:
        return [
            {
                "id": new_id(self.rng),
                "name": self._name(_TAGS, i),
                "workspaceId": self.workspace_id,
                "archived": i % 12 == 11,
            }
            for i in range(count)
        ]

    def user_groups(self, count: int, user_ids: list[str]) -> list[Entity]:
        return [
            {
                "id": new_id(self.rng),
                "name": f"Team {self.rng.choice(_NOUNS)} {i + 1}",
                "workspaceId": self.workspace_id,
                "userIds": self.rng.sample(user_ids, k=min(len(user_ids), 4)),
                "teamManagers": [],
            }
            for i in range(count)
        ]

    def expense_categories(self, count: int) -> list[Entity]:
        categories = []
        for i in range(count):
            unit_price = i % 3 == 0
            categories.append(
                {
                    "id": new_id(self.rng),
                    "name": self._name(_CATEGORIES, i),
                    "workspaceId": self.workspace_id,
                    "archived": False,
                    "hasUnitPrice": unit_price,
                    "priceInCents": 4500 if unit_price else None,
                    "unit": "km" if unit_price else None,
                }
            )
        return categories

    def expenses(
        self, count: int, categories: list[Entity], projects: list[Entity], user_ids: list[str]
    ) -> list[Entity]:
        expenses = []
        for i in range(count):
            category = self.rng.choice(categories) if categories else None
            project = self.rng.choice(projects) if projects else None
            quantity = float(self.rng.randint(1, 20))
            expenses.append(
                {
                    "id": new_id(self.rng),
                    "workspaceId": self.workspace_id,
                    "userId": self.rng.choice(user_ids),
                    "date": iso(EPOCH - timedelta(days=i % 60)),
                    "billable": i % 2 == 0,
                    "category": category and {k: category[k] for k in ("id", "name", "unit")},
                    "project": project
                    and {k: project[k] for k in ("id", "name", "color", "clientId", "clientName")},
                    "quantity": quantity,
                    "total": quantity * self.rng.choice((450.0, 1200.0, 2599.0)),
                    "notes": f"Receipt {i + 1}",
                    "locked": False,
                }
            )
        return expenses

    def invoices(self, count: int, clients: list[Entity]) -> list[Entity]:
        invoices = []
        for i in range(count):
            client = self.rng.choice(clients) if clients else None
            amount = self.rng.randrange(10, 500) * 1000
            status = self.rng.choice(_INVOICE_STATUSES)
            paid = amount if status == "PAID" else amount // 2 if status == "PARTIALLY_PAID" else 0
            issued = EPOCH - timedelta(days=7 * i)
            invoices.append(
                {
                    "id": new_id(self.rng),
                    "number": f"INV-{i + 1:04d}",
                    "clientId": client["id"] if client else None,
                    "clientName": client["name"] if client else None,
                    "currency": CURRENCY,
                    "amount": amount,
                    "paid": paid,
                    "balance": amount - paid,
                    "status": status,
                    "issuedDate": iso(issued),
                    "dueDate": iso(issued + timedelta(days=30)),
                }
            )
        return invoices

    def time_entries(
        self,
        count: int,
        in_progress: int,
        projects: list[Entity],
        tags: list[Entity],
        user_ids: list[str],
    ) -> list[Entity]:
        entries = []
        for i in range(count + in_progress):
            running = i >= count
            start = EPOCH - timedelta(hours=3 * (count - i) if not running else i - count)
            end = None if running else start + timedelta(minutes=self.rng.choice((15, 45, 90)))
            project = self.rng.choice(projects) if projects and i % 5 else None
            chosen = self.rng.sample(tags, k=min(len(tags), self.rng.randint(0, 2)))
            # Clockify runs one timer per user: the running entries go to different users.
            spread = len(user_ids) if running else min(3, len(user_ids))
            user_id = user_ids[(i - count if running else i) % spread]
            entries.append(
                time_entry(
                    new_id(self.rng),
                    self.workspace_id,
                    user_id,
                    {
                        "description": self.rng.choice(_TASKS),
                        "projectId": project["id"] if project else None,
                        "tagIds": [tag["id"] for tag in chosen],
                        "billable": bool(project and project["billable"]),
                    },
                    start,
                    end,
                )
            )
        return entries

    def policies(self, count: int) -> list[Entity]:
        return [
            {
                "id": new_id(self.rng),
                "name": self._name(_POLICIES, i),
                "workspaceId": self.workspace_id,
                "timeUnit": "DAYS" if i % 2 == 0 else "HOURS",
                "archived": False,
                "allowHalfDay": i % 2 == 0,
                "allowNegativeBalance": False,
                "everyoneIncludingNew": True,
                "userIds": [],
                "userGroupIds": [],
                "projectId": None,
                "approve": {
                    "requiresApproval": True,
                    "specificMembers": False,
                    "teamManagers": False,
                    "userIds": [],
                },
                "negativeBalance": None,
                "automaticAccrual": None,
                "automaticTimeEntryCreation": None,
            }
            for i in range(count)
        ]

    def approval_requests(self, count: int, users: list[Entity]) -> list[Entity]:
        requests = []
        for i in range(count):
            owner = users[i % len(users)]
            start = EPOCH - timedelta(days=7 * (i + 1))
            state = self.rng.choice(_APPROVAL_STATES)
            tracked = duration(self.rng.randrange(20, 45) * 3600)
            requests.append(
                {
                    "approvalRequest": {
                        "id": new_id(self.rng),
                        "workspaceId": self.workspace_id,
                        "dateRange": {"start": iso(start), "end": iso(start + timedelta(days=7))},
                        "owner": {
                            "userId": owner["id"],
                            "userName": owner["name"],
                            "timeZone": "Europe/Berlin",
                            "startOfWeek": "MONDAY",
                        },
                        "creator": {
                            "userId": owner["id"],
                            "userName": owner["name"],
                            "userEmail": owner["email"],
                        },
                        "status": {
                            "state": state,
                            "note": "",
                            "updatedAt": iso(start + timedelta(days=8)),
                            "updatedBy": self.owner_id,
                            "updatedByUserName": users[0]["name"],
                        },
                    },
                    "trackedTime": tracked,
                    "approvedTime": tracked if state == "APPROVED" else "PT0S",
                    "pendingTime": tracked if state == "PENDING" else "PT0S",
                    "billableTime": tracked,
                    "breakTime": "PT0S",
                    "billableAmount": 0.0,
                    "costAmount": 0.0,
                    "expenseTotal": 0.0,
                    "entries": [],
                    "expenses": [],
                }
            )
        return requests

    def webhooks(self, count: int, sign: Callable[[str], str]) -> list[Entity]:
        """Webhooks another integration registered: present in lists, never the add-on's."""
        hooks = []
        for i in range(count):
            event = _SEEDED_WEBHOOK_EVENTS[i % len(_SEEDED_WEBHOOK_EVENTS)]
            hooks.append(
                {
                    "id": new_id(self.rng),
                    "name": f"integration {i + 1}",
                    "url": f"https://hooks.integration.example/{i + 1}",
                    "userId": self.owner_id,
                    "workspaceId": self.workspace_id,
                    "webhookEvent": event,
                    "triggerSourceType": "WORKSPACE_ID",
                    "triggerSource": [self.workspace_id],
                    "enabled": True,
                    "authToken": sign(event),
                }
            )
        return hooks
