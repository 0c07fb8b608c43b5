package plugins

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// The worker protocol: frames on the worker's stdin (broker to worker) and
// stdout (worker to broker). A frame is a u32 little-endian length n, then n
// bytes: a one-byte message type and its payload, encoded with sdk/abi's
// primitives. One batch is in flight per worker at a time.
//
//	broker → worker            worker → broker
//	                           msgHello (at once, before any input): u32 abi version, u32 capabilities
//	msgInit                    msgCompiled then msgReady | msgFail, or msgFail
//
// msgInit's answer comes in two steps: msgCompiled once the module is
// compiled (the broker's start timeout covers compilation), then msgReady
// once it is instantiated (its start function and _initialize have run,
// under the batch time limit: the watchdog is re-armed in between).
//
//	msgBatch                   (msgGet → msgVal | msgKeys → msgKeyList)* then msgResult | msgFail
//
// A msgBatch whose flags have flagShm set carries, instead of the batch,
// u32 region size, u32 len: the batch is the first len bytes of the shared
// region (shm.go), which the worker maps at that size. Its answer may then be
// msgResultShm (u32 len: a msgResult payload in the region's first len
// bytes) instead of msgResult. A worker announces it can do so with capShm
// in msgHello; frames without flagShm carry the batch inline, as before.
//
// A msgBatch whose flags have flagTick set is a tick (abi.ExportTick); its
// msgResult ends with the tick's pending flag. State listings (state_keys)
// are a round trip each, speculative run or not.
//
// State reads: msgBatch carries the committed values of the keys the
// previous batch of the same partition read (prefetch). The worker first
// runs the batch speculatively, answering other keys "not found" and noting
// them; if it noted any, it fetches them all in one msgGet and runs the
// batch again from scratch (the speculative run's results are dropped).
// Keys the second run still misses cost one msgGet each. msgResult reports
// every key read, the next batch's prefetch.
const (
	msgInit      byte = 1  // u32 pages, u32 maxState, str cacheDir, bytes wasm
	msgReady     byte = 2  // (empty)
	msgBatch     byte = 3  // u32 flags, u64 maxOut, u32 nOutputs, u32 nRecords, u32 nConfig, (str k, str v)*, u32 nPrefetch, (bytes k, u32 found, bytes v)*, u32 len, batch
	msgGet       byte = 4  // u32 n, (bytes key)*
	msgVal       byte = 5  // u32 n, (u32 found, bytes value)*
	msgResult    byte = 6  // bytes emitted, changes, dead, logs, u32 nRead, (bytes key)*, u32 pending
	msgFail      byte = 7  // u32 kind, str message, u32 instance lost (0/1), logs
	msgHello     byte = 8  // u32 abi version: "this process is a worker"
	msgCompiled  byte = 9  // (empty): compiled, now instantiating
	msgKeys      byte = 10 // str prefix, str start, u32 limit
	msgKeyList   byte = 11 // u32 n, (str key)*
	msgResultShm byte = 12 // u32 len: msgResult's payload is in the shared region
)

// msgBatch flags.
const (
	flagTick uint32 = 1
	flagShm  uint32 = 2 // the batch is in the shared region
)

// helloTimeout bounds the wait for msgHello: an executable that does not
// dispatch to RunWorker (see WorkerEnv) is found out quickly.
const helloTimeout = 10 * time.Second

const maxFrame = 1 << 30

type conn struct {
	r   *bufio.Reader
	w   *bufio.Writer
	hdr [4]byte
	buf []byte
}

func newConn(r io.Reader, w io.Writer) *conn {
	return &conn{r: bufio.NewReaderSize(r, 64<<10), w: bufio.NewWriterSize(w, 64<<10)}
}

// send writes one frame and flushes it.
func (c *conn) send(typ byte, payload []byte) error { return c.send2(typ, payload, nil) }

// send2 writes one frame whose payload is p1 followed by p2, and flushes it.
func (c *conn) send2(typ byte, p1, p2 []byte) error {
	binary.LittleEndian.PutUint32(c.hdr[:], uint32(len(p1)+len(p2)+1))
	if _, err := c.w.Write(c.hdr[:]); err != nil {
		return err
	}
	if err := c.w.WriteByte(typ); err != nil {
		return err
	}
	if _, err := c.w.Write(p1); err != nil {
		return err
	}
	if _, err := c.w.Write(p2); err != nil {
		return err
	}
	return c.w.Flush()
}

// steal takes the buffer of the last frame received: the caller owns it and
// the next recv allocates (or reuses spare, when non-nil).
func (c *conn) steal(spare []byte) {
	c.buf = spare[:0]
}

// recv reads one frame. The payload is valid until the next recv.
func (c *conn) recv() (byte, []byte, error) {
	if _, err := io.ReadFull(c.r, c.hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.LittleEndian.Uint32(c.hdr[:])
	if n == 0 || n > maxFrame {
		return 0, nil, fmt.Errorf("bad frame length %d", n)
	}
	if int(n) > cap(c.buf) && n > 4<<20 {
		// A large declared length: let the buffer grow with the bytes that
		// actually arrive, so a bad length costs no memory up front.
		var bb bytes.Buffer
		if _, err := io.CopyN(&bb, c.r, int64(n)); err != nil {
			return 0, nil, err
		}
		b := bb.Bytes()
		return b[0], b[1:], nil
	}
	if cap(c.buf) < int(n) {
		c.buf = make([]byte, n)
	}
	b := c.buf[:n]
	if _, err := io.ReadFull(c.r, b); err != nil {
		return 0, nil, err
	}
	return b[0], b[1:], nil
}
