package main

import "github.com/spf13/cobra"

// extraCommands lists the subcommands of the parts built beside the core
// (transforms, pipelines, subscriptions, cluster, auth...).
func extraCommands() []*cobra.Command {
	return nil
}
