package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/gateway"
)

// The front door's regression tests (issue 12): each request is decoded
// once, strictly, and what is authorized is what is executed.

func TestFrontDoorDecodeOnce(t *testing.T) {
	s := securedNode(t)
	admin := newSecClient(t, s.URL(), testAdminToken, nil)
	for _, name := range []string{"orders.ok", "public", "secret"} {
		admin.expect(201, "POST", "/v1/topics", map[string]any{"name": name, "partitions": 1})
	}
	alice := admin.with(createToken(t, admin, "alice"))
	bob := admin.with(createToken(t, admin, "bob"))
	for _, p := range []string{"alice", "bob"} {
		addACL(t, admin, p, auth.Topic, "orders.", auth.Prefix, auth.Create, auth.Read, auth.Write, auth.Describe)
		addACL(t, admin, p, auth.Topic, "public", auth.Literal, auth.Read, auth.Write, auth.Describe)
		addACL(t, admin, p, auth.Group, "g", auth.Prefix, auth.Read, auth.Describe)
		addACL(t, admin, p, auth.Subscription, "orders.", auth.Prefix, auth.Create, auth.Read, auth.Describe)
	}

	t.Run("members differing only in case are 400", func(t *testing.T) {
		for _, tc := range []struct{ path, body string }{
			{"/v1/topics", `{"name":"orders.x","Name":"evil-topic"}`},
			{"/v1/groups/g1/members", `{"topic":"public","Topics":["secret"]}`},
			{"/v1/topics/orders.ok/redrive", `{"to":"public","To":"secret"}`},
			{"/v1/pipelines", `{"name":"orders.p","module":"m","inputs":["public"],"Inputs":["secret"],"outputs":["orders.out"]}`},
			{"/v1/topics", `{"name":"orders.y","name":"evil-topic"}`},
		} {
			r := alice.do("POST", tc.path, []byte(tc.body))
			if r.Status != 400 {
				t.Errorf("POST %s %s: HTTP %d %s, want 400", tc.path, tc.body, r.Status, r.Body)
			}
		}
		admin.expect(404, "GET", "/v1/topics/evil-topic", nil)
	})

	t.Run("a subscription's dead-letter topic is authorized", func(t *testing.T) {
		for _, dlt := range []string{"__audit", "secret", "elsewhere.dlq"} {
			r := alice.do("POST", "/v1/topics/orders.ok/subscriptions", map[string]any{"name": "s-" + strings.Trim(dlt, "_."), "dead_letter_topic": dlt})
			if r.Status != 403 {
				t.Errorf("dead_letter_topic %q: HTTP %d %s, want 403", dlt, r.Status, r.Body)
			}
		}
		admin.expect(404, "GET", "/v1/topics/elsewhere.dlq", nil)
		alice.expect(201, "POST", "/v1/topics/orders.ok/subscriptions", map[string]any{"name": "ok", "dead_letter_topic": "orders.dlq"})
	})

	t.Run("group members belong to who joined", func(t *testing.T) {
		var m struct {
			MemberID   string `json:"member_id"`
			Generation int64  `json:"generation"`
		}
		alice.expect(201, "POST", "/v1/groups/g1/members", map[string]any{"topics": []string{"public"}}).JSON(t, &m)
		path := "/v1/groups/g1/members/" + m.MemberID
		bob.expect(403, "POST", path+"/poll", map[string]any{"generation": m.Generation})
		bob.expect(403, "POST", path+"/heartbeat", nil)
		bob.expect(403, "POST", path+"/commit", map[string]any{"generation": m.Generation, "offsets": []map[string]any{{"topic": "public", "partition": 0, "offset": 0}}})
		bob.expect(403, "DELETE", path, nil)
		alice.expect(200, "POST", path+"/poll", map[string]any{"generation": m.Generation})
		// A member can't be made to consume a topic its principal can't read.
		alice.expect(403, "POST", "/v1/groups/g2/members", map[string]any{"topics": []string{"public", "secret"}})
	})

	t.Run("internal topics are for admins", func(t *testing.T) {
		addACL(t, admin, "bob", auth.Topic, "*", auth.Literal, auth.Write)
		bob.expect(403, "POST", "/v1/topics/__audit/records", map[string]any{"records": []map[string]any{{"value": "forged"}}})
	})
}

// TestFrontDoorEveryRoute walks every row of the route table as a
// principal holding no ACL: a row with needs answers 403, an admins-only
// row 403, a node row 403, and nothing changes (no topic created, no
// record written).
func TestFrontDoorEveryRoute(t *testing.T) {
	s := securedNode(t)
	admin := newSecClient(t, s.URL(), testAdminToken, nil)
	admin.expect(201, "POST", "/v1/topics", map[string]any{"name": "orders", "partitions": 1})
	admin.expect(200, "POST", "/v1/topics/orders/records", map[string]any{"records": []map[string]any{{"value": "v"}}})
	nobody := admin.with(createToken(t, admin, "nobody"))
	topicsBefore := admin.expect(200, "GET", "/v1/topics", nil).Body
	fill := strings.NewReplacer("{t}", "orders", "{p}", "0", "{s}", "workers", "{g}", "g", "{m}", "m", "{id}", "1",
		"{name}", "alice", "{x}", "x", "*", "x")
	for _, r := range gateway.Routes() {
		path := fill.Replace(r.Pattern)
		var body any
		if r.Example != "" {
			body = json.RawMessage(r.Example)
		}
		resp := nobody.do(r.Method, path, body)
		switch r.Access {
		case "public", "authenticated":
			continue
		}
		if resp.Status != 403 {
			t.Errorf("%s %s (%s) as a principal without rights: HTTP %d %s, want 403", r.Method, path, r.Access, resp.Status, resp.Body)
		}
	}
	if after := admin.expect(200, "GET", "/v1/topics", nil).Body; string(after) != string(topicsBefore) {
		t.Errorf("topics changed:\nbefore %s\nafter  %s", topicsBefore, after)
	}
	var f struct {
		HighWatermark int64 `json:"high_watermark"`
	}
	admin.expect(200, "GET", "/v1/topics/orders/partitions/0/records", nil).JSON(t, &f)
	if f.HighWatermark != 1 {
		t.Errorf("orders has %d records, want 1", f.HighWatermark)
	}
}
