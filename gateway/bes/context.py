"""One BES request in progress: who calls, the gateway's parts, and the authorisation
question every operation asks the VO backend."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from backends.contracts.interfaces import ExecutionBackend, VOBackend
from backends.contracts.model import Principal, Resource
from backends.services.activities import ActivityRecord, ActivityStore, Launcher, ServiceFlags
from gateway.bes.faults import BESFault
from gateway.jsdl.applications import ApplicationRegistry

ACCEPTING_FLAG = "bes.accepting_new_activities"


@dataclass
class Call:
    principal: Principal
    runtime: Any  # gateway.runtime.Runtime
    endpoint_url: str  # the public address of /bes

    @cached_property
    def store(self) -> ActivityStore:
        return activity_store(self.runtime)

    @cached_property
    def launcher(self) -> Launcher:
        return activity_launcher(self.runtime)

    @cached_property
    def flags(self) -> ServiceFlags:
        return ServiceFlags(self.runtime.db.engine)

    @property
    def execution(self) -> ExecutionBackend:
        return self.runtime.backends["execution"]

    @property
    def vo(self) -> VOBackend:
        return self.runtime.backends["vo"]

    @property
    def settings(self) -> Any:
        return self.runtime.settings.bes

    @property
    def applications(self) -> ApplicationRegistry:
        """The site's installed applications, for JSDL that names one."""
        return ApplicationRegistry(self.runtime.settings.applications)

    def permits(self, action: str, resource: Resource) -> tuple[bool, str]:
        decision = self.vo.decide(self.principal, action, resource)
        return decision.permitted, decision.reason

    def authorize(self, action: str, resource: Resource) -> None:
        permitted, reason = self.permits(action, resource)
        if not permitted:
            raise BESFault("NotAuthorized", f"not authorised: {reason}")

    def authorize_activity(self, action: str, record: ActivityRecord) -> None:
        self.authorize(action, activity_resource(record))

    def accepting(self) -> bool:
        return accepting(self.runtime, self.flags)


def activity_resource(record: ActivityRecord) -> Resource:
    return Resource(kind="activity", id=record.id, owner=record.owner, vo=record.vo)


def activity_store(runtime: Any) -> ActivityStore:
    """One store per runtime (its sessionmaker is reused by every request)."""
    store = getattr(runtime, "_bes_activity_store", None)
    if store is None:
        store = ActivityStore(runtime.db.engine)
        runtime._bes_activity_store = store
    return store


_LOCK = threading.Lock()


def activity_launcher(runtime: Any) -> Launcher:
    """The runtime's launcher, made on first use and stopped when the runtime closes."""
    with _LOCK:
        launcher = getattr(runtime, "_bes_launcher", None)
        if launcher is None or launcher.closed:  # a runtime served again after a close
            settings = runtime.settings.bes
            launcher = Launcher(
                activity_store(runtime),
                runtime.backends["execution"],
                workers=settings.launch_workers,
                capacity=settings.launch_queue,
                batch=settings.launch_batch,
                batch_window=settings.launch_batch_window_seconds,
            )
            runtime._bes_launcher = launcher
            runtime.closers.append(launcher.close)
        return launcher


# The accepting flag is read from the store at most once a second per process: every
# gateway process follows a Stop/StartAcceptingNewActivities within ACCEPTING_TTL, and
# CreateActivity does not pay a query for it each time. The process that changes the flag
# sees the change at once (management.py forgets the cached value).
ACCEPTING_TTL = 1.0


def accepting(runtime: Any, flags: ServiceFlags) -> bool:
    cached = getattr(runtime, "_bes_accepting", None)
    now = time.monotonic()
    if cached is not None and cached[0] > now:
        return cached[1]
    value = flags.get(ACCEPTING_FLAG, "true") == "true"
    runtime._bes_accepting = (now + ACCEPTING_TTL, value)
    return value


def forget_accepting(runtime: Any) -> None:
    runtime._bes_accepting = None
