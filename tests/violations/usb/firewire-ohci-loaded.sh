#!/bin/sh
# what: the FireWire OHCI driver (and firewire-core) loaded past the block: physical DMA for any device on the bus
# by: intruder
# fails: usb.thunderbolt_firewire_not_loaded
# host: vm
set -eu
# --ignore-install skips only the named module's install line: its dependency first
modprobe --ignore-install firewire-core
modprobe --ignore-install firewire-ohci
grep -q '^firewire_ohci ' /proc/modules
