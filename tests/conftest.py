"""Project tests. Lab tests (marked `lab`) run on emulated Debian 12 hosts from hardening.lab."""

pytest_plugins = ["hardening.lab.fixtures"]
