package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/weir-broker/weir/core/auth"
)

// header is a decoded request header.
type header struct {
	key, version int16
	correlation  int32
	clientID     string
}

// errFrame is a request the connection cannot answer: the server closes
// the connection, as Kafka does.
var errFrame = errors.New("kafka: bad request frame")

// readFrame reads one size-prefixed frame. A frame larger than max, or a
// negative size, is refused before any of it is read; the body is read in
// chunks so that a large claimed size costs memory only as bytes arrive.
func readFrame(r io.Reader, max int) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(sz[:])))
	if n < 8 || n > max {
		return nil, fmt.Errorf("%w: frame size %d outside [8, %d]", errFrame, n, max)
	}
	const chunk = 64 << 10
	buf := make([]byte, 0, min(n, chunk))
	for len(buf) < n {
		k := min(n-len(buf), chunk)
		if cap(buf)-len(buf) < k {
			nb := make([]byte, len(buf), min(n, 2*cap(buf)+k))
			copy(nb, buf)
			buf = nb
		}
		if _, err := io.ReadFull(r, buf[len(buf):len(buf)+k]); err != nil {
			return nil, err
		}
		buf = buf[:len(buf)+k]
	}
	return buf, nil
}

// parseRequest decodes a frame into its header and kmsg request. It
// returns errFrame for unknown keys, versions outside what this listener
// supports (except ApiVersions, answered specially) and malformed bodies.
func parseRequest(frame []byte) (header, kmsg.Request, error) {
	r := kbin.Reader{Src: frame}
	var h header
	h.key = r.Int16()
	h.version = r.Int16()
	h.correlation = r.Int32()
	if cid := r.NullableString(); cid != nil {
		h.clientID = *cid
	}
	if !r.Ok() {
		return h, nil, fmt.Errorf("%w: truncated header", errFrame)
	}
	req := kmsg.RequestForKey(h.key)
	if req == nil {
		return h, nil, fmt.Errorf("%w: unknown api key %d", errFrame, h.key)
	}
	vr, ok := supported[h.key]
	if !ok {
		return h, nil, fmt.Errorf("%w: api %s (%d) is not supported", errFrame, kmsg.NameForKey(h.key), h.key)
	}
	if h.version < vr.min || h.version > vr.max {
		if h.key == apiVersionsKey && h.version > vr.max {
			return h, req, errTooNewAPIVersions
		}
		return h, nil, fmt.Errorf("%w: %s v%d is outside v%d–v%d", errFrame, kmsg.NameForKey(h.key), h.version, vr.min, vr.max)
	}
	req.SetVersion(h.version)
	if req.IsFlexible() {
		n := r.Uvarint()
		for i := uint32(0); i < n && r.Ok(); i++ {
			r.Uvarint()
			r.Span(int(r.Uvarint()))
		}
		if !r.Ok() {
			return h, nil, fmt.Errorf("%w: truncated header tags", errFrame)
		}
	}
	if err := req.ReadFrom(r.Src); err != nil {
		return h, nil, fmt.Errorf("%w: %s v%d: %v", errFrame, kmsg.NameForKey(h.key), h.version, err)
	}
	return h, req, nil
}

var errTooNewAPIVersions = errors.New("kafka: ApiVersions version too new")

const apiVersionsKey = 18

// conn is one client connection; its requests are served in order.
type conn struct {
	s    *Server
	nc   net.Conn
	w    *bufio.Writer
	out  []byte
	addr string
	// clientID is the client id of the request being served, api its key.
	clientID string
	api      int16
	// throttle is the throttle_time_ms of the request being served (its
	// principal's quota: the delay taken, or when to retry a refusal);
	// muteFor how long the connection then waits (quota.go).
	throttle, muteFor time.Duration

	// SASL state (auth on): authenticated once SaslAuthenticate succeeds.
	mechanism     string
	authenticated bool
	principal     auth.Principal
}

// maxInflight bounds the produce requests a connection has in flight: the
// Java client, librdkafka and franz-go send up to 5 at once with
// idempotence (Kafka brokers remember each producer's last 5 batches),
// more without.
const maxInflight = 5

