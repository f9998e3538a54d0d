#!/bin/sh
# what: the thunderbolt driver loaded past the block (PCIe tunnelling, DMA from a plugged device)
# by: intruder
# fails: usb.thunderbolt_firewire_not_loaded
# host: vm
set -eu
modprobe --ignore-install thunderbolt
grep -q '^thunderbolt ' /proc/modules
