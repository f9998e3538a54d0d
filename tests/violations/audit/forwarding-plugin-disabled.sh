#!/bin/sh
# what: the audispd syslog plugin switched off: audit records no longer reach the log host
# by: intruder
# fails: audit.forwarding
# host: vm
set -eu
sed -i -E 's/^[[:space:]]*active[[:space:]]*=.*/active = no/' /etc/audit/plugins.d/syslog.conf
systemctl restart auditd.service
