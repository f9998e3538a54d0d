#!/bin/sh
# what: a drop-in sorted before the tool's holds Match User * with ClientAliveCountMax 0 (probes never end a session)
# by: admin
# fails: timeouts.ssh_client_alive
# host: container
set -eu
printf '# keep idle sessions\nMatch User *\n\tClientAliveCountMax 0\n' > /etc/ssh/sshd_config.d/05-keepalive.conf
sshd -t
systemctl reload ssh
