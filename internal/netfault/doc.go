// Package netfault is a TCP proxy that injects network faults, for tests
// that run real `weir serve` processes (internal/clustertest's chaos run).
//
// A Proxy forwards the connections accepted on one listener to one target
// address. A test puts one Proxy on every directed link it wants to break —
// node i's connections to node j's Raft port, say — and then cuts, drops or
// delays the link while the processes run:
//
//	ln, _ := net.Listen("tcp", "127.0.0.1:0")
//	p, err := netfault.New(netfault.Config{Listener: ln, Target: nodeAddr})
//	go p.Run(ctx)
//	defer p.Close() // stops Run and every connection, and waits for them
//
//	p.Cut()                          // connections reset, new ones refused
//	p.Drop(netfault.Up)              // bytes to the target vanish (a black hole)
//	p.Delay(netfault.Both, 100*time.Millisecond)
//	p.Heal()                         // back to a plain proxy
//
// Directions are those of the data: Up from the side that connected to the
// target, Down back. Cut applies to the whole link, since a TCP connection
// cannot outlive either half of it being cut. A one-way partition between
// two nodes is a cut of the proxy carrying one node's connections to the
// other, and not of the reverse one.
//
// Drop keeps connections open and discards what would cross, so the sender
// learns nothing until its own timeouts fire, as with a real black hole. A
// byte stream with a hole cannot go on, so when the drop is lifted, every
// connection that lost bytes is closed; new connections flow again.
//
// Delay holds each chunk of bytes for the given time after it was read,
// keeping the order. A delay or drop applies to bytes read after the call.
//
// New is inert: nothing listens on the caller's behalf nor runs until Run.
// A Proxy is safe for concurrent use; its faults may change at any time.
// Stats reports bytes passed and dropped, so a test can wait for a fault to
// have taken effect (polling with a deadline) instead of sleeping.
package netfault
