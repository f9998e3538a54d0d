#!/bin/sh
# what: www-data may edit the motd as root with vi, NOPASSWD: vi's :!sh is a root shell
# by: admin
# fails: admin.sudo_rights_admin_group_only
# host: container
# touches: sudoers-d-www
set -eu
printf 'www-data ALL=(root) NOPASSWD: /usr/bin/vi /etc/motd\n' > /etc/sudoers.d/zz-motd
chmod 0440 /etc/sudoers.d/zz-motd
visudo -c >/dev/null
