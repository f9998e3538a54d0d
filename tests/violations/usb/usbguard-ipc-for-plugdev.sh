#!/bin/sh
# what: the daemon configuration gives the plugdev group IPC (Debian's default: desktop users may allow their stick), not yet restarted
# by: upgrade
# fails: usb.usbguard_policy
# host: vm
# touches: usbguard
set -eu
sed -i 's/^IPCAllowedGroups=root$/IPCAllowedGroups=root plugdev/' /etc/usbguard/usbguard-daemon.conf
grep -q '^IPCAllowedGroups=root plugdev$' /etc/usbguard/usbguard-daemon.conf
