"""describe() of many VMs on one libvirt host, beside libvirt's own listing.

Figure: ``LibvirtVMBackend.describe()`` of N VMs (default 5000) defined on an isolated
test-driver host, cold (first call: every definition read and parsed), warm (the
event-fed cache is fresh: one listAllDomains), and after 1 % of the VMs changed state
behind the backend's back (events mark them dirty; only those are re-read).
Baseline, same run, same connection: ``listAllDomains()`` + ``XMLDesc()`` of every
domain, the least a client of libvirt does to list VMs with their sizes.

Run: ``.venv/bin/python benchmarks/bench_vm_describe.py [--vms 5000] [--rounds 5]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.contracts.interfaces import BackendContext
from backends.contracts.model import VMSpec
from backends.vm.libvirt.backend import LibvirtVMBackend, domain_xml
from tests.libvirt_hosts import vm_options, write_node_xml


def timed(func):
    started = time.perf_counter()
    result = func()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.vms <= 50000 or not 1 <= args.rounds <= 50:
        parser.error("--vms within 1..50000, --rounds within 1..50")

    import libvirt

    with tempfile.TemporaryDirectory() as tmp:
        uri = write_node_xml(Path(tmp) / "host.xml")
        backend = LibvirtVMBackend(BackendContext(None, Path(tmp) / "state", vm_options([uri])))
        conn = backend.connection(uri)  # test:///<file> state is per connection: share it
        started = time.perf_counter()
        ids = []
        for i in range(args.vms):
            vm_id = str(uuid.uuid4())
            spec = VMSpec(name=f"vm{i}", cores=1 + i % 4, memory_mib=512, hostname=f"h{i}")
            dom = conn.defineXML(domain_xml.build_domain(vm_id, spec, domain_type="test"))
            if i % 2 == 0:
                dom.create()
            ids.append(vm_id)
        print(f"defined {args.vms} VMs (half running) in {time.perf_counter() - started:.2f} s")

        def baseline():
            return [d.XMLDesc(0) for d in conn.listAllDomains(0)]

        cold, described = timed(backend.describe)
        assert len(described) == args.vms, len(described)
        rows = []
        for _ in range(args.rounds):
            base, listing = timed(baseline)
            warm, described = timed(backend.describe)
            assert len(listing) == len(described) == args.vms
            # 1 % change state outside the backend; their events arrive, then describe
            for vm_id in ids[: max(1, args.vms // 100)]:
                dom = conn.lookupByUUIDString(vm_id)
                if dom.isActive():
                    dom.suspend() if dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING else dom.resume()
            time.sleep(0.2)
            dirty, _ = timed(backend.describe)
            rows.append((base, warm, dirty))
        backend.close()

    base = statistics.median(r[0] for r in rows)
    warm = statistics.median(r[1] for r in rows)
    dirty = statistics.median(r[2] for r in rows)
    print(
        f"\n{args.vms} VMs on {uri.split('/')[-1]} (test driver), medians of {args.rounds} rounds"
    )
    print(f"  baseline listAllDomains + XMLDesc : {base * 1000:8.1f} ms")
    print(f"  describe() cold (parse all)       : {cold * 1000:8.1f} ms  ({base / cold:.2f}x)")
    print(f"  describe() warm (event cache)     : {warm * 1000:8.1f} ms  ({base / warm:.2f}x)")
    print(f"  describe() after 1% changed       : {dirty * 1000:8.1f} ms  ({base / dirty:.2f}x)")
    print("  (ratios: baseline time / describe time; above 1 means describe is faster)")
    for i, (b, w, d) in enumerate(rows, 1):
        print(
            f"  round {i}: baseline {b * 1000:.1f} ms, warm {w * 1000:.1f} ms, 1% {d * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
