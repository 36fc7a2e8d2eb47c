#!/usr/bin/env bash
# install-image.sh: put edge-agent into a Raspberry Pi OS-style SD image (or a
# card, or a mounted root file system) before it first boots.
#
# It installs, in the image's root file system:
#   /usr/local/bin/edge-agent                 the build for the image's architecture, 0755
#   /etc/systemd/system/edge-agent.service    the unit, enabled (multi-user.target.wants)
#   /etc/edge-agent/config.toml               the operator's config, 0640 root:edge-agent
#   /etc/edge-agent/FILE                      each --file (password file, CA, key), 0640 root:edge-agent
#   /etc/udev/rules.d/60-edge-agent-gpio.rules  /dev/gpiochip* to group gpio, 0660
#   user and group edge-agent (system ids, no login, in group gpio), group gpio if missing
#   data_dir (default /var/lib/edge-agent), 0750 edge-agent
# without booting or running anything of the image. What is already right is
# left alone, so a second run changes nothing. docs/deploying.md.
#
# Every path is resolved inside the image as the gateway will see it, like a
# chroot: an absolute symlink in the image (/var/run -> /run) points into
# the image, never at this machine, and a link leading out of it is refused.
#
# The architecture is the image's userland's, read from the ELF header of its
# /bin/sh (EI_CLASS and e_machine): 32-bit ARM gets armv6 (the card may go into
# any Pi; --arm armv7 for Pi 2 and later), aarch64 arm64, x86-64 amd64. The
# userland, not the kernel, decides: Raspberry Pi OS 32-bit boots a 64-bit
# kernel on a Pi 4, and systemd's SystemCallArchitectures=native is its own.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "$0")" && pwd)

usage() {
	cat <<EOF
usage: $prog [options] -c CONFIG IMAGE|DEVICE|ROOT

IMAGE is an SD image file (.img, uncompressed), DEVICE a card (/dev/sdX), ROOT
a mounted root file system (a directory). Run as root.

  -c, --config FILE   the operator's config.toml (required)
  -f, --file FILE     a file the config names (password file, CA, client key),
                      installed as /etc/edge-agent/NAME; repeatable
  -d, --dist DIR      output of 'make dist' with SHA256SUMS (default: $here/../dist);
                      the build is checked against SHA256SUMS, a missing one is an error
      --no-verify     install the dist build without SHA256SUMS (not checked)
  -b, --binary FILE   install FILE instead of the dist build (same architecture;
                      not checked: you name the file)
      --arm VARIANT   32-bit ARM build: armv6 (default; every Pi) or armv7 (Pi 2+)
  -h, --help
EOF
}

die() {
	echo "$prog: $*" >&2
	exit 1
}
die_usage() {
	echo "$prog: $*" >&2
	echo "run '$prog --help' for the options" >&2
	exit 2
}

config="" dist="$here/../dist" binary="" arm=armv6 target="" files=() verify=1
need_arg() { [ $# -ge 2 ] || die_usage "$1 needs a value"; }
while [ $# -gt 0 ]; do
	case $1 in
	-c | --config) need_arg "$@"; config=$2; shift 2 ;;
	-f | --file) need_arg "$@"; files+=("$2"); shift 2 ;;
	-d | --dist) need_arg "$@"; dist=$2; shift 2 ;;
	-b | --binary) need_arg "$@"; binary=$2; shift 2 ;;
	--arm) need_arg "$@"; arm=$2; shift 2 ;;
	--no-verify) verify=""; shift ;;
	-h | --help) usage; exit 0 ;;
	-*) die_usage "unknown option $1" ;;
	*)
		[ -z "$target" ] || die_usage "one IMAGE or ROOT at a time"
		target=$1
		shift
		;;
	esac
