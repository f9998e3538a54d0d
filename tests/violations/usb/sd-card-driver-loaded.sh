#!/bin/sh
# what: mmc_block loaded past the block, so an SD card in the reader becomes a disk
# by: intruder
# fails: usb.removable_media_absent
# host: vm
set -eu
modprobe --ignore-install mmc_block
grep -q '^mmc_block ' /proc/modules
