#!/usr/bin/env bash
# One large file pulled through the generated clients (Python, Go,
# TypeScript, Java) from one satcheld on a Unix socket, the blob already in
# its content store, so what is timed is the gRPC link and the client's own
# writing and hashing. Each client program times itself from connecting to
# the pull's end (interpreter, JVM and module start-up are left out): wall
# time, best and median of RUNS, and the client process's CPU time
# (median), which a busy machine disturbs less.
#
#   bench/clients.sh [SIZE_MIB] [RUNS]       (defaults: 256 MiB, 3 runs)
#   CLIENTS="python go"   which clients (default: python go typescript java)
#   BASE_REV=REV          also pulls with each client as it was at git
#                         revision REV, in the same rounds (a before/after)
#   SATCHELD=PATH         the daemon to use (default: cargo build --release)
#
# Needs docker-registry, openssl and each client's toolchain: python3, Go,
# Node with clients/typescript's node_modules (`npm ci`), Maven and a JDK.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
size_mib="${1:-256}"
runs="${2:-3}"
clients="${CLIENTS:-python go typescript java}"
command -v go >/dev/null || export PATH=/usr/local/go/bin:$PATH
if [ -z "${SATCHELD:-}" ]; then
  cargo build --release --bins -q
  SATCHELD="$root/target/release/satcheld"
fi
. bench/lib.sh clients

port="$(free_port)"
reg="127.0.0.1:$port"
REGISTRY_HTTP_ADDR="$reg" REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="$work/registry" \
  docker-registry serve tests/fixtures/registry.yml >"$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.05; done
sock="$work/satcheld.sock"
addr="unix://$sock"
"$SATCHELD" --listen "$addr" --cache-dir "$work/cache" --docker-config "$work/docker/config.json" \
  2>"$work/satcheld.log" &
pids+=($!)
for _ in $(seq 300); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { echo "satcheld did not start; its log:" >&2; cat "$work/satcheld.log" >&2; exit 1; }

# Each variant is a copy of clients/: "new" is this checkout, "base" the
# one at BASE_REV.
variants=(new)
declare -A src=([new]="$root/clients")
if [ -n "${BASE_REV:-}" ]; then
  mkdir -p "$work/base"
  git archive "$BASE_REV" clients proto | tar -x -C "$work/base"
  variants+=(base)
  src[base]="$work/base/clients"
fi

# The programs, one per client: connect, pull REF into OUT, print the
# seconds taken and the process's CPU seconds in them.
venv="$work/venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "grpcio>=1.85.1" "protobuf>=7.35.1,<8"
cat >"$work/pull.py" <<'EOF'
import sys, time
from satchel import Client
addr, ref, out = sys.argv[1:]
t, cpu = time.perf_counter(), time.process_time()
with Client(addr) as c:
    c.pull(ref, output_dir=out, plain_http=True)
print(f"{time.perf_counter() - t:.3f} {time.process_time() - cpu:.3f}")
EOF
cat >"$work/pull.go" <<'EOF'
package main

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	satchel "github.com/satchel-oci/satchel/clients/go"
)

func cpu() time.Duration {
	var r syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r)
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

func main() {
	addr, ref, out := os.Args[1], os.Args[2], os.Args[3]
	t, c0 := time.Now(), cpu()
	c, err := satchel.Dial(addr)
	if err != nil {
		panic(err)
	}
	opts := satchel.PullOptions{OutputDir: out}
	opts.PlainHTTP = true
	if _, err := c.Pull(context.Background(), ref, opts); err != nil {
		panic(err)
	}
	c.Close()
	fmt.Printf("%.3f %.3f\n", time.Since(t).Seconds(), (cpu() - c0).Seconds())
}
EOF
cat >"$work/pull.js" <<'EOF'
const [dist, addr, ref, out] = process.argv.slice(2);
const { SatchelClient } = require(dist);
const [t, cpu] = [process.hrtime.bigint(), process.cpuUsage()];
const c = new SatchelClient(addr);
c.pull(ref, { outputDir: out, plainHttp: true }).then(() => {
  c.close();
  const used = process.cpuUsage(cpu);
  const wall = Number(process.hrtime.bigint() - t) / 1e9;
  console.log(wall.toFixed(3), ((used.user + used.system) / 1e6).toFixed(3));
});
EOF
cat >"$work/Pull.java" <<'EOF'
import dev.satchel.client.Options;
import dev.satchel.client.SatchelClient;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;

