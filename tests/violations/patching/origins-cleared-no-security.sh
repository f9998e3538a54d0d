#!/bin/sh
# what: a later file clears Unattended-Upgrade::Origins-Pattern (#clear) and allows only the main archive: security updates are no longer installed
# by: admin
# fails: patching.unattended_upgrades_security_origin
# host: container
# touches: apt-99zz-origins
set -eu
cat > /etc/apt/apt.conf.d/99zz-origins <<'CONF'
#clear Unattended-Upgrade::Origins-Pattern;
Unattended-Upgrade::Origins-Pattern {
    "origin=Debian,codename=${distro_codename},label=Debian";
};
CONF
