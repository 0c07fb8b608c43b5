package server

import (
	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway"
)

// newQueues makes the queue model (subscriptions) and mounts its
// endpoints on the gateway; the server runs it (Start).
func newQueues(cfg Config, broker *core.Broker, gw *gateway.Server) (*core.Queues, error) {
	qc := cfg.Queues
	qc.Logger = cfg.Logger
	q, err := core.NewQueues(broker, qc)
	if err != nil {
		return nil, err
	}
	gw.SetQueues(q)
	return q, nil
}