public class Pull {
  public static void main(String[] a) throws Exception {
    var os = (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
    long t = System.nanoTime(), cpu = os.getProcessCpuTime();
    try (SatchelClient c = SatchelClient.connect(a[0])) {
      c.pull(a[1], Options.builder().plainHttp(true).outputDir(Path.of(a[2])).build());
    }
    System.out.printf("%.3f %.3f%n", (System.nanoTime() - t) / 1e9, (os.getProcessCpuTime() - cpu) / 1e9);
  }
}
EOF

# Builds what variant $1's client needs to run.
prepare() {
  local v=$1 d=${src[$1]} c
  for c in $clients; do
    case $c in
    go)
      mkdir -p "$work/go-$v"
      cp "$work/pull.go" "$work/go-$v/main.go"
      cp "$d/go/go.sum" "$work/go-$v/go.sum"
      printf 'module bench\n\ngo 1.26.0\n\nrequire github.com/satchel-oci/satchel/clients/go v0.0.0\n\nreplace github.com/satchel-oci/satchel/clients/go => %s\n' \
        "$d/go" >"$work/go-$v/go.mod"
      (cd "$work/go-$v" && GOFLAGS=-mod=mod go build -o pull . 2>"$work/go-$v/build.log") ||
        { cat "$work/go-$v/build.log" >&2; exit 1; }
      ;;
    typescript)
      [ -d "$d/typescript/node_modules" ] || ln -s "$root/clients/typescript/node_modules" "$d/typescript/node_modules"
      (cd "$d/typescript" && node_modules/.bin/tsc -p tsconfig.json)
      ;;
    java)
      (cd "$d/java" && mvn -B -q --no-transfer-progress -Dstyle.color=never compile \
        dependency:build-classpath -Dmdep.outputFile="$work/java-$v.cp" >"$work/java-$v.log" 2>&1) ||
        { cat "$work/java-$v.log" >&2; exit 1; }
      ;;
    esac
  done
}
# Pulls with client $1 of variant $2; prints wall and CPU seconds.
pull() {
  local c=$1 v=$2 d=${src[$2]} out="$work/out" s
  rm -rf "$out"
  case $c in
  python) s=$(PYTHONPATH="$d/python/src" "$venv/bin/python" "$work/pull.py" "$addr" "$ref" "$out") ;;
  go) s=$("$work/go-$v/pull" "$addr" "$ref" "$out") ;;
  typescript) s=$(node "$work/pull.js" "$d/typescript/dist/src/index.js" "$addr" "$ref" "$out") ;;
  java) s=$(java -Xmx256m -cp "$d/java/target/classes:$(cat "$work/java-$v.cp")" "$work/Pull.java" "$addr" "$ref" "$out") ;;
  esac
  cmp -s "$file" "$out/payload.bin" || { echo "$c ($v): the pulled file differs" >&2; exit 1; }
  rm -rf "$out"
  echo "$s"
}

for v in "${variants[@]}"; do prepare "$v"; done

file="$work/payload.bin"
head -c "$((size_mib << 20))" /dev/urandom >"$file"
ref="$reg/bench/clients:v1"
PYTHONPATH="$root/clients/python/src" "$venv/bin/python" - "$addr" "$ref" "$file" <<'EOF'
import sys
from satchel import Client
addr, ref, path = sys.argv[1:]
with Client(addr) as c:
    c.push(ref, [path], plain_http=True)
EOF
# One untimed pull, so the blob is in the daemon's content store.
pull python new >/dev/null

declare -A wall cpu
for _ in $(seq "$runs"); do
  for c in $clients; do
    for v in "${variants[@]}"; do
      read -r w u <<<"$(pull "$c" "$v")"
      wall[$c-$v]+="$w "
      cpu[$c-$v]+="$u "
    done
  done
done

sorted() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g; }
best() { sorted "$1" | head -1; }
median() { sorted "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '%s MiB pulled from the content store over a Unix socket, %s runs (seconds)\n' "$size_mib" "$runs"
printf '  %-24s %6s %6s %6s %10s\n' client best median MiB/s "CPU median"
for c in $clients; do
  for v in "${variants[@]}"; do
    label="$c"
    [ "$v" = base ] && label="$c ($BASE_REV)"
    b=$(best "${wall[$c-$v]}")
    printf '  %-24s %6s %6s %6.0f %10s\n' "$label" "$b" "$(median "${wall[$c-$v]}")" \
      "$(echo "$size_mib / $b" | bc -l)" "$(median "${cpu[$c-$v]}")"
  done
done
