#!/.agentcore/busybox sh
# One connection to the guest's command server (agentcore-local's microVM backend; the init runs
# `nc -ll -e` with this script, the connection on stdin and stdout). The host sends the VM's
# token, then one request line:
#   run ID      then a line of sh-quoted argv: runs it as `docker exec` would (the agent's user,
#               environment and working directory, no stdin); its stdout is this connection, its
#               stderr goes to the "err" connection; the exit code is kept for "wait".
#   err ID      the stderr of command ID, until it ends.
#   wait ID     the exit code of command ID, once it has ended.
#   kill ID     SIGKILL to command ID and every process it started (its own session).
# Two streams need two connections: busybox has no way to frame them on one.
B=/.agentcore/busybox
D=/.agentcore/exec
# The server's own complaints would land on the console, i.e. in the agent's log.
exec 2>/dev/null
# The host spells a newline inside an argument as "$NL" (the request is one line).
NL='
'
. /sys/firmware/qemu_fw_cfg/by_name/opt/agentcore/config/raw
read -r token
[ "$token" = "$AGENTCORE_EXEC_TOKEN" ] || exit 1
read -r verb id
case "$id" in ''|*[!0-9a-f]*) exit 1 ;; esac
$B mkdir -p $D
# Whichever of "run" and "err" comes first makes the FIFO; the other finds it.
fifo() { [ -p $D/$id.err ] || $B mkfifo -m 600 $D/$id.err 2>/dev/null || [ -p $D/$id.err ]; }
case "$verb" in
run)
  read -r argv
  fifo || exit 1
  cd "$AGENTCORE_WORKDIR" 2>/dev/null || cd /
  eval "set -- $AGENTCORE_ENV"
  eval "set -- \"\$@\" $argv"
  # setsid: the command leads its own session, so "kill" reaches everything it started.
  $B setsid /.agentcore/as-agent "$AGENTCORE_USER" "$AGENTCORE_LOGIN" "$@" </dev/null 2>$D/$id.err &
  echo $! > $D/$id.pid
  wait $!
  echo $? > $D/$id.code.tmp
  $B mv $D/$id.code.tmp $D/$id.code
  $B rm -f $D/$id.err $D/$id.pid
  ;;
err)
  fifo || exit 1
  exec $B cat $D/$id.err
  ;;
wait)
  while [ ! -e $D/$id.code ]; do $B sleep 0.05; done
  $B cat $D/$id.code
  $B rm -f $D/$id.code
  ;;
kill)
  [ -s $D/$id.pid ] && kill -9 "-$($B cat $D/$id.pid)"
  ;;
esac
