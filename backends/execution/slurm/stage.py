"""Data staging inside a Slurm job: ``stage.py in|out <activity folder>``.

Runs on the compute node as the job's account, with the transfers of ``staging.json``
(written by the gateway, mode 600, owned by that account) through ``staging.transfer``,
the same code the local backend's supervisor uses. A failure leaves its reason in
the folder for the backend's status and exits non-zero.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("in", "out"):
        print("usage: stage.py in|out <activity folder>", file=sys.stderr)
        return 2
    from backends.execution import staging

    folder = Path(argv[2])
    job = json.loads((folder / "log" / "staging.json").read_text())
    specs = job["stage_in"] if argv[1] == "in" else job["stage_out"]
    failure = staging.transfer(argv[1], specs, folder / "work", job.get("staging_limits", {}))
    if failure:
        (folder / "log" / "staging-failed.txt").write_text(failure)
        print(failure, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    sys.exit(main(sys.argv))
