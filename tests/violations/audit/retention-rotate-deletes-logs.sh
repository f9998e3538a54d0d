#!/bin/sh
# what: auditd.conf back to rotating over two files, so auditd deletes records after a few megabytes
# by: admin
# fails: audit.log_retention
# host: vm
set -eu
sed -i -E 's/^[[:space:]]*max_log_file_action[[:space:]]*=.*/max_log_file_action = ROTATE/; s/^[[:space:]]*num_logs[[:space:]]*=.*/num_logs = 2/' /etc/audit/auditd.conf
