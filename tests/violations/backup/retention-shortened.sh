#!/bin/sh
# what: the job's retention cut to one daily snapshot to save space on the backup disk
# by: admin
# fails: backup.job
# host: vm
# needs: backup-target
set -eu
sed -i 's/--keep-daily=[0-9]*/--keep-daily=1/' /usr/local/sbin/hardening-backup
grep -q -- '--keep-daily=1 ' /usr/local/sbin/hardening-backup
