#!/bin/sh
# what: an administrator comments out SHUTDOWNCMD "to test the UPS without turning the server off", and leaves it so
# by: admin
# fails: power.shutdown_on_low_battery
# host: container
# touches: upsmon
set -eu
sed -i -E 's/^[[:space:]]*SHUTDOWNCMD/# SHUTDOWNCMD/' /etc/nut/upsmon.conf
