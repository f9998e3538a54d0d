#!/bin/sh
# what: a package drop-in sorted before the tool's sets ClientAliveInterval 7200 (sshd keeps the first value)
# by: upgrade
# fails: timeouts.ssh_client_alive
# host: container
set -eu
printf '# shipped by a package\nClientAliveInterval 7200\n' > /etc/ssh/sshd_config.d/00-vendor.conf
sshd -t
systemctl reload ssh
