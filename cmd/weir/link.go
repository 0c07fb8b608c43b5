package main

import (
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/sdk/client"
)

// newLinkCmd is `weir link create|list|describe|delete|promote`
// (docs/geo-replication.md): cluster links, managed on the destination
// cluster by admins, through /v1/links.
func newLinkCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "link", Short: "Cluster links: mirror another cluster's topics and group offsets into this one (admins only; docs/geo-replication.md)"}
	cmd.AddCommand(newLinkCreateCmd(), newLinkListCmd(), newLinkDescribeCmd(), newLinkDeleteCmd(), newLinkPromoteCmd())
	return cmd
}

// newLinkCreateCmd is `weir link create`.
func newLinkCreateCmd() *cobra.Command {
	var cfg client.LinkConfig
	var tokenFile string
	create := &cobra.Command{
		Use:   "create NAME --source URL --topics T[,P*] [--groups G[,P*]]",
		Short: "Create a link on this (destination) cluster that pulls the named topics (names, or prefixes ending in *) from the source cluster",
		Example: `  weir --server https://b.example:8080 link create from-a --source https://a.example:8080 \
      --source-token-file a.token --topics 'orders,events.*' --groups 'billing*'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.Name = args[0]
			if tokenFile != "" {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return err
				}
				cfg.SourceToken = strings.TrimSpace(string(b))
			}
			out, err := clientFor(cmd).CreateLink(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			return printJSON(os.Stdout, out)
		},
	}
	create.Flags().StringVar(&cfg.SourceURL, "source", "", "the source cluster's URL (http:// or https://, any of its nodes)")
	create.Flags().StringVar(&cfg.SourceToken, "source-token", "", "a token of the source cluster with describe and read rights on the topics and groups")
	create.Flags().StringVar(&tokenFile, "source-token-file", "", "read the source token from this file instead")
	create.Flags().StringSliceVar(&cfg.Topics, "topics", nil, "topics to mirror: names, or prefixes ending in * (comma-separated)")
	create.Flags().StringSliceVar(&cfg.Groups, "groups", nil, "consumer groups whose offsets to copy: names, or prefixes ending in *")
	_ = create.MarkFlagRequired("source")
	_ = create.MarkFlagRequired("topics")
	return create
}

// newLinkListCmd is `weir link list`.
func newLinkListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the links with their mirror topics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			links, err := clientFor(cmd).Links(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSOURCE\tTOPICS\tGROUPS\tMIRRORS")
			for _, l := range links {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", l.Name, l.SourceURL, strings.Join(l.Topics, ","), strings.Join(l.Groups, ","), len(l.Mirrors))
			}
			return tw.Flush()
		},
	}
}

// newLinkDescribeCmd is `weir link describe`.
func newLinkDescribeCmd() *cobra.Command {
	describe := &cobra.Command{
		Use:   "describe NAME",
		Short: "A link with each mirror partition's lag (records and seconds behind the source)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			l, err := clientFor(cmd).Link(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if jsonOut(cmd) {
				return printJSON(os.Stdout, l)
			}
			fmt.Printf("link %s from %s (topics %s, groups %s)\n", l.Name, l.SourceURL, strings.Join(l.Topics, ","), strings.Join(l.Groups, ","))
			if l.LagError != "" {
				fmt.Printf("lag unknown: %s\n", l.LagError)
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tSTATE\tSOURCE_HWM\tHWM\tLAG_RECORDS\tLAG_SECONDS")
			for _, m := range l.Mirrors {
				state := "mirror"
				if m.Promoted {
					state = "promoted"
				}
				for _, p := range m.Partitions {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%.3f\n", m.Topic, p.Partition, state, p.SourceHighWatermark, p.HighWatermark, p.LagRecords, p.LagSeconds)
				}
			}
			return tw.Flush()
		},
	}
	describe.Flags().Bool("json", false, "print the API's JSON answer")
	return describe
}

// newLinkDeleteCmd is `weir link delete`.
func newLinkDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a link: mirroring stops and its mirror topics become ordinary writable topics",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clientFor(cmd).DeleteLink(cmd.Context(), args[0])
		},
	}
}

// newLinkPromoteCmd is `weir link promote`.
func newLinkPromoteCmd() *cobra.Command {
	var topics []string
	promote := &cobra.Command{
		Use:   "promote NAME --topics T[,T]",
		Short: "Make mirror topics writable (failover): the link stops pulling them; records not yet mirrored stay on the source only",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := clientFor(cmd).PromoteLink(cmd.Context(), args[0], topics)
			if err != nil {
				return err
			}
			return printJSON(os.Stdout, map[string]any{"link": args[0], "promoted": out})
		},
	}
	promote.Flags().StringSliceVar(&topics, "topics", nil, "the mirror topics to promote (comma-separated)")
	_ = promote.MarkFlagRequired("topics")
	return promote
}

// jsonOut reports the command's --json flag.
func jsonOut(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("json")
	return v
}
