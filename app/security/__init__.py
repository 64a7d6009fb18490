"""Security measures that span the app: the response headers (DESIGN.md §10)."""
