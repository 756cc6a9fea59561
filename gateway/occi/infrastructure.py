"""OCCI Infrastructure (GFD.224, OCCI 1.2): compute, storage, network and their links,
the ipnetwork mixins, templates (os_tpl, resource_tpl), contextualisation (ssh_key,
user_data) — and xtreemgate's own extension, the virtual cluster.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from gateway.occi.model import LINK, RESOURCE, Action, Attribute, Kind, Mixin, Registry

INFRA = "http://schemas.ogf.org/occi/infrastructure#"
COMPUTE_ACTION = "http://schemas.ogf.org/occi/infrastructure/compute/action#"
NETWORK_ACTION = "http://schemas.ogf.org/occi/infrastructure/network/action#"
STORAGE_ACTION = "http://schemas.ogf.org/occi/infrastructure/storage/action#"
NETWORK_MIXINS = "http://schemas.ogf.org/occi/infrastructure/network#"
NETIF_MIXINS = "http://schemas.ogf.org/occi/infrastructure/networkinterface#"
CREDENTIALS = "http://schemas.ogf.org/occi/infrastructure/credentials#"
COMPUTE_MIXINS = "http://schemas.ogf.org/occi/infrastructure/compute#"

# xtreemgate's own scheme: the virtual cluster and generated templates.
XG = "http://schemas.xtreemgate.org/occi/infrastructure#"
CLUSTER_ACTION = "http://schemas.xtreemgate.org/occi/infrastructure/cluster/action#"
OS_TPL_SCHEME = "http://schemas.xtreemgate.org/occi/os_tpl#"
RESOURCE_TPL_SCHEME = "http://schemas.xtreemgate.org/occi/resource_tpl#"

MIXIN_ROOT = "/mixins/"


def _state(prefix: str, states: tuple[str, ...]) -> tuple[Attribute, Attribute]:
    return (
        Attribute(f"{prefix}.state", mutable=False, enum=states, description="current state"),
        Attribute(f"{prefix}.state.message", mutable=False, description="why, in words"),
    )


def _method(name: str, *methods: str) -> Attribute:
    return Attribute("method", enum=methods, description=f"how to {name}")


def _ip(prefix: str, address: str) -> tuple[Attribute, Attribute, Attribute]:
    """The IP addressing a networking mixin (ipnetwork, ipnetworkinterface) adds."""
    return (
        Attribute(f"{prefix}.address", description=address),
        Attribute(f"{prefix}.gateway", description="IP address of the gateway"),
        Attribute(f"{prefix}.allocation", enum=("dynamic", "static"), default="dynamic"),
    )


# -- compute -----------------------------------------------------------------------------
START = Action("start", COMPUTE_ACTION, "Start the compute")
STOP = Action(
    "stop",
    COMPUTE_ACTION,
    "Stop the compute",
    (_method("stop", "graceful", "acpioff", "poweroff"),),
)
RESTART = Action(
    "restart",
    COMPUTE_ACTION,
    "Restart the compute",
    (_method("restart", "graceful", "warm", "cold"),),
)
SUSPEND = Action(
    "suspend", COMPUTE_ACTION, "Suspend the compute", (_method("suspend", "hibernate", "suspend"),)
)
SAVE = Action(
    "save",
    COMPUTE_ACTION,
    "Save the compute's disk as a new os_tpl",
    (
        _method("save", "hot", "deferred"),
        Attribute("name", description="title of the new os_tpl"),
    ),
)
COMPUTE = Kind(
    "compute",
    INFRA,
    "Compute resource",
    location="/compute/",
    parent=RESOURCE,
    actions=(START, STOP, RESTART, SUSPEND, SAVE),
    attributes=(
        Attribute("occi.compute.architecture", enum=("x86", "x64"), description="CPU architecture"),
        Attribute("occi.compute.cores", "number", integer=True, minimum=1, description="CPU cores"),
        Attribute("occi.compute.hostname", description="fully qualified DNS hostname"),
        Attribute("occi.compute.share", "number", integer=True, minimum=0, description="CPU share"),
        Attribute("occi.compute.memory", "number", minimum=0, description="RAM in GiB"),
        *_state("occi.compute", ("active", "inactive", "suspended", "error")),
    ),
)

# -- storage -----------------------------------------------------------------------------
ONLINE = Action("online", STORAGE_ACTION, "Bring the storage online")
OFFLINE = Action("offline", STORAGE_ACTION, "Take the storage offline")
STORAGE = Kind(
    "storage",
    INFRA,
    "Storage resource",
    location="/storage/",
    parent=RESOURCE,
    actions=(ONLINE, OFFLINE),
    attributes=(
        Attribute(
            "occi.storage.size", "number", required=True, minimum=0, description="size in GiB"
        ),
        *_state("occi.storage", ("online", "offline", "error")),
    ),
)

# -- network -----------------------------------------------------------------------------
UP = Action("up", NETWORK_ACTION, "Activate the network")
DOWN = Action("down", NETWORK_ACTION, "Deactivate the network")
NETWORK = Kind(
    "network",
    INFRA,
    "Network resource",
    location="/network/",
    parent=RESOURCE,
    actions=(UP, DOWN),
    attributes=(
        Attribute(
            "occi.network.vlan", "number", integer=True, minimum=0, description="802.1q VLAN"
        ),
        Attribute("occi.network.label", description="tag of the network"),
        *_state("occi.network", ("active", "inactive", "error")),
    ),
)
IPNETWORK = Mixin(
    "ipnetwork",
    NETWORK_MIXINS,
    "IP networking",
    location=MIXIN_ROOT + "ipnetwork/",
    applies=(NETWORK,),
    attributes=_ip("occi.network", "IP network in CIDR notation"),
)

# -- links -------------------------------------------------------------------------------
NETWORKINTERFACE = Kind(
    "networkinterface",
    INFRA,
    "Network interface (compute → network)",
    location="/networkinterface/",
    parent=LINK,
    attributes=(
        Attribute("occi.networkinterface.interface", mutable=False, description="device name"),
        Attribute("occi.networkinterface.mac", description="MAC address"),
        *_state("occi.networkinterface", ("active", "inactive", "error")),
    ),
)
IPNETWORKINTERFACE = Mixin(
    "ipnetworkinterface",
    NETIF_MIXINS,
    "IP network interface",
    location=MIXIN_ROOT + "ipnetworkinterface/",
    applies=(NETWORKINTERFACE,),
    attributes=_ip("occi.networkinterface", "IP address"),
)
STORAGELINK = Kind(
    "storagelink",
    INFRA,
    "Storage link (compute → storage)",
    location="/storagelink/",
    parent=LINK,
    attributes=(
        Attribute("occi.storagelink.deviceid", description="device the storage appears as"),
        Attribute("occi.storagelink.mountpoint", description="where the guest mounts it"),
        *_state("occi.storagelink", ("active", "inactive", "error")),
    ),
)

# -- templates and contextualisation --------------------------------------------------------
OS_TPL = Mixin(
    "os_tpl", INFRA, "Operating system template", location=MIXIN_ROOT + "os_tpl/", applies=()
)
RESOURCE_TPL = Mixin(
    "resource_tpl", INFRA, "Resource template", location=MIXIN_ROOT + "resource_tpl/", applies=()
)
SSH_KEY = Mixin(
    "ssh_key",
    CREDENTIALS,
    "SSH public key for the compute's user",
    location=MIXIN_ROOT + "ssh_key/",
    applies=(COMPUTE,),
    attributes=(
        Attribute("occi.credentials.ssh.publickey", required=True, description="OpenSSH key(s)"),
    ),
)
USER_DATA = Mixin(
    "user_data",
    COMPUTE_MIXINS,
    "Contextualisation data for the guest (cloud-init)",
    location=MIXIN_ROOT + "user_data/",
    applies=(COMPUTE,),
    attributes=(Attribute("occi.compute.userdata", required=True, description="base64 user data"),),
)

# -- xtreemgate: virtual clusters -----------------------------------------------------------
NODE = Attribute("xtreemgate.cluster.node", description="id or location of the member")
ADD_NODE = Action("add_node", CLUSTER_ACTION, "Add one member compute built from the template")
EVICT_NODE = Action(
    "evict_node", CLUSTER_ACTION, "Delete one member (the newest by default)", (NODE,)
)
CLUSTER_START = Action("start", CLUSTER_ACTION, "Start every member")
# Members are computes: a cluster stops as each of them does.
CLUSTER_STOP = Action("stop", CLUSTER_ACTION, "Stop every member", STOP.attributes)
CLUSTER = Kind(
    "cluster",
    XG,
    "Virtual cluster: N computes built from one os_tpl and resource_tpl",
    location="/cluster/",
    parent=RESOURCE,
    actions=(ADD_NODE, EVICT_NODE, CLUSTER_START, CLUSTER_STOP),
    attributes=(
        Attribute(
            "xtreemgate.cluster.size",
            "number",
            integer=True,
            minimum=0,
            default=1,
            description="number of member computes",
        ),
        Attribute(
            "xtreemgate.cluster.template",
            mutable=False,
            description="os_tpl identifier the members are built from",
        ),
        *_state("xtreemgate.cluster", ("active", "inactive", "suspended", "error")),
    ),
)
CLUSTERMEMBER = Kind(
    "clustermember",
    XG,
    "Membership of a compute (source) in a virtual cluster (target)",
    location="/clustermember/",
    parent=LINK,
)

RESOURCE_KINDS = (COMPUTE, STORAGE, NETWORK, CLUSTER)
LINK_KINDS = (NETWORKINTERFACE, STORAGELINK, CLUSTERMEMBER)

# The set every Registry starts from; generated templates and user mixins join later.
STATIC_MIXINS = (IPNETWORK, IPNETWORKINTERFACE, OS_TPL, RESOURCE_TPL, SSH_KEY, USER_DATA)

_TERM_BAD = re.compile(r"[^a-z0-9_-]+")


def term_for(name: str) -> str:
    """A valid OCCI term (ALPHA *(ALPHA / DIGIT / "-" / "_"), lower case) for a name."""
    term = _TERM_BAD.sub("_", name.lower()).strip("_") or "x"
    return term if term[0].isalpha() else "t" + term


def os_template(image_id: str, title: str) -> Mixin:
    """An os_tpl mixin for one of the backend's image templates."""
    term = term_for(image_id)
    return Mixin(
        term,
        OS_TPL_SCHEME,
        title or image_id,
        location=f"{MIXIN_ROOT}os_tpl/{term}/",
        depends=(OS_TPL,),
        applies=(COMPUTE, CLUSTER),
    )


