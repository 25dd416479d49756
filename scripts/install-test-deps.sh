#!/usr/bin/env bash
# Installs the Debian packages that castra's QEMU tests and their guest fixtures need.
# Only what is missing is installed; `apt-get update` runs once, and only when something is missing.
set -euo pipefail

# package       why (one line each)
PACKAGES=(
  qemu-system-x86 # qemu-system-x86_64: boots the test guests (TCG)
  qemu-utils      # qemu-img: overlays and qcow2/VHD conversion
  busybox-static  # the guest's whole userland (sh, mount, udhcpc, wget, nc, poweroff)
  cpio            # packs the initramfs
  e2fsprogs       # mkfs.ext4 -d: the guest data disk without root or loop devices
  fdisk           # sfdisk: partitions the BIOS-bootable disk
  dosfstools      # mkfs.fat --offset: the boot partition's filesystem
  mtools          # mcopy: copies kernel, initramfs and syslinux.cfg into the FAT partition
  syslinux        # syslinux --install --offset: the bootloader
  syslinux-common # mbr.bin and ldlinux files for syslinux
  dropbear-bin    # the guest's SSH server (copied into the initramfs with its libraries)
  opendoas        # doas: gives the guest's user alpine root (copied in setuid, with libpam and its libraries)
  libpam-modules  # pam_permit and pam_deny: the minimal PAM stack of the guest's doas
  kmod            # modinfo: reads kernel module dependencies at build time
  openssh-client  # ssh and ssh-keygen: logging into the SSH-mode guest
  xz-utils        # decompresses .ko.xz kernel modules at build time
  zstd            # decompresses .ko.zst kernel modules at build time
  xfsprogs        # mkfs.xfs: the download cache's reflink test needs a filesystem with reflinks
)

# Commands that prove each package is there, for hosts without dpkg.
COMMANDS=(qemu-system-x86_64 qemu-img busybox cpio mkfs.ext4 sfdisk mkfs.fat mcopy syslinux dropbear doas modinfo ssh xz zstd mkfs.xfs)

if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  missing=()
  for cmd in "${COMMANDS[@]}"; do PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-test-deps: not a Debian host, but every needed tool is present"
    exit 0
  fi
  echo "install-test-deps: not a Debian host; please install the tools providing: ${missing[*]}" >&2
  echo "install-test-deps: (Debian package names: ${PACKAGES[*]})" >&2
  exit 1
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

echo "install-test-deps: installing ${missing[*]}"
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
