#!/bin/sh
# what: an administrator stops and disables upsmon during maintenance and forgets it: the host would die with its UPS instead of shutting down
# by: admin
# fails: power.shutdown_on_low_battery
# host: container
# touches: upsmon
set -eu
systemctl kill nut-monitor.service || true  # in a container systemd cannot signal the whole cgroup (EIO): still signals the processes it can
systemctl disable --now nut-monitor.service
