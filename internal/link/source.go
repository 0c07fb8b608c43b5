package link

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/gateway/apierr"
	"github.com/weir-broker/weir/sdk/client"
)

// recordsType is the binary fetch format (docs/api.md, "Binary fetch
// answers"): it keeps header order and duplicates, which the JSON answer
// (a header map) would not.
const recordsType = "application/vnd.weir.records"

// source is the public API of a link's source cluster.
type source struct {
	api   *client.Client // metadata: topics, groups, offsets
	hc    *http.Client
	base  string
	token string
}

func newSource(l core.Link, hc *http.Client) (*source, error) {
	api, err := client.New(l.SourceURL, client.WithToken(l.SourceToken), client.WithHTTPClient(hc), client.WithRetries(1))
	if err != nil {
		return nil, err
	}
	return &source{api: api, hc: hc, base: api.Addr(), token: l.SourceToken}, nil
}

// page is one fetch answer of the source.
type page struct {
	records       []core.Record
	nextOffset    int64
	highWatermark int64
	logStart      int64
}

// fetch reads a partition of the source from offset, long-polling up to
// wait. Errors of the source's API are decoded (a *core.OffsetRangeError
// below its log start).
func (s *source) fetch(ctx context.Context, topic string, partition int, offset int64, maxRecords, maxBytes int, wait time.Duration) (*page, error) {
	u := fmt.Sprintf("%s/v1/topics/%s/partitions/%d/records?offset=%d&max_records=%d&max_bytes=%d&wait_ms=%d",
		s.base, url.PathEscape(topic), partition, offset, maxRecords, maxBytes, wait.Milliseconds())
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", recordsType)
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: source: %v", core.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxBytes)+64<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: source: %v", core.ErrUnavailable, err)
	}
	if resp.StatusCode != 200 {
		return nil, apierr.Decode(resp.StatusCode, body)
	}
	if resp.Header.Get("Content-Type") != recordsType {
		return nil, fmt.Errorf("source answered %q, not the binary fetch format", resp.Header.Get("Content-Type"))
	}
	return decodeRecords(body)
}

var errShort = errors.New("source: truncated binary fetch answer")

// decodeRecords decodes a "WRB1" answer (gateway.AppendRecordsBinary).
// Keys, values and headers are copied out of b.
func decodeRecords(b []byte) (*page, error) {
	d := &wrbReader{b: b}
	if m, err := d.take(4); err != nil || string(m) != "WRB1" {
		return nil, errors.New("source: binary fetch answer: bad magic")
	}
	var p page
	var err error
	for _, f := range []*int64{&p.nextOffset, &p.highWatermark, &p.logStart} {
		if *f, err = d.i64(); err != nil {
			return nil, err
		}
	}
	n, err := d.u32()
	if err != nil {
		return nil, err
	}
	if int64(n)*28 > int64(len(d.b)) {
		return nil, errShort
	}
	p.records = make([]core.Record, n)
	for i := range p.records {
		if err := d.record(&p.records[i]); err != nil {
			return nil, err
		}
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("source: %d bytes after the records", len(d.b))
	}
	return &p, nil
}

// wrbReader reads a "WRB1" answer's big-endian fields from the front of b;
// a field past its end is errShort.
type wrbReader struct{ b []byte }

// take returns the next n bytes (aliasing b).
func (d *wrbReader) take(n int) ([]byte, error) {
	if n < 0 || n > len(d.b) {
		return nil, errShort
	}
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out, nil
}

// u32 reads a big-endian uint32.
func (d *wrbReader) u32() (uint32, error) {
	v, err := d.take(4)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(v), nil
}

// i64 reads a big-endian int64.
func (d *wrbReader) i64() (int64, error) {
	v, err := d.take(8)
	if err != nil {
		return 0, err
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// str reads a string prefixed by its u32 length.
func (d *wrbReader) str() (string, error) {
	n, err := d.u32()
	if err != nil {
		return "", err
	}
	v, err := d.take(int(n))
	return string(v), err
}

// record reads one record into r: offset, timestamp, key (length -1: no
// key), value and headers, copying their bytes.
func (d *wrbReader) record(r *core.Record) error {
	var err error
	if r.Offset, err = d.i64(); err != nil {
		return err
	}
	if r.Timestamp, err = d.i64(); err != nil {
		return err
	}
	kl, err := d.u32()
	if err != nil {
		return err
	}
	if int32(kl) >= 0 {
		k, err := d.take(int(kl))
		if err != nil {
			return err
		}
		r.Key = append([]byte{}, k...)
	} else if int32(kl) != -1 {
		return fmt.Errorf("source: key length %d", int32(kl))
	}
	vl, err := d.u32()
	if err != nil {
		return err
	}
	v, err := d.take(int(vl))
	if err != nil {
		return err
	}
	r.Value = append([]byte{}, v...)
	hc, err := d.u32()
	if err != nil {
		return err
	}
	if int64(hc)*8 > int64(len(d.b)) {
		return errShort
	}
	if hc > 0 {
		r.Headers = make([]core.Header, hc)
	}
	for j := range r.Headers {
		if r.Headers[j].Key, err = d.str(); err != nil {
			return err
		}
		if r.Headers[j].Value, err = d.str(); err != nil {
			return err
		}
	}
	return nil
}

// firstTimestamp returns the timestamp of the source's record at offset
// (for the lag in seconds); ok false when there is none.
func (s *source) firstTimestamp(ctx context.Context, topic string, partition int, offset int64) (int64, bool) {
	p, err := s.fetch(ctx, topic, partition, offset, 1, 1<<20, 0)
	if err != nil || len(p.records) == 0 {
		return 0, false
	}
	return p.records[0].Timestamp, true
}
