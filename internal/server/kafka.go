package server

import (
	"crypto/tls"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/gateway/kafka"
)

// startKafka starts the Kafka listener (gateway/kafka) when cfg.KafkaAddr
// is set: the same TLS certificates as HTTP, the same authentication and
// ACLs, and without auth the same loopback-only rule.
func startKafka(cfg Config, sec SecurityConfig, b *core.Broker, a *auth.Service, tlsCfg *tls.Config) (*kafka.Server, error) {
	if cfg.KafkaAddr == "" {
		return nil, nil
	}
	kc := kafka.Config{
		Broker: b, NodeID: cfg.NodeID, Auth: a, Logger: cfg.Logger,
		Addr:           sec.listenAddr(cfg.KafkaAddr, cfg.Logger.Warn),
		AdvertisedAddr: cfg.KafkaAdvertisedAddr,
	}
	if tlsCfg != nil {
		kc.TLS = tlsCfg.Clone()
		kc.TLS.NextProtos = nil
	}
	ks, err := kafka.New(kc)
	if err != nil {
		return nil, err
	}
	if err := ks.Listen(); err != nil {
		return nil, err
	}
	cfg.Logger.Info("kafka listener started", "addr", ks.Addr())
	return ks, nil
}

// KafkaAddr is the Kafka listener's bound address ("" when it is off).
func (s *Server) KafkaAddr() string {
	if s.Kafka == nil {
		return ""
	}
	return s.Kafka.Addr()
}
