package server

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/core/quota"
	"github.com/weir-broker/weir/gateway/kafka"
	"github.com/weir-broker/weir/raftlog"
)

// listenKafka binds the Kafka listener (gateway/kafka) when cfg.KafkaAddr
// is set — before the store starts, so that the node publishes its
// advertised Kafka address in the cluster metadata like its HTTP address.
// It uses the HTTP listener's TLS certificates and, without auth, the same
// loopback-only rule. It returns the listener and the advertised address.
func listenKafka(cfg Config, sec SecurityConfig, tlsCfg *tls.Config) (net.Listener, string, error) {
	if cfg.KafkaAddr == "" {
		return nil, "", nil
	}
	addr := sec.listenAddr(cfg.KafkaAddr, cfg.Logger.Warn)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("kafka: listen on %s: %w", addr, err)
	}
	adv := cfg.KafkaAdvertisedAddr
	if adv == "" {
		adv = ln.Addr().String()
	}
	if tlsCfg != nil {
		tc := tlsCfg.Clone()
		tc.NextProtos = nil
		ln = tls.NewListener(ln, tc)
	}
	return ln, adv, nil
}

// startKafka serves the Kafka protocol on ln (nil: the listener is off).
func startKafka(cfg Config, ln net.Listener, adv string, b *core.Broker, a *auth.Service, q *quota.Limiter, host *raftlog.Host) (*kafka.Server, error) {
	if ln == nil {
		return nil, nil
	}
	ks, err := kafka.New(kafka.Config{
		Broker: b, NodeID: cfg.NodeID, Auth: a, Quotas: q, Logger: cfg.Logger,
		AdvertisedAddr: adv, Cluster: kafkaCluster{host},
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	if err := ks.Start(ln); err != nil {
		ln.Close()
		return nil, err
	}
	cfg.Logger.Info("kafka listener started", "addr", ks.Addr(), "advertised", adv)
	return ks, nil
}

// kafkaCluster tells the Kafka listener the nodes' Kafka addresses (from
// the replicated node metadata) and the group coordinator: the metadata
// shard's leader, known to every node and moved by Raft on failure.
type kafkaCluster struct{ h *raftlog.Host }

func (k kafkaCluster) Brokers() []kafka.Broker {
	var out []kafka.Broker
	for _, n := range k.h.Nodes() {
		if n.KafkaAddr != "" && n.State != "removed" {
			out = append(out, kafka.Broker{ID: n.ID, Addr: n.KafkaAddr})
		}
	}
	return out
}

func (k kafkaCluster) Coordinator() uint64 { return k.h.MetaLeader() }

// KafkaAddr is the Kafka listener's bound address ("" when it is off).
func (s *Server) KafkaAddr() string {
	if s.Kafka == nil {
		return ""
	}
	return s.Kafka.Addr()
}
