package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
)

// runKey names the runs of one system (label) under one load (scenario,
// over a topic of so many partitions) on one cluster.
type runKey struct {
	cluster, scenario string
	partitions        int
	label             string
}

// reportCmd prints, per cluster, scenario and partition count, the median
// over runs of each system and its ratios to "weir" (Weir over HTTP),
// "nats" (NATS default) and "nats-sync" measured in the same file; then the
// idle rows (servers' CPU with no load), if any.
func reportCmd(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: weircmp report FILE.jsonl")
	}
	runs, err := readRuns(args[0])
	if err != nil {
		return err
	}
	labels := reportLabels(runs)
	// Weir over HTTP and NATS send 10 producers × batches of 100 and ≤1,000
	// records per fetch; the Kafka client keeps 1,000 records in flight and
	// fetches with its defaults (docs/benchmarks.md).
	rows := []struct{ scenario, name string }{
		{"batch", "async publish, 1,000 records in flight"},
		{"one", "one at a time, 1 producer"},
		{"steady", "steady %.0f records/s offered, linger 0"},
		{"consume", "consume from the start, 1 reader"},
	}
	fmt.Println("| cluster | load | system | runs | records/s (median) | × Weir HTTP | × NATS default | × NATS sync always | p50 / p99 ms (median) | server CPU µs/record (median) | client CPU µs/record (median) | server bytes written/record (median) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, cl := range []string{"R1", "R3"} {
		for _, row := range rows {
			for _, np := range partitionCounts(runs) {
				reportRow(runs, labels, runKey{cl, row.scenario, np, ""}, row.name)
			}
		}
	}
	reportIdle(runs, labels)
	reportDisk(runs)
	return nil
}

// reportRow prints the lines of one load (k without a label), one per system.
func reportRow(runs map[runKey][]result, labels []string, k runKey, name string) {
	of := func(label string) []result { k.label = label; return runs[k] }
	weir, base, sync := of("weir"), of("nats"), of("nats-sync")
	for _, l := range labels {
		rs := of(l)
		if len(rs) == 0 {
			continue
		}
		m := median(rs, resultRate)
		ratio := func(o []result) string {
			if len(o) == 0 || median(o, resultRate) == 0 {
				return "—"
			}
			return fmt.Sprintf("%.2f", m/median(o, resultRate))
		}
		lat, cpuCol := reportLatencyCPU(rs, k.scenario)
		clientCol := ""
		if c := median(rs, resultClientCPU); c > 0 {
			clientCol = fmt.Sprintf("%.1f", c)
		}
		written := ""
		if w := median(rs, resultWritten); w > 0 {
			written = fmt.Sprintf("%.0f", w)
		}
		load := reportLoadName(rs, k.scenario, name)
		if k.partitions != 4 {
			load += fmt.Sprintf(", %d partitions", k.partitions)
		}
		fmt.Printf("| %s | %s | %s | %d | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", k.cluster, load, l, len(rs), m, ratio(weir), ratio(base), ratio(sync), lat, cpuCol, clientCol, written)
	}
}

// reportIdle prints the idle rows: the servers' CPU per process, in cores,
// with no load, and its ratio to NATS default's.
func reportIdle(runs map[runKey][]result, labels []string) {
	header := false
	for _, cl := range []string{"R1", "R3"} {
		for _, np := range partitionCounts(runs) {
			k := runKey{cl, "idle", np, "nats"}
			nats := median(runs[k], resultCores)
			for _, l := range labels {
				k.label = l
				rs := runs[k]
				if len(rs) == 0 {
					continue
				}
				headOnce(&header, "cluster", "load", "system", "runs", "server CPU per node, cores (median)", "× NATS default")
				ratio := "—"
				if nats > 0 {
					ratio = fmt.Sprintf("%.2f", median(rs, resultCores)/nats)
				}
				fmt.Printf("| %s | idle, %d partitions | %s | %d | %.3f | %s |\n", cl, np, l, len(rs), median(rs, resultCores), ratio)
			}
		}
	}
}

