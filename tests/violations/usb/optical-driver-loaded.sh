#!/bin/sh
# what: sr_mod loaded past the block, so the optical drive (QEMU's IDE CD-ROM) is a block device again
# by: admin
# fails: usb.removable_media_absent
# host: vm
set -eu
# --ignore-install skips only the named module's install line: its dependency first
modprobe --ignore-install cdrom
modprobe --ignore-install sr_mod
grep -q '^sr_mod ' /proc/modules