// reply is one request's response in the order the requests came: resp,
// or for a queued produce done, which waits for its outcome.
type reply struct {
	h        header
	resp     kmsg.Response
	done     func() kmsg.Response
	throttle time.Duration
}

// serveConn reads and serves a connection's requests in order and answers
// them in order. Consecutive Produce requests (acks 1 or all) are
// pipelined: each is decoded, checked and its batches queued on their
// partitions' logs by this goroutine, in request order, and the writer
// goroutine answers each once its appends are done, while the next ones
// are read and queued (at most maxInflight at once). Any other request is
// served after every produce before it has been answered, so it sees
// their effects, as on a Kafka broker, which serves a connection's
// requests one at a time.
func (s *Server) serveConn(nc net.Conn) {
	defer nc.Close()
	c := &conn{s: s, nc: nc, w: bufio.NewWriterSize(nc, 64<<10), addr: nc.RemoteAddr().String()}
	if !s.cfg.Auth.Enabled() {
		c.authenticated = true
		c.principal = auth.Principal{Name: "anonymous", Admin: true, Via: "anonymous"}
	}
	if tc, ok := nc.(*tls.Conn); ok && s.cfg.Auth.Enabled() {
		// A verified client certificate (mTLS) authenticates its CN, as
		// on HTTP; SASL may still replace it.
		tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			return
		}
		tc.SetDeadline(time.Time{})
		if pcs := tc.ConnectionState().VerifiedChains; len(pcs) > 0 && len(pcs[0]) > 0 {
			if p, err := s.cfg.Auth.AuthenticateCert(pcs[0][0].Subject.CommonName); err == nil {
				c.principal, c.authenticated = p, true
			}
		}
	}
	// A request takes a slot before it is served (a produce's appends are
	// queued then) and gives it back once its reply is written: at most
	// maxInflight in flight, and sending a reply never blocks.
	slots := make(chan struct{}, maxInflight)
	replies := make(chan reply, maxInflight)
	var unanswered sync.WaitGroup // replies sent and not yet written
	written := make(chan struct{})
	go func() {
		defer close(written)
		c.writeReplies(replies, slots, &unanswered)
	}()
	defer func() {
		// The connection is closing: the replies still queued (produces
		// whose appends are done or will end by their timeout) are
		// written if the client takes them within a bound, so a client
		// that stopped reading cannot hold this goroutine.
		nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		close(replies)
		<-written
	}()
	send := func(r reply) {
		unanswered.Add(1)
		replies <- r
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	for {
		frame, err := readFrame(br, s.cfg.MaxRequestBytes)
		if err != nil {
			if errors.Is(err, errFrame) {
				s.cfg.Logger.Debug("kafka: closing connection", "remote", c.addr, "err", err)
			}
			return
		}
		slots <- struct{}{}
		h, req, err := parseRequest(frame)
		if errors.Is(err, errTooNewAPIVersions) {
			// The client asked a version we do not know: answer v0 with
			// UNSUPPORTED_VERSION and our ranges, in a v0 header.
			unanswered.Wait()
			resp := c.apiVersions(0)
			resp.ErrorCode = 35
			h.version = 0
			send(reply{h: h, resp: resp})
			continue
		}
		if err != nil {
			s.cfg.Logger.Debug("kafka: closing connection", "remote", c.addr, "err", err)
			return
		}
		if !c.authenticated && h.key != apiVersionsKey && h.key != 17 && h.key != 36 {
			s.cfg.Logger.Debug("kafka: request before SASL authentication; closing", "remote", c.addr, "api", kmsg.NameForKey(h.key))
			return
		}
		c.clientID, c.api = h.clientID, h.key
		if pr, ok := req.(*kmsg.ProduceRequest); ok {
			// A Produce charges its own quota (quota.go).
			if done := c.produce(s.ctx, pr); done != nil {
				send(reply{h: h, done: done, throttle: c.throttle})
			} else {
				<-slots // acks=0: no reply
			}
		} else {
			unanswered.Wait()
			c.admitRequest(h.key) // quota.go
			resp, err := c.handle(s.ctx, h, req)
			if err != nil {
				s.cfg.Logger.Debug("kafka: closing connection", "remote", c.addr, "err", err)
				return
			}
			send(reply{h: h, resp: resp, throttle: c.throttle})
		}
		if !c.mute() {
			return
		}
	}
}

