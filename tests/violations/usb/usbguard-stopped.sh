#!/bin/sh
# what: usbguard.service stopped (still enabled): every device plugged now stays as the kernel decides
# by: admin
# fails: usb.usbguard_service usb.usbguard_rules usb.usbguard_rules_safe usb.usbguard_policy
# host: vm
# touches: usbguard
set -eu
systemctl stop usbguard.service
