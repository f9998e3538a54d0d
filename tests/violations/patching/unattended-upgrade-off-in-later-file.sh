#!/bin/sh
# what: a later apt.conf.d file (99zz-local) sets APT::Periodic::Unattended-Upgrade "0": apt-daily-upgrade runs but installs nothing
# by: admin
# fails: patching.unattended_upgrades_enabled
# host: container
# touches: apt-99zz-local
set -eu
printf 'APT::Periodic::Unattended-Upgrade "0";\n' > /etc/apt/apt.conf.d/99zz-local