// writeReplies writes the replies in order, each once it is complete; a
// failed write closes the connection (ending the reader), and the replies
// still queued are then completed and dropped.
func (c *conn) writeReplies(replies <-chan reply, slots <-chan struct{}, unanswered *sync.WaitGroup) {
	broken := false
	for r := range replies {
		resp := r.resp
		if r.done != nil {
			resp = r.done()
		}
		if resp != nil && !broken {
			resp.SetVersion(r.h.version)
			throttled(resp, r.throttle)
			flexHeader := resp.IsFlexible() && r.h.key != apiVersionsKey
			if err := c.write(r.h.correlation, flexHeader, resp); err != nil {
				broken = true
				c.nc.Close()
			}
		}
		unanswered.Done()
		<-slots
	}
}

func (c *conn) write(correlation int32, flexHeader bool, resp kmsg.Response) error {
	b := c.out[:0]
	if n := sizeHint(resp); cap(b) < n {
		b = make([]byte, 0, n) // one allocation, not a doubling per record batch
	}
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(correlation))
	if flexHeader {
		b = append(b, 0) // no header tags
	}
	b = resp.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	if cap(b) <= 1<<20 {
		c.out = b
	}
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	return c.w.Flush()
}

// sizeHint is about the encoded size of resp when its record batches make
// most of it (a fetch); 0 otherwise.
func sizeHint(resp kmsg.Response) int {
	f, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 0
	}
	n := 64
	for i := range f.Topics {
		n += 16 + len(f.Topics[i].Topic)
		for j := range f.Topics[i].Partitions {
			n += 64 + len(f.Topics[i].Partitions[j].RecordBatches)
		}
	}
	return n
}

// handle dispatches one request. A nil response with a nil error sends
// nothing (acks=0); an error closes the connection.
func (c *conn) handle(ctx context.Context, h header, req kmsg.Request) (kmsg.Response, error) {
	switch r := req.(type) {
	case *kmsg.ApiVersionsRequest:
		return c.apiVersions(h.version), nil
	case *kmsg.SASLHandshakeRequest:
		return c.saslHandshake(r), nil
	case *kmsg.SASLAuthenticateRequest:
		return c.saslAuthenticate(r)
	case *kmsg.MetadataRequest:
		return c.metadata(r), nil
	case *kmsg.FetchRequest:
		return c.fetchQuota(ctx, r), nil // quota.go
	case *kmsg.ListOffsetsRequest:
		return c.listOffsets(ctx, r), nil
	case *kmsg.CreateTopicsRequest:
		return c.createTopics(ctx, r), nil
	case *kmsg.DeleteTopicsRequest:
		return c.deleteTopics(ctx, r), nil
	case *kmsg.CreatePartitionsRequest:
		return c.createPartitions(ctx, r), nil
	case *kmsg.DescribeConfigsRequest:
		return c.describeConfigs(r), nil
	case *kmsg.InitProducerIDRequest:
		return c.initProducerID(ctx, r), nil
	case *kmsg.FindCoordinatorRequest:
		return c.findCoordinator(r), nil
	case *kmsg.JoinGroupRequest:
		return c.joinGroup(ctx, r), nil
	case *kmsg.SyncGroupRequest:
		return c.syncGroup(ctx, r), nil
	case *kmsg.HeartbeatRequest:
		return c.heartbeat(r), nil
	case *kmsg.LeaveGroupRequest:
		return c.leaveGroup(r), nil
	case *kmsg.OffsetCommitRequest:
		return c.offsetCommit(ctx, r), nil
	case *kmsg.OffsetFetchRequest:
		return c.offsetFetch(ctx, r), nil
	case *kmsg.DescribeGroupsRequest:
		return c.describeGroups(r), nil
	case *kmsg.ListGroupsRequest:
		return c.listGroups(r), nil
	}
	return nil, fmt.Errorf("%w: no handler for %s", errFrame, kmsg.NameForKey(h.key))
}
