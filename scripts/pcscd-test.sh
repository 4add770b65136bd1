#!/usr/bin/env bash
# Make sure pcscd runs with the vpcd virtual reader, for tests and for trying the kiosk without
# hardware. Idempotent: does nothing when pcscd already answers.
#
#   scripts/pcscd-test.sh          start pcscd (daemon, --auto-exit) unless running; wait until vpcd
#                                  listens on 35963; exit 0
#   scripts/pcscd-test.sh stop     stop pcscd, but only the one this script started
#   scripts/pcscd-test.sh status   exit 0 when running, 1 when not
#
# Exit codes: 0 ok, 1 started but not ready in time, 3 pcscd not installed, 4 vpcd not installed,
# 5 asked to stop a pcscd this script did not start.
# --auto-exit makes pcscd quit after 60 s without clients, so a test run leaves nothing behind.
set -uo pipefail

PCSCD=${PCSCD:-$(command -v pcscd || echo /usr/sbin/pcscd)}
VPCD_LIB=${VPCD_LIB:-/usr/lib/pcsc/drivers/serial/libifdvpcd.so}
VPCD_PORT=${VPCD_PORT:-35963}
RUN_DIR=/run/pcscd
PID_FILE=$RUN_DIR/pcscd.pid
OURS=${PCSCD_TEST_MARKER:-/tmp/hall-pcscd-test.pid}  # pid of the pcscd this script started
WAIT=${PCSCD_WAIT:-10}

running_pid() {
  local pid
  [[ -r $PID_FILE ]] || return 1
  pid=$(tr -dc 0-9 <"$PID_FILE")  # pcscd writes a trailing NUL
  [[ -n $pid && -r /proc/$pid/comm && $(</proc/$pid/comm) == pcscd ]] || return 1
  echo "$pid"
}

vpcd_listening() {
  ss -Hltn "sport = :$VPCD_PORT" 2>/dev/null | grep -q LISTEN
}

case "${1:-start}" in
  status)
    running_pid >/dev/null
    exit $?
    ;;
  stop)
    pid=$(running_pid) || exit 0
    if [[ ! -r $OURS || $(<"$OURS") != "$pid" ]]; then
      echo "pcscd (pid $pid) was not started by $0; leaving it alone" >&2
      exit 5
    fi
    kill "$pid"
    for _ in $(seq 50); do
      [[ -d /proc/$pid ]] || break
      sleep 0.1
    done
    rm -f "$OURS"
    exit 0
    ;;
  start) ;;
  *)
    echo "usage: $0 [start|stop|status]" >&2
    exit 2
    ;;
esac

if [[ ! -x $PCSCD ]]; then
  echo "pcscd is not installed (apt-get install pcscd)" >&2
  exit 3
fi
if [[ ! -e $VPCD_LIB ]]; then
  echo "vpcd is not installed: $VPCD_LIB missing (apt-get install vsmartcard-vpcd)" >&2
  exit 4
fi

if ! running_pid >/dev/null; then
  # daemon mode: the parent returns once the daemon is initialised
  "$PCSCD" --auto-exit || { echo "pcscd failed to start" >&2; exit 1; }
  for _ in $(seq $((WAIT * 10))); do
    pid=$(running_pid) && break
    sleep 0.1
  done
  if [[ -z ${pid:-} ]]; then
    echo "pcscd did not write $PID_FILE within ${WAIT}s" >&2
    exit 1
  fi
  echo "$pid" >"$OURS"
fi

for _ in $(seq $((WAIT * 10))); do
  if vpcd_listening; then
    exit 0
  fi
  sleep 0.1
done
echo "pcscd runs but vpcd does not listen on port $VPCD_PORT (is /etc/reader.conf.d/vpcd there?)" >&2
exit 1
