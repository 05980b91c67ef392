#!/bin/sh
# Re-record the real-program traces of traces/ (see traces/README.md) with `ppm-prefetch record`.
#
#   npm run build
#   scripts/record-traces.sh                 # every trace below
#   scripts/record-traces.sh python json     # only these
#
# Environment: OUT (default traces/), WORK (input files; default a fresh temp dir, removed at the end
# unless WORK was given), PPM (the CLI; default `node dist/cli/main.js` of this checkout), JOBS (how
# many recordings run at once, default 1), MAX (replaces every --max-accesses: quick trial runs).
#
# Needs valgrind and the recorded programs (Debian 12 packages): python3 (/usr/bin/python3), perl,
# gcc-12 (cc1), libpng-dev (pngtest.c, its headers), sqlite3, bzip2, mawk, coreutils (tsort, sort),
# zstd, jq, tcl8.6 (tclsh), binutils (objdump) and the sqlite3 binary it disassembles.
# Every input is generated here from fixed seeds (their md5 sums are in traces/README.md) and the
# programs' environment is pinned (`env -i`, hash seeds fixed), so a re-recording on the same package
# versions repeats a trace: valgrind lays out memory deterministically, two runs gave identical files.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/traces}
PPM=${PPM:-$(command -v node) $ROOT/dist/cli/main.js}
JOBS=${JOBS:-1}
if [ -n "${WORK:-}" ]; then KEEP_WORK=1; else WORK=$(mktemp -d); KEEP_WORK=0; fi
mkdir -p "$WORK" "$OUT"
PY=/usr/bin/python3
CC1=$(gcc -print-prog-name=cc1)
PNGTEST=/usr/share/doc/libpng-dev/examples/pngtest.c
ALL="python perl gcc sqlite-query bzip2 json tsort awk sort zstd jq tcl objdump"
NAMES=${*:-$ALL}

# ------------------------------------------------------------------------------------------------
# Inputs (deterministic: fixed seeds, Python's Mersenne Twister through getrandbits only)

