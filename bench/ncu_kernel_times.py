"""Per-kernel durations from an ncu text report (`ncu --metrics gpu__time_duration.sum ...` output).

Prints one line a kernel name (templates stripped; with --templates, one a template instance): the last
launch's duration and the median over its launches, in ms, and the launch count. Used by
run_selection_check.sh (NCU=1) and run_ab.sh (--templates).
"""
import re
import statistics
import sys

SCALE = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3,
         "nsecond": 1e-6, "usecond": 1e-3, "msecond": 1.0, "second": 1e3}


def kernel_times(path, templates):
    times, name = {}, None
    for line in open(path):
        if ")x(" in line:
            m = re.search(r"(\w+)(<[^()]*>)?\(", line)
            name = m.group(1) + ((m.group(2) or "") if templates else "")
        m = re.search(r"gpu__time_duration.sum\s+(\S+)\s+([\d.,]+)", line)
        if m and name:
            times.setdefault(name, []).append(float(m.group(2).replace(",", "")) * SCALE[m.group(1)])
    return times


def main():
    args = sys.argv[1:]
    templates = "--templates" in args
    paths = [a for a in args if a != "--templates"]
    if len(paths) != 1:
        sys.exit("usage: ncu_kernel_times.py [--templates] NCU_TEXT_REPORT")
    for kernel, v in kernel_times(paths[0], templates).items():
        print(f"  {kernel:32s} last {v[-1]:9.3f}  median {statistics.median(v):9.3f}  ({len(v)} launches)")


if __name__ == "__main__":
    main()
