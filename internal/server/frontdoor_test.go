package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/gateway"
)

// The front door's regression tests (issue 12): each request is decoded
// once, strictly, and what is authorized is what is executed.

func TestFrontDoorDecodeOnce(t *testing.T) {
	s := securedNode(t)
	defer stop(t, s)
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

	t.Run("a WebSocket commit checks topic read", func(t *testing.T) {
		// alice may use group g* but not read "secret": committing its
		// offsets over WebSocket is refused as over HTTP.
		c := dialWS(t, s.URL(), "/v1/ws", http.Header{"Authorization": {"Bearer " + alice.token}})
		c.send(map[string]any{"op": "commit", "id": "c1", "group": "g1", "topic": "secret", "partition": 0, "offset": 0})
		if m := c.waitFor(func(m wsMsg) bool { return m.ID == "c1" }); m.Op != "error" || !strings.Contains(m.raw, "forbidden") {
			t.Fatalf("WS commit on an unreadable topic: %s", m.raw)
		}
		alice.expect(403, "POST", "/v1/groups/g1/offsets", map[string]any{"offsets": []map[string]any{{"topic": "secret", "partition": 0, "offset": 0}}})
		c.send(map[string]any{"op": "commit", "id": "c2", "group": "g1", "topic": "public", "partition": 0, "offset": 0})
		if m := c.waitFor(func(m wsMsg) bool { return m.ID == "c2" }); m.Op != "committed" {
			t.Fatalf("WS commit on a readable topic: %s", m.raw)
		}
	})

	t.Run("internal topics are for admins", func(t *testing.T) {
		addACL(t, admin, "bob", auth.Topic, "*", auth.Literal, auth.Write)
		bob.expect(403, "POST", "/v1/topics/__audit/records", map[string]any{"records": []map[string]any{{"value": "forged"}}})
	})
}

// routeFill gives every pattern variable of the route table a value that
// names the walk's fixtures.
var routeFill = strings.NewReplacer("{t}", "orders", "{p}", "0", "{s}", "workers", "{g}", "g", "{m}", "m",
	"{id}", "1", "{name}", "alice", "*", "x")

// frontDoorFixtures creates what the walks act on: topics with records, a
// subscription and a group's committed offset.
func frontDoorFixtures(t *testing.T, admin *secClient) {
	for _, name := range []string{"orders", "orders.dlq"} {
		admin.expect(201, "POST", "/v1/topics", map[string]any{"name": name, "partitions": 1})
		admin.expect(200, "POST", "/v1/topics/"+name+"/records", map[string]any{"records": []map[string]any{{"value": "v"}}})
	}
	admin.expect(201, "POST", "/v1/topics/orders/subscriptions", map[string]any{"name": "workers"})
	admin.expect(204, "POST", "/v1/groups/g/offsets", map[string]any{"offsets": []map[string]any{{"topic": "orders", "partition": 0, "offset": 1}}})
}

// frontDoorState is what a denied request must leave as it was: topics,
// records, subscriptions, groups, modules, pipelines, principals, ACLs.
func frontDoorState(t *testing.T, admin *secClient) string {
	var b strings.Builder
	for _, path := range []string{"/v1/topics", "/v1/topics/orders/subscriptions", "/v1/groups/g/offsets",
		"/v1/modules", "/v1/pipelines", "/v1/principals", "/v1/acls",
		"/v1/topics/orders/partitions/0/records", "/v1/topics/orders.dlq/partitions/0/records"} {
		r := admin.do("GET", path, nil)
		fmt.Fprintf(&b, "%s %d %s\n", path, r.Status, r.Body)
	}
	return b.String()
}

// TestFrontDoorEveryRoute walks every row of the route table. A principal
// holding no ACL gets 403 from every row that is not public or open to any
// authenticated principal. Then, for every need a row's example request
// has, a principal granted all the other needs gets 403 naming exactly the
// missing one. Nothing changes on any denial: no topic created or deleted,
// no record written, no offset, subscription, module, pipeline, principal
// or ACL touched.
func TestFrontDoorEveryRoute(t *testing.T) {
	s := securedNode(t)
	defer stop(t, s)
	admin := newSecClient(t, s.URL(), testAdminToken, nil)
	frontDoorFixtures(t, admin)
	nobody := admin.with(createToken(t, admin, "nobody"))

	body := func(r gateway.RouteInfo) any {
		if r.Example == "" {
			return nil
		}
		return []byte(r.Example)
	}
	before := frontDoorState(t, admin)
	for _, r := range gateway.Routes() {
		if r.Access == "public" || r.Access == "authenticated" {
			continue
		}
		path := routeFill.Replace(r.Pattern)
		if resp := nobody.do(r.Method, path, body(r)); resp.Status != 403 {
			t.Errorf("%s %s (%s) as a principal without rights: HTTP %d %s, want 403", r.Method, path, r.Access, resp.Status, resp.Body)
		}
	}
	if after := frontDoorState(t, admin); after != before {
		t.Fatalf("denied requests changed the broker:\nbefore %s\nafter  %s", before, after)
	}

	walked := 0
	for ri, r := range gateway.Routes() {
		if r.Access != "needs" || strings.HasSuffix(r.Pattern, "/ws") {
			continue // the topic WebSocket authorizes each frame (TestWSFrameNeeds)
		}
		path := routeFill.Replace(r.Pattern)
		var raw []byte
		if r.Example != "" {
			raw = []byte(r.Example)
		}
		needs, err := gateway.RequestNeeds(r.Method, path, raw)
		if err != nil {
			t.Fatalf("%s %s: the example does not decode: %v", r.Method, path, err)
		}
		for missing := range needs {
			name := fmt.Sprintf("walk-%d-%d", ri, missing)
			c := admin.with(createToken(t, admin, name))
			for i, n := range needs {
				if i != missing {
					addACL(t, admin, name, auth.ResourceType(n.ResourceType), n.Name, auth.Literal, auth.Operation(n.Operation))
				}
			}
			before := frontDoorState(t, admin)
			resp := c.do(r.Method, path, body(r))
			n := needs[missing]
			want := fmt.Sprintf("may not %s %s %q", n.Operation, n.ResourceType, n.Name)
			if n.Name == "*" {
				want = fmt.Sprintf("may not %s every %s", n.Operation, n.ResourceType)
			}
			if resp.Status != 403 || !strings.Contains(string(resp.Body), strings.ReplaceAll(want, `"`, `\"`)) {
				t.Errorf("%s %s lacking %v (holding the rest of %v): HTTP %d %s, want 403 naming %s",
					r.Method, path, n, needs, resp.Status, resp.Body, want)
			}
			if after := frontDoorState(t, admin); after != before {
				t.Fatalf("%s %s lacking %v changed the broker:\nbefore %s\nafter  %s", r.Method, path, n, before, after)
			}
			walked++
		}
	}
	if walked < 30 {
		t.Fatalf("walked %d needs; the route table has more", walked)
	}
}
