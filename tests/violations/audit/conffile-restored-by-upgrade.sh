#!/bin/sh
# what: the package's auditd.conf restored on upgrade: logs readable by group adm and deleted by rotation
# by: upgrade
# fails: audit.log_retention audit.log_protection
# host: vm
set -eu
sed -i -E 's/^[[:space:]]*log_group[[:space:]]*=.*/log_group = adm/; s/^[[:space:]]*max_log_file_action[[:space:]]*=.*/max_log_file_action = ROTATE/' /etc/audit/auditd.conf
