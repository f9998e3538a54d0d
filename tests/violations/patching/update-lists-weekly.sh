#!/bin/sh
# what: 20auto-upgrades edited to update the package lists weekly ("7" days): unattended-upgrades works on lists up to a week old
# by: admin
# fails: patching.unattended_upgrades_enabled
# host: container
# touches: apt-20auto-upgrades
set -eu
sed -i 's/^APT::Periodic::Update-Package-Lists "1";/APT::Periodic::Update-Package-Lists "7";/' /etc/apt/apt.conf.d/20auto-upgrades
grep -q 'Update-Package-Lists "7"' /etc/apt/apt.conf.d/20auto-upgrades
