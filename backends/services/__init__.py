"""Services built on the contracts alone: activities (store hand-over, launcher), VM images,
virtual clusters. They drive any plugin through its interface, never an implementation."""
