#!/bin/sh
# what: a package upgrade's maintainer script replaces upsmon.conf with Debian's example, which monitors no UPS (upsmon keeps running, reloaded)
# by: upgrade
# fails: power.shutdown_on_low_battery
# host: container
# touches: upsmon
set -eu
sed -i -E 's/^[[:space:]]*MONITOR[[:space:]]/# MONITOR /' /etc/nut/upsmon.conf
systemctl kill nut-monitor.service || true  # in a container systemd cannot signal the whole cgroup (EIO): still signals the processes it can
systemctl restart nut-monitor.service || true  # upsmon refuses to run without a MONITOR line
