#!/bin/sh
# Top symbols of a perf.data (self time, percentages relative to the selected samples), with each
# unresolved address in the stripped postgres binary annotated with the nearest preceding exported
# symbol ("~near X": a static function of the same source file as X, usually).
#   bench/diag/perf_top.sh perf.data [comma-separated pids]
set -e
data=$1; pids=$2
sel=""; [ -n "$pids" ] && sel="--pid $pids"
nm -D --defined-only /usr/lib/postgresql/15/bin/postgres | awk '$2 ~ /[Tt]/ {print $1, $3}' | sort > /tmp/pg_dynsym.txt
perf report -i "$data" --stdio --no-children --percentage relative $sel --sort dso,sym -g none 2>/dev/null \
  | grep -v '^$' | head -60 | python3 -c '
import sys, bisect
syms = [(int(a, 16), n) for a, n in (l.split() for l in open("/tmp/pg_dynsym.txt"))]
addrs = [a for a, _ in syms]
for line in sys.stdin:
    line = line.rstrip("\n")
    parts = line.split()
    if len(parts) >= 4 and parts[1] == "postgres" and parts[3].startswith("0x"):
        a = int(parts[3], 16); i = bisect.bisect_right(addrs, a) - 1
        if i >= 0:
            line += f"   ~near {syms[i][1]}+0x{a - syms[i][0]:x}"
    print(line)
'
