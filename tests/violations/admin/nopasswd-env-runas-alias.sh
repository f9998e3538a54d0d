#!/bin/sh
# what: through a Runas_Alias for root and a Cmnd_Alias, the nobody account may run /usr/bin/env NOPASSWD: env sh is a root shell
# by: intruder
# fails: admin.sudo_rights_admin_group_only
# host: container
# touches: sudoers-d-nobody
set -eu
printf 'Runas_Alias OPS = root\nCmnd_Alias TOOLS = /usr/bin/id, /usr/bin/env\nnobody ALL=(OPS) NOPASSWD: TOOLS\n' > /etc/sudoers.d/zz-tools
chmod 0440 /etc/sudoers.d/zz-tools
visudo -c >/dev/null
