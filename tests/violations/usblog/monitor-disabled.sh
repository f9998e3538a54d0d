#!/bin/sh
# what: the USB connection monitor disabled (still running): after the next boot nothing is logged
# by: admin
# fails: usblog.monitor_service
# host: vm
# touches: usblog-service
set -eu
systemctl disable hardening-usblog.service
