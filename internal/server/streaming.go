package server

import (
	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/examples/live"
	"github.com/weir-broker/weir/gateway"
	"github.com/weir-broker/weir/sdk/js"
)

// newGroups makes the node's consumer group coordinator (its state lives
// in the catalog, so every node's coordinator serves every group).
func newGroups(cfg Config, b *core.Broker) (*core.GroupCoordinator, error) {
	gc := cfg.Groups
	gc.NodeID = cfg.NodeID
	gc.Logger = cfg.Logger
	return core.NewGroupCoordinator(b, gc)
}

// mountBrowser serves the browser client and the live page.
func mountBrowser(gw *gateway.Server) {
	gw.Handle(gateway.AssetRoute("/sdk/"+js.ModuleName, "text/javascript; charset=utf-8", js.Module()))
	gw.Handle(gateway.AssetRoute("/demo", "text/html; charset=utf-8", live.Page()))
}
