#!/bin/sh
# what: /etc/gshadow given to group users with group read
# by: intruder
# fails: auth.shadow_files_protected
# host: container
# touches: shadow-mode
set -eu
chgrp users /etc/gshadow
