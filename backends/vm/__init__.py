"""VM plugins: where virtual machines run. ``libvirt/`` is the one shipped.

Virtual clusters over any VM plugin are a service (``backends.services.clusters``).
"""
