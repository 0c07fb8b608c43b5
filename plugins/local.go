package plugins

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/weir-broker/weir/core"
)

// LocalRecord is one input line of RunLocal: the produce API's record
// shape. Key and Value are UTF-8 unless Encoding is "base64". A missing key
// is a nil key; a missing timestamp is the current time.
type LocalRecord struct {
	Key       *string           `json:"key"`
	Value     string            `json:"value"`
	Headers   map[string]string `json:"headers,omitempty"`
	Timestamp *int64            `json:"timestamp,omitempty"`
	Encoding  string            `json:"encoding,omitempty"`
}

const localBatch = 100

// RunLocal runs a module over JSON-lines records from in, the way a pipeline
// would (batches of 100, state carried from batch to batch, a failed batch's
// state writes discarded), and writes one JSON line per event to out:
//
//	{"output":"a","key":"k","value":"v","headers":{…},"timestamp":…}
//	{"dead_letter":{"offset":3,"key":…,"value":…,"reason":"…"}}
//	{"state":{"key":"k","value":"v"}}  or  {"state":{"key":"k","delete":true}}
//	{"log":{"level":"INFO","msg":"…"}}
//
// Keys and values that are not UTF-8 are written in base64 with
// "encoding":"base64" on the line. After the last batch the module gets one
// tick (abi.ExportTick), as an idle partition would: processing-time timers
// that are due fire. The module runs in-process with interruption
// (IsolationInProcess) and default limits. A failed batch stops the run
// with its error.
func RunLocal(ctx context.Context, wasm []byte, cfg map[string]string, outputs []string, in io.Reader, out io.Writer) error {
	if len(outputs) == 0 {
		outputs = []string{"out"}
	}
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	logs := &jsonLogHandler{enc: enc}
	h, err := New(Config{Isolation: IsolationInProcess, Logger: slog.New(logs)})
	if err != nil {
		return err
	}
	defer h.Close()
	p, err := h.Processor(ctx, core.ModuleRef{Name: "local", Version: 1, Wasm: wasm}, core.ProcessorLimits{})
	if err != nil {
		return err
	}
	defer p.Close()

	state := mapState{}
	var batch []core.Record
	var offset int64
	flush := func(tick bool) error {
		if len(batch) == 0 && !tick {
			return nil
		}
		res, err := p.Process(ctx, &core.ProcessInput{
			Pipeline: "local", Topic: "in", Records: batch, Outputs: outputs, Config: cfg, State: state, Tick: tick,
		})
		if err != nil {
			if tick {
				return fmt.Errorf("tick at offset %d: %w", offset, err)
			}
			return fmt.Errorf("batch at offset %d: %w", batch[0].Offset, err)
		}
		if err := writeLocalResult(enc, res, batch, outputs, state); err != nil {
			return err
		}
		batch = batch[:0]
		return nil
	}

	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(sc.Bytes()) == 0 {
			continue
		}
		var lr LocalRecord
		if err := json.Unmarshal(sc.Bytes(), &lr); err != nil {
			return fmt.Errorf("input line %d: %w", line, err)
		}
		r, err := lr.record()
		if err != nil {
			return fmt.Errorf("input line %d: %w", line, err)
		}
		r.Offset = offset
		offset++
		batch = append(batch, r)
		if len(batch) == localBatch {
			if err := flush(false); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if err := flush(false); err != nil {
		return err
	}
	return flush(true)
}

// writeLocalResult writes a batch's result as RunLocal prints it: one line
// per output record, dead letter and state change; state changes are
// applied to state.
func writeLocalResult(enc *json.Encoder, res *core.ProcessOutput, batch []core.Record, outputs []string, state mapState) error {
	for _, r := range res.Records {
		line := map[string]any{"output": outputs[r.Output], "timestamp": r.Record.Timestamp}
		putKV(line, r.Record)
		if err := enc.Encode(line); err != nil {
			return err
		}
	}
	for _, d := range res.Dead {
		r := batch[d.Index]
		dl := map[string]any{"offset": r.Offset, "reason": d.Reason}
		putKV(dl, r)
		if err := enc.Encode(map[string]any{"dead_letter": dl}); err != nil {
			return err
		}
	}
	for _, c := range res.State {
		sl := map[string]any{}
		putKV(sl, core.Record{Key: c.Key, Value: c.Value})
		if c.Delete {
			delete(state, string(c.Key))
			delete(sl, "value")
			sl["delete"] = true
		} else {
			state[string(c.Key)] = c.Value
		}
		if err := enc.Encode(map[string]any{"state": sl}); err != nil {
			return err
		}
	}
	return nil
}

func (lr *LocalRecord) record() (core.Record, error) {
	r := core.Record{Timestamp: time.Now().UnixMilli()}
	if lr.Timestamp != nil {
		r.Timestamp = *lr.Timestamp
	}
	dec := func(s string) ([]byte, error) {
		switch lr.Encoding {
		case "", "utf8":
			return []byte(s), nil
		case "base64":
			return base64.StdEncoding.DecodeString(s)
		}
		return nil, fmt.Errorf("unknown encoding %q", lr.Encoding)
	}
	var err error
	if lr.Key != nil {
		if r.Key, err = dec(*lr.Key); err != nil {
			return r, err
		}
	}
	if r.Value, err = dec(lr.Value); err != nil {
		return r, err
	}
	keys := make([]string, 0, len(lr.Headers))
	for k := range lr.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r.Headers = append(r.Headers, core.Header{Key: k, Value: lr.Headers[k]})
	}
	return r, nil
}

// putKV sets key, value and headers of a record on an output line, in base64
// (with "encoding") when they are not UTF-8.
func putKV(m map[string]any, r core.Record) {
	b64 := (r.Key != nil && !utf8.Valid(r.Key)) || !utf8.Valid(r.Value)
	conv := func(b []byte) string {
		if b64 {
			return base64.StdEncoding.EncodeToString(b)
		}
		return string(b)
	}
	if b64 {
		m["encoding"] = "base64"
	}
	if r.Key == nil {
		m["key"] = nil
	} else {
		m["key"] = conv(r.Key)
	}
	m["value"] = conv(r.Value)
	if len(r.Headers) > 0 {
		hs := make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			hs[h.Key] = h.Value
		}
		m["headers"] = hs
	}
}

// mapState is a core.StateReader and core.StateLister over a map.
type mapState map[string][]byte

func (m mapState) Get(key []byte) ([]byte, bool) {
	v, ok := m[string(key)]
	return v, ok
}

func (m mapState) Keys(prefix, start string, limit int) []string {
	var keys []string
	for k := range m {
		if strings.HasPrefix(k, prefix) && k >= start {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys[:min(limit, len(keys))]
}

// jsonLogHandler writes guest log lines as {"log":…} JSON lines.
type jsonLogHandler struct{ enc *json.Encoder }

func (h *jsonLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *jsonLogHandler) Handle(_ context.Context, r slog.Record) error {
	return h.enc.Encode(map[string]any{"log": map[string]string{"level": r.Level.String(), "msg": r.Message}})
}

func (h *jsonLogHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *jsonLogHandler) WithGroup(string) slog.Handler      { return h }
