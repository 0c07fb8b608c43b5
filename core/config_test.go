package core

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  interface{ Validate() error }
		want string // substring of the error; "" for none
	}{
		{"broker zero", &BrokerConfig{}, ""},
		{"broker set", &BrokerConfig{MaxPartitions: 8, MaxWait: time.Second, DefaultRetentionMs: 1000}, ""},
		{"broker retention forever", &BrokerConfig{DefaultRetentionMs: -1}, ""},
		{"broker retention below -1", &BrokerConfig{DefaultRetentionMs: -2}, "BrokerConfig.DefaultRetentionMs is -2"},
		{"broker negative int", &BrokerConfig{MaxFetchBytes: -1}, "BrokerConfig.MaxFetchBytes is -1"},
		{"broker negative duration", &BrokerConfig{RetentionInterval: -time.Second}, "BrokerConfig.RetentionInterval is -1s"},
		{"broker unacked", &BrokerConfig{MaxUnackedProduces: -5}, "BrokerConfig.MaxUnackedProduces"},
		{"broker no merging", &BrokerConfig{ProposalsInFlight: -1}, ""},
		{"broker proposals below -1", &BrokerConfig{ProposalsInFlight: -2}, "BrokerConfig.ProposalsInFlight is -2"},
		{"queue zero", &QueueConfig{}, ""},
		{"queue set", &QueueConfig{MaxTracked: 10, OpTimeout: time.Second}, ""},
		{"queue negative int", &QueueConfig{PipelineDepth: -1}, "QueueConfig.PipelineDepth is -1"},
		{"queue negative duration", &QueueConfig{MaxVisibilityTimeout: -time.Minute}, "QueueConfig.MaxVisibilityTimeout is -1m0s"},
		{"queue maintenance", &QueueConfig{MaintenanceInterval: -1}, "QueueConfig.MaintenanceInterval"},
		{"group zero", &GroupConfig{}, ""},
		{"group set", &GroupConfig{MinSessionTimeout: time.Second, MaxSessionTimeout: time.Minute}, ""},
		{"group negative duration", &GroupConfig{CheckInterval: -time.Millisecond}, "GroupConfig.CheckInterval is -1ms"},
		{"group negative members", &GroupConfig{MaxMembers: -3}, "GroupConfig.MaxMembers is -3"},
		{"group min above max", &GroupConfig{MinSessionTimeout: time.Minute, MaxSessionTimeout: time.Second}, "MinSessionTimeout (1m0s) is above MaxSessionTimeout (1s)"},
		{"pipelines zero", &PipelinesConfig{}, ""},
		{"pipelines set", &PipelinesConfig{ResyncInterval: time.Second, LogLines: 10}, ""},
		{"pipelines negative int", &PipelinesConfig{MaxModuleBytes: -1}, "PipelinesConfig.MaxModuleBytes is -1"},
		{"pipelines negative duration", &PipelinesConfig{DrainTimeout: -time.Second}, "PipelinesConfig.DrainTimeout is -1s"},
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

// Each constructor validates its configuration and returns the error
// (nothing constructed); a valid configuration constructs.
func TestNewValidates(t *testing.T) {
	t.Parallel()
	b := newBrokerT(t, nil, BrokerConfig{})
	tests := []struct {
		name string
		new  func() (any, error)
		want string // substring of the error; "" for none
	}{
		{"broker", func() (any, error) { return NewBroker(nil, BrokerConfig{MaxFetchBytes: -1}) }, "BrokerConfig.MaxFetchBytes is -1"},
		{"broker valid", func() (any, error) { return NewBroker(nil, BrokerConfig{MaxFetchBytes: 1}) }, ""},
		{"groups", func() (any, error) {
			return NewGroupCoordinator(b, GroupConfig{MinSessionTimeout: time.Minute, MaxSessionTimeout: time.Second})
		}, "MinSessionTimeout (1m0s) is above MaxSessionTimeout (1s)"},
		{"groups valid", func() (any, error) { return NewGroupCoordinator(b, GroupConfig{MaxMembers: 1}) }, ""},
		{"queues", func() (any, error) { return NewQueues(b, QueueConfig{OpTimeout: -time.Second}) }, "QueueConfig.OpTimeout is -1s"},
		{"queues valid", func() (any, error) { return NewQueues(b, QueueConfig{OpTimeout: time.Second}) }, ""},
		{"pipelines", func() (any, error) { return NewPipelines(b, nil, PipelinesConfig{LogLines: -3}) }, "PipelinesConfig.LogLines is -3"},
		{"pipelines valid", func() (any, error) { return NewPipelines(b, nil, PipelinesConfig{LogLines: 3}) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, err := tt.new()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New = %v, want an error containing %q", err, tt.want)
			}
			if q, ok := v.(*Queues); ok && q != nil {
				q.Close()
			}
		})
	}
}