done
[ -n "$target" ] || die_usage "no IMAGE or ROOT given"
[ -n "$config" ] || die_usage "no config given (-c FILE)"
[ -f "$config" ] || die "no such config: $config"
case $arm in armv6 | armv7) ;; *) die_usage "--arm is armv6 or armv7, not $arm" ;; esac
for f in "${files[@]}"; do
	[ -f "$f" ] || die "no such file: $f"
	case ${f##*/} in config.toml) die "$f: the config goes with -c" ;; esac
done
[ -z "$binary" ] || [ -f "$binary" ] || die "no such binary: $binary"
if [ -z "$binary" ] && [ -n "$verify" ] && [ ! -f "$dist/SHA256SUMS" ]; then
	die "no $dist/SHA256SUMS to check the build against: run make dist (it writes dist/SHA256SUMS beside the binaries), copy the release's SHA256SUMS there, or pass --no-verify to install the build unchecked"
fi
[ "$(id -u)" = 0 ] || die "run as root (it mounts the image and writes files owned by the image's users)"
case $target in
*.xz | *.gz | *.zip | *.zst) die "$target is compressed: decompress it first (xz -dk, unzip)" ;;
esac
[ -e "$target" ] || die "no such image or directory: $target"

# data_dir, top-level in the config (before the first [table]); it must be
# absolute: ProtectSystem=strict leaves only it writable.
data_dir=$(awk '
	/^[[:space:]]*\[/ { exit }
	/^[[:space:]]*data_dir[[:space:]]*=/ {
		sub(/^[^=]*=[[:space:]]*/, ""); sub(/[[:space:]]*#.*$/, "")
		gsub(/^["'\'']|["'\'']$/, ""); print; exit
	}' "$config")
data_dir=${data_dir:-/var/lib/edge-agent}
case $data_dir in
/*) ;;
*) die "$config: data_dir \"$data_dir\" must be an absolute path in an installed config" ;;
esac
case $data_dir in */) data_dir=${data_dir%/} ;; esac

# --- the root file system ---------------------------------------------------

root="" mnt="" loop="" added_parts=""
cleanup() {
	if [ -n "$mnt" ]; then
		umount "$mnt" 2>/dev/null || true
		rmdir "$mnt" 2>/dev/null || true
	fi
	if [ -n "$loop" ]; then
		[ -z "$added_parts" ] || partx -d "$loop" 2>/dev/null || true
		losetup -d "$loop" 2>/dev/null || true
	fi
}
trap cleanup EXIT

if [ -d "$target" ]; then
	root=$(cd "$target" && pwd)
else
	command -v losetup >/dev/null || die "losetup not found (util-linux)"
	loop=$(losetup -f -P --show "$target") || die "cannot attach $target to a loop device"
	# Some kernels have no partition parser for loop devices: partx adds them.
	if ! compgen -G "${loop}p*" >/dev/null; then
		partx -a "$loop" 2>/dev/null || true
		added_parts=1
	fi
	part=""
	for p in "${loop}"p*; do
		[ -b "$p" ] || continue
		case $(blkid -p -o value -s TYPE "$p" 2>/dev/null || true) in
		ext4 | ext3 | ext2 | btrfs | f2fs | xfs) part=$p; break ;;
		esac
	done
	[ -n "$part" ] || die "$target: no Linux root partition (ext4) found"
	mnt=$(mktemp -d)
	mount "$part" "$mnt" || die "cannot mount $part"
	root=$mnt
fi

# in_root PATH prints where PATH is on this machine: inside $root, every
# symlink followed as the gateway itself will (an absolute link points into
# the image, as under chroot, never at this machine's files). A path that
# leads out of the image (a ".." above its /) or round a loop of links
# prints why instead and fails.
in_root() {
	local rest=${1#/} cur="" comp link hops=0 via=""
	while [ -n "$rest" ]; do
		comp=${rest%%/*}
		if [ "$comp" = "$rest" ]; then rest=""; else rest=${rest#*/}; fi
		case $comp in
		'' | .) continue ;;
		..)
			if [ -z "$cur" ] && [ -n "$via" ]; then
				echo "$1 leads out of the image through the link $via: make that link point inside the image (an absolute target is taken inside it, as at boot) or remove it, and run again"
				return 1
			elif [ -z "$cur" ]; then
				echo "$1 leads out of the image (.. above its /): use a path inside it"
				return 1
			fi
			cur=${cur%/*}
			continue
			;;
		esac
		if [ -L "$root$cur/$comp" ]; then
			hops=$((hops + 1))
			link=$(readlink "$root$cur/$comp")
			via="$cur/$comp -> $link"
			if [ $hops -gt 40 ]; then
				echo "$1: too many levels of symbolic links in the image (a loop? the last: $via): fix the links and run again"
				return 1
			fi
			case $link in /*) cur="" ;; esac
			rest="${link#/}${rest:+/$rest}"
		else
			cur="$cur/$comp"
		fi
	done
	printf '%s\n' "$root$cur"
}

# at PATH sets p to PATH inside the image (in_root), or dies saying why.
at() {
	p=$(in_root "$1") || die "$target: $p"
}

# parent_at PATH sets p to PATH's directory inside the image, followed, and
# PATH's own last component: for files replaced whole, link or not.
parent_at() {
	at "${1%/*}"
	p=$p/${1##*/}
}

