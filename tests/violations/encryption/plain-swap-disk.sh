#!/bin/sh
# what: swap added on a spare disk during a memory shortage, plain, in fstab by its swap UUID
# by: admin
# fails: encryption.swap_encrypted encryption.swap_encrypted_at_boot
# host: vm
# touches: fstab
set -eu
disk=/dev/disk/by-id/virtio-spare
mkswap -q "$disk"
echo "UUID=$(blkid -s UUID -o value "$disk") none swap sw 0 0" >> /etc/fstab
swapon "$disk"
