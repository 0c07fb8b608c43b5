package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/sdk/client"
)

// newQuotaCmd is `weir quota set|list|remove` (docs/quotas.md): admins
// only, through /v1/quotas.
func newQuotaCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "quota", Short: "Per-principal quotas: produce and fetch bytes/s, requests/s (admins only; docs/quotas.md)"}
	var q client.Quota
	set := &cobra.Command{
		Use:   "set PRINCIPAL",
		Short: "Set a principal's quota, replacing its previous one (PRINCIPAL default: everyone without a quota of their own); 0 or absent: unlimited",
		Example: `  weir quota set default --produce-bytes 10485760 --requests 1000
  weir quota set alice --produce-bytes 1048576 --fetch-bytes 4194304`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := clientFor(cmd).SetQuota(cmd.Context(), args[0], q)
			if err != nil {
				return err
			}
			return printJSON(os.Stdout, out)
		},
	}
	set.Flags().Int64Var(&q.ProduceBytesPerSec, "produce-bytes", 0, "produce bytes per second (the decoded records' bytes; 0: unlimited)")
	set.Flags().Int64Var(&q.FetchBytesPerSec, "fetch-bytes", 0, "fetch bytes per second (the bytes returned; 0: unlimited)")
	set.Flags().Int64Var(&q.RequestsPerSec, "requests", 0, "requests per second (0: unlimited)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the quotas (0: unlimited)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			quotas, err := clientFor(cmd).Quotas(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PRINCIPAL\tPRODUCE_BYTES/S\tFETCH_BYTES/S\tREQUESTS/S")
			for _, q := range quotas {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", q.Principal, q.ProduceBytesPerSec, q.FetchBytesPerSec, q.RequestsPerSec)
			}
			return tw.Flush()
		},
	}
	remove := &cobra.Command{
		Use:   "remove PRINCIPAL",
		Short: "Remove a principal's quota (it falls back to the default quota)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clientFor(cmd).DeleteQuota(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(set, list, remove)
	return cmd
}
