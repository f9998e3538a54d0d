#!/bin/sh
# what: the restic repository password made readable by everyone "so that the monitoring script can test a restore"
# by: admin
# fails: backup.secrets
# host: vm
# needs: backup-target
set -eu
chmod 644 /etc/hardening/backup/password
