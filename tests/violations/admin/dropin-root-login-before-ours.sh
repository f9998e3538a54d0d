#!/bin/sh
# what: a drop-in read before the tool's (sorted first) lets root log in with keys again
# by: admin
# fails: admin.root_login_ssh
# host: container
set -eu
printf 'PermitRootLogin prohibit-password\n' > /etc/ssh/sshd_config.d/01-root-keys.conf
sshd -t
systemctl reload ssh
