"""Services built on the contracts and the store: activities (the one path to the
execution backend, and the launcher's threads), VM images, virtual clusters. They drive
any plugin through its interface, never an implementation."""
