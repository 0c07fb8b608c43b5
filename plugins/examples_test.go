package plugins

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/weir-broker/weir/core"
)

// The examples, compiled to Wasm with the standard toolchain and run through
// the real host in worker processes.
func TestExamples(t *testing.T) {
	h := newHost(t, Config{})
	kv := func(key, value string) core.Record { return core.Record{Key: []byte(key), Value: []byte(value)} }
	at := func(ts int64, value string) core.Record { return core.Record{Timestamp: ts, Value: []byte(value)} }
	type batch struct {
		in   []core.Record
		want []string // emitted values
		dead []int
	}
	tests := []struct {
		name    string
		config  map[string]string
		outputs []string
		batches []batch
		check   func(t *testing.T, outs []*core.ProcessOutput)
	}{
		{name: "passthrough", batches: []batch{{in: []core.Record{kv("a", "1"), {Value: []byte("2")}}, want: []string{"1", "2"}}},
			check: func(t *testing.T, outs []*core.ProcessOutput) {
				if outs[0].Records[1].Record.Key != nil {
					t.Fatal("nil key not kept")
				}
			}},
		{name: "filter", config: map[string]string{"field": "kind", "equals": "a"},
			batches: []batch{{in: []core.Record{kv("1", `{"kind":"a"}`), kv("2", `{"kind":"b"}`), kv("3", `junk`), kv("4", `{"kind":"a","x":1}`)},
				want: []string{`{"kind":"a"}`, `{"kind":"a","x":1}`}}}},
		{name: "redact", config: map[string]string{"fields": "card,email"},
			batches: []batch{{in: []core.Record{kv("1", `{"card":"4111","id":1,"email":"a@b"}`), kv("2", `[]`)},
				want: []string{`{"card":"***","id":1,"email":"***"}`}, dead: []int{1}}}},
		{name: "route", config: map[string]string{"field": "to"}, outputs: []string{"rest", "eu"},
			batches: []batch{{in: []core.Record{kv("1", `{"to":"eu"}`), kv("2", `{"to":"us"}`)}, want: []string{`{"to":"eu"}`, `{"to":"us"}`}}},
			check: func(t *testing.T, outs []*core.ProcessOutput) {
				if outs[0].Records[0].Output != 1 || outs[0].Records[1].Output != 0 {
					t.Fatalf("routed %+v", outs[0].Records)
				}
			}},
		{name: "count", batches: []batch{
			{in: []core.Record{kv("a", ""), kv("b", ""), kv("a", "")}, want: []string{"1", "1", "2"}},
			{in: []core.Record{kv("a", "")}, want: []string{"3"}},
		}},
		{name: "window", config: map[string]string{"size_ms": "1000", "idle_timeout_ms": "-1"}, batches: []batch{
			{in: []core.Record{at(100, `{"name":"cpu","value":1}`), at(900, `{"name":"cpu","value":3}`)}},
			{in: []core.Record{at(1000, `{"name":"cpu","value":5}`), at(50, `{"name":"cpu","value":9}`), at(1100, `x`)},
				want: []string{`{"name":"cpu","window_start":0,"window_end":1000,"count":2,"sum":4,"min":1,"max":3}`}, dead: []int{1, 2}},
			{in: []core.Record{at(2000, `{"name":"cpu","value":0}`)},
				want: []string{`{"name":"cpu","window_start":1000,"window_end":2000,"count":1,"sum":5,"min":5,"max":5}`}},
		}},
		{name: "etl", config: map[string]string{"columns": "id:int,name:string,price:float,ok:bool"},
			batches: []batch{{in: []core.Record{kv("1", `7,"a, b",9.5,true`), kv("2", `x,a,1,true`), kv("3", `1,2`)},
				want: []string{`{"id":7,"name":"a, b","price":9.5,"ok":true}`}, dead: []int{1, 2}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProcessor(t, h, buildWasm(t, "examples/"+tt.name), core.ProcessorLimits{})
			if tt.outputs == nil {
				tt.outputs = []string{"out"}
			}
			st := &countingState{m: map[string][]byte{}}
			var outs []*core.ProcessOutput
			for i, b := range tt.batches {
				out, err := p.Process(context.Background(), &core.ProcessInput{
					Pipeline: tt.name, Topic: "in", Records: b.in, Outputs: tt.outputs, Config: tt.config, State: st,
				})
				if err != nil {
					t.Fatalf("batch %d: %v", i, err)
				}
				st.apply(out.State)
				if got := values(out); !slices.Equal(got, b.want) {
					t.Fatalf("batch %d: emitted %q, want %q", i, got, b.want)
				}
				var dead []int
				for _, d := range out.Dead {
					dead = append(dead, d.Index)
				}
				if !slices.Equal(dead, b.dead) {
					t.Fatalf("batch %d: dead %+v, want %v", i, out.Dead, b.dead)
				}
				outs = append(outs, out)
			}
			if tt.check != nil {
				tt.check(t, outs)
			}
		})
	}
}

func TestRunLocal(t *testing.T) {
	wasm := buildWasm(t, "examples/etl")
	in := strings.NewReader(`{"key":"a","value":"1,x,2.5,true","headers":{"h":"v"},"timestamp":5}
{"value":"bad"}
`)
	var out bytes.Buffer
	err := RunLocal(context.Background(), wasm, map[string]string{"columns": "id:int,name:string,price:float,ok:bool"}, []string{"clean"}, in, &out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("output:\n%s", out.String())
	}
	var emitted struct {
		Output, Value string
		Key           *string
		Headers       map[string]string
		Timestamp     int64
	}
	if err := json.Unmarshal([]byte(lines[0]), &emitted); err != nil {
		t.Fatal(err)
	}
	if emitted.Output != "clean" || *emitted.Key != "a" || emitted.Value != `{"id":1,"name":"x","price":2.5,"ok":true}` || emitted.Headers["h"] != "v" || emitted.Timestamp != 5 {
		t.Fatalf("emitted %s", lines[0])
	}
	if !strings.Contains(lines[1], `"dead_letter":{`) || !strings.Contains(lines[1], `"offset":1`) || !strings.Contains(lines[1], `"key":null`) {
		t.Fatalf("dead letter line %s", lines[1])
	}

	// State changes are printed and carried across batches.
	var cnt bytes.Buffer
	if err := RunLocal(context.Background(), buildWasm(t, "examples/count"), nil, nil, strings.NewReader(`{"key":"a","value":""}`+"\n"), &cnt); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cnt.String(), `{"state":{"key":"c:a","value":"1"}}`) {
		t.Fatalf("count output:\n%s", cnt.String())
	}

	// Event time: windows find their timers by listing state keys.
	var win bytes.Buffer
	metrics := `{"timestamp":100,"value":"{\"name\":\"cpu\",\"value\":1}"}` + "\n" + `{"timestamp":2100,"value":"{\"name\":\"cpu\",\"value\":2}"}` + "\n"
	if err := RunLocal(context.Background(), buildWasm(t, "examples/window"), map[string]string{"size_ms": "1000"}, nil, strings.NewReader(metrics), &win); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(win.String(), `"value":"{\"name\":\"cpu\",\"window_start\":0,\"window_end\":1000,\"count\":1,\"sum\":1,\"min\":1,\"max\":1}"`) {
		t.Fatalf("window output:\n%s", win.String())
	}
}
