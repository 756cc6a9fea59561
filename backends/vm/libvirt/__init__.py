"""The libvirt VM plugin: OCCI compute, storage, network and links on libvirt hosts.

``backend`` is the plugin (compute); ``storage``, ``networks`` and ``links`` are its parts
for the other OCCI kinds; ``domain_xml`` builds and reads libvirt's XML; ``states`` maps
libvirt states to OCCI's and says which action applies when; ``placement`` picks a host;
``hosts`` holds one connection per hypervisor; ``events`` runs libvirt's event loop and the
cache it keeps fresh; ``annotations`` keeps what libvirt cannot hold; ``overlays`` makes
per-VM qcow2 disks over volume images.
"""
