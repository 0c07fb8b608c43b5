package gateway

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzRouteDecode: any method, path and body resolve to at most one row;
// decoding never panics; when it succeeds, every name the needs carry was
// read from the decoded value (path variables or body strings), and a
// body with two members differing only in case is refused.
func FuzzRouteDecode(f *testing.F) {
	f.Add("POST", "/v1/topics", `{"name":"orders"}`)
	f.Add("POST", "/v1/topics", `{"name":"orders.ok","Name":"evil"}`)
	f.Add("POST", "/v1/pipelines", `{"name":"p","module":"m","inputs":["a","b"],"outputs":["c"],"on_error":{"dead_letter_topic":"d"}}`)
	f.Add("POST", "/v1/groups/g/offsets", `{"offsets":[{"topic":"t"},{"topic":1}]}`)
	f.Add("POST", "/v1/groups/g/members", `{"topic":"public","Topics":["secret"]}`)
	f.Add("POST", "/v1/topics/a/redrive", `{"to":"public","To":"secret"}`)
	f.Add("GET", "/v1/topics/a/../b/partitions/0/records", ``)
	f.Add("DELETE", "/v1/topics/t/subscriptions/s", `[]`)
	s := &Server{}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		r, vars, err := routes.match(method, splitPath(path))
		if err != nil || r.plan == nil {
			return
		}
		ctx := &fasthttp.RequestCtx{}
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(path)
		ctx.Request.Header.SetContentType("application/json")
		ctx.Request.SetBodyString(body)
		c := &call{s: s, ctx: ctx, r: r, vars: vars}
		v := reflect.New(r.plan.typ)
		if c.decode(v) != nil {
			return
		}
		if hasCaseTwins(body) && r.plan.hasBody {
			t.Fatalf("%s %s accepted a body with members differing only in case: %s", method, path, body)
		}
		needs, err := r.plan.needs(v.Elem(), r.all)
		if err != nil {
			return
		}
		said := bodyStrings(body)
		for _, nd := range needs {
			if nd.name == "*" || nd.name == "kafka-cluster" {
				continue
			}
			found := false
			for _, s := range said {
				found = found || strings.Contains(s, nd.name)
			}
			for _, pv := range vars {
				found = found || strings.Contains(nd.name, pv)
			}
			if !found && !strings.HasSuffix(nd.name, ".dlq") {
				t.Fatalf("%s %s: need %s names something the request did not", method, path, nd)
			}
		}
	})
}

// bodyStrings returns every string a JSON body says, member names and
// values, as a JSON decoder reads them (escapes such as \u0001 decoded),
// so a name the route read from the body is found among them; a body
// that is not JSON gives the raw body alone.
func bodyStrings(body string) []string {
	var v any
	if json.Unmarshal([]byte(body), &v) != nil {
		return []string{body}
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for k, e := range v {
				out = append(out, k)
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// hasCaseTwins reports whether a JSON object body has two members whose
// names differ only in case.
func hasCaseTwins(body string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(body), &m) != nil {
		return false
	}
	seen := map[string]string{}
	for k := range m {
		if o, ok := seen[strings.ToLower(k)]; ok && o != k {
			return true
		}
		seen[strings.ToLower(k)] = k
	}
	return false
}

// FuzzWSFrame: a client's WebSocket frame is decoded, checked and (for
// produce) converted to records without panics, whatever its bytes.
func FuzzWSFrame(f *testing.F) {
	f.Add([]byte(`{"op":"produce","id":"1","topic":"t","records":[{"key":"k","value":"v","headers":{"a":"b"}}]}`))
	f.Add([]byte(`{"op":"subscribe","id":"s","topic":"t","group":"g","from":"earliest","credit":10}`))
	f.Add([]byte(`{"op":"ack","topic":"t","subscription":"q","receipts":["x"]}`))
	f.Add([]byte(`{"op":"produce","topic":"t","records":[{"value":{"x":[1,2,3]}}],"encoding":"base64"}`))
	c := &wsConn{hub: &wsHub{s: &Server{}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fr wsFrame
		if json.Unmarshal(data, &fr) != nil {
			return
		}
		if err := c.authorizeFrame(&fr); err != nil {
			t.Fatalf("security off, yet refused: %v", err)
		}
		if fr.Op == "produce" && len(fr.Records) > 0 {
			body := ProduceRequestJSON{Encoding: fr.Encoding, ProducerID: fr.ProducerID, Sequence: fr.Sequence}
			if json.Unmarshal(fr.Records, &body.Records) == nil {
				body.ToCore(fr.Topic)
			}
		}
	})
}
