"""Evidence: per host and per run, JSON for machines and HTML for people (docs/evidence.md)."""