for f in /etc/passwd /etc/group; do
	at "$f"
	[ -f "$p" ] || die "$target: no $f: not a root file system"
done
# systemd will not boot a root without an os-release (nor switch to one).
os_release=""
for f in /etc/os-release /usr/lib/os-release; do
	at "$f"
	if [ -f "$p" ]; then
		os_release=$p
		break
	fi
done
[ -n "$os_release" ] || die "$target: no /etc/os-release or /usr/lib/os-release: not a Linux root file system, or a damaged one (systemd will not boot it): use a Raspberry Pi OS image as it was released"
os_name=$(sed -n 's/^PRETTY_NAME=//p' "$os_release" | head -n 1 | tr -d '"')

# elf_arch FILE prints arm, arm64 or amd64 from FILE's ELF header, or what
# it is instead and fails.
elf_arch() {
	local b
	read -r -a b <<<"$(od -An -v -t u1 -N 20 "$1" 2>/dev/null | tr '\n' ' ')"
	if [ "${#b[@]}" -lt 20 ] || [ "${b[0]}" != 127 ] || [ "${b[1]}" != 69 ] || [ "${b[2]}" != 76 ] || [ "${b[3]}" != 70 ]; then
		echo "not an ELF file"
		return 1
	fi
	[ "${b[5]}" = 1 ] || { echo "a big-endian ELF file"; return 1; }
	local class=${b[4]} machine=$((b[18] + 256 * b[19]))
	case $class:$machine in
	1:40) echo arm ;;
	2:183) echo arm64 ;;
	2:62) echo amd64 ;;
	*) echo "ELF class $class, machine $machine (not arm, arm64 or amd64)"; return 1 ;;
	esac
}

at /bin/sh
[ -f "$p" ] || die "$target: no /bin/sh to tell the architecture by"
userland=$(elf_arch "$p") || die "$target: /bin/sh is $userland"
arch=$userland
[ "$arch" != arm ] || arch=$arm

if [ -n "$binary" ]; then
	got=$(elf_arch "$binary") || die "$binary is $got"
	[ "$got" = "$userland" ] || die "$binary is for $got, the image is $userland"
else
	binary="$dist/edge-agent-linux-$arch"
	[ -f "$binary" ] || die "no $binary: run make dist (or pass -b FILE)"
	if [ -n "$verify" ]; then
		want=$(awk -v n="edge-agent-linux-$arch" '$2 == n || $2 == "*" n { print $1 }' "$dist/SHA256SUMS")
		[ -n "$want" ] || die "$dist/SHA256SUMS has no line for edge-agent-linux-$arch: run make dist again (or pass --no-verify)"
		[ "$want" = "$(sha256sum "$binary" | cut -d' ' -f1)" ] || die "$binary does not match $dist/SHA256SUMS: a damaged or mixed-up dist; run make dist again"
	fi
