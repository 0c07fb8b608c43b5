package server

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/gateway"
)

// FuzzFrontDoor sends random requests to every row of the route table as a
// low-privilege principal on a live node: random JSON bodies and names in
// the path. The principal may do everything on topics, groups and
// subscriptions named "mine.*" and nothing else. After each request nothing
// outside that ACL was changed (the other topics, their records, the
// secret topic's subscriptions and offsets, modules, pipelines, principals,
// ACLs) and no response carried a record of the secret topic.
func FuzzFrontDoor(f *testing.F) {
	s := securedNode(f)
	f.Cleanup(func() { stop(f, s) })
	admin := newSecClient(nil, s.URL(), testAdminToken, nil)
	must := func(want int, method, path string, body any) {
		r, err := admin.try(method, path, body)
		if err != nil || r.Status != want {
			f.Fatalf("%s %s: %v %v", method, path, r, err)
		}
	}
	const secret = "TOPSECRET-9f1c2e"
	must(201, "POST", "/v1/topics", map[string]any{"name": "secret", "partitions": 1})
	must(200, "POST", "/v1/topics/secret/records", map[string]any{"records": []map[string]any{{"key": "k", "value": secret}}})
	must(201, "POST", "/v1/topics/secret/subscriptions", map[string]any{"name": "workers"})
	must(204, "POST", "/v1/groups/g/offsets", map[string]any{"offsets": []map[string]any{{"topic": "secret", "partition": 0, "offset": 1}}})
	var tok struct{ Token string }
	r, err := admin.try("POST", "/v1/principals", map[string]any{"name": "low"})
	if err != nil || r.Status != 201 {
		f.Fatalf("create principal: %v %v", r, err)
	}
	r.JSON(f, &tok)
	for _, rt := range []auth.ResourceType{auth.Topic, auth.Group, auth.Subscription} {
		must(201, "POST", "/v1/acls", auth.ACL{Principal: "low", ResourceType: rt, Pattern: "mine.", PatternType: auth.Prefix, Operations: []auth.Operation{auth.Read, auth.Write, auth.Create, auth.Delete, auth.Alter, auth.Describe}})
	}
	low := admin.with(tok.Token)

	// outside is the broker as the ACL protects it: everything but the
	// "mine.*" resources the principal may change.
	outside := func() string {
		var b strings.Builder
		for _, path := range []string{"/v1/topics/secret", "/v1/topics/secret/subscriptions", "/v1/groups/g/offsets",
			"/v1/modules", "/v1/pipelines", "/v1/principals", "/v1/acls",
			"/v1/topics/secret/partitions/0/records"} {
			r, err := admin.try("GET", path, nil)
			if err != nil {
				return err.Error()
			}
			fmt.Fprintf(&b, "%s %d %s\n", path, r.Status, r.Body)
		}
		var topics struct {
			Topics []struct{ Name string } `json:"topics"`
		}
		if r, err := admin.try("GET", "/v1/topics", nil); err == nil {
			json.Unmarshal(r.Body, &topics)
		}
		var names []string
		for _, t := range topics.Topics {
			if !strings.HasPrefix(t.Name, "mine.") {
				names = append(names, t.Name)
			}
		}
		sort.Strings(names)
		fmt.Fprintf(&b, "topics %v\n", names)
		return b.String()
	}
	before := outside()

	routes := gateway.Routes()
	for i, rt := range routes {
		f.Add(uint8(i), "mine.a", []byte(rt.Example))
		f.Add(uint8(i), "secret", []byte(rt.Example))
	}
	for _, body := range []string{
		`{"name":"mine.x","Name":"secret"}`, `{"topics":["mine.a","secret"]}`, `{"to":"secret"}`,
		`{"name":"mine.s","dead_letter_topic":"secret"}`, `{"name":"mine.s","dead_letter_topic":"__audit"}`,
		`{"records":[{"value":"forged"}]}`, `{"offsets":[{"topic":"secret","partition":0,"offset":0}]}`,
		`{"name":"mine.p","module":"m","inputs":["secret"],"outputs":["mine.o"]}`,
	} {
		for i := range routes {
			f.Add(uint8(i), "mine.a", []byte(body))
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, name string, body []byte) {
		rt := routes[int(route)%len(routes)]
		name = url.PathEscape(name)
		if name == "" {
			name = "x"
		}
		fill := strings.NewReplacer("{t}", name, "{p}", "0", "{s}", "workers", "{g}", name, "{m}", name,
			"{id}", "1", "{name}", name, "*", name)
		path := fill.Replace(rt.Pattern)
		var b any
		if len(body) > 0 {
			b = body
		}
		resp, err := low.try(rt.Method, path, b)
		if err != nil {
			t.Fatalf("%s %s %q: %v", rt.Method, path, body, err)
		}
		if strings.Contains(string(resp.Body), secret) {
			t.Fatalf("%s %s %q: the response carries a secret record: %s", rt.Method, path, body, resp.Body)
		}
		if after := outside(); after != before {
			t.Fatalf("%s %s %q (HTTP %d %s) changed what the principal may not touch:\nbefore %s\nafter  %s",
				rt.Method, path, body, resp.Status, resp.Body, before, after)
		}
	})
}
