#!/bin/sh
# what: /var/log/audit and the current audit log opened to every local user
# by: admin
# fails: audit.log_protection
# host: vm
set -eu
chmod 0755 /var/log/audit
chmod 0644 /var/log/audit/audit.log