fi

# Every path written below, resolved now: a link leading out of the image
# stops the run before anything has changed.
dropin=/etc/systemd/system/edge-agent.service.d/data-dir.conf
for f in /usr/local/bin/edge-agent /etc/edge-agent/config.toml \
	/etc/systemd/system/edge-agent.service /etc/systemd/system/multi-user.target.wants/edge-agent.service \
	"$dropin" /etc/udev/rules.d/60-edge-agent-gpio.rules; do
	parent_at "$f"
done
for f in "${files[@]}"; do
	parent_at "/etc/edge-agent/${f##*/}"
done
at "$data_dir"

echo "$target: ${os_name:-unknown OS}, $userland userland: installing edge-agent-linux-$arch"

# --- installing, changing only what differs -----------------------------------

changes=0
changed() {
	changes=$((changes + 1))
	echo "  $*"
}

# uid NAME / gid NAME: the image's numeric ids (the host's may differ).
uid() {
	local p
	at /etc/passwd
	awk -F: -v n="$1" '$1 == n { print $3; exit }' "$p"
}
gid() {
	local p
	at /etc/group
	awk -F: -v n="$1" '$1 == n { print $3; exit }' "$p"
}

# where PATH P: PATH, and where a link in the image took it when P is not
# simply $root/PATH.
where() {
	if [ "$2" = "$root$1" ]; then
		printf '%s' "$1"
	else
		printf '%s (in the image: %s)' "$1" "${2#"$root"}"
	fi
}

# meta P PATH MODE UID GID sets mode and owner of P (PATH in the image)
# where they differ.
meta() {
	if [ "$(stat -c '%a %u %g' "$1")" != "$3 $4 $5" ]; then
		chown -h "$4:$5" "$1"
		chmod "$3" "$1"
		changed "set $(where "$2" "$1") to mode $3, owner $4:$5"
	fi
}

# dir PATH MODE UID GID: PATH, its links followed inside the image, a
# directory.
dir() {
	local p
	at "$1"
	if [ ! -d "$p" ]; then
		# Every component of $p that exists is a directory, not a link
		# (in_root followed them): mkdir makes the rest.
		mkdir -p "$p"
		chown "$3:$4" "$p"
		chmod "$2" "$p"
		changed "created $(where "$1/" "$p/") (mode $2, owner $3:$4)"
	fi
	meta "$p" "$@"
}

# put SRC PATH MODE UID GID copies SRC unless PATH already holds its bytes;
# a new file appears whole (rename), never half-written. A link at PATH is
# replaced, not followed.
put() {
	local src=$1 p
	parent_at "$2"
	if [ -L "$p" ] || [ ! -f "$p" ] || ! cmp -s "$src" "$p"; then
		cp "$src" "$p.install-tmp"
		chown "$4:$5" "$p.install-tmp"
		chmod "$3" "$p.install-tmp"
		mv -f "$p.install-tmp" "$p"
		changed "installed $(where "$2" "$p") (mode $3, owner $4:$5)"
	fi
	meta "$p" "$2" "$3" "$4" "$5"
}

# text PATH MODE CONTENT writes a root-owned file from a string.
text() {
	local t
	t=$(mktemp)
	printf '%s\n' "$3" >"$t"
	put "$t" "$1" "$2" 0 0
	rm -f "$t"
}

# link TARGET PATH makes PATH a symlink to TARGET.
link() {
	local p
	parent_at "$2"
	if [ "$(readlink "$p" 2>/dev/null || true)" != "$1" ]; then
		ln -sfn "$1" "$p"
		changed "linked $(where "$2" "$p") -> $1"
	fi
}

# Group gpio owns /dev/gpiochip* on Raspberry Pi OS; a plain Debian image
# gets it here (and the udev rule below).
if [ -z "$(gid gpio)" ]; then
	groupadd --root "$root" --system gpio
	changed "created group gpio"
