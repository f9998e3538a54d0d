#!/bin/sh
# what: the running daemon's implicit policy switched to allow (usbguard set-parameter), its file untouched
# by: intruder
# fails: usb.usbguard_policy
# host: vm
# touches: usbguard
set -eu
usbguard set-parameter ImplicitPolicyTarget allow >/dev/null
[ "$(usbguard get-parameter ImplicitPolicyTarget)" = allow ]
