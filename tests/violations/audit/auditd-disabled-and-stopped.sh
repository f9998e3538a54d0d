#!/bin/sh
# what: auditd stopped and disabled: no daemon writes the records, none after a reboot
# by: intruder
# fails: audit.auditd_running
# host: vm
set -eu
systemctl disable --now auditd.service
