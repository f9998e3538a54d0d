#!/bin/sh
# what: an admin's tmpfiles.d file sorted before the tool's declares /var/tmp without an age; systemd-tmpfiles applies it and ignores the tool's line
# by: admin
# fails: tmpdata.tmp_ageing
# host: container
set -eu
printf '# the backup job keeps its spool in /var/tmp\nd /var/tmp 1777 root root -\n' > /etc/tmpfiles.d/00-backup.conf
