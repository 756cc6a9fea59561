"""The local execution plugin: jobs as detached supervisor processes on this host."""
