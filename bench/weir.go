package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// runWeir runs one scenario against Weir nodes over HTTP/1.1 keep-alive,
// JSON produce requests, JSON or binary fetches.
func runWeir(c *config) (result, error) {
	hc := &fasthttp.Client{MaxConnsPerHost: max(4*c.producers, steadyHTTPWorkers), ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, MaxResponseBodySize: 256 << 20}
	if err := weirSetup(hc, c); err != nil {
		return result{}, err
	}
	switch c.scenario {
	case "batch":
		return weirProduce(hc, c, c.producers, c.batch)
	case "one":
		return weirProduce(hc, c, 1, 1)
	case "steady":
		return weirSteady(hc, c)
	case "consume":
		return weirConsume(hc, c)
	case "idle":
		return idle(c)
	}
	return result{}, fmt.Errorf("unknown scenario %q", c.scenario)
}

func weirDo(hc *fasthttp.Client, method, url string, body []byte) (int, []byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	if err := hc.DoTimeout(req, resp, time.Minute); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}

type weirTopic struct {
	Partitions []struct {
		Partition     int   `json:"partition"`
		Leader        int   `json:"leader"`
		HighWatermark int64 `json:"high_watermark"`
	} `json:"partitions"`
}

// weirSetup creates the topic if missing and waits until every partition
// has a leader and the cluster has settled (no moving or lagging replica).
func weirSetup(hc *fasthttp.Client, c *config) error {
	s := c.servers[0]
	topic := map[string]any{"name": c.topic, "partitions": c.partitions, "replication_factor": c.replicas}
	if c.compression != "" {
		topic["compression"] = c.compression
	}
	body, _ := json.Marshal(topic)
	st, b, err := weirDo(hc, "POST", s+"/v1/topics", body)
	if err != nil {
		return err
	}
	// 503 "no leader yet": created, but a busy node's replicas did not all
	// elect within the request; the wait below decides.
	if st != 201 && !bytes.Contains(b, []byte("topic_exists")) && st != 503 {
		return fmt.Errorf("create topic: %d %s", st, b)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for stable := 0; stable < 3; {
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s did not settle", c.topic)
		}
		ok := true
		if _, b, err := weirDo(hc, "GET", s+"/v1/cluster", nil); err != nil {
			ok = false
		} else {
			var cl struct {
				Leaderless int               `json:"leaderless"`
				Moving     int               `json:"moving"`
				Lagging    []json.RawMessage `json:"lagging"`
			}
			ok = json.Unmarshal(b, &cl) == nil && cl.Leaderless == 0 && cl.Moving == 0 && len(cl.Lagging) == 0
		}
		if t, err := weirTopicOf(hc, c); err != nil {
			ok = false
		} else {
			for _, p := range t.Partitions {
				ok = ok && p.Leader > 0
			}
		}
		if ok {
			stable++
		} else {
			stable = 0
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

func weirTopicOf(hc *fasthttp.Client, c *config) (weirTopic, error) {
	var t weirTopic
	st, b, err := weirDo(hc, "GET", c.servers[0]+"/v1/topics/"+c.topic, nil)
	if err != nil {
		return t, err
	}
	if st != 200 {
		return t, fmt.Errorf("get topic: %d %s", st, b)
	}
	return t, json.Unmarshal(b, &t)
}

// weirBodies returns a few pre-built produce bodies of n keyed records for
// producer p (distinct keys, spread over the partitions by Weir's murmur2),
// in the encoding of c.produce, and their content type.
func weirBodies(c *config, p, n int) ([][]byte, string) {
	if c.produce == "binary" {
		return weirBinaryBodies(c, p, n), binaryMediaType
	}
	var out [][]byte
	for v := 0; v < 8; v++ {
		var b bytes.Buffer
		b.WriteString(`{"records":[`)
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"key":"` + keyOf(p, v*n+i) + `","value":"`)
			b.Write(c.value(v*n + i))
			b.WriteString(`"}`)
		}
		b.WriteString(`]}`)
		out = append(out, b.Bytes())
	}
	if n == 1 { // one at a time: more keys, so that every partition is hit
		for v := 8; v < 64; v++ {
			out = append(out, []byte(`{"records":[{"key":"`+keyOf(p, v)+`","value":"`+string(c.value(v))+`"}]}`))
		}
	}
	return out, "application/json"
}

// weirProduce runs producers that each send one request of batch records at
// a time (producer i through server i mod len(servers)) for c.duration.
func weirProduce(hc *fasthttp.Client, c *config, producers, batch int) (result, error) {
	t := newTally(producers)
	start := startClock()
	deadline := start.Add(c.duration)
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			target := c.servers[p%len(c.servers)] + "/v1/topics/" + c.topic + "/records"
			bodies, ct := weirBodies(c, p, batch)
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for i := 0; time.Now().Before(deadline); i++ {
				req.SetRequestURI(target)
				req.Header.SetMethod("POST")
				req.Header.SetContentType(ct)
				req.SetBodyRaw(bodies[i%len(bodies)])
				t0 := time.Now()
				err := hc.DoTimeout(req, resp, time.Minute)
				if err != nil || resp.StatusCode() != 200 {
					t.fail(func() string { return fmt.Sprintf("%v %d %s", err, resp.StatusCode(), resp.Body()) })
					continue
				}
				t.ack(p, batch, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	return t.result(start)
}

// weirConsume reads every partition from the start to its high watermark
// with one reader (one partition after the other), c.perFetch records per
// fetch. The JSON answer's records are not decoded: the count is
// next_offset minus the fetch offset (a produce-only topic has dense
// offsets), so the client's JSON parsing does not bound the figure.
func weirConsume(hc *fasthttp.Client, c *config) (result, error) {
	t, err := weirTopicOf(hc, c)
	if err != nil {
		return result{}, err
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	var total int64
	start := startClock()
	for _, p := range t.Partitions {
		off := int64(0)
		for off < p.HighWatermark {
			req.SetRequestURI(fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=%d&max_records=%d&max_bytes=16777216",
				c.servers[0], c.topic, p.Partition, off, c.perFetch))
			req.Header.SetMethod("GET")
			if c.accept == "binary" {
				req.Header.Set("Accept", binaryMediaType)
			}
			if err := hc.DoTimeout(req, resp, time.Minute); err != nil {
				return result{}, err
			}
			if resp.StatusCode() != 200 {
				return result{}, fmt.Errorf("fetch: %d %s", resp.StatusCode(), resp.Body())
			}
			var next int64
			var n int
			if c.accept == "binary" {
				next, n, err = countBinary(resp.Body())
			} else {
				next, err = nextOffsetJSON(resp.Body())
				n = int(next - off)
			}
			if err != nil {
				return result{}, err
			}
			if next <= off || n <= 0 {
				return result{}, fmt.Errorf("fetch at %d of partition %d made no progress", off, p.Partition)
			}
			total += int64(n)
			off = next
		}
	}
	if total == 0 {
		return result{}, errEmpty(c)
	}
	return result{Records: total, Seconds: time.Since(start).Seconds()}, nil
}

// errEmpty is a consume of a topic (streams) with nothing to read: the
// consume scenario reads what an earlier batch scenario wrote.
func errEmpty(c *config) error {
	return fmt.Errorf("topic %s is empty: the consume scenario reads what a batch scenario wrote (SCENARIOS=\"batch consume\")", c.topic)
}

func nextOffsetJSON(b []byte) (int64, error) {
	const k = `"next_offset":`
	i := bytes.LastIndex(b, []byte(k))
	if i < 0 {
		return 0, fmt.Errorf("no next_offset in the fetch answer")
	}
	b = b[i+len(k):]
	j := bytes.IndexAny(b, ",}")
	if j < 0 {
		return 0, fmt.Errorf("bad next_offset")
	}
	return strconv.ParseInt(string(b[:j]), 10, 64)
}
