"""VM backends: where virtual machines run (libvirt)."""
