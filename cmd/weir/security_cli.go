package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/internal/devcerts"
	"github.com/weir-broker/weir/sdk/client"
)

// Client-side security flags (docs/security.md): every client command
// takes --token (env WEIR_TOKEN), --ca, --cert and --key.
func addSecurityFlags(root *cobra.Command) {
	f := root.PersistentFlags()
	f.String("token", "", "bearer token (API token or JWT) sent to the server (env WEIR_TOKEN)")
	f.String("ca", "", "PEM CA file that verifies the server's certificate (https:// servers; default: system roots)")
	f.String("cert", "", "PEM client certificate for servers that require mTLS (with --key)")
	f.String("key", "", "PEM private key of --cert")
}

func tokenOf(cmd *cobra.Command) string {
	t, _ := cmd.Flags().GetString("token")
	return strings.TrimSpace(t)
}

// tlsConfigOf builds the client TLS configuration from --ca, --cert and
// --key (nil when none is given: Go's defaults).
func tlsConfigOf(cmd *cobra.Command) *tls.Config {
	ca, _ := cmd.Flags().GetString("ca")
	cert, _ := cmd.Flags().GetString("cert")
	key, _ := cmd.Flags().GetString("key")
	if ca == "" && cert == "" {
		return nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			fmt.Fprintln(os.Stderr, "weir: --ca:", err)
			os.Exit(1)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			fmt.Fprintln(os.Stderr, "weir: --ca: no PEM certificate in", ca)
			os.Exit(1)
		}
		tc.RootCAs = pool
	}
	if cert != "" {
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			fmt.Fprintln(os.Stderr, "weir: --cert/--key:", err)
			os.Exit(1)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	return tc
}

func newAuthCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "auth", Short: "Principals and their API tokens (admins only; docs/security.md)"}
	var admin bool
	create := &cobra.Command{
		Use:   "create-token PRINCIPAL",
		Short: "Issue a new API token for a principal (created if missing); the token is printed once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := clientFor(cmd).CreateToken(cmd.Context(), args[0], admin)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "principal %v (admin: %v), token id %v\n", out.Principal, out.Admin, out.TokenID)
			fmt.Println(out.Token)
			return nil
		},
	}
	create.Flags().BoolVar(&admin, "admin", false, "make a new principal an admin (every operation allowed)")
	revoke := &cobra.Command{
		Use:   "revoke PRINCIPAL TOKEN_ID",
		Short: "Revoke one token of a principal (its id is listed by weir auth list)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clientFor(cmd).RevokeToken(cmd.Context(), args[0], args[1])
		},
	}
	del := &cobra.Command{
		Use:   "delete PRINCIPAL",
		Short: "Delete a principal with all its tokens and ACLs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clientFor(cmd).DeletePrincipal(cmd.Context(), args[0])
		},
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List principals and their token ids",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			principals, err := clientFor(cmd).Principals(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PRINCIPAL\tADMIN\tTOKENS")
			for _, p := range principals {
				var ids []string
				for _, t := range p.Tokens {
					ids = append(ids, t.ID)
				}
				fmt.Fprintf(tw, "%s\t%v\t%s\n", p.Name, p.Admin, strings.Join(ids, ","))
			}
			return tw.Flush()
		},
	}
	whoami := &cobra.Command{
		Use:   "whoami",
		Short: "Show the principal the server sees",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out, err := clientFor(cmd).WhoAmI(cmd.Context())
			if err != nil {
				return err
			}
			return printJSON(os.Stdout, out)
		},
	}
	cmd.AddCommand(create, revoke, del, list, whoami)
	return cmd
}

func newACLCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "acl", Short: "Access control lists (admins only; docs/security.md)"}
	var ops []string
	add := &cobra.Command{
		Use:   "add PRINCIPAL TYPE PATTERN --op read,write",
		Short: "Allow a principal operations on resources: TYPE is topic, group, subscription, module, pipeline or cluster; PATTERN is a name, prefix* or *",
		Example: `  weir acl add alice topic orders --op read,write
  weir acl add alice topic 'logs.*' --op read          # prefix pattern
  weir acl add alice group '*' --op read`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			pat, pt, err := auth.ParsePattern(args[2])
			if err != nil {
				return err
			}
			a := client.ACL{Principal: args[0], ResourceType: args[1], Pattern: pat, PatternType: string(pt)}
			for _, o := range ops {
				a.Operations = append(a.Operations, strings.TrimSpace(o))
			}
			out, err := clientFor(cmd).AddACL(cmd.Context(), a)
			if err != nil {
				return err
			}
			fmt.Println(out.ID)
			return nil
		},
	}
	add.Flags().StringSliceVar(&ops, "op", nil, "operations: read, write, create, delete, alter, describe (comma-separated)")
	var principal string
	list := &cobra.Command{
		Use:   "list",
		Short: "List ACLs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			acls, err := clientFor(cmd).ACLs(cmd.Context(), principal)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tPRINCIPAL\tTYPE\tPATTERN\tOPERATIONS")
			for _, a := range acls {
				pat := a.Pattern
				if a.PatternType == string(auth.Prefix) {
					pat += "*"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.ID, a.Principal, a.ResourceType, pat, strings.Join(a.Operations, ","))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&principal, "principal", "", "only this principal's ACLs")
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove an ACL",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return clientFor(cmd).RemoveACL(cmd.Context(), args[0])
		},
	}
	cmd.AddCommand(add, list, remove)
	return cmd
}

func newDevCertsCmd() *cobra.Command {
	var dir string
	var clients, hosts []string
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Make a local CA with server, node and client certificates for trying TLS and mTLS out",
		Long: `Writes into --dir: ca.pem/ca-key.pem (the CA), server.pem/server-key.pem (for
127.0.0.1, localhost and --host names; usable as client certificate between nodes
and for Raft mTLS) and one <name>.pem/<name>-key.pem per --client (its subject
common name is the principal). Not for production.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			files, err := devcerts.Write(dir, hosts, clients)
			if err != nil {
				return err
			}
			for _, f := range files {
				fmt.Println(f)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "./weir-certs", "directory to write the files to")
	cmd.Flags().StringSliceVar(&clients, "client", []string{"admin"}, "client certificate names (principals)")
	cmd.Flags().StringSliceVar(&hosts, "host", nil, "extra DNS names or IPs for the server certificate")
	return cmd
}
