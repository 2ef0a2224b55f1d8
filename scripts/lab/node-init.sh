#!/bin/sh
# Runs as the first process of a sandbox node, already inside its own mount + UTS namespaces (unshare, private
# propagation) and its network namespace (nsenter --net). Makes the mounts dockerd needs, then becomes dockerd.
#   node-init.sh <hostname> <data-root> <socket path> <pidfile> <daemon.json> <nameserver|-> [extra dockerd args...]
# Why not `ip netns exec`: it remounts /sys and hides the cgroup mounts ("Devices cgroup isn't mounted").
# Values arrive as arguments and are only ever quoted expansions: nothing here is evaluated as shell text.
set -eu
hostname_="$1"; data_root="$2"; socket="$3"; pidfile="$4"; config="$5"; nameserver="$6"
shift 6

# sysfs of this network namespace (its own /sys/class/net), then cgroup v1 hierarchies on top of it.
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
  mkdir -p "/sys/fs/cgroup/$c"
  mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c" || echo "node-init: cgroup controller $c not mounted" >&2
done
mkdir -p /sys/fs/cgroup/systemd
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd

# Private exec-root (containerd sockets, netns files, plugin sockets) and /etc/docker (engine key) per node.
mkdir -p /run/docker /etc/docker
mount -t tmpfs -o mode=700 tmpfs /run/docker
# Shared, as / is on a systemd host: the netns files dockerd bind-mounts here later must reach the plugin's
# rbind,rslave mount of /run/docker, or Join's SandboxKey is an empty file to the plugin.
mount --make-shared /run/docker
mount -t tmpfs -o mode=755 tmpfs /etc/docker

# A node's own resolv.conf (dockerd's lookups and its containers' copies): with no way out of the test range, a
# nameserver on the bridge answers "port unreachable" at once instead of letting every image pull time out.
if [ "$nameserver" != "-" ]; then
  printf 'nameserver %s\n' "$nameserver" > /etc/docker/resolv.conf
  mount --bind /etc/docker/resolv.conf /etc/resolv.conf
fi

hostname "$hostname_"
mkdir -p "$data_root"
exec dockerd --data-root "$data_root" --exec-root /run/docker -H "unix://$socket" --pidfile "$pidfile" \
  --config-file "$config" --shutdown-timeout 5 "$@"
