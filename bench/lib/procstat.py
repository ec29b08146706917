"""Memory and CPU of one process tree, read from /proc.

    procstat.py SID

prints one JSON object for every process in session SID (bench/run starts
each gateway with setsid, so its session holds the gateway and every
worker it forks, and nothing else):

  procs   number of processes
  rss_kb  sum of VmRSS now
  hwm_kb  sum of VmHWM, each process's peak RSS since it started (for a
          multi-process server an upper bound of the tree's peak, since
          pages shared between workers count once per worker)
  pss_kb  sum of Pss now (shared pages divided among their sharers: the
          tree's real footprint)
  cpu_s   user + system CPU seconds of the live processes and their reaped
          children
  fds     open file descriptors (sockets included) of the live processes
"""
import json
import os
import sys


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    sid = int(sys.argv[1])
    tick = os.sysconf("SC_CLK_TCK")
    out = {"procs": 0, "rss_kb": 0, "hwm_kb": 0, "pss_kb": 0, "cpu_s": 0.0, "fds": 0}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            # Fields after the command name, which may hold spaces.
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) != sid:  # field 6: session id
                continue
            utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
            out["procs"] += 1
            out["cpu_s"] += (utime + stime + cutime + cstime) / tick
            out["rss_kb"] += status_kb(name, "VmRSS")
            out["hwm_kb"] += status_kb(name, "VmHWM")
            out["pss_kb"] += pss_kb(name)
            out["fds"] += len(os.listdir(f"/proc/{name}/fd"))
        except (OSError, ValueError, IndexError):
            continue  # exited while being read
    out["cpu_s"] = round(out["cpu_s"], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
