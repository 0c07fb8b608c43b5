package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/server"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// TestTour runs the tour against a node started in-process, twice (the
// second run finds the topic and subscription there).
func TestTour(t *testing.T) {
	s, err := server.Start(server.Config{NodeID: 1, DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", RaftAddr: tu.FreeAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		var out bytes.Buffer
		if err := run(ctx, s.URL(), "", &out); err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, out.String())
		}
		for _, want := range []string{"fetched \"{\\\"amount\\\":", "polled", "acked", "streamed"} {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("run %d: no %q in\n%s", i, want, out.String())
			}
		}
	}
}
