#!/usr/bin/env bash
# Runs each row of issue 8's table beside its yardstick on the same input, alternating (xmig, yardstick, xmig, ...),
# several repetitions, and prints the median wall time and the median CPU time (user+sys of every process in the
# row) of each, and their ratios. CPU time is the steadier figure on a shared machine; wall time is the target's.
#
#   bench/compare.sh [--size 1GiB] [--reps 5] [--dir /dev/shm/xmig-compare] [--xen PATH/tools/python] [--xmig EXE]
#
# --xen names Xen's tools/python (with scripts/ and xen/migration/), run under python3, for verify-stream-v2 and
# convert-legacy-stream; without it those rows compare with cp/cat only. --xmig defaults to the native build
# (src/Xmig.Cli/bin/Release/net10.0/linux-x64/publish/xmig, made by `dotnet publish src/Xmig.Cli -c Release -r
# linux-x64`), else the Release dll through `dotnet`. --only REGEX keeps the rows whose name matches. Inputs are made once per size in --dir (tmpfs by default).
set -euo pipefail
cd "$(dirname "$0")/.."

size=1GiB reps=5 dir=/dev/shm/xmig-compare xen="" xmig="" only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --xen) xen=$(cd "$2" && pwd); shift 2 ;;
    --xmig) xmig=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "usage: $0 [--size 1GiB] [--reps N] [--dir DIR] [--xen PATH/tools/python] [--xmig EXE] [--only REGEX]" >&2; exit 2 ;;
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
export XMIG="$xmig" XEN="$xen" ONLY="$only"

mkdir -p "$dir"
cd "$dir"
in=vm-$size
if [ ! -f "$in.xl" ] || [ ! -f "$in.legacy" ]; then
  rm -rf "$in" "$in.xl" "$in.legacy"
  $XMIG domain create "$in" --type hvm --memory "$size" --seed 8 >/dev/null
  $XMIG save "$in" -o "$in.xl" --non-live >/dev/null
  $XMIG save "$in" -o "$in.legacy" --stream legacy-4.1 --non-live >/dev/null
fi
export IN="$in"

echo "xmig: $XMIG"
echo "input: $dir/$in.xl ($(stat -c %s "$in.xl") octets), $in.legacy ($(stat -c %s "$in.legacy") octets); $reps repetitions"

# One row: name, setup (untimed, before each run), xmig command, yardstick name, yardstick command.
# Timing: wall clock around `bash -c CMD`, CPU from the rusage of the waited children (python3's os.wait4).
python3 - "$reps" <<'PY'
import os, re, subprocess, sys, time, statistics

reps = int(sys.argv[1])
xen = os.environ["XEN"]
py = f"PYTHONPATH={xen} python3 {xen}/scripts" if xen else None
clean = "rm -rf out out.xl copy conv.v2 conv.xen"

rows = [
    ("restore file->tmpfs", "$XMIG restore $IN.xl --into out >/dev/null", "cp", "cp $IN.xl copy"),
    # Restore's figure includes the memory digest it prints; this row reports the digest alone (1 GiB of SHA-256
    # either way), so restore's own cost is the difference.
    ("digest (in restore)", "$XMIG domain digest $IN >/dev/null", "sha256sum", "sha256sum $IN.xl >/dev/null"),
    ("save|restore pipe", "$XMIG save $IN --non-live -o - | $XMIG restore - --into out >/dev/null",
     "cat|cat", "cat $IN.xl | cat > copy"),
    ("save -> tmpfs", "$XMIG save $IN --non-live -o out.xl >/dev/null", "cp", "cp $IN.xl copy"),
    ("verify file", "$XMIG verify $IN.xl >/dev/null", "cat>/dev/null", "cat $IN.xl >/dev/null"),
    ("convert legacy->v2", "$XMIG convert -i $IN.legacy -o conv.v2 -w 64 -g hvm -f libxl", "cp", "cp $IN.legacy copy"),
    ("verify - (pipe)", "cat $IN.xl | $XMIG verify - >/dev/null", "cat|wc -c", "cat $IN.xl | wc -c >/dev/null"),
]
if py:
    rows.insert(4, ("verify file", "$XMIG verify $IN.xl >/dev/null", "verify-stream-v2",
                    f"{py}/verify-stream-v2 -i $IN.xl -f xl -q"))
    rows.insert(6, ("convert legacy->v2", "$XMIG convert -i $IN.legacy -o conv.v2 -w 64 -g hvm -f libxl",
                    "convert-legacy-stream", f"{py}/convert-legacy-stream -i $IN.legacy -o conv.xen -w 64 -g hvm -f libxl"))

def run(cmd):
    subprocess.run(["bash", "-c", clean], check=True)
    before = os.times()
    start = time.monotonic()
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd])
    wall = time.monotonic() - start
    after = os.times()
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {cmd}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu

print(f"{'work':<20} {'xmig s':>8} {'cpu s':>7}   {'yardstick':<22} {'wall s':>8} {'cpu s':>7}   {'ratio wall':>10} {'ratio cpu':>9}")
for name, mine, yname, theirs in rows:
    if not re.search(os.environ["ONLY"], name):
        continue
    mw, mc, tw, tc = [], [], [], []
    for _ in range(reps):
        w, c = run(mine); mw.append(w); mc.append(c)
        w, c = run(theirs); tw.append(w); tc.append(c)
    m = statistics.median
    print(f"{name:<20} {m(mw):8.3f} {m(mc):7.3f}   {yname:<22} {m(tw):8.3f} {m(tc):7.3f}   {m(mw)/m(tw):10.2f} {m(mc)/max(m(tc),1e-3):9.2f}",
          flush=True)
subprocess.run(["bash", "-c", clean], check=True)
PY
