package server

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	tu "github.com/weir-broker/weir/internal/testutil"
)

// BenchmarkWSIdleConnection reports the server's memory (Go heap in use
// plus goroutine stacks) per idle WebSocket connection, bare and with one
// idle subscription. The clients are raw TCP connections that did the
// handshake by hand, so they add almost nothing to the figure.
//
//	go test -run '^$' -bench WSIdle -benchtime 2000x ./internal/server
func BenchmarkWSIdleConnection(b *testing.B) {
	for _, sub := range []bool{false, true} {
		name := "bare"
		if sub {
			name = "subscribed"
		}
		b.Run(name, func(b *testing.B) {
			s, err := Start(Config{NodeID: 1, DataDir: b.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: tu.FreeAddr(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := s.WaitReady(ctx); err != nil {
				b.Fatal(err)
			}
			if r := tu.Do(b, "POST", s.URL()+"/v1/topics", map[string]any{"name": "idle"}); r.Status != 201 {
				b.Fatalf("create topic: %d", r.Status)
			}
			addr := s.Addr()
			dial := func() net.Conn {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				fmt.Fprintf(c, "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", addr)
				br := bufio.NewReader(c)
				resp, err := http.ReadResponse(br, nil)
				if err != nil || resp.StatusCode != 101 {
					b.Fatalf("handshake: %v %v", err, resp)
				}
				if sub {
					// A masked client text frame: {"op":"subscribe","topic":"idle"}
					msg := []byte(`{"op":"subscribe","topic":"idle"}`)
					frame := []byte{0x81, 0x80 | byte(len(msg)), 0, 0, 0, 0}
					c.Write(append(frame, msg...))
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					if _, err := br.ReadByte(); err != nil { // the subscribed frame
						b.Fatal(err)
					}
				}
				return c
			}
			mem := func() uint64 {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return ms.HeapInuse + ms.StackInuse
			}
			dial().Close()
			time.Sleep(200 * time.Millisecond)
			before := mem()
			conns := make([]net.Conn, b.N)
			b.ResetTimer()
			for i := range conns {
				conns[i] = dial()
			}
			b.StopTimer()
			deadline := time.Now().Add(30 * time.Second)
			for s.Gateway.WSStats().Connections < b.N && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond)
			after := mem()
			b.ReportMetric(float64(after-before)/float64(b.N)/1024, "KiB/conn")
			for _, c := range conns {
				c.Close()
			}
		})
	}
}
