package server

import (
	"encoding/binary"
	"errors"
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
	var sz [4]byte
	if _, err := io.ReadFull(c, sz[:]); err != nil {
		t.Fatalf("read response size: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(sz[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	if corr := int32(binary.BigEndian.Uint32(b)); corr != 7 {
		t.Fatalf("correlation id %d", corr)
	}
	b = b[4:]
	if flexHeader {
		b = b[1:]
	}
	return b
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
