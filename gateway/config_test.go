package gateway

import (
	"strings"
	"testing"
	"time"
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
		})
	}
}
