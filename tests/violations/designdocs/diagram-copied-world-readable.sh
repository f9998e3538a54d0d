#!/bin/sh
# what: an administrator copies the new network diagram into the design-document store as root; umask 022 leaves it readable by every account
# by: admin
# fails: designdocs.not_readable_beyond_group
# host: container
set -eu
umask 022
printf '%s\n' 'core-sw01 (10.20.0.1) -- fw01 -- dmz 203.0.113.0/26; juki-db01 behind fw02' > /tmp/network-diagram-2026.txt
cp /tmp/network-diagram-2026.txt /srv/design-documents/
rm /tmp/network-diagram-2026.txt
