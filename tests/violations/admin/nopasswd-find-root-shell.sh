#!/bin/sh
# what: the backup account gets NOPASSWD on /usr/bin/find as root ("just to list files"): find -exec /bin/sh is a root shell
# by: admin
# fails: admin.sudo_rights_admin_group_only
# host: container
# touches: sudoers-d-backup
set -eu
printf 'backup ALL=(root) NOPASSWD: /usr/bin/find\n' > /etc/sudoers.d/zz-backup
chmod 0440 /etc/sudoers.d/zz-backup
visudo -c >/dev/null