gen_inputs() {
  "$PY" - "$WORK" <<'EOF'
import json, os, random, sys
work = sys.argv[1]
def rng(seed):
    r = random.Random(seed)
    return lambda n: r.getrandbits(32) % n
# A vocabulary of 5,000 pseudo-words, Zipf-like frequencies (word i drawn with weight ~ 1/(i+1)).
below = rng(1)
syll = ["ka", "to", "ri", "men", "sa", "lo", "ve", "dan", "qu", "is", "pe", "ro", "tal", "ne", "mi", "or"]
vocab = ["".join(syll[below(len(syll))] for _ in range(1 + below(4))) + str(i % 7) for i in range(5000)]
cum, acc = [], 0.0
for i in range(len(vocab)):
    acc += 1.0 / (i + 1); cum.append(acc)
import bisect
def word(b):
    return vocab[bisect.bisect_left(cum, b(1 << 30) / (1 << 30) * acc)]
# text.txt: 4 MB of text lines (perl, bzip2)
b = rng(2)
with open(os.path.join(work, "text.txt"), "w") as f:
    size = 0
    while size < 4_000_000:
        line = " ".join(word(b) for _ in range(4 + b(12))) + ".\n"
        f.write(line); size += len(line)
# lines.txt: 100,000 random lines, ~2.2 MB (sort)
b = rng(3)
with open(os.path.join(work, "lines.txt"), "w") as f:
    for i in range(100_000):
        f.write("%08x %s %d\n" % (b(1 << 32), word(b), b(100000)))
# data.json: 60,000 records, ~10 MB (json)
b = rng(4)
recs = [{"id": i, "name": word(b) + " " + word(b), "score": b(1000), "ratio": b(10**6) / 10**6,
         "tags": [word(b) for _ in range(b(6))], "parent": b(i) if i else None,
         "geo": {"lat": b(180000) / 1000 - 90, "lon": b(360000) / 1000 - 180}} for i in range(60_000)]
with open(os.path.join(work, "data.json"), "w") as f:
    json.dump(recs, f)
# small.json: the first 8,000 of those records, ~1.4 MB (jq: parse, filter, sort, all within its N)
with open(os.path.join(work, "small.json"), "w") as f:
    json.dump(recs[:8000], f)
# edges.txt: a random DAG, 60,000 nodes and 240,000 edges "u v" (u < v in a hidden order) (tsort)
b = rng(5)
n = 60_000
perm = list(range(n))
for i in range(n - 1, 0, -1):
    j = b(i + 1); perm[i], perm[j] = perm[j], perm[i]
with open(os.path.join(work, "edges.txt"), "w") as f:
    for _ in range(240_000):
        u = b(n - 1); v = u + 1 + b(min(200, n - 1 - u))
        f.write("n%d n%d\n" % (perm[u], perm[v]))
EOF
  # python: a pure-Python script (objects, dicts, sorting, string formatting, a small graph walk)
  cat > "$WORK/workload.py" <<'EOF'
import random, collections, heapq
r = random.Random(7)
class Node:
    __slots__ = ("id", "edges", "label")
    def __init__(self, i):
        self.id = i; self.edges = []; self.label = "node-%d" % i
nodes = [Node(i) for i in range(40_000)]
for n in nodes:
    for _ in range(4):
        n.edges.append((nodes[r.getrandbits(30) % len(nodes)], 1 + r.getrandbits(8)))
def dijkstra(src):
    dist = {src.id: 0}; heap = [(0, src.id, src)]
    while heap:
        d, _, u = heapq.heappop(heap)
        if d > dist[u.id]: continue
        for v, w in u.edges:
            nd = d + w
            if nd < dist.get(v.id, 1 << 60):
                dist[v.id] = nd; heapq.heappush(heap, (nd, v.id, v))
    return dist
total = 0
for k in range(6):
    dist = dijkstra(nodes[k * 997])
    total += sum(dist.values())
    counts = collections.Counter(n.label[-1] for n in nodes if dist.get(n.id, 0) % 3 == 0)
    rows = sorted(("%s:%d" % (nodes[i].label, d) for i, d in dist.items()), key=lambda s: (len(s), s))
    total += len(rows) + sum(counts.values())
print(total)
EOF
  # awk: a numeric loop over an array of 100,000 floats (mawk's arrays are hash tables), random gathers
  cat > "$WORK/numeric.awk" <<'AWK'
BEGIN {
  n = 100000
  for (i = 0; i < n; i++) x[i] = (i * 7919) % 10007 / 10007
  for (r = 0; r < 30; r++) {
    s = 0
    for (i = 0; i < n; i++) { j = (i * 48271 + r) % n; s += x[j] * x[i]; x[i] = x[i] * 0.999 + s / (i + 1) * 1e-6 }
  }
  printf "%.6f\n", s
}
AWK
  # tcl: another interpreter (Tcl 8.6's bytecode engine): a dict of 60,000 keys, sorted, joined, scanned
  cat > "$WORK/workload.tcl" <<'EOF'
set d [dict create]
for {set i 0} {$i < 60000} {incr i} {
  dict set d k[expr {($i * 7919) % 60013}] [string repeat [format %c [expr {97 + $i % 26}]] [expr {1 + $i % 17}]]
}
set keys [lsort [dict keys $d]]
set total 0
foreach k $keys { incr total [string length [dict get $d $k]] }
set words [split [string map {a " " e " "} [join [lrange $keys 0 20000] ""]] " "]
puts "$total [llength $words] [llength [lsort -unique $words]]"
EOF
  # perl: word frequencies, regex rewriting and a sort of the text
  cat > "$WORK/workload.pl" <<'EOF'
my (%freq, %bigram, @out);
my $prev = "";
while (my $line = <STDIN>) {
    chomp $line;
    for my $w (split /\W+/, $line) {
        next unless length $w;
        $freq{$w}++;
        $bigram{"$prev $w"}++ if $prev ne "";
        $prev = $w;
    }
    (my $t = $line) =~ s/([aeiou])([a-z])/\U$2\E$1/g;
    push @out, $t if $line =~ /ka|ro[0-9]/;
}
my @top = (sort { $freq{$b} <=> $freq{$a} || $a cmp $b } keys %freq)[0 .. 49];
my @bi = (sort { $bigram{$b} <=> $bigram{$a} || $a cmp $b } keys %bigram)[0 .. 49];
my @s = sort @out;
print scalar(@top), " ", scalar(@bi), " ", scalar(@s), "\n";
EOF
  # sqlite-query: a database file built natively here (deterministic arithmetic, no random()), then
  # queried under the recorder: index range scans, an index-driven join, grouping, a correlated
  # subquery, an update. A 32 MB page cache lets the working set grow with the queries.
  rm -f "$WORK/orders.db"
  sqlite3 "$WORK/orders.db" <<'SQL'
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, region INTEGER);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, amount INTEGER, day INTEGER, note TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000)
  INSERT INTO customers SELECT x, 'customer-' || ((x * 7919) % 20011), (x * 31) % 17 FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
  INSERT INTO orders SELECT x, 1 + (x * 2654435761) % 20000, (x * 40503) % 10007, (x * 97) % 365,
                            printf('%08x', (x * 69069 + 1) % 4294967296) FROM c;
