#!/bin/sh
# what: a later apt.conf.d file (99-extra, read after the tool's #clear) adds the stable point release and backports to Unattended-Upgrade::Origins-Pattern: unattended-upgrades installs non-security updates outside change management
# by: admin
# fails: patching.unattended_upgrades_security_origin
# host: container
# touches: apt-99-extra
set -eu
cat > /etc/apt/apt.conf.d/99-extra <<'CONF'
// web team: keep the point release and backports current
Unattended-Upgrade::Origins-Pattern {
        "origin=Debian,codename=${distro_codename},label=Debian";
        "o=Debian Backports,a=${distro_codename}-backports,l=Debian Backports";
};
CONF
apt-config dump | grep -q 'Origins-Pattern:: "origin=Debian,codename=${distro_codename},label=Debian"'
