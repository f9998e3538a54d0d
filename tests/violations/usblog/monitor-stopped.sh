#!/bin/sh
# what: the USB connection monitor stopped (still enabled): connections go unlogged until the next boot
# by: admin
# fails: usblog.monitor_service
# host: vm
# touches: usblog-service
set -eu
systemctl stop hardening-usblog.service
