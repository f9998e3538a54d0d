#!/bin/sh
# what: a later drop-in adds AllowGroups users (sshd adds AllowGroups up over every file)
# by: admin
# fails: terminal.ssh_allow_groups
# host: container
set -eu
printf 'AllowGroups users\n' > /etc/ssh/sshd_config.d/50-users.conf
sshd -t
systemctl reload ssh
