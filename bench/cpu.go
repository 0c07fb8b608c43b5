package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Server CPU per record: on a shared, noisy machine the records/s of a run
// move with whatever else runs, but the CPU time the servers spend per
// record moves much less; -server-pids names the server processes
// (scripts/bench-compare.sh passes them) and each result then carries the
// CPU seconds (user + system) they used from the start of the measured
// phase to its end, per record.
//
// The load generator's own CPU per record (this process: client CPU) is
// measured the same way: the servers and the client share the machine's
// cores, so the two together bound the records/s the machine can reach
// (docs/benchmarks.md, "Weir and NATS JetStream").
//
// Beside it, the bytes the servers wrote per record: what they sent to the
// storage layer (write_bytes of /proc/PID/io, counted when a page is
// dirtied, so page-cache writes count in the phase that made them): like
// the CPU, a cost per record that moves little with the machine's noise.

var (
	cpuPids    []int   // -server-pids
	cpuAtStart float64 // servers' CPU seconds when the measured phase began
	ownAtStart float64 // this process's CPU seconds when the measured phase began
	ioAtStart  int64   // servers' bytes written when the measured phase began
)

// startClock marks the start of a scenario's measured phase.
func startClock() time.Time {
	cpuAtStart, ownAtStart, ioAtStart = serverCPU(), clientCPU(), serverWritten()
	return time.Now()
}

// serverWritten is the bytes the processes of cpuPids have written to the
// storage layer so far (those that exited count nothing).
func serverWritten() int64 {
	var n int64
	for _, pid := range cpuPids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
				w, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += w
			}
		}
	}
	return n
}

// serverCPU is the CPU seconds used so far by the processes of cpuPids
// (those that exited count nothing).
func serverCPU() float64 { return cpuSeconds(cpuPids) }

// clientCPU is the CPU seconds this process (the load generator and its
// client library) has used so far.
func clientCPU() float64 { return cpuSeconds([]int{os.Getpid()}) }

// cpuSeconds is the CPU seconds (user + system, all threads) used so far by
// the processes pids, from /proc (those that exited count nothing).
func cpuSeconds(pids []int) float64 {
	var ticks int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// The command name may hold spaces: fields count from after ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64) // utime: field 14 of stat
		st, _ := strconv.ParseInt(f[12], 10, 64) // stime: field 15
		ticks += ut + st
	}
	return float64(ticks) / 100 // USER_HZ, 100 on Linux
}

func parsePids(s string) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 0 {
			return nil, fmt.Errorf("-server-pids: bad pid %q", f)
		}
		out = append(out, pid)
	}
	return out, nil
}

// idle measures the servers' CPU with the topic set up and no load: after
// c.idleWait (an idle group may change how it ticks only after a while:
// Weir's --quiesce waits twenty election timeouts), the CPU they use over
// c.duration, in cores per server process.
func idle(c *config) (result, error) {
	if len(cpuPids) == 0 {
		return result{}, fmt.Errorf("idle: -server-pids is required")
	}
	time.Sleep(c.idleWait)
	start := startClock()
	time.Sleep(c.duration)
	el := time.Since(start).Seconds()
	return result{Seconds: el, ServerCores: (serverCPU() - cpuAtStart) / el / float64(len(cpuPids))}, nil
}
