#!/bin/sh
# what: the USBGuard rules file edited to allow storage, the daemon not restarted (the file is live at the next boot)
# by: admin
# fails: usb.usbguard_rules
# host: vm
# touches: usbguard
set -eu
sed -i '1a allow with-interface one-of { 08:*:* } label "scanner"' /etc/usbguard/rules.conf
usbguard-rule-parser -f /etc/usbguard/rules.conf >/dev/null
