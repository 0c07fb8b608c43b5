package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// rawConn dials the Kafka port; every read and write has a deadline.
func rawConn(t *testing.T, s *Server) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.KafkaAddr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// request frames req (header v1/v2 by its flexibility) with correlation id 7.
func frameRequest(req kmsg.Request, version int16) []byte {
	req.SetVersion(version)
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw")).AppendRequest(nil, req, 7)
}

// readResponse reads one response frame and returns its body after the
// correlation id (and the flexible header's tag byte when flexHeader).
func readResponse(t *testing.T, c net.Conn, flexHeader bool) []byte {
	t.Helper()
	corr, b := readFrameOf(t, c)
	if corr != 7 {
		t.Fatalf("correlation id %d", corr)
	}
	if flexHeader {
		b = b[1:]
	}
	return b
}

// readFrameOf reads one response frame: its correlation id and what
// follows it.
func readFrameOf(t *testing.T, c net.Conn) (int32, []byte) {
	t.Helper()
	var sz [4]byte
	if _, err := io.ReadFull(c, sz[:]); err != nil {
		t.Fatalf("read response size: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(sz[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return int32(binary.BigEndian.Uint32(b)), b[4:]
}

// expectClosed checks that the server closes the connection.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open: %v", err)
	}
}

func TestKafkaBadInput(t *testing.T) {
	s := startKafkaNode(t)
	apiVersionsWorks := func(t *testing.T) {
		c := rawConn(t, s)
		c.Write(frameRequest(kmsg.NewPtrApiVersionsRequest(), 0))
		var resp kmsg.ApiVersionsResponse
		if err := resp.ReadFrom(readResponse(t, c, false)); err != nil || resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
			t.Fatalf("ApiVersions: %v %+v", err, resp)
		}
	}
	frame := func(body []byte) []byte { return binary.BigEndian.AppendUint32(nil, uint32(len(body))) }
	cases := []struct {
		name string
		send []byte
	}{
		{"oversized frame", binary.BigEndian.AppendUint32(nil, 200<<20)},
		{"negative size", binary.BigEndian.AppendUint32(nil, 0xffffff00)},
		{"tiny frame", append(frame([]byte{0, 1}), 0, 1)},
		{"unknown api key", append(frame(make([]byte, 10)), []byte{0x03, 0xe7, 0, 0, 0, 0, 0, 7, 0xff, 0xff}...)},
		{"metadata v99", append(frame(make([]byte, 10)), []byte{0, 3, 0, 99, 0, 0, 0, 7, 0xff, 0xff}...)},
		{"garbage body", append(frame(make([]byte, 14)), []byte{0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff}...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := rawConn(t, s)
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
			apiVersionsWorks(t)
		})
	}
	t.Run("truncated frame", func(t *testing.T) {
		c := rawConn(t, s)
		c.Write(append(binary.BigEndian.AppendUint32(nil, 1000), 0, 18, 0, 0))
		c.(*net.TCPConn).CloseWrite()
		expectClosed(t, c)
		apiVersionsWorks(t)
	})
	t.Run("ApiVersions too new", func(t *testing.T) {
		c := rawConn(t, s)
		req := kmsg.NewPtrApiVersionsRequest()
		req.ClientSoftwareName, req.ClientSoftwareVersion = "raw", "1"
		b := frameRequest(req, 3)
		binary.BigEndian.PutUint16(b[6:], 99) // the version field of the header
		c.Write(b)
		var resp kmsg.ApiVersionsResponse
		resp.SetVersion(0)
		if err := resp.ReadFrom(readResponse(t, c, false)); err != nil {
			t.Fatal(err)
		}
		if resp.ErrorCode != kerr.UnsupportedVersion.Code || len(resp.ApiKeys) == 0 {
			t.Fatalf("too-new ApiVersions: %+v", resp)
		}
		apiVersionsWorks(t)
	})
}

// batchBytes is a one-record v2 batch for producer pid at sequence seq.
func batchBytes(pid int64, seq int32, value string) []byte {
	rec := kmsg.Record{Value: []byte(value)}
	tmp := rec.AppendTo(nil)
	_, used := binary.Varint(tmp)
	rec.Length = int32(len(tmp) - used)
	body := rec.AppendTo(nil)
	rb := kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, FirstTimestamp: 1, MaxTimestamp: 1, ProducerID: pid, ProducerEpoch: 0, FirstSequence: seq, NumRecords: 1, Records: body}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func produceRaw(t *testing.T, cl *kgo.Client, records []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	return produceRawResp(t, cl, records).Topics[0].Partitions[0]
}

