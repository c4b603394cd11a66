#!/.agentcore/busybox sh
# Runs a command as the agent's user, with exactly the environment given, in this process (exec:
# the caller's $! is the command's pid) (agentcore-local's microVM backend; init.sh and exec.sh).
#   as-agent UID:GID LOGIN NAME=VALUE... COMMAND ARGS...
# LOGIN is the passwd name whose /etc/group memberships Docker gives as supplementary groups
# (user.rs says when); busybox su sets them (initgroups) along with that entry's uid and gid.
# Without one, nsenter (no namespaces) drops to the uid and gid alone, which need no passwd entry.
# su's `--` ends its options, so none of the command's words is read as one of su's.
B=/.agentcore/busybox
ids=$1
login=$2
shift 2
if [ -n "$login" ]; then
  exec $B su -p -s /.agentcore/sh -c 'exec /.agentcore/busybox env -i "$@"' -- "$login" as-agent "$@"
fi
exec $B nsenter -S "${ids%%:*}" -G "${ids#*:}" $B env -i "$@"
