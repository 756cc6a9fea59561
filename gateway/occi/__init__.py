"""OCCI 1.2 front end (Core, Infrastructure, HTTP rendering) over the VM backend.

Nothing in this package talks to a hypervisor directly: only the VMBackend that
:class:`~gateway.occi.service.OCCIService` is given does, through its contract.
"""
