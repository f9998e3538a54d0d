#!/bin/sh
# what: the backup timer disabled and stopped during a disk migration, and forgotten
# by: admin
# fails: backup.timer
# host: vm
# needs: backup-target
set -eu
systemctl disable --now hardening-backup.timer
