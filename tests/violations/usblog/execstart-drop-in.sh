#!/bin/sh
# what: a drop-in makes the monitor's service run sleep instead of the monitor, restarted
# by: intruder
# fails: usblog.monitor_program
# host: vm
# touches: usblog-service
set -eu
mkdir -p /etc/systemd/system/hardening-usblog.service.d
printf '[Service]\nExecStart=\nExecStart=/bin/sleep infinity\n' > /etc/systemd/system/hardening-usblog.service.d/quiet.conf
systemctl daemon-reload
systemctl restart hardening-usblog.service
