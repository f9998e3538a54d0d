#!/bin/sh
# what: a file in /etc/sudoers.d gives the backup account ALL as root (with its password)
# by: admin
# fails: admin.sudo_rights_admin_group_only
# host: container
# touches: sudoers-d-backup
set -eu
printf 'backup ALL=(ALL:ALL) ALL\n' > /etc/sudoers.d/zz-backup-all
chmod 0440 /etc/sudoers.d/zz-backup-all
visudo -c >/dev/null
