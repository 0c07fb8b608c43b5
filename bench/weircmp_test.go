package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestQuantiles(t *testing.T) {
	var a, b []time.Duration
	for i := 1; i <= 1000; i++ { // 1..1000 µs, split over two producers
		if i%2 == 0 {
			a = append(a, time.Duration(i)*time.Microsecond)
		} else {
			b = append(b, time.Duration(i)*time.Microsecond)
		}
	}
	q := quantiles([][]time.Duration{a, b}, 0.5, 0.99, 0.999, 1)
	if want := []float64{501, 991, 1000, 1000}; !equalFloats(q, want) {
		t.Fatalf("quantiles = %v, want %v", q, want)
	}
	if q := quantiles(nil, 0.5); q[0] != 0 {
		t.Fatalf("quantiles of no samples = %v", q)
	}
	if p50, p99 := latencies([][]time.Duration{a, b}); p50 != 501 || p99 != 991 {
		t.Fatalf("latencies = %v, %v", p50, p99)
	}
}

func equalFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseRunRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-system", "weir"}, // no servers
		{"-system", "disk"}, // no dir
		{"-system", "disk", "-dir", t.TempDir(), "-size", "-1"}, // negative size
		{"-servers", "http://x", "-values", "zeros"},
	} {
		if _, err := parseRun(args); err == nil {
			t.Errorf("parseRun(%q) succeeded", args)
		}
	}
	c, err := parseRun([]string{"-system", "disk", "-dir", t.TempDir()})
	if err != nil || c.label != "disk" {
		t.Fatalf("disk without servers: %v, label %q", err, c.label)
	}
}

// The disk scenario fsyncs from every writer until the deadline, reports
// ordered latencies and leaves no file behind.
func TestRunDisk(t *testing.T) {
	dir := t.TempDir()
	r, err := runDisk(&config{dir: dir, partitions: 3, size: 4096, duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Records < 3 || r.Size != 4096 || !(0 < r.P50us && r.P50us <= r.P99us && r.P99us <= r.P999us) {
		t.Fatalf("result %+v", r)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("files left: %v", left)
	}
	if _, err := runDisk(&config{dir: dir, partitions: 0, duration: time.Millisecond}); err == nil {
		t.Fatal("no writers: no error")
	}
}

// The report prints a disk row per label (sizes differ), medians over runs.
func TestReportDiskRows(t *testing.T) {
	var in bytes.Buffer
	for _, r := range []result{
		{Label: "disk", Cluster: "R1", Scenario: "fsync", Records: 10, Rate: 100, P50us: 300, P99us: 1000, P999us: 5000, Size: 1024, Partitions: 4},
		{Label: "disk", Cluster: "R1", Scenario: "fsync", Records: 10, Rate: 300, P50us: 500, P99us: 3000, P999us: 9000, Size: 1024, Partitions: 4},
		{Label: "disk", Cluster: "R1", Scenario: "fsync", Records: 10, Rate: 200, P50us: 400, P99us: 2000, P999us: 7000, Size: 1024, Partitions: 4},
		{Label: "disk-window", Cluster: "R1", Scenario: "fsync", Records: 10, Rate: 50, P50us: 2000, P99us: 7000, P999us: 11000, Size: 262144, Partitions: 4},
		{Label: "weir", Cluster: "R1", Scenario: "batch", Records: 10, Rate: 1000, ClientCPUus: 1.5, Partitions: 4},
	} {
		b, _ := json.Marshal(r)
		in.Write(append(b, '\n'))
	}
	path := t.TempDir() + "/r.jsonl"
	if err := os.WriteFile(path, in.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := captureStdout(t, func() {
		if err := reportCmd([]string{path}); err != nil {
			t.Fatal(err)
		}
	})
	for _, want := range []string{
		"| append of 1024 bytes then fsync, 4 writers | disk | 3 | 200 | 0.40 / 2.00 / 7.00 |",
		"| append of 262144 bytes then fsync, 4 writers | disk-window | 1 | 50 | 2.00 / 7.00 / 11.00 |",
		"| R1 | async publish, 1,000 records in flight | weir | 1 | 1000 | 1.00 | — | — | 0.00 / 0.00 |  | 1.5 |  |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() { os.Stdout = old }()
	f()
	w.Close()
	return <-done
}