// produceRawResp produces records (batches) to partition 0 of topic "raw"
// and returns the whole response.
func produceRawResp(t *testing.T, cl *kgo.Client, records []byte) *kmsg.ProduceResponse {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	tp := kmsg.NewProduceRequestTopic()
	tp.Topic = "raw"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = records
	tp.Partitions = append(tp.Partitions, pp)
	req.Topics = append(req.Topics, tp)
	resp, err := req.RequestWith(kctx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestKafkaRawProduce(t *testing.T) {
	s := startKafkaNode(t)
	createTopic(t, s.URL(), "raw", 1)
	cl := kafkaClient(t, s)
	ctx := kctx(t)
	ip, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, cl)
	if err != nil || ip.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v %+v", err, ip)
	}
	pid := ip.ProducerID

	first := produceRaw(t, cl, batchBytes(pid, 0, "a"))
	if first.ErrorCode != 0 || first.BaseOffset != 0 {
		t.Fatalf("first produce: %+v", first)
	}
	produceRaw(t, cl, batchBytes(pid, 1, "b"))
	// A retry of sequence 1 answers its original offset, appends nothing.
	dup := produceRaw(t, cl, batchBytes(pid, 1, "b"))
	if dup.ErrorCode != 0 || dup.BaseOffset != 1 {
		t.Fatalf("duplicate: %+v", dup)
	}
	// A gap is OUT_OF_ORDER_SEQUENCE_NUMBER.
	if gap := produceRaw(t, cl, batchBytes(pid, 5, "c")); gap.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Fatalf("gap: %+v", gap)
	}
	// A corrupt CRC is CORRUPT_MESSAGE, and nothing is appended.
	bad := batchBytes(-1, -1, "x")
	bad[len(bad)-1] ^= 0xff
	if r := produceRaw(t, cl, bad); r.ErrorCode != kerr.CorruptMessage.Code {
		t.Fatalf("corrupt CRC: %+v", r)
	}
	var f fetchResp
	tu.Do(t, "GET", s.URL()+"/v1/topics/raw/partitions/0/records?offset=earliest", nil).JSON(t, &f)
	if len(f.Records) != 2 || f.Records[0].Value != "a" || f.Records[1].Value != "b" {
		t.Fatalf("records %+v, want a, b", f.Records)
	}
	// Transactions: a clear error, not a hang — from FindCoordinator
	// (transaction coordinators), which the client asks first.
	tx := kmsg.NewPtrInitProducerIDRequest()
	tx.TransactionalID = kmsg.StringPtr("tx")
	if _, err := tx.RequestWith(ctx, cl); !errors.Is(err, kerr.InvalidRequest) {
		t.Fatalf("transactional InitProducerId: %v, want INVALID_REQUEST", err)
	}
	txc, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr()), kgo.TransactionalID("tx"), kgo.DefaultProduceTopic("raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer txc.Close()
	err = txc.BeginTransaction()
	if err == nil {
		err = txc.ProduceSync(ctx, &kgo.Record{Value: []byte("t")}).FirstErr()
	}
	if !errors.Is(err, kerr.InvalidRequest) {
		t.Fatalf("a transactional producer: %v, want INVALID_REQUEST", err)
	}
}

// A connection's produce requests are pipelined: a client that writes
// many at once (as the Java client and librdkafka do, up to 5 in flight)
// gets every response, in request order, and the records are in the log
// in that order, an idempotent producer's sequences all accepted. A Fetch
// written after them is served after they are done, so it sees them all;
// a bad frame after that closes the connection once all are answered.
func TestKafkaPipelinedProduces(t *testing.T) {
	s := startKafkaNode(t)
	createTopic(t, s.URL(), "raw", 1)
	ip, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(kctx(t), kafkaClient(t, s))
	if err != nil || ip.ErrorCode != 0 {
		t.Fatalf("InitProducerId: %v %+v", err, ip)
	}
	const n = 40 // the first half idempotent, the second plain
	var out []byte
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("pipelined"))
	for i := range n {
		pid, seq := ip.ProducerID, int32(i)
		if i >= n/2 {
			pid, seq = -1, -1
		}
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(7)
		req.Acks, req.TimeoutMillis = -1, 10000
		tp := kmsg.NewProduceRequestTopic()
		tp.Topic = "raw"
		pp := kmsg.NewProduceRequestTopicPartition()
		pp.Records = batchBytes(pid, seq, fmt.Sprintf("v%02d", i))
		tp.Partitions = append(tp.Partitions, pp)
		req.Topics = append(req.Topics, tp)
		out = append(out, f.AppendRequest(nil, req, int32(100+i))...) // AppendRequest sizes the whole slice it is given
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.SetVersion(11)
	fetch.MaxWaitMillis, fetch.MaxBytes, fetch.ReplicaID = 0, 1<<20, -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "raw"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes, fp.LogStartOffset = 1<<20, -1
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	out = append(out, f.AppendRequest(nil, fetch, 999)...)
	out = append(out, 0, 0, 0, 1, 0xff) // a frame too short to be a request: the connection closes after the answers

	c := rawConn(t, s)
	if _, err := c.Write(out); err != nil { // all at once: nothing waits for an answer
		t.Fatal(err)
	}
	for i := range n {
		corr, body := readFrameOf(t, c)
		if corr != int32(100+i) {
			t.Fatalf("response %d has correlation id %d, want %d: answered out of order", i, corr, 100+i)
		}
		resp := kmsg.NewPtrProduceResponse()
		resp.SetVersion(7)
		if err := resp.ReadFrom(body); err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != int64(i) {
			t.Fatalf("produce %d: error %d, base offset %d; want offset %d", i, p.ErrorCode, p.BaseOffset, i)
		}
	}
	corr, body := readFrameOf(t, c)
	fr := kmsg.NewPtrFetchResponse()
	fr.SetVersion(11)
	if err := fr.ReadFrom(body); err != nil || corr != 999 {
		t.Fatalf("fetch response (correlation %d): %v", corr, err)
	}
	if hw := fr.Topics[0].Partitions[0].HighWatermark; hw != n {
		t.Fatalf("the fetch after the produces saw a high watermark of %d, want %d", hw, n)
	}
	expectClosed(t, c)
	var got fetchResp
	tu.Do(t, "GET", s.URL()+"/v1/topics/raw/partitions/0/records?offset=earliest&max_records=100", nil).JSON(t, &got)
	if len(got.Records) != n {
		t.Fatalf("%d records, want %d", len(got.Records), n)
	}
	for i, r := range got.Records {
		if want := fmt.Sprintf("v%02d", i); r.Value != want {
			t.Fatalf("offset %d holds %q, want %q", i, r.Value, want)
		}
	}
}
