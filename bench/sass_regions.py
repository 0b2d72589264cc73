#!/usr/bin/env python3
"""A kernel's loops in its SASS, and where a launch's warps spend their time among them.

A loop is a backward branch and the instructions it spans; each instruction counts for the innermost loop that
holds it, the rest for "outside loops". Two inputs:

  bench/sass_regions.py SASS_CSV [--top N]   the csv that `ncu -i REPORT --page source --print-source sass
      --csv` prints (run_selection_check.sh's NCU_SASS writes it, plain or gzipped): each loop's warp stall
      samples, executed warp instructions and commonest stall reasons, then the instructions with the most
      samples. Samples are taken per warp, so a loop's share of them is the share of the warps' time spent in it.
  bench/sass_regions.py --sass FILE|-          cuobjdump's SASS text (scripts/dump_sass.sh --loops passes it):
      per kernel, its instruction count and each loop's span (instructions, those outside its inner loops, the
      commonest opcodes), without a GPU.

The offsets are the same in both (from the kernel's first instruction), so a profile's loops can be read in
the code that scripts/dump_sass.sh prints.
"""
import argparse
import collections
import csv
import gzip
import re
import sys

# An unconditional jump back over more than this many instructions leaves out-of-line code (the retry blocks
# of barrier waits at the end of a kernel); it is no loop.
LONGEST_UNCONDITIONAL_LOOP = 2048


class Instruction:
    def __init__(self, offset, source, samples=0, executed=0, stalls=None):
        self.offset, self.source = offset, source
        self.samples, self.executed, self.stalls = samples, executed, stalls or {}

    def opcode(self):
        words = self.source.split()
        return words[1 if words[0].startswith("@") else 0].split(".")[0]


def loops_of(code, base=0):
    """(start, end) offsets of a kernel's loops; branch targets are `base` + offset."""
    offsets = {i.offset for i in code}
    loops = []
    for i in code:
        m = re.search(r"\bBRA\b.*?(0x[0-9a-f]+)", i.source)
        if not m:
            continue
        target = int(m.group(1), 16) - base
        long_jump = i.offset - target > 16 * LONGEST_UNCONDITIONAL_LOOP
        if target in offsets and target < i.offset and (i.source.startswith("@") or not long_jump):
            loops.append((target, i.offset))
    return loops


def regions_of(code, loops):
    """The instructions of each loop (innermost holding each instruction; None: outside loops), in order."""
    regions = collections.OrderedDict()
    for i in code:
        holding = [span for span in loops if span[0] <= i.offset <= span[1]]
        key = min(holding, key=lambda span: span[1] - span[0]) if holding else None
        regions.setdefault(key, []).append(i)
    return regions


def region_name(key):
    return f"loop {key[0]:#07x}-{key[1]:#07x}" if key else "outside loops"


def read_profile(path):
    """A launch's instructions from ncu's source-page csv, and the first one's absolute address."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        rows = list(csv.reader(f))
    header_at = next((k for k, r in enumerate(rows) if r and r[0] == "Address"), None)
    if header_at is None:
        sys.exit(f"sass_regions: {path} has no 'Address' header row (not an ncu source-page csv)")
    header = rows[header_at]
    column = {name: k for k, name in enumerate(header)}
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

    code = [Instruction(int(r[0], 16) - base, r[column["Source"]].strip(),
                        number(r, "Warp Stall Sampling (All Samples)"), number(r, "Instructions Executed"),
                        {s: number(r, s) for s in stalls}) for r in body]
    return code, base


def print_profile(path, top):
    code, base = read_profile(path)
    total = sum(i.samples for i in code) or 1
    print(f"{total} warp stall samples, {sum(i.executed for i in code) / 1e9:.3f} G warp instructions executed")
    print(f"{'region (innermost loop)':28s} {'instr':>6s} {'samples':>8s} {'executed':>11s}  "
          "stall reasons (% of all samples)")
    regions = regions_of(code, loops_of(code, base))
    for key, body in sorted(regions.items(), key=lambda item: -sum(i.samples for i in item[1])):
        samples = sum(i.samples for i in body)
        if samples * 1000 < total:
            continue  # under 0.1%
        stalls = collections.Counter()
        for i in body:
            stalls.update(i.stalls)
        reasons = ", ".join(f"{name[len('stall_'):]} {100 * v / total:.1f}" for name, v in stalls.most_common(4) if v)
        print(f"{region_name(key):28s} {len(body):6d} {100 * samples / total:7.1f}% "
              f"{sum(i.executed for i in body) / 1e6:9.1f} M  {reasons}")
    print(f"\nThe {top} instructions with the most samples:")
    for i in sorted(code, key=lambda i: -i.samples)[:top]:
        reason = max(i.stalls, key=i.stalls.get)[len("stall_"):] if i.stalls else ""
        print(f"  {i.offset:#07x} {i.source[:56]:56s} {100 * i.samples / total:5.1f}%  "
              f"executed {i.executed:>10d}  mostly {reason}")


def print_sass_loops(path):
    text = sys.stdin if path == "-" else open(path)
    kernels, name = collections.OrderedDict(), None
    for line in text:
        m = re.search(r"Function : (\S+)", line)
        if m:
            name = m.group(1)
            kernels[name] = []
            continue
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line)
        if m and name:
            kernels[name].append(Instruction(int(m.group(1), 16), m.group(2)))
    for name, code in kernels.items():
        print(f"{name}: {len(code)} instructions")
        for key, body in regions_of(code, loops_of(code)).items():
            if key is None:
                continue
            span = [i for i in code if key[0] <= i.offset <= key[1]]
            opcodes = collections.Counter(i.opcode() for i in span)
            common = ", ".join(f"{op} {n}" for op, n in opcodes.most_common(8))
            print(f"  {region_name(key)}: {len(span)} instructions, {len(body)} outside inner loops ({common})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("input", help="ncu source-page csv (.gz too), or with --sass cuobjdump's SASS text (- for stdin)")
    parser.add_argument("--sass", action="store_true", help="the input is SASS text: list each kernel's loops")
    parser.add_argument("--top", type=int, default=20, help="instructions listed by samples (csv input)")
    args = parser.parse_args()
    if args.sass:
        print_sass_loops(args.input)
    else:
        print_profile(args.input, args.top)


if __name__ == "__main__":
    main()
