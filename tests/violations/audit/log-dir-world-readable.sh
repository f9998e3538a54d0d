#!/bin/sh
# what: /var/log/audit and the current audit log opened to every local user (auditd resets both when it
#   starts: planted after any planting that restarts it)
# by: admin
# fails: audit.log_protection
# host: vm
# order: last
set -eu
chmod 0755 /var/log/audit
chmod 0644 /var/log/audit/audit.log
