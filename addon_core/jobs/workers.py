"""Worker heartbeats in the `workers` table: which job-running processes are alive.

Each process that runs jobs beats every few seconds. A worker that has not beaten for
the timeout, or that ran on this machine in a process that no longer exists (a kill -9
followed by a restart), is dead: its jobs are taken over at once rather than when their
leases run out. Time is the app's UTC clock, as in `leases`; the process check needs no
clock at all, so a restart on the same machine resumes its predecessor's work at start.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from addon_core.storage.models import Worker

#: When this process started, as far as beats go: a worker row of this machine with our
#: pid whose last beat is older than this belonged to an earlier process with that pid.
PROCESS_STARTED = datetime.now(UTC)


def machine_identity() -> str:
    """Name this machine and pid namespace, so pids are only compared where they mean one thing.

    Two containers may share a host name but never a pid namespace; outside Linux the
    host name alone is used.
    """
    host = socket.gethostname()[:80]
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # e.g. "pid:[4026531836]"
    except OSError:
        return host
    return f"{host}/{namespace.removeprefix('pid:').strip('[]')}"


def pid_exists(pid: int) -> bool:
    """Tell whether a process with `pid` runs on this machine (signal 0 only checks)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    """Who beats: the worker id that job leases record, and where it runs."""

    id: str
    addon_key: str
    machine: str
    pid: int

    @classmethod
    def of_this_process(cls, worker_id: str, addon_key: str) -> WorkerIdentity:
        return cls(worker_id, addon_key, machine_identity(), os.getpid())


async def beat(session: AsyncSession, me: WorkerIdentity, now: datetime, *, sqlite: bool) -> None:
    """Record that `me` is alive at `now` (registering it on its first beat)."""
    insert = sqlite_insert if sqlite else postgresql_insert
    values = insert(Worker).values(
        id=me.id,
        addon_key=me.addon_key,
        machine=me.machine,
        pid=me.pid,
        started_at=now,
        heartbeat_at=now,
    )
    await session.execute(
        values.on_conflict_do_update(
            index_elements=[Worker.id], set_={"heartbeat_at": values.excluded.heartbeat_at}
        )
    )


async def find_dead_workers(
    session: AsyncSession, me: WorkerIdentity, now: datetime, silent_for: timedelta
) -> list[str]:
    """List the ids of this add-on's workers that are dead, other than `me`.

    Dead: silent for `silent_for`, or registered on this machine by a process that is gone
    (or whose pid this process now has, since it beat before this process started).
    """
    rows = (
        await session.execute(
            select(Worker.id, Worker.machine, Worker.pid, Worker.heartbeat_at).where(
                Worker.addon_key == me.addon_key, Worker.id != me.id
            )
        )
    ).all()
    dead: list[str] = []
    for worker_id, machine, pid, heartbeat_at in rows:
        last = _utc(heartbeat_at)
        if now - last > silent_for or (machine == me.machine and _gone(pid, last, mine=me.pid)):
            dead.append(worker_id)
    return dead


async def forget_workers(session: AsyncSession, worker_ids: Sequence[str]) -> None:
    """Delete worker rows (dead ones whose jobs were taken over, or ours at a clean stop)."""
    if worker_ids:
        await session.execute(delete(Worker).where(Worker.id.in_(worker_ids)))


def _gone(pid: int, last_beat: datetime, *, mine: int) -> bool:
    if pid == mine:
        return last_beat < PROCESS_STARTED
    return not pid_exists(pid)


def _utc(value: datetime) -> datetime:
    # SQLite hands DateTime back without its offset; every stamp is stored as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
