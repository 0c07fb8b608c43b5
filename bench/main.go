// Command weircmp drives the same load against Weir (HTTP JSON), Weir
// through its Kafka listener (franz-go) and NATS JetStream (the NATS Go
// client) so that their figures can be put side by side:
// scripts/bench-compare.sh starts the servers and calls it.
//
//	weircmp run -system weir|kafka|nats -scenario batch|one|steady|consume|idle -servers A,B,C [flags]
//	weircmp run -system disk -dir DIR [-partitions N -size B -duration D]
//	weircmp report FILE.jsonl
//
// `run` prints one JSON line with the result; `report` reads those lines
// and prints, per scenario, the median of each system and its ratios to
// Weir over HTTP and to NATS. It lives in its own module so that the NATS
// client never enters the broker's go.mod.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// result is one run of one scenario against one system.
type result struct {
	Label    string  `json:"label"`    // system as shown in the table: weir, weir-kafka, nats, nats-sync
	Cluster  string  `json:"cluster"`  // R1 or R3
	Scenario string  `json:"scenario"` // batch, one, steady, consume
	Records  int64   `json:"records"`
	Seconds  float64 `json:"seconds"`
	Rate     float64 `json:"rate"` // records/s
	P50us    float64 `json:"p50_us,omitempty"`
	P99us    float64 `json:"p99_us,omitempty"`
	Errors   int64   `json:"errors,omitempty"`
	Offered  float64 `json:"offered,omitempty"` // records/s offered (steady)
	// ServerCPUus is the servers' CPU time per record in µs (-server-pids).
	ServerCPUus float64 `json:"server_cpu_us,omitempty"`
	// ClientCPUus is the load generator's own CPU time (weircmp and the
	// client library in it) per record in µs.
	ClientCPUus float64 `json:"client_cpu_us,omitempty"`
	// P999us is the 99.9th percentile latency and Size the bytes per
	// append (the disk scenario).
	P999us float64 `json:"p999_us,omitempty"`
	Size   int     `json:"size,omitempty"`
	// ServerWriteB is the bytes the servers wrote to the storage layer per
	// record (-server-pids).
	ServerWriteB float64 `json:"server_write_bytes,omitempty"`
	// Partitions of the topic (NATS: streams).
	Partitions int `json:"partitions"`
	// ServerCores is the CPU the servers used per process, in cores, over
	// the measured phase (-server-pids; the idle scenario).
	ServerCores float64 `json:"server_cores,omitempty"`
}

// config is the load shape, identical for both systems.
type config struct {
	system, scenario, label, cluster string
	servers, httpServers             []string
	topic                            string
	partitions, replicas             int
	producers, batch, size, perFetch int
	duration                         time.Duration
	rate                             int                // records/s offered (steady)
	idleWait                         time.Duration      // idle: quiet time before the measured phase
	accept                           string             // Weir fetch encoding: json or binary
	produce                          string             // Weir produce body: json or binary
	kafkaInflight                    int                // kafka: produce requests in flight per broker (0: kgo's default, 5 idempotent; N > 0: N, not idempotent)
	value                            func(i int) []byte // record i's value (-values, values.go)
	compression                      string             // Weir topic compression setting (-compression; "": the default)
	dir                              string             // disk: where the files go (-dir)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: weircmp run|report ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "report":
		err = reportCmd(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weircmp:", err)
		os.Exit(1)
	}
}

func runCmd(args []string) error {
	c, err := parseRun(args)
	if err != nil {
		return err
	}
	var r result
	switch c.system {
	case "weir":
		r, err = runWeir(c)
	case "nats":
		r, err = runNATS(c)
	case "kafka":
		r, err = runKafka(c)
	case "disk":
		r, err = runDisk(c)
	default:
		return fmt.Errorf("unknown system %q", c.system)
	}
	if err != nil {
		return err
	}
	r.Label, r.Cluster, r.Scenario, r.Partitions = c.label, c.cluster, c.scenario, c.partitions
	if r.Seconds > 0 {
		r.Rate = float64(r.Records) / r.Seconds
	}
	if r.Records > 0 && c.system != "disk" {
		r.ClientCPUus = (clientCPU() - ownAtStart) * 1e6 / float64(r.Records)
	}
	if len(cpuPids) > 0 && r.Records > 0 {
		r.ServerCPUus = (serverCPU() - cpuAtStart) * 1e6 / float64(r.Records)
		r.ServerWriteB = float64(serverWritten()-ioAtStart) / float64(r.Records)
	}
	b, _ := json.Marshal(r)
	fmt.Println(string(b))
	return nil
}

func splitServers(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, strings.TrimRight(v, "/"))
		}
	}
	return out
}
