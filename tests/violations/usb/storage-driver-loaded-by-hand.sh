#!/bin/sh
# what: usb-storage loaded by hand past the block (modprobe --ignore-install), ready for a stick
# by: intruder
# fails: usb.storage_driver_not_loaded
# host: vm
set -eu
modprobe --ignore-install usb-storage
grep -q '^usb_storage ' /proc/modules
