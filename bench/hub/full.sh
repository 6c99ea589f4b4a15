#!/bin/sh
# The full hub benchmark (not run in CI): every shape, FIB on and off, mcrd / BIRD / FRR, then an mcrd ExaBGP
# variant. Appends JSON rows to $1 (default results.jsonl); `python -m bench.hub.summary FILE` makes the tables.
# Environment: RUNS (default 5), S4_MCRD_RUNS (default 3: one S4 run of mcrd takes minutes), SHAPES (default
# "S2 S4 S1 S3"), HUBS (default "bird frr mcrd"), VARIANTS=0 to skip the mcrd ExaBGP variant.
set -u
out=${1:-results.jsonl}
runs=${RUNS:-5}
s4=${S4_MCRD_RUNS:-3}
shapes=${SHAPES:-S2 S4 S1 S3}
hubs=${HUBS:-bird frr mcrd}
cd "$(dirname "$0")/../.."
for shape in $shapes; do
  for fib in on off; do
    for hub in $hubs; do
      n=$runs
      [ "$shape" = S4 ] && [ "$hub" = mcrd ] && n=$s4
      echo "== $(date +%T) $shape $hub fib=$fib runs=$n load: $(cut -d' ' -f1-3 /proc/loadavg)"
      python -m bench.hub.run --shape "$shape" --hub "$hub" --fib "$fib" --runs "$n" --json "$out"
    done
  done
done
[ "${VARIANTS:-1}" = 0 ] && exit 0
# mcrd with ExaBGP stock, none of mcrd/bgp/exabgp_launch.py's fixes (docs/BENCHMARK-HUB.md)
for shape in $shapes; do
  n=$runs
  [ "$shape" = S4 ] && n=$s4
  [ "$shape" = S1 ] && continue
  echo "== $(date +%T) $shape mcrd ExaBGP stock runs=$n load: $(cut -d' ' -f1-3 /proc/loadavg)"
  python -m bench.hub.run --shape "$shape" --hub mcrd --runs "$n" --exabgp-env MCRD_EXABGP_STOCK=1 --json "$out"
done
