"""Checks: testinfra tests per measure, run by `hardening verify` with hardening.evidence.plugin.

Fixtures `profile`, `inventory_host` and `evidence` come from the plugin; `host` from testinfra.
See docs/measures.md.
"""
