#!/bin/sh
# what: the modprobe block file is deleted (udev reloaded), so the next stick loads usb-storage
# by: admin
# fails: usb.storage_driver_blocked
# host: vm
# touches: modprobe-conf
set -eu
rm -f /etc/modprobe.d/hardening-usb.conf
udevadm control --reload
