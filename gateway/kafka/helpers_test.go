package kafka

import (
	"net"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/memstore"
)

// testBroker is a broker over an in-memory store of node 1.
func testBroker(t *testing.T) (*memstore.Store, *core.Broker) {
	t.Helper()
	st := memstore.New(memstore.Config{NodeID: 1})
	b, err := core.NewBroker(st, core.BrokerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return st, b
}

// serveTest serves a listener for b on a free loopback port until the test
// ends, and returns a client of it.
func serveTest(t *testing.T, b *core.Broker) *kgo.Client {
	t.Helper()
	s, err := New(Config{Broker: b})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	cl, err := kgo.NewClient(kgo.SeedBrokers(ln.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