def resource_template(name: str, cores: int, memory_gib: float) -> Mixin:
    """A resource_tpl mixin for a configured size: its attributes carry the values
    (OCCI 1.2 Compute Resource Templates Profile)."""
    term = term_for(name)
    return Mixin(
        term,
        RESOURCE_TPL_SCHEME,
        f"{name}: {cores} core(s), {memory_gib:g} GiB",
        location=f"{MIXIN_ROOT}resource_tpl/{term}/",
        depends=(RESOURCE_TPL,),
        applies=(COMPUTE, CLUSTER),
        attributes=(
            Attribute("occi.compute.cores", "number", mutable=False, default=cores, integer=True),
            Attribute("occi.compute.memory", "number", mutable=False, default=memory_gib),
        ),
    )


def build_registry(
    images: Iterable[tuple[str, str]], sizes: Mapping[str, tuple[int, float]]
) -> Registry:
    """Core + Infrastructure + the cluster extension + the site's templates."""
    from gateway.occi.model import ENTITY, LINK, RESOURCE

    registry = Registry()
    registry.add(ENTITY, RESOURCE, LINK, *RESOURCE_KINDS, *LINK_KINDS, *STATIC_MIXINS)
    registry.add(*(os_template(image_id, title) for image_id, title in images))
    registry.add(*(resource_template(n, c, m) for n, (c, m) in sizes.items()))
    return registry
