package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for none
	}{
		{"zero", Config{}, ""},
		{"set", Config{MaxBodyBytes: 1 << 10, ReadTimeout: time.Second, WebSocket: WSConfig{MaxInflight: 4}}, ""},
		{"negative body", Config{MaxBodyBytes: -1}, "Config.MaxBodyBytes is -1"},
		{"negative timeout", Config{ProduceTimeout: -time.Second}, "Config.ProduceTimeout is -1s"},
		{"negative ws int", Config{WebSocket: WSConfig{MaxSubscriptions: -2}}, "Config.WebSocket.MaxSubscriptions is -2"},
		{"negative ws duration", Config{WebSocket: WSConfig{PongTimeout: -time.Minute}}, "Config.WebSocket.PongTimeout is -1m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
			// New validates too, and returns the same error.
			broker, err := core.NewBroker(nil, core.BrokerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			cfg := tt.cfg
			if cfg.Groups, err = core.NewGroupCoordinator(broker, core.GroupConfig{}); err != nil {
				t.Fatal(err)
			}
			s, err := New(broker, cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			case tt.want != "" && s != nil:
				t.Fatal("New returned a server with its error")
			}
			if s != nil {
				if err := s.Shutdown(t.Context()); err != nil {
					t.Fatalf("Shutdown = %v", err)
				}
			}
		})
	}
}

// newTestServer returns a gateway over store with cfg, its consumer
// groups (when cfg has none) never run: tests that use it join no group.
func newTestServer(tb testing.TB, store core.Store, cfg Config) *Server {
	tb.Helper()
	broker, err := core.NewBroker(store, core.BrokerConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	if cfg.Groups == nil {
		if cfg.Groups, err = core.NewGroupCoordinator(broker, core.GroupConfig{}); err != nil {
			tb.Fatal(err)
		}
	}
	s, err := New(broker, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
