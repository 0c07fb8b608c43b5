// Command otlpsink is a minimal OTLP/HTTP receiver for benchmarks: it
// accepts POST /v1/traces, /v1/metrics and /v1/logs (protobuf), counts the
// spans it decodes and answers success, so that a benchmark with tracing on
// pays the real export cost without a collector installed.
//
//	go run ./scripts/otlpsink -addr 127.0.0.1:4318
//
// On SIGINT or SIGTERM it prints the requests and spans it received.
package main

import (
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4318", "listen address")
	flag.Parse()
	var requests, spans atomic.Int64
	http.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		var rd io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rd = zr
		}
		body, err := io.ReadAll(rd)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		requests.Add(1)
		if r.URL.Path == "/v1/traces" {
			var req colltrace.ExportTraceServiceRequest
			if err := proto.Unmarshal(body, &req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			for _, rs := range req.ResourceSpans {
				for _, ss := range rs.ScopeSpans {
					spans.Add(int64(len(ss.Spans)))
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty message is a valid Export*ServiceResponse
	})
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		fmt.Printf("otlpsink: %d requests, %d spans\n", requests.Load(), spans.Load())
		os.Exit(0)
	}()
	log.Fatal(http.ListenAndServe(*addr, nil))
}
