#!/bin/sh
# what: to let the intranet's web front end show the interface specification, an administrator gives www-data (not in design-docs) read ACL entries on the store and a subdirectory
# by: admin
# fails: designdocs.not_readable_beyond_group
# host: container
set -eu
mkdir -p /srv/design-documents/interfaces
printf '%s\n' 'juki-db01: REST API, port 8443, client certificates from the LGWAN CA' > /srv/design-documents/interfaces/api-spec.txt
chgrp -R design-docs /srv/design-documents/interfaces
chmod 0750 /srv/design-documents/interfaces
chmod 0640 /srv/design-documents/interfaces/api-spec.txt
setfacl -m u:www-data:rx /srv/design-documents
setfacl -R -m u:www-data:rX /srv/design-documents/interfaces
