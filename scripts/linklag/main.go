// Command linklag measures a cluster link's mirror lag record by record:
// it tails every partition of a mirror topic on the destination cluster
// (binary fetch, long-poll) and, for each record, takes the time it became
// readable there minus its timestamp (stamped by the source cluster's
// broker when it accepted the record, on the same machine's clock). It
// runs until -duration has passed or -records records were seen, then
// prints the count and the p50, p99 and max lag.
//
//	go run ./scripts/linklag -server http://127.0.0.1:18081 -topic bench -records 300000
//
// scripts/bench-link.sh runs it against two local clusters.
package main

import (
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	server := flag.String("server", "http://127.0.0.1:18081", "destination node")
	topic := flag.String("topic", "bench", "mirror topic")
	records := flag.Int64("records", 0, "stop after this many records (0: at -duration)")
	duration := flag.Duration("duration", time.Minute, "stop after this long at most")
	flag.Parse()

	var meta struct {
		Partitions []struct {
			Partition int `json:"partition"`
		} `json:"partitions"`
	}
	deadline := time.Now().Add(*duration)
	for {
		resp, err := http.Get(*server + "/v1/topics/" + *topic)
		if err == nil && resp.StatusCode == 200 {
			json.NewDecoder(resp.Body).Decode(&meta)
			resp.Body.Close()
			break
		}
		if err == nil {
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			log.Fatalf("topic %s never appeared on %s", *topic, *server)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var seen atomic.Int64
	var mu sync.Mutex
	var lags []int64 // ms
	var wg sync.WaitGroup
	for _, p := range meta.Partitions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off := int64(0)
			var local []int64
			defer func() { mu.Lock(); lags = append(lags, local...); mu.Unlock() }()
			for time.Now().Before(deadline) && (*records == 0 || seen.Load() < *records) {
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=%d&max_records=5000&wait_ms=500", *server, *topic, p.Partition, off), nil)
				req.Header.Set("Accept", "application/vnd.weir.records")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					log.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				now := time.Now().UnixMilli()
				if resp.StatusCode == 503 { // a new mirror partition without a leader yet
					time.Sleep(50 * time.Millisecond)
					continue
				}
				if resp.StatusCode != 200 {
					log.Fatalf("fetch: %d %s", resp.StatusCode, body)
				}
				next, ts := decode(body)
				for _, t := range ts {
					local = append(local, now-t)
				}
				seen.Add(int64(len(ts)))
				off = next
			}
		}()
	}
	wg.Wait()
	if len(lags) == 0 {
		fmt.Println("linklag: no records")
		os.Exit(1)
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	q := func(f float64) int64 { return lags[min(len(lags)-1, int(f*float64(len(lags))))] }
	fmt.Printf("linklag: %d records, lag p50 %d ms, p99 %d ms, max %d ms\n", len(lags), q(0.50), q(0.99), lags[len(lags)-1])
}

// decode returns the next offset and the records' timestamps of a "WRB1"
// answer (gateway.AppendRecordsBinary).
func decode(b []byte) (int64, []int64) {
	be := binary.BigEndian
	if len(b) < 32 || string(b[:4]) != "WRB1" {
		log.Fatalf("not a binary fetch answer: %.100q", b)
	}
	next := int64(be.Uint64(b[4:]))
	n := int(be.Uint32(b[28:]))
	b = b[32:]
	ts := make([]int64, 0, n)
	for i := 0; i < n; i++ {
		ts = append(ts, int64(be.Uint64(b[8:])))
		b = b[16:]
		if kl := int32(be.Uint32(b)); kl >= 0 {
			b = b[4+kl:]
		} else {
			b = b[4:]
		}
		b = b[4+be.Uint32(b):]
		hc := be.Uint32(b)
		b = b[4:]
		for j := uint32(0); j < hc; j++ {
			b = b[4+be.Uint32(b):]
			b = b[4+be.Uint32(b):]
		}
	}
	return next, ts
}
