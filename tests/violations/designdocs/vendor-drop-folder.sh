#!/bin/sh
# what: a drop folder for the vendor's deliveries inside the store, given to group users, whose default ACL makes every delivered file readable by all
# by: admin
# fails: designdocs.not_readable_beyond_group
# host: container
set -eu
mkdir -p /srv/design-documents/from-vendor
chgrp users /srv/design-documents/from-vendor
chmod 2770 /srv/design-documents/from-vendor
setfacl -d -m o::r /srv/design-documents/from-vendor
