#!/bin/sh
# what: the USB connection monitor masked and stopped: it cannot be started, by hand or at boot
# by: intruder
# fails: usblog.monitor_service
# host: vm
# touches: usblog-service
set -eu
systemctl mask --now hardening-usblog.service
