package server

import (
	"context"
	"path/filepath"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway"
	"github.com/weir-broker/weir/plugins"
)

// startPipelines starts the Wasm host (guests in worker processes by
// default, compiled code cached under the data dir) and the pipeline
// service, and mounts the module and pipeline API.
func startPipelines(ctx context.Context, cfg Config, broker *core.Broker, gw *gateway.Server) (*core.Pipelines, *plugins.Host, <-chan struct{}, error) {
	wc := cfg.Wasm
	if wc.CacheDir == "" {
		wc.CacheDir = filepath.Join(cfg.DataDir, "wasm-cache")
	}
	if wc.Logger == nil {
		wc.Logger = cfg.Logger
	}
	host, err := plugins.New(wc)
	if err != nil {
		return nil, nil, nil, err
	}
	pc := cfg.Pipelines
	pc.Logger = cfg.Logger
	pipes, err := core.NewPipelines(broker, host, pc)
	if err != nil {
		host.Close()
		return nil, nil, nil, err
	}
	gw.MountPipelines(pipes)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipes.Run(ctx)
	}()
	return pipes, host, done, nil
}
