package kafka

// Broker is one node as Kafka clients see it: its id and the advertised
// host:port of its Kafka listener.
type Broker struct {
	ID   uint64
	Addr string
}

// Cluster tells the listener about the other nodes. The wiring implements
// it over the replicated metadata (internal/server/kafka.go); nil means a
// single node.
type Cluster interface {
	// Brokers lists the nodes with a Kafka listener (this one included
	// or not); implementations must be cheap and safe for concurrent use.
	Brokers() []Broker
	// Coordinator is the node that coordinates every Kafka consumer group
	// (0: unknown right now).
	Coordinator() uint64
}

// brokers returns the known brokers by id, this node always among them
// with its advertised address.
func (s *Server) brokers() map[uint64]Broker {
	host, port := s.advertised()
	self := Broker{ID: s.cfg.NodeID, Addr: joinHostPort(host, port)}
	out := map[uint64]Broker{self.ID: self}
	if s.cfg.Cluster != nil {
		for _, b := range s.cfg.Cluster.Brokers() {
			if b.ID != self.ID && b.Addr != "" {
				if _, _, err := splitHostPort(b.Addr); err == nil {
					out[b.ID] = b
				}
			}
		}
	}
	return out
}

// coordinator is the node that coordinates groups and whether it is known
// to clients (it has a Kafka address); a single node coordinates itself.
func (s *Server) coordinator(brokers map[uint64]Broker) (uint64, bool) {
	if s.cfg.Cluster == nil {
		return s.cfg.NodeID, true
	}
	id := s.cfg.Cluster.Coordinator()
	_, ok := brokers[id]
	return id, ok
}

// notCoordinator reports whether group requests belong to another node.
func (c *conn) notCoordinator() bool {
	id, ok := c.s.coordinator(c.s.brokers())
	return ok && id != c.s.cfg.NodeID
}