fi
if [ -z "$(uid edge-agent)" ]; then
	useradd --root "$root" --system --user-group --no-create-home \
		--home-dir "$data_dir" --shell /usr/sbin/nologin \
		--comment "edge-agent daemon" --groups gpio edge-agent 2>/dev/null
	changed "created user edge-agent (uid $(uid edge-agent)) in groups edge-agent, gpio"
fi
at /etc/group
if ! awk -F: '$1 == "gpio" { n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == "edge-agent") found = 1 } END { exit !found }' "$p"; then
	usermod --root "$root" --append --groups gpio edge-agent
	changed "added user edge-agent to group gpio"
fi
u=$(uid edge-agent) g=$(gid edge-agent)

dir /usr/local/bin 755 0 0
put "$binary" /usr/local/bin/edge-agent 755 0 0
# The config and its secrets: root's, readable by the agent's group, so the
# agent reads them but cannot rewrite them.
dir /etc/edge-agent 750 0 "$g"
put "$config" /etc/edge-agent/config.toml 640 0 "$g"
for f in "${files[@]}"; do
	put "$f" "/etc/edge-agent/${f##*/}" 640 0 "$g"
done
dir "$data_dir" 750 "$u" "$g"

dir /etc/systemd/system/multi-user.target.wants 755 0 0
put "$here/edge-agent.service" /etc/systemd/system/edge-agent.service 644 0 0
# What `systemctl enable` does for WantedBy=multi-user.target.
link /etc/systemd/system/edge-agent.service /etc/systemd/system/multi-user.target.wants/edge-agent.service
if [ "$data_dir" != /var/lib/edge-agent ]; then
	dir /etc/systemd/system/edge-agent.service.d 755 0 0
	text "$dropin" 644 "# Written by install-image.sh: the config's data_dir.
[Service]
ReadWritePaths=$data_dir"
else
	parent_at "$dropin"
	if [ -e "$p" ] || [ -L "$p" ]; then
		rm -f "$p"
		changed "removed $dropin (data_dir is the default again)"
	fi
fi

dir /etc/udev/rules.d 755 0 0
text /etc/udev/rules.d/60-edge-agent-gpio.rules 644 '# Written by install-image.sh: the GPIO character devices for group gpio, which
# the edge-agent service user is in (Raspberry Pi OS'"'"'s own rules do the same).
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"'

# The config, checked as the agent will read it at first boot: the dist
# build for this machine runs `config check` chrooted into the image as user
# edge-agent, bind-mounted over the installed binary in a private mount
# namespace, so nothing is written to the image.
case $(uname -m) in
x86_64) host_arch=amd64 ;;
aarch64 | arm64) host_arch=arm64 ;;
armv7l | armv8l) host_arch=armv7 ;;
armv6l) host_arch=armv6 ;;
*) host_arch=none ;;
esac
checker="$dist/edge-agent-linux-$host_arch"
if [ -x "$checker" ] && command -v unshare >/dev/null && command -v chroot >/dev/null; then
	# The mount point as resolved inside the image: mount(8) would follow
	# an absolute link in the image on this machine.
	at /usr/local/bin/edge-agent
	# shellcheck disable=SC2016 # expanded by the inner sh
	if ! out=$(unshare --mount --propagation private sh -c '
		mount --bind "$1" "$4" &&
		exec chroot --userspec="$3" "$2" /usr/local/bin/edge-agent config check -config /etc/edge-agent/config.toml
	' sh "$checker" "$root" "$u:$g" "$p" 2>&1); then
		printf '%s\n' "$out" | sed 's/^/  /' >&2
		die "installed, but the config fails 'edge-agent config check' as the agent will see it (above): fix it and run again"
	fi
	printf '%s\n' "$out" | sed 's/^/  config check: /'
else
	echo "  config not checked: no $checker for this machine, or no unshare/chroot"
fi

sync
if [ $changes -eq 0 ]; then
	echo "$target: nothing to change: edge-agent is installed as it should be"
else
	echo "$target: $changes changes; the agent starts at first boot (systemctl status edge-agent)"
fi
