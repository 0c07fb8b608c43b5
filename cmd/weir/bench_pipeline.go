package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/sdk/client"
)

// newBenchPipelineCmd measures how fast a pipeline moves records: it loads
// an input topic, then creates the pipeline and times until every record is
// in the output, beside the plain produce rate of the same records.
func newBenchPipelineCmd() *cobra.Command {
	var (
		modulePath, guarantee   string
		records, size, parts, n int
		batch                   int
	)
	cmd := &cobra.Command{
		Use:   "pipeline --module FILE.wasm",
		Short: "Time a pipeline (e.g. passthrough) over a pre-loaded topic; compare with plain produce",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := clientFor(cmd)
			base, _ := cmd.Flags().GetString("server")
			base = strings.TrimRight(base, "/")
			wasm, err := os.ReadFile(modulePath)
			if err != nil {
				return err
			}
			suffix := fmt.Sprint(time.Now().UnixNano() % 1e9)
			in, out, name := "bp-in-"+suffix, "bp-out-"+suffix, "bp-"+suffix
			for _, t := range []string{in, out} {
				if _, err := c.CreateTopic(cmd.Context(), client.TopicConfig{Name: t, Partitions: parts}); err != nil {
					return err
				}
				if err := awaitLeaders(cmd.Context(), c, t, time.Minute); err != nil {
					return err
				}
			}
			if _, err := c.UploadModule(cmd.Context(), name, wasm); err != nil {
				return err
			}
			// Load the input: the plain produce rate of the same records.
			start := time.Now()
			if err := loadTopic(base+"/v1/topics/"+in+"/records", benchBody(size, 100), n, records); err != nil {
				return err
			}
			prodEl := time.Since(start)
			// Now the pipeline moves them.
			start = time.Now()
			spec := client.PipelineConfig{Name: name, Module: name, Inputs: []string{in}, Outputs: []string{out}, Guarantee: guarantee, BatchSize: batch}
			if _, err := c.CreatePipeline(cmd.Context(), spec); err != nil {
				return err
			}
			for {
				st, err := c.Pipeline(cmd.Context(), name)
				if err != nil {
					return err
				}
				if st.Processed >= int64(records) && st.Lag == 0 {
					break
				}
				if time.Since(start) > 10*time.Minute {
					return fmt.Errorf("pipeline did not finish: %s", st.Raw)
				}
				time.Sleep(20 * time.Millisecond)
			}
			pipeEl := time.Since(start)
			pr, pp := float64(records)/prodEl.Seconds(), float64(records)/pipeEl.Seconds()
			fmt.Fprintf(cmd.OutOrStdout(), "plain produce: %d records of %d B in %.2fs: %.0f records/s\n", records, size, prodEl.Seconds(), pr)
			fmt.Fprintf(cmd.OutOrStdout(), "pipeline (%s, batch %d, %d partitions): %.2fs: %.0f records/s = %.0f%% of plain produce\n", guarantee, batch, parts, pipeEl.Seconds(), pp, 100*pp/pr)
			c.DeletePipeline(cmd.Context(), name, false)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&modulePath, "module", "bin/examples/passthrough.wasm", "the module to run")
	f.StringVar(&guarantee, "guarantee", "at_least_once", "at_least_once or exactly_once")
	f.IntVar(&records, "records", 200000, "records to load and move")
	f.IntVar(&size, "record-size", 1024, "value bytes per record")
	f.IntVar(&parts, "partitions", 4, "partitions of the input and output topics")
	f.IntVar(&n, "producers", 16, "producers loading the input")
	f.IntVar(&batch, "batch-size", 1000, "records per Wasm call")
	return cmd
}

// awaitLeaders waits until every partition of topic has a leader.
func awaitLeaders(ctx context.Context, c *client.Client, topic string, bound time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		t, err := c.Topic(ctx, topic)
		if err == nil {
			ok := len(t.Partitions) > 0
			for _, p := range t.Partitions {
				ok = ok && p.Leader != 0
			}
			if ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s: not every partition has a leader after %v (last error: %v)", topic, bound, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// loadTopic posts body (a produce request of 100 records) to target from
// producers producers until records records were sent.
func loadTopic(target string, body []byte, producers, records int) error {
	hc := &fasthttp.Client{MaxConnsPerHost: 64, ReadTimeout: time.Minute}
	var sent atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for sent.Add(100) <= int64(records) {
				// A 503 (a leader moving) is retried within a bound: the
				// load may then hold a batch twice, which the pipeline
				// moves like any other.
				for deadline, backoff := time.Now().Add(time.Minute), 10*time.Millisecond; ; backoff = min(2*backoff, time.Second) {
					setPostJSON(req, target, body)
					err := hc.Do(req, resp)
					if err == nil && resp.StatusCode() == 200 {
						break
					}
					if err == nil && resp.StatusCode() == 503 && time.Now().Before(deadline) {
						time.Sleep(backoff)
						continue
					}
					if err != nil {
						firstErr.Store(fmt.Errorf("produce: %w", err))
					} else {
						firstErr.Store(fmt.Errorf("produce: %d %s", resp.StatusCode(), resp.Body()))
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		return e
	}
	return nil
}
