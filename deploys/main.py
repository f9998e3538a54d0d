"""The pyinfra deploy file `hardening deploy` runs: each measure, in order, from the host's profile.

pyinfra executes this file once per host (CLI mode), so the per-host profile is resolved here
from the inventory's host data. `HARDENING_MEASURES` (comma-separated) limits the measures,
`HARDENING_PROFILES` names the profile directory.
"""

from pyinfra import host

from hardening.deploying import load_measure, resolve_profile, selected_measures

profile = resolve_profile(host.name, host.data.get("profile"), host.data.get("sensitivity"))

for _name in selected_measures():
    load_measure(_name).apply(profile)
