"""One BES request in progress: who calls, the gateway's parts (the runtime's typed
services), and the authorisation question every operation asks the VO backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backends.contracts.interfaces import ExecutionBackend, VOBackend
from backends.contracts.model import Principal, Resource
from backends.services.activities import ActivityService
from backends.services.launcher import Launcher
from backends.store.activities import ActivityRecord, ActivityStore
from gateway.bes.faults import BESFault
from gateway.config import BESSettings
from gateway.jsdl.applications import ApplicationRegistry

if TYPE_CHECKING:
    from gateway.runtime import Runtime


@dataclass
class Call:
    principal: Principal
    runtime: Runtime
    endpoint_url: str  # the public address of /bes

    @property
    def store(self) -> ActivityStore:
        return self.runtime.activity_store

    @property
    def activities(self) -> ActivityService:
        return self.runtime.activities

    @property
    def launcher(self) -> Launcher:
        return self.runtime.launcher

    @property
    def execution(self) -> ExecutionBackend:
        return self.runtime.execution

    @property
    def vo(self) -> VOBackend:
        return self.runtime.vo

    @property
    def settings(self) -> BESSettings:
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
        self.authorize(action, record.resource())

    def accepting(self) -> bool:
        """Whether BES accepts new activities (BES-Management), cached a second."""
        return self.runtime.bes_accepting.get()
