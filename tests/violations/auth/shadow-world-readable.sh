#!/bin/sh
# what: /etc/shadow made world-readable (a careless chmod while debugging a login problem)
# by: admin
# fails: auth.shadow_files_protected
# host: container
# touches: shadow-mode
set -eu
chmod o+r /etc/shadow
