# Shared by the benchmarks: `. bench/lib.sh NAME` makes $work, a temporary
# directory named after NAME, and $pids, the processes the script starts
# (append with `pids+=($!)`); on exit, Ctrl-C included, those processes are
# stopped and $work is removed. Also: free_port, wait_file.
work="$(mktemp -d -t "satchel-$1.XXXXXX")"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# An ephemeral loopback port nothing listens on.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits up to 15 s for the file $1 to be non-empty.
wait_file() { for _ in $(seq 300); do [ -s "$1" ] && return; sleep 0.05; done; echo "timed out waiting for $1" >&2; exit 1; }
