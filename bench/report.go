package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// reportCmd prints, per cluster and scenario, the median over runs of each
// system and its ratios to "weir" (Weir over HTTP), "nats" (NATS default)
// and "nats-sync" measured in the same file.
func reportCmd(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: weircmp report FILE.jsonl")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	type key struct{ cluster, scenario, label string }
	runs := map[key][]result{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return err
		}
		k := key{r.Cluster, r.Scenario, r.Label}
		runs[k] = append(runs[k], r)
	}
	median := func(rs []result, get func(result) float64) float64 {
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
	rate := func(r result) float64 { return r.Rate }
	p50 := func(r result) float64 { return r.P50us }
	p99 := func(r result) float64 { return r.P99us }
	cpu := func(r result) float64 { return r.ServerCPUus }
	labels := []string{"weir", "weir-prop", "weir-kafka", "nats", "nats-sync"}
	seen := map[string]bool{}
	for _, l := range labels {
		seen[l] = true
	}
	var others []string
	for k := range runs {
		if !seen[k.label] {
			seen[k.label] = true
			others = append(others, k.label)
		}
	}
	sort.Strings(others)
	labels = append(labels, others...)
	// Weir over HTTP and NATS send 10 producers × batches of 100 and ≤1,000
	// records per fetch; the Kafka client keeps 1,000 records in flight and
	// fetches with its defaults (docs/benchmarks.md).
	rows := []struct{ scenario, name string }{
		{"batch", "async publish, 1,000 records in flight"},
		{"one", "one at a time, 1 producer"},
		{"steady", "steady %.0f records/s offered, linger 0"},
		{"consume", "consume from the start, 1 reader"},
	}
	fmt.Println("| cluster | load | system | runs | records/s (median) | × Weir HTTP | × NATS default | × NATS sync always | p50 / p99 ms (median) | server CPU µs/record (median) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, cl := range []string{"R1", "R3"} {
		for _, row := range rows {
			weir := runs[key{cl, row.scenario, "weir"}]
			base := runs[key{cl, row.scenario, "nats"}]
			sync := runs[key{cl, row.scenario, "nats-sync"}]
			for _, l := range labels {
				rs := runs[key{cl, row.scenario, l}]
				if len(rs) == 0 {
					continue
				}
				m := median(rs, rate)
				ratio := func(o []result) string {
					if len(o) == 0 || median(o, rate) == 0 {
						return "—"
					}
					return fmt.Sprintf("%.2f", m/median(o, rate))
				}
				lat := ""
				if row.scenario != "consume" {
					lat = fmt.Sprintf("%.2f / %.2f", median(rs, p50)/1e3, median(rs, p99)/1e3)
				}
				cpuCol := ""
				if c := median(rs, cpu); c > 0 {
					cpuCol = fmt.Sprintf("%.1f", c)
				}
				var errs int64
				for _, r := range rs {
					errs += r.Errors
				}
				name := row.name
				if row.scenario == "steady" {
					name = fmt.Sprintf(name, rs[0].Offered)
				}
				if errs > 0 {
					name += fmt.Sprintf(" (%d failed requests)", errs)
				}
				fmt.Printf("| %s | %s | %s | %d | %.0f | %s | %s | %s | %s | %s |\n", cl, name, l, len(rs), m, ratio(weir), ratio(base), ratio(sync), lat, cpuCol)
			}
		}
	}
	return nil
}
