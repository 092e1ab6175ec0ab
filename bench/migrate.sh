#!/usr/bin/env bash
# Issue 10's migration benchmark (not a test): live-migrates a 1 GiB idle HVM domain, and one under
# --workload hotset:64MiB:256, between two xmig processes over 127.0.0.1, and in the same run times a raw TCP copy
# of the same number of octets over loopback. Prints one table: case, total time, downtime, rounds (dirty-sync-count),
# octets, raw copy time, ratio (total time / raw copy time).
#
#   bench/migrate.sh [--size 1GiB] [--hotset hotset:64MiB:256] [--dir /dev/shm/xmig-migrate-bench] [--xmig EXE]
#
# --xmig defaults to the native build (src/Xmig.Cli/bin/Release/net10.0/linux-x64/publish/xmig, made by
# `dotnet publish src/Xmig.Cli -c Release -r linux-x64`), else the Release dll through `dotnet`. The domains live in
# --dir (tmpfs by default), so neither end waits on a disk.
#
# The raw copy: python3 sockets, one sender process and one receiver process on 127.0.0.1; the sender sendall()s a
# 4 MiB buffer from memory until it has sent the migration's octet count, the receiver recv_into()s a 4 MiB buffer and
# discards it, then answers one octet; the time is from connect to that octet. It is memory to memory: the floor for
# any TCP transfer of that size on this machine. Run it under `nice -n 19` on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."

size=1GiB hotset=hotset:64MiB:256 dir=/dev/shm/xmig-migrate-bench xmig=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --hotset) hotset=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --xmig) xmig=$2; shift 2 ;;
    *) echo "usage: $0 [--size 1GiB] [--hotset hotset:SIZE:RATE] [--dir DIR] [--xmig EXE]" >&2; exit 2 ;;
  esac
done

native=src/Xmig.Cli/bin/Release/net10.0/linux-x64/publish/xmig
dll=src/Xmig.Cli/bin/Release/net10.0/Xmig.Cli.dll
if [ -z "$xmig" ]; then
  if [ -x "$native" ]; then xmig="$PWD/$native"
  elif [ -f "$dll" ]; then xmig="dotnet $PWD/$dll"
  else echo "no xmig build: run dotnet publish src/Xmig.Cli -c Release -r linux-x64" >&2; exit 2
  fi
fi

rm -rf "$dir"
mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
echo "xmig: $xmig"
echo "domains: $size hvm in $dir; $(nproc) CPUs; $(uname -r)"

XMIG="$xmig" DIR="$dir" SIZE="$size" HOTSET="$hotset" python3 - <<'PY'
import json, os, re, shlex, socket, subprocess, sys, time

xmig = shlex.split(os.environ["XMIG"])
root, size, hotset = os.environ["DIR"], os.environ["SIZE"], os.environ["HOTSET"]

def run(*args):
    p = subprocess.run([*xmig, *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"xmig {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
    return p.stdout

def migrate(name, workload):
    src, dst = os.path.join(root, name), os.path.join(root, name + "-dst")
    run("domain", "create", src, "--type", "hvm", "--memory", size, "--vcpus", "2")
    receiver = subprocess.Popen([*xmig, "migrate-receive", "--listen", "127.0.0.1:0", "--into", dst, "--json", "--no-digest"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = None
    for line in receiver.stderr:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        sys.exit("the receiver did not listen")
    sender = subprocess.run([*xmig, "migrate", src, f"127.0.0.1:{port}", "--workload", workload, "--json", "--no-digest", "--keep-source"],
                            capture_output=True, text=True)
    out, err = receiver.communicate(timeout=600)
    if sender.returncode != 0 or receiver.returncode != 0:
        sys.exit(f"{name}: sender {sender.returncode} {sender.stderr.strip()[-300:]} / receiver {receiver.returncode} {err.strip()[-300:]}")
    s, r = json.loads(sender.stdout), json.loads(out)
    # Digests are taken after the run (both ends' --no-digest keep them out of the times): the source as paused,
    # kept as DIR--migratedaway, against the destination.
    same = run("domain", "digest", src + "--migratedaway").split()[0] == run("domain", "digest", dst).split()[0]
    subprocess.run(["rm", "-rf", src, src + "--migratedaway", dst])
    return s, same

RAW_RECEIVER = r'''
import socket, sys
n = int(sys.argv[1])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("127.0.0.1", 0)); l.listen(1)
print(l.getsockname()[1], flush=True)
c, _ = l.accept()
buf = bytearray(4 << 20); view = memoryview(buf); got = 0
while got < n:
    k = c.recv_into(view)
    if k == 0: break
    got += k
c.sendall(b"!"); c.close()
'''

def raw_copy(octets):
    receiver = subprocess.Popen([sys.executable, "-c", RAW_RECEIVER, str(octets)], stdout=subprocess.PIPE, text=True)
    port = int(receiver.stdout.readline())
    chunk = memoryview(bytes(os.urandom(1 << 20)) * 4)
    start = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    left = octets
    while left > 0:
        n = min(left, len(chunk))
        s.sendall(chunk[:n])
        left -= n
    if s.recv(1) != b"!":
        sys.exit("raw copy: the receiver did not answer")
    took = time.perf_counter() - start
    s.close(); receiver.wait()
    return took * 1000

rows = []
for name, workload in (("idle", "idle"), ("hotset", hotset)):
    report, same = migrate(name, workload)
    raw = raw_copy(report["transferred"])
    rows.append((f"{name} ({workload})", report, raw, same))

head = ("case", "total ms", "downtime ms", "rounds", "octets", "raw copy ms", "ratio", "digest")
table = [head] + [(c, f"{r['total-time']:.1f}", f"{r['downtime']:.1f}", str(r["dirty-sync-count"]), str(r["transferred"]),
                   f"{raw:.1f}", f"{r['total-time'] / raw:.2f}", "equal" if same else "DIFFERS") for c, r, raw, same in rows]
widths = [max(len(row[i]) for row in table) for i in range(len(head))]
for i, row in enumerate(table):
    print("  ".join(cell.ljust(w) if j == 0 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths))))
    if i == 0:
        print("  ".join("-" * w for w in widths))
PY
