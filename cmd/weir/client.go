package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/sdk/client"
)

// clientFor returns the Go client (sdk/client) of --server with --token
// and the TLS flags: every API call of the CLI goes through it.
func clientFor(cmd *cobra.Command) *client.Client {
	s, _ := cmd.Flags().GetString("server")
	c, err := client.New(s, client.WithToken(tokenOf(cmd)), client.WithTLSConfig(tlsConfigOf(cmd)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "weir: --server:", err)
		os.Exit(1)
	}
	return c
}

func printJSON(w io.Writer, v any) error {
	if raw, ok := v.(json.RawMessage); ok {
		var x any
		if err := json.Unmarshal(raw, &x); err != nil {
			return err
		}
		v = x
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
