#!/bin/sh
# what: the monitor's threshold raised a thousandfold in its configuration and the monitor restarted with it
# by: admin
# fails: bulkwatch.monitor_running
# host: vm
set -eu
sed -i -E 's/("threshold": )([0-9]+)/\1\2000/' /etc/hardening/bulkwatch.json
grep -q '000,' /etc/hardening/bulkwatch.json
systemctl restart hardening-bulkwatch.service
