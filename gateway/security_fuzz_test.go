package gateway

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"
)

// FuzzRouteRules: any method, path and body resolve to at most one rule
// whose resource names are built without panics; names never contain a
// path separator the route did not put there (no ".." tricks widen a
// check).
func FuzzRouteRules(f *testing.F) {
	f.Add("POST", "/v1/topics", `{"name":"orders"}`)
	f.Add("POST", "/v1/pipelines", `{"name":"p","module":"m","inputs":["a","b"],"outputs":["c"],"on_error":{"dead_letter_topic":"d"}}`)
	f.Add("POST", "/v1/groups/g/offsets", `{"offsets":[{"topic":"t"},{"topic":1}]}`)
	f.Add("GET", "/v1/topics/a/../b/partitions/0/records", ``)
	f.Add("DELETE", "/v1/topics/t/subscriptions/s", `[]`)
	f.Fuzz(func(t *testing.T, method, path, body string) {
		seg := strings.Split(strings.Trim(path, "/"), "/")
		rule, vars := matchRule(method, seg)
		if rule == nil {
			return
		}
		ctx := &fasthttp.RequestCtx{}
		ctx.Request.SetBodyString(body)
		var m map[string]any
		json.Unmarshal([]byte(body), &m)
		for _, nd := range rule.needs {
			for _, name := range expandName(nd.name, vars, m, ctx) {
				if nd.rt != "subscription" && strings.Contains(name, "/") && !strings.Contains(body, "/") {
					t.Fatalf("rule %s %s: name %q has a slash", rule.method, rule.path, name)
				}
			}
		}
	})
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