CREATE INDEX orders_customer ON orders(customer);
CREATE INDEX orders_day ON orders(day, amount);
SQL
  cat > "$WORK/queries.sql" <<'SQL'
PRAGMA cache_size = -32000;
SELECT count(*), sum(amount) FROM orders WHERE customer BETWEEN 100 AND 400;
SELECT c.name, sum(o.amount) AS s FROM customers c JOIN orders o ON o.customer = c.id WHERE c.region = 3 GROUP BY c.id ORDER BY s DESC LIMIT 10;
SELECT day, max(amount), count(DISTINCT customer) FROM orders WHERE day BETWEEN 100 AND 130 GROUP BY day ORDER BY 3 DESC LIMIT 5;
SELECT region, count(*), sum(amount) FROM orders JOIN customers ON customers.id = orders.customer GROUP BY region ORDER BY region;
SELECT count(*) FROM orders o1 WHERE amount > (SELECT avg(amount) FROM orders o2 WHERE o2.customer = o1.customer);
UPDATE orders SET amount = amount + 1 WHERE note LIKE '%a%';
SELECT substr(note, 1, 2) AS p, count(*) FROM orders GROUP BY p ORDER BY 2 DESC LIMIT 5;
SQL
}

# ------------------------------------------------------------------------------------------------
# The recordings: NAME, --max-accesses, the command's stdin (a file in WORK, or - for /dev/null), the
# command. valgrind does not follow exec (--trace-children=no), so the recorded program must be the
# command itself: no `sh -c` or `env` in front of it. The environment is pinned (env -i) around the
# whole `record` instead; `record` passes it on.

# The recorded programs' whole environment. Python and perl randomise their string hashes per process
# (so dict/hash layouts and the trace would change from run to run): the seeds are fixed. The size of
# the environment shifts the initial stack by a few bytes, so it does not depend on WORK.
ENV="PATH=/usr/bin:/bin LC_ALL=C HOME=/nonexistent PYTHONHASHSEED=0 PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0"

rec() {
  name=$1; max=${MAX:-$2}; input=$3; shift 3
  [ "$input" = - ] && input=/dev/null
  # The held-out traces (recorded to check the defaults, never to tune them: RESULTS.md section 2) go apart.
  dest=$OUT/$name.txt.gz
  case $name in zstd|jq|tcl|objdump) mkdir -p "$OUT/held-out"; dest=$OUT/held-out/$name.txt.gz ;; esac
  echo "== $name: --max-accesses $max -- $* < $input" >&2
  (cd "$WORK" && env -i $ENV $PPM record --out "$dest" --max-accesses "$max" -- "$@" < "$input" > /dev/null)
}

record_one() {
  case $1 in
    python) rec python 18000000 - "$PY" workload.py ;;
    perl) rec perl 20000000 text.txt perl workload.pl ;;
    gcc) rec gcc 30000000 - "$CC1" -quiet -imultiarch x86_64-linux-gnu -O2 "$PNGTEST" -o /dev/null ;;
    sqlite-query) rec sqlite-query 25000000 queries.sql sqlite3 orders.db ;;
    bzip2) rec bzip2 27000000 - bzip2 -9 -c text.txt ;;
    json) rec json 14000000 - "$PY" -c 'import json; d = json.load(open("data.json")); s = json.dumps(d, sort_keys=True); print(len(s), sum(len(r["tags"]) for r in d))' ;;
    tsort) rec tsort 20000000 - tsort edges.txt ;;
    awk) rec awk 16000000 - mawk -f numeric.awk ;;
    sort) rec sort 80000000 - sort --parallel=1 -S 64M lines.txt ;;
    zstd) rec zstd 15000000 - zstd -6 -q -c text.txt ;;
    jq) rec jq 20000000 - jq -c '[.[] | select(.score > 300) | {id, name, t: (.tags | join(","))}] | sort_by(.name) | length' small.json ;;
    tcl) rec tcl 20000000 - tclsh workload.tcl ;;
    objdump) rec objdump 20000000 - objdump -d --no-show-raw-insn /usr/bin/sqlite3 ;;
    *) echo "unknown trace $1 (known: $ALL)" >&2; return 2 ;;
  esac
}

gen_inputs
status=0
if [ "$JOBS" -le 1 ]; then
  for n in $NAMES; do record_one "$n" || status=1; done
else
  # Batches of JOBS (POSIX sh has no `wait -n`); a failure shows in the file list and the log.
  running=0
  for n in $NAMES; do
    record_one "$n" & running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait; running=0; fi
  done
  wait
fi
[ "$KEEP_WORK" = 1 ] || rm -rf "$WORK"
exit $status
