"""Activities beyond one protocol: the job-control REST API (openapi/activities.yaml) and
what every job front end shares (staging from VO volumes)."""
