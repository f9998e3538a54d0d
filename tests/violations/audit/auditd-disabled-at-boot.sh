#!/bin/sh
# what: auditd disabled at boot: after the next reboot no daemon writes the records
# by: intruder
# fails: audit.auditd_running
# host: vm
set -eu
systemctl disable auditd.service
