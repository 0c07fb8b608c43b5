package main

import "github.com/spf13/cobra"

// extraCommands lists the subcommands of the parts built beside the core
// (transforms, pipelines, subscriptions, cluster, auth...).
func extraCommands() []*cobra.Command {
	return []*cobra.Command{newTransformCmd(), newModuleCmd(), newPipelineCmd(),
		newSubCmd(), newDLQCmd(), newClusterCmd(), newDevCmd(), newQuotaCmd(), newLinkCmd()}
}

// extraBenchCommands lists the subcommands of `weir bench` built beside
// the core.
func extraBenchCommands() []*cobra.Command {
	return []*cobra.Command{newBenchQueueCmd(), newBenchWSCmd()}
}
