package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-broker/weir/sdk/client"
)

func newClusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Inspect and change the cluster: status, rebalance, remove a node"}
	var asJSON, partitions bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Nodes, health, replicas and leaders per node, lagging replicas",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := clientFor(cmd).Cluster(cmd.Context(), partitions)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), st)
			}
			printClusterStatus(cmd, st)
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print GET /v1/cluster as JSON")
	status.Flags().BoolVar(&partitions, "partitions", false, "list every partition's placement")
	rebalance := &cobra.Command{
		Use:   "rebalance",
		Short: "Spread replicas and preferred leaders evenly over the active nodes (e.g. after a join)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			moves, err := clientFor(cmd).Rebalance(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d replicas will move; follow with: weir cluster status\n", moves)
			return nil
		},
	}
	var wait time.Duration
	remove := &cobra.Command{
		Use:   "remove NODE_ID",
		Short: "Move every replica off a node, then remove it from the cluster for good",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || id == 0 {
				return fmt.Errorf("node id must be a number ≥ 1, not %q", args[0])
			}
			c := clientFor(cmd)
			if err := c.RemoveNode(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "node %d is draining: its replicas move to other nodes\n", id)
			if wait <= 0 {
				return nil
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), wait)
			defer cancel()
			for {
				if st, err := c.Cluster(ctx, false); err == nil {
					for _, n := range st.Nodes {
						if n.ID == id && n.State == "removed" {
							fmt.Fprintf(cmd.OutOrStdout(), "node %d is removed; its process can be stopped\n", id)
							return nil
						}
					}
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("node %d is not removed after %s; see weir cluster status", id, wait)
				case <-time.After(time.Second):
				}
			}
		},
	}
	remove.Flags().DurationVar(&wait, "wait", 0, "wait up to this long until the node is removed (0: return at once)")
	cmd.AddCommand(status, rebalance, remove)
	return cmd
}

func printClusterStatus(cmd *cobra.Command, st *client.ClusterStatus) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "answered by node %d; metadata leader: node %d\n\n", st.Node, st.MetaLeader)
	fmt.Fprintln(w, "NODE\tSTATE\tHEALTH\tMETA\tREPLICAS\tLEADERS\tPLACED\tHTTP\tRAFT")
	for _, n := range st.Nodes {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", n.ID, n.State, n.Health, n.MetaRole, n.Replicas, n.Leaders, n.Placed, n.HTTPAddr, n.RaftAddr)
	}
	fmt.Fprintf(w, "\npartitions: %d, without leader: %d, moving: %d, lagging replicas: %d\n", st.Partitions, st.Leaderless, st.Moving, len(st.Lagging))
	if len(st.Lagging) > 0 {
		fmt.Fprintln(w, "\nTOPIC\tPARTITION\tNODE\tREPLICA\tLAG\tREASON")
		for _, l := range st.Lagging {
			lag := strconv.FormatInt(l.Lag, 10)
			if l.Lag < 0 {
				lag = "?"
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\t%s\n", l.Topic, l.Partition, l.Node, l.Replica, lag, l.Reason)
		}
	}
	if len(st.PartitionList) > 0 {
		fmt.Fprintln(w, "\nTOPIC\tPARTITION\tSHARD\tLEADER\tPREFERRED\tREPLICAS\tMEMBERS\tLEARNERS\tMOVING")
		for _, p := range st.PartitionList {
			fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%v\t%v\t%v\t%v\n", p.Topic, p.Partition, p.Shard, p.Leader, p.Preferred, p.Replicas, p.Members, p.Learners, p.Moving)
		}
	}
	w.Flush()
}

// newDevCmd starts a local cluster of `weir serve` processes for trying
// Weir out (make cluster).
func newDevCmd() *cobra.Command {
	var (
		nodes             int
		dataDir           string
		httpPort, rftPort int
		logDB             string
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local cluster of N nodes (child processes) for trying Weir out",
		Long: `Start N weir serve processes on 127.0.0.1 forming one cluster: node i serves HTTP
on port http-port+i-1 and Raft on raft-port+i-1, with data in DATA_DIR/node-i.
Each node is a separate process (its PID is printed), so kill -9 of one shows
failover. Ctrl-C stops them all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 1 || nodes > 9 {
				return fmt.Errorf("--nodes must be between 1 and 9")
			}
			self, err := os.Executable()
			if err != nil {
				return err
			}
			var peers []string
			for i := 1; i <= nodes; i++ {
				peers = append(peers, fmt.Sprintf("%d=127.0.0.1:%d", i, rftPort+i-1))
			}
			var procs []*exec.Cmd
			for i := 1; i <= nodes; i++ {
				args := []string{"serve", "--node-id", strconv.Itoa(i),
					"--http-addr", fmt.Sprintf("127.0.0.1:%d", httpPort+i-1),
					"--raft-addr", fmt.Sprintf("127.0.0.1:%d", rftPort+i-1),
					"--kafka-addr", fmt.Sprintf("127.0.0.1:%d", 9092+i-1),
					"--data-dir", filepath.Join(dataDir, fmt.Sprintf("node-%d", i)), "--logdb", logDB}
				if nodes > 1 {
					args = append(args, "--peers", strings.Join(peers, ","))
				}
				p := exec.Command(self, args...)
				p.Stdout, p.Stderr = os.Stdout, os.Stderr
				p.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
				if err := p.Start(); err != nil {
					return err
				}
				procs = append(procs, p)
				fmt.Fprintf(cmd.OutOrStdout(), "node %d: pid %d, http://127.0.0.1:%d\n", i, p.Process.Pid, httpPort+i-1)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster status: weir cluster status --server http://127.0.0.1:%d\n", httpPort)
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			<-sig
			for _, p := range procs {
				p.Process.Signal(syscall.SIGTERM)
			}
			for _, p := range procs {
				p.Wait()
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&nodes, "nodes", 3, "number of nodes")
	f.StringVar(&dataDir, "data-dir", "./weir-dev", "parent directory of the nodes' data")
	f.IntVar(&httpPort, "http-port", 8080, "HTTP port of node 1 (node i: +i-1)")
	f.IntVar(&rftPort, "raft-port", 7070, "Raft port of node 1 (node i: +i-1)")
	f.StringVar(&logDB, "logdb", "tan", "Raft log store of the nodes: tan or pebble (see weir serve --help)")
	cmd.AddCommand(newDevCertsCmd()) // security_cli.go
	return cmd
}
