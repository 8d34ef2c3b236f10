"""Self-time of a perf.data grouped by function, with the unresolved addresses of the stripped
postgres binary folded into the nearest preceding exported symbol ("X~": X or a static function
placed after it, i.e. the same source file in practice). Usage:
    python3 bench/diag/perf_grouped.py perf.data [pids] [top]
"""
import bisect
import collections
import subprocess
import sys

data = sys.argv[1]
pids = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
top = int(sys.argv[3]) if len(sys.argv) > 3 else 30
nm = subprocess.run(["nm", "-D", "--defined-only", "/usr/lib/postgresql/15/bin/postgres"],
                    capture_output=True, text=True).stdout
syms = sorted((int(p[0], 16), p[2]) for p in (l.split() for l in nm.splitlines()) if len(p) == 3 and p[1] in "Tt")
addrs = [a for a, _ in syms]
cmd = ["perf", "report", "-i", data, "--stdio", "--no-children", "--percentage", "relative",
       "--sort", "dso,sym", "-g", "none"] + (["--pid", pids] if pids else [])
out = subprocess.run(cmd, capture_output=True, text=True).stdout
groups = collections.Counter()
dsos = collections.Counter()
nsamples = ""
for line in out.splitlines():
    if line.startswith("# Samples"):
        nsamples = line
    p = line.split()
    if len(p) < 4 or not p[0].endswith("%"):
        continue
    pct, dso, sym = float(p[0][:-1]), p[1], " ".join(p[3:])
    dsos[dso] += pct
    if dso == "postgres" and sym.startswith("0x"):
        a = int(sym, 16)
        i = bisect.bisect_right(addrs, a) - 1
        sym = syms[i][1] + "~" if i >= 0 else sym
    elif dso.startswith("[kernel"):
        sym = "[kernel]"
    groups[(dso if not dso.startswith("[kernel") else "kernel", sym)] += pct
print(f"# {data} pids={pids}\n{nsamples}\n# by shared object:")
for d, v in dsos.most_common(8):
    print(f"{v:7.2f}%  {d}")
print(f"# top {top} functions (self), 'X~' = X or a static function after it in the binary:")
for (d, s), v in groups.most_common(top):
    print(f"{v:7.2f}%  {d:22s} {s}")
