package gateway

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the route tables in docs/ from the route table")

const (
	routesBegin = "<!-- routes:begin (generated from gateway/routes.go by `go test ./gateway -run TestRouteDocs -update-docs`) -->\n"
	routesEnd   = "<!-- routes:end -->"
)

// TestRouteDocs: docs/api.md and docs/security.md carry exactly the route
// table's rows, so the docs cannot drift from the code.
func TestRouteDocs(t *testing.T) {
	want := routesBegin + RoutesMarkdown() + routesEnd
	for _, path := range []string{"../docs/api.md", "../docs/security.md"} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(b)
		i := strings.Index(doc, "<!-- routes:begin")
		j := strings.Index(doc, routesEnd)
		if i < 0 || j < i {
			t.Fatalf("%s has no generated route table (markers %q … %q)", path, "<!-- routes:begin", routesEnd)
		}
		got := doc[i : j+len(routesEnd)]
		if got == want {
			continue
		}
		if !*updateDocs {
			t.Errorf("%s: the route table differs from gateway/routes.go; run go test ./gateway -run TestRouteDocs -update-docs", path)
			continue
		}
		if err := os.WriteFile(path, []byte(doc[:i]+want+doc[j+len(routesEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRouteTable: every row is well formed and reachable (no row hidden
// behind an earlier one), and request types' tags are valid (planOf
// panics otherwise, at package init).
func TestRouteTable(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range routes.routes {
		key := r.method + " " + r.pattern
		if seen[key] {
			t.Errorf("duplicate row %s", key)
		}
		seen[key] = true
		if r.summary == "" {
			t.Errorf("%s has no summary for the docs", key)
		}
		segs := make([]string, len(r.segs))
		for i, s := range r.segs {
			segs[i] = strings.NewReplacer("{", "x", "}", "x", "*", "any").Replace(s)
		}
		got, _, err := routes.match(r.method, segs)
		if err != nil || got != r {
			t.Errorf("%s: a request to it matches %v (%v)", key, got, err)
		}
	}
}
