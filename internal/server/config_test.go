package server

import (
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway"
)

// A negative limit fails Start with an error naming the field, before
// anything listens or opens the data dir.
func TestStartRejectsNegativeConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"broker", Config{Broker: core.BrokerConfig{MaxFetchRecords: -1}}, "BrokerConfig.MaxFetchRecords"},
		{"gateway", Config{Gateway: gateway.Config{ReadTimeout: -time.Second}}, "Config.ReadTimeout"},
		{"queues", Config{Queues: core.QueueConfig{MaxScan: -1}}, "QueueConfig.MaxScan"},
		{"groups", Config{Groups: core.GroupConfig{MaxMembers: -1}}, "GroupConfig.MaxMembers"},
		{"pipelines", Config{Pipelines: core.PipelinesConfig{MaxBatchBytes: -1}}, "PipelinesConfig.MaxBatchBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.cfg.DataDir = t.TempDir()
			tt.cfg.HTTPAddr, tt.cfg.RaftAddr = "127.0.0.1:0", "127.0.0.1:0"
			s, err := Start(tt.cfg)
			if err == nil {
				s.Close(t.Context())
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start: %v, want an error naming %s", err, tt.want)
			}
		})
	}
}
