"""Storage backends: where data lives (POSIX volumes; XtreemFS, GlusterFS)."""
