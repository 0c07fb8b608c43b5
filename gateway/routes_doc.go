package gateway

import (
	"strings"
)

// RoutesMarkdown renders the route table as the Markdown table that
// docs/api.md ("Routes") and docs/security.md ("Route → operation") carry;
// a test keeps the docs equal to it.
func RoutesMarkdown() string {
	var b strings.Builder
	b.WriteString("| method | path | who may call | audited | what |\n|---|---|---|---|---|\n")
	for _, r := range routes.routes {
		b.WriteString("| " + r.method + " | `" + r.pattern + "` | " + r.accessDoc() + " | ")
		if r.audit {
			b.WriteString("yes")
		}
		b.WriteString(" | " + r.summary + " |\n")
	}
	return b.String()
}

// accessDoc says who may call a row: its access class, or its needs as
// type:operation:name, the name read from {path}, <query.q> or <body.f>.
func (r *route) accessDoc() string {
	switch r.access {
	case accessPublic:
		return "anyone (no credentials)"
	case accessAdmin:
		return "admins"
	case accessNode:
		return "other nodes (cluster secret)"
	}
	var needs []string
	for _, f := range r.plan.fields {
		s := "`" + string(f.rt) + ":" + string(f.op) + ":" + f.source + "`"
		if f.optional {
			s += " (when given)"
		}
		needs = append(needs, s)
	}
	for _, n := range r.all {
		needs = append(needs, "`"+n.String()+"`")
	}
	if len(needs) == 0 {
		return "any authenticated principal"
	}
	return strings.Join(needs, ", ")
}
