#!/bin/sh
# what: the class block rule removed at run time (usbguard remove-rule), so the one-of HID allow lets a keyboard+storage/vendor composite through
# by: admin
# fails: usb.usbguard_rules usb.usbguard_rules_safe
# host: vm
# touches: usbguard
set -eu
# usbguard cannot insert a rule before the first one (append-rule -a 0: "Invalid parent ID"):
# a careless admin removes the block instead, to let a headset with HID buttons work.
id=$(usbguard list-rules | sed -n 's/^\([0-9]*\): block with-interface one-of { 08:\*:\* .*hardening: blocked classes.*/\1/p')
[ -n "$id" ]
usbguard remove-rule "$id"
! usbguard list-rules | grep -q 'hardening: blocked classes'
