#!/bin/sh
# what: the tool's origins file deleted and the security line commented out of 50unattended-upgrades: the package's point-release origin is back, and the remaining Debian-Security line names codename=bookworm, which the security suite (bookworm-security) never matches
# by: admin
# fails: patching.unattended_upgrades_security_origin
# host: container
# touches: apt-origins-files
set -eu
rm -f /etc/apt/apt.conf.d/52hardening-unattended-upgrades
sed -i 's|^\([[:space:]]*\)"origin=Debian,codename=${distro_codename}-security,label=Debian-Security";|\1// "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";|' /etc/apt/apt.conf.d/50unattended-upgrades
if grep -q '^[[:space:]]*"origin=Debian,codename=${distro_codename}-security' /etc/apt/apt.conf.d/50unattended-upgrades; then
    exit 1
fi
