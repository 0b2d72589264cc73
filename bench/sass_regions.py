#!/usr/bin/env python3
"""Where a kernel launch's warps spend their time, from ncu's per-instruction warp stall samples.

Reads the csv that `ncu -i REPORT --page source --print-source sass --csv` prints (run_selection_check.sh's
NCU_SASS writes it, plain or gzipped) and prints the samples and executed warp instructions of each loop of the
SASS (a backward branch and the instructions it spans; an instruction counts for the innermost loop holding it,
the rest for "outside loops"), each with its commonest stall reasons, then the instructions with the most
samples. Samples are taken per warp, so a region's share of them is the share of the warps' time spent there.
The offsets are those of scripts/dump_sass.sh on the same build, which shows the code of each region.

usage: bench/sass_regions.py SASS_CSV [--top N]
"""
import argparse
import collections
import csv
import gzip
import re
import sys


def read_rows(path):
    """The launch's instructions: (offset, source, samples, executed, {stall reason: samples}), and the first
    instruction's address (branch targets in the csv are absolute)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        rows = list(csv.reader(f))
    header_at = next((i for i, r in enumerate(rows) if r and r[0] == "Address"), None)
    if header_at is None:
        sys.exit(f"sass_regions: {path} has no 'Address' header row (not an ncu source-page csv)")
    header = rows[header_at]
    column = {name: i for i, name in enumerate(header)}
    for needed in ("Source", "Warp Stall Sampling (All Samples)", "Instructions Executed"):
        if needed not in column:
            sys.exit(f"sass_regions: {path} lacks the column '{needed}'")
    stalls = [h for h in header if h.startswith("stall_") and "(Not" not in h]
    body = [r for r in rows[header_at + 1:] if r and r[0].startswith("0x")]
    if not body:
        sys.exit(f"sass_regions: {path} holds no instructions")
    base = int(body[0][0], 16)

    def number(r, name):
        return int(r[column[name]] or 0)

    code = [(int(r[0], 16) - base, r[column["Source"]].strip(), number(r, "Warp Stall Sampling (All Samples)"),
             number(r, "Instructions Executed"), {s: number(r, s) for s in stalls}) for r in body]
    return code, base


# An unconditional backward branch spanning more than this many instructions is taken for a jump back from
# out-of-line code (a barrier wait's retry block at the kernel's end), not for a loop.
LONGEST_UNCONDITIONAL_LOOP = 2048


def loops_of(code, base):
    """(start, end) offsets of the loops: backward branches to an instruction of the kernel."""
    offsets = {c[0] for c in code}
    loops = []
    for offset, source, *_ in code:
        m = re.search(r"\bBRA\b.*?(0x[0-9a-f]+)", source)
        if not m:
            continue
        target = int(m.group(1), 16) - base
        conditional = source.startswith("@")
        if target in offsets and target < offset and (conditional or offset - target <= 16 * LONGEST_UNCONDITIONAL_LOOP):
            loops.append((target, offset))
    return loops


def reasons(counter, total, count=4):
    return ", ".join(f"{name[len('stall_'):]} {100 * v / total:.1f}" for name, v in counter.most_common(count) if v)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("csv")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    code, base = read_rows(args.csv)
    total = sum(c[2] for c in code) or 1
    loops = loops_of(code, base)
    regions = collections.OrderedDict()
    for offset, _, samples, executed, stalls in code:
        holding = [span for span in loops if span[0] <= offset <= span[1]]
        key = min(holding, key=lambda span: span[1] - span[0]) if holding else None
        region = regions.setdefault(key, {"samples": 0, "executed": 0, "size": 0, "stalls": collections.Counter()})
        region["samples"] += samples
        region["executed"] += executed
        region["size"] += 1
        region["stalls"].update(stalls)
    print(f"{total} warp stall samples, {sum(c[3] for c in code) / 1e9:.3f} G warp instructions executed")
    print(f"{'region (innermost loop)':28s} {'instr':>6s} {'samples':>8s} {'executed':>11s}  stall reasons (% of all samples)")
    for key, r in sorted(regions.items(), key=lambda item: -item[1]["samples"]):
        if r["samples"] * 1000 < total:
            continue  # under 0.1%
        name = f"loop {key[0]:#07x}-{key[1]:#07x}" if key else "outside loops"
        print(f"{name:28s} {r['size']:6d} {100 * r['samples'] / total:7.1f}% {r['executed'] / 1e6:9.1f} M  "
              f"{reasons(r['stalls'], total)}")
    print(f"\nThe {args.top} instructions with the most samples:")
    for offset, source, samples, executed, stalls in sorted(code, key=lambda c: -c[2])[:args.top]:
        top = max(stalls, key=stalls.get) if stalls else ""
        print(f"  {offset:#07x} {source[:56]:56s} {100 * samples / total:5.1f}%  executed {executed:>10d}  "
              f"mostly {top[len('stall_'):]}")


if __name__ == "__main__":
    main()
