#!/usr/bin/env bash
# A tiny Linux guest for the vhost-user tests and for trying the device by hand.
#
#   tools/guest/build.sh OUTDIR
#
# OUTDIR receives vmlinuz (Debian's stock linux-image-amd64 kernel), vmlinux (the same kernel
# as the ELF inside it, which QEMU boots through its PVH entry, 3.5 s faster under TCG than the
# bzImage; tools/guest/vmlinux.py) and initramfs.gz (busybox
# from busybox-static, the virtio-net modules, and an init that brings up eth0 and gives a
# shell on the serial console). Nothing is installed on the host: the two packages are
# downloaded with apt-get download and unpacked with dpkg-deb -x. A second run with the same
# packages reuses OUTDIR's files.
#
# Kernel command line parameters the init reads: guest.ip=ADDR/PREFIX (eth0's address),
# guest.mac is left to QEMU (-device virtio-net-pci,mac=...).
set -euo pipefail

out=${1:?usage: tools/guest/build.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
chmod 755 "$work"  # apt-get download runs as _apt
trap 'rm -rf "$work"' EXIT

kernel_pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
busybox_ver=$(apt-cache policy busybox-static | awk '/Candidate/{print $2}')
stamp="$kernel_pkg busybox-static=$busybox_ver $(cat "$here/init" "$here/build.sh" "$here/vmlinux.py" | sha256sum | cut -c1-16)"
if [[ -f "$out/vmlinuz" && -f "$out/vmlinux" && -f "$out/initramfs.gz" && "$(cat "$out/stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "guest in $out is up to date ($stamp)"
    exit 0
fi

cd "$work"
apt-get download -q "$kernel_pkg" busybox-static >/dev/null
dpkg-deb -x linux-image-*.deb kernel
dpkg-deb -x busybox-static_*.deb busybox

root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
cp busybox/bin/busybox "$root/bin/busybox"
cp "$here/init" "$root/init"
chmod +x "$root/init"
release=$(ls kernel/lib/modules)
# virtio-net and what it needs, in load order (the package ships no usable modules.dep here)
for module in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
              failover net_failover virtio_net; do
    found=$(find "kernel/lib/modules/$release" -name "$module.ko*" | head -n1)
    [[ -n "$found" ]] || { echo "module $module not found in $kernel_pkg" >&2; exit 1; }
    case "$found" in
        *.ko.xz) xz -dc "$found" > "$root/lib/modules/$module.ko" ;;
        *.ko.zst) zstd -qdc "$found" > "$root/lib/modules/$module.ko" ;;
        *) cp "$found" "$root/lib/modules/$module.ko" ;;
    esac
done
cp kernel/boot/vmlinuz-* "$out/vmlinuz"
python3 "$here/vmlinux.py" "$out/vmlinuz" "$out/vmlinux"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$out/initramfs.gz"
echo "$stamp" > "$out/stamp"
echo "guest built in $out ($stamp)"
