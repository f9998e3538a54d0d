"""Data for every host of the inventories in this directory (pyinfra group_data).

Precedence: host data > group data (`group_data/<group>.py`) > this file. Names starting with `_`
are private to the file (pyinfra's own `_sudo` therefore belongs in the inventory's host data).
Profile settings such as `measures.terminal.expected_networks` or `measures.auth.personal_data`
cannot be set here: they live in the agency's profiles (inventories/profiles/*.yaml), so that a
host's expectations are in its resolved profile and its digest. An example (this directory's
inventory sets it per host instead):

    sensitivity = "medium"        # the default for hosts that name none
"""
