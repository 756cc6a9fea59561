"""OCCI 1.2 front end (Core, Infrastructure, HTTP rendering) over the VM backend."""
