"""The gateway watching itself: /healthz and /metrics, request ids, access log, JSON logs."""
