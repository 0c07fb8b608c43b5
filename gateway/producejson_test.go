package gateway

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

var produceSeeds = []string{
	`{"records":[{"key":"k1","value":"hello","headers":{"traceparent":"00-abc"},"partition":0}],"encoding":"utf8","producer_id":"p-7","sequence":0}`,
	`{"records":[{"value":"a"},{"value":"b\n\"c\"","key":null},{"value":"\u00e9\ud83d\ude00"}]}`,
	`{"records":[{"value":{"json":true}}]}`,
	`{"records":[{"value":"x","timestamp":1700000000000,"partition":null}],"sequence":null}`,
	`{"records":[]}`,
	`{}`,
	` { "records" : [ { "value" : "spaced" } ] } `,
	`{"records":[{"value":"a"}],"extra":1}`,
	`{"records":[{"value":"a","partition":-1}]}`,
	`{"records":[{"value":"a","partition":01}]}`,
	`{"records":[{"value":"a"}]} trailing`,
	`{"records":[{"value":"bad\x01ctl"}]}`,
	`{"records":[{"value":"\xff\xfe"}]}`,
	`{"records":[{"headers":{"a":"1","a":"2"},"value":""}]}`,
}

// normalize decodes every key and value the way the handler does, so the
// two decoders are compared on what the broker would store.
func normalize(t *testing.T, r ProduceRequestJSON) any {
	type rec struct {
		Key, Value []byte
		Headers    map[string]string
		Partition  *int
		Timestamp  int64
	}
	var out []rec
	for _, x := range r.Records {
		k, kerr := decodeField(x.Key, false, true)
		v, verr := decodeField(x.Value, false, false)
		if kerr != nil || verr != nil {
			return "error"
		}
		out = append(out, rec{k, v, x.Headers, x.Partition, x.Timestamp})
	}
	return []any{out, r.Encoding, r.ProducerID, r.Sequence}
}

func checkFastMatchesStd(t *testing.T, body []byte) {
	fast, ok := parseProduceFast(body)
	if !ok {
		return // the handler falls back to encoding/json
	}
	var std ProduceRequestJSON
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&std); err != nil || dec.More() {
		t.Fatalf("fast parser accepted %q, encoding/json rejects it: %v", body, err)
	}
	if a, b := normalize(t, fast), normalize(t, std); !reflect.DeepEqual(a, b) {
		t.Fatalf("decoders disagree on %q:\nfast %#v\nstd  %#v", body, a, b)
	}
}

func TestFastProduceParserMatchesEncodingJSON(t *testing.T) {
	for _, s := range produceSeeds {
		checkFastMatchesStd(t, []byte(s))
	}
	if _, ok := parseProduceFast([]byte(produceSeeds[0])); !ok {
		t.Fatal("the common shape must take the fast path")
	}
	if _, ok := parseProduceFast([]byte(produceSeeds[2])); ok {
		t.Fatal("a JSON object value must fall back to encoding/json")
	}
}

// FuzzProduceJSON: the fast decoder never accepts what encoding/json
// rejects and never decodes differently; neither path panics.
func FuzzProduceJSON(f *testing.F) {
	for _, s := range produceSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFastMatchesStd(t, body)
		var req ProduceRequestJSON
		if decodeJSON(body, &req) == nil {
			req.ToCore("t")
		}
	})
}
