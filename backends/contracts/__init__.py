"""The neutral contracts: protocol-neutral types, the backend interfaces, the plugin registry.

Front ends and plugins both depend on this package and on nothing of each other."""