// reportDisk prints the disk rows (weircmp run -system disk, disk.go): the
// fsyncs per second and their latency, median over runs.
func reportDisk(runs map[runKey][]result) {
	header := false
	labels := distinct(runs, func(k runKey) string {
		if k.scenario == "fsync" {
			return k.label
		}
		return ""
	}, map[string]bool{"": true})
	for _, np := range partitionCounts(runs) {
		for _, l := range labels {
			rs := runs[runKey{"R1", "fsync", np, l}]
			if len(rs) == 0 {
				continue
			}
			headOnce(&header, "load", "system", "runs", "append+fsync/s (median)", "p50 / p99 / p99.9 ms (median)")
			fmt.Printf("| append of %d bytes then fsync, %d writers | %s | %d | %.0f | %.2f / %.2f / %.2f |\n",
				rs[0].Size, np, l, len(rs), median(rs, resultRate),
				median(rs, resultP50)/1e3, median(rs, resultP99)/1e3, median(rs, resultP999)/1e3)
		}
	}
}

// headOnce starts a table after a blank line, with the columns cols, unless
// *done says it has been started already.
func headOnce(done *bool, cols ...string) {
	if *done {
		return
	}
	*done = true
	fmt.Println()
	fmt.Println("| " + strings.Join(cols, " | ") + " |")
	fmt.Println("|" + strings.Repeat("---|", len(cols)))
}

// partitionCounts lists the partition counts found in runs, ascending.
func partitionCounts(runs map[runKey][]result) []int {
	return distinct(runs, func(k runKey) int { return k.partitions }, nil)
}

// distinct lists the values of key over the runs, each once and sorted,
// leaving out those in skip.
func distinct[T cmp.Ordered](runs map[runKey][]result, key func(runKey) T, skip map[T]bool) []T {
	seen := map[T]bool{}
	var out []T
	for k := range runs {
		if v := key(k); !seen[v] && !skip[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// readRuns reads the results (JSON lines; other lines are skipped) of the
// file at path, by cluster, scenario and system.
func readRuns(path string) (map[runKey][]result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	runs := map[runKey][]result{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, err
		}
		if r.Partitions == 0 {
			r.Partitions = 4 // results from before the field: always 4
		}
		k := runKey{r.Cluster, r.Scenario, r.Partitions, r.Label}
		runs[k] = append(runs[k], r)
	}
	return runs, nil
}

// reportLabels lists the systems in report order: the known ones, then
// the others found in runs, sorted.
func reportLabels(runs map[runKey][]result) []string {
	labels := []string{"weir", "weir-prop", "weir-kafka", "nats", "nats-sync"}
	known := map[string]bool{}
	for _, l := range labels {
		known[l] = true
	}
	return append(labels, distinct(runs, func(k runKey) string { return k.label }, known)...)
}

// median is the median of get over rs (0 for none).
func median(rs []result, get func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = get(r)
	}
	sort.Float64s(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// Fields of a result, for median.
func resultRate(r result) float64      { return r.Rate }
func resultP50(r result) float64       { return r.P50us }
func resultP99(r result) float64       { return r.P99us }
func resultCPU(r result) float64       { return r.ServerCPUus }
func resultClientCPU(r result) float64 { return r.ClientCPUus }
func resultP999(r result) float64      { return r.P999us }
func resultWritten(r result) float64   { return r.ServerWriteB }
func resultCores(r result) float64     { return r.ServerCores }

// reportLatencyCPU formats the latency (none for a consume scenario) and
// server CPU (none when not measured) columns of rs.
func reportLatencyCPU(rs []result, scenario string) (lat, cpuCol string) {
	if scenario != "consume" {
		lat = fmt.Sprintf("%.2f / %.2f", median(rs, resultP50)/1e3, median(rs, resultP99)/1e3)
	}
	if c := median(rs, resultCPU); c > 0 {
		cpuCol = fmt.Sprintf("%.1f", c)
	}
	return lat, cpuCol
}

// reportLoadName is the load column of rs: name, with the offered rate of
// a steady scenario and the count of failed requests, if any.
func reportLoadName(rs []result, scenario, name string) string {
	var errs int64
	for _, r := range rs {
		errs += r.Errors
	}
	if scenario == "steady" {
		name = fmt.Sprintf(name, rs[0].Offered)
	}
	if errs > 0 {
		name += fmt.Sprintf(" (%d failed requests)", errs)
	}
	return name
}
