package server

import (
	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway"
)

// startQueues starts the queue model (subscriptions) and mounts its
// endpoints on the gateway.
func startQueues(cfg Config, broker *core.Broker, gw *gateway.Server) *core.Queues {
	qc := cfg.Queues
	qc.Logger = cfg.Logger
	q := core.NewQueues(broker, qc)
	gw.SetQueues(q)
	return q
}
