"""The storage REST API (openapi/storage.yaml): volumes owned by VOs and their files."""
