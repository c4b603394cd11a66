#!/.agentcore/busybox sh
# The guest's /init (agentcore-local's microVM backend): mounts, the virtio drivers, QEMU user
# networking (10.0.2.15/24 via 10.0.2.2), then from the config QEMU hands over through fw_cfg: the
# host directories (disks), the command server (exec.sh), and the session's command run as the
# image's user. A line on the control port (virtio-serial) asks for a graceful stop: the agent
# gets SIGTERM, as in Docker. Its own lines start with "agentcore-local-init:"; the agent's output
# goes to the console, which the backend captures.
B=/.agentcore/busybox
say() { echo "agentcore-local-init: $*"; }
$B mkdir -p /proc /sys /dev /tmp /etc
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
$B mkdir -p /dev/pts /dev/shm
$B mount -t devpts devpts /dev/pts
$B mount -t tmpfs -o mode=1777 tmpfs /dev/shm
# virtio-mmio devices are announced on the kernel command line; insmod (unlike modprobe) does not
# read module options from there.
MMIO=""
for a in $($B cat /proc/cmdline); do
  case "$a" in virtio_mmio.device=*) MMIO="$MMIO device=${a#virtio_mmio.device=}" ;; esac
done
for m in virtio_ring virtio virtio_mmio failover net_failover virtio_net qemu_fw_cfg virtio_blk virtio_console; do
  if [ "$m" = virtio_mmio ]; then
    $B insmod /.agentcore/modules/$m.ko $MMIO || say "insmod $m failed"
  else
    $B insmod /.agentcore/modules/$m.ko || say "insmod $m failed"
  fi
done
$B ip link set lo up
$B ip addr add 10.0.2.15/24 dev eth0
$B ip link set eth0 up
$B ip route add default via 10.0.2.2
[ -s /etc/resolv.conf ] || echo "nameserver 10.0.2.3" > /etc/resolv.conf
[ -s /etc/hosts ] || printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > /etc/hosts
CONFIG=/sys/firmware/qemu_fw_cfg/by_name/opt/agentcore/config/raw
if [ ! -r "$CONFIG" ]; then
  say "no session configuration (fw_cfg opt/agentcore/config)"
  echo "agentcore-local-init: exit 127"
  $B reboot -f
fi
# Sets AGENTCORE_HOSTNAME, AGENTCORE_WORKDIR, AGENTCORE_USER (uid:gid), AGENTCORE_LOGIN (the
# passwd name for supplementary groups, or empty), AGENTCORE_MOUNTS,
# AGENTCORE_EXEC_PORT and _TOKEN, AGENTCORE_ENV (the environment as sh words) and
# "$@" = NAME=VALUE... COMMAND ARGS...
. "$CONFIG"
$B hostname "$AGENTCORE_HOSTNAME"
echo "$AGENTCORE_HOSTNAME" > /etc/hostname
# Host directories are ext4 disks ("serial:ro|rw:target"); the disk's serial says which (the
# order of /dev/vdX is not guaranteed). A code deployment's is read-only, as Docker's bind mount.
for m in $AGENTCORE_MOUNTS; do
  serial=${m%%:*}
  rest=${m#*:}
  mode=${rest%%:*}
  target=${rest#*:}
  dev=""
  for b in /sys/block/vd*; do
    [ "$($B cat "$b/serial" 2>/dev/null)" = "$serial" ] && dev=/dev/${b##*/}
  done
  $B mkdir -p "$target"
  if [ -z "$dev" ] || ! $B mount -t ext4 -o "$mode" "$dev" "$target"; then
    say "cannot mount the host directory for $target (disk $serial)"
  fi
done
# Commands in the session (InvokeAgentRuntimeCommand) come through a forwarded port; each
# connection runs exec.sh, which checks the VM's token first.
$B nc -ll -p "$AGENTCORE_EXEC_PORT" -e /.agentcore/exec.sh </dev/null >/dev/null 2>&1 &
cd "$AGENTCORE_WORKDIR" || say "working directory $AGENTCORE_WORKDIR is missing"
# The agent runs as the image's user, with its supplementary groups (as-agent.sh).
/.agentcore/as-agent "$AGENTCORE_USER" "$AGENTCORE_LOGIN" "$@" </dev/null &
AGENT=$!
for p in /sys/class/virtio-ports/*; do
  if [ "$($B cat "$p/name" 2>/dev/null)" = agentcore.control ]; then
    (read -r _ < "/dev/${p##*/}" && $B kill -TERM $AGENT) &
  fi
done
wait $AGENT
CODE=$?
echo "agentcore-local-init: exit $CODE"
$B sync
$B reboot -f
