package gateway

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"sync"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/valyala/fasthttp"

	"github.com/weir-broker/weir/core"
	"github.com/weir-broker/weir/core/auth"
	"github.com/weir-broker/weir/core/quota"
)

// The route table (routes.go) is the one place that knows the gateway's
// routes. A row names a method, a path pattern and a typed request; the
// gateway decodes each request ONCE into that type — path variables,
// query arguments and the JSON body — and what is authorized, validated
// and executed is that one value:
//
//  1. match the path and method (404, 405);
//  2. authenticate from the headers (401) unless the route is public;
//  3. decode into the route's request type: fields tagged `path:"t"` take
//     the pattern's {t}, `query:"q"` a query argument, the others the JSON
//     body, decoded strictly (case-sensitive names, unknown and duplicate
//     members are 400); a type may decode its body itself (bodyDecoder) and
//     derive more from the decoded value (parser);
//  4. authorize the needs read from the decoded value: every field tagged
//     `need:"topic:write"` (a string, or a slice of them, at any depth)
//     names a resource the caller must hold that operation on (403);
//  5. charge it to the caller's quota (quota.go: one request, and what the
//     row meters of the same value), waiting or refusing with 429;
//  6. run the handler with the same value; audit admin actions.
//
// Documentation (docs/api.md, docs/security.md) is generated from the same
// rows (routes_doc.go), so docs and code cannot drift.

// access says who may call a route at all.
type access uint8

const (
	accessNeeds  access = iota // the request's needs; none: any authenticated principal
	accessPublic               // no credentials
	accessAdmin                // admins only
	accessNode                 // other nodes only (the cluster secret)
)

// need is one (resource type, operation, name) a request requires. A name
// of "*" asks for every resource of the type (list endpoints: an admin or
// a wildcard ACL).
type need struct {
	rt   auth.ResourceType
	op   auth.Operation
	name string
}

func (n need) String() string { return string(n.rt) + ":" + string(n.op) + ":" + n.name }

// route is a row of the table.
type route struct {
	method  string // "GET", "POST", …; GET also serves HEAD
	pattern string // "/v1/topics/{t}/records"; a last segment "*" matches the rest
	segs    []string
	access  access
	audit   bool       // an admin action: recorded in __audit with its result
	all     []need     // wildcard needs of list endpoints
	summary string     // one line for docs/api.md
	example string     // a sample JSON body (docs; the authorization tests send it)
	meter   quota.Kind // besides the request: quota.Produce or quota.Fetch (quota.go)

	plan  *reqPlan // of the request type
	serve func(c *call)
	// needsOf decodes a request into the row's type and lists its needs
	// (what serve authorizes; RequestNeeds shows it to tests).
	needsOf func(c *call) ([]need, error)
}

// call is one request on its way through the table.
type call struct {
	s    *Server
	ctx  *fasthttp.RequestCtx
	r    *route
	vars []string // the pattern's {x} values, in order
	p    auth.Principal
	sec  *auth.Service // nil: security is off
	// first is the first need checked (the audit record's resource).
	first *need
}

// pathVar returns the value of the pattern variable name.
func (c *call) pathVar(name string) string {
	i := 0
	for _, s := range c.r.segs {
		if isVar(s) {
			if s[1:len(s)-1] == name {
				return c.vars[i]
			}
			i++
		}
	}
	return ""
}

func isVar(seg string) bool { return len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' }

// bodyDecoder is a request type that decodes its own body (raw bytes, or a
// faster parser than reflection). It must be as strict as decodeStrict.
type bodyDecoder interface {
	decodeBody(c *call, body []byte) error
}

// parser is a request type that validates or derives fields once the path,
// query and body are in (parse errors are 400 before authorization).
type parser interface{ parse(c *call) error }

// optionalBody marks a request type whose JSON body may be empty.
type optionalBody interface{ bodyOptional() }

// routeOpt changes a row.
type routeOpt func(*route)

func public() routeOpt    { return func(r *route) { r.access = accessPublic } }
func adminOnly() routeOpt { return func(r *route) { r.access = accessAdmin } }
func nodeOnly() routeOpt  { return func(r *route) { r.access = accessNode } }
func audited() routeOpt   { return func(r *route) { r.audit = true } }
func every(rt auth.ResourceType, op auth.Operation) routeOpt {
	return func(r *route) { r.all = append(r.all, need{rt: rt, op: op, name: "*"}) }
}
func doc(summary string) routeOpt  { return func(r *route) { r.summary = summary } }
func example(body string) routeOpt { return func(r *route) { r.example = body } }

// op makes a row whose request type is R: exec runs with the decoded,
// authorized value.
func op[R any](method, pattern string, exec func(s *Server, c *call, r *R), opts ...routeOpt) *route {
	rt := &route{method: method, pattern: pattern, segs: splitPath(pattern), plan: planOf(reflect.TypeFor[R]())}
	for _, o := range opts {
		o(rt)
	}
	if _, ok := any((*R)(nil)).(producer); rt.meter == quota.Produce && !ok {
		panic(fmt.Sprintf("gateway: %s %s: meter(quota.Produce) needs a request type with producedBytes", method, pattern))
	}
	decode := func(c *call) (*R, []need, error) {
		var r R
		if err := c.decode(reflect.ValueOf(&r)); err != nil {
			return nil, nil, err
		}
		needs, err := c.r.plan.needs(reflect.ValueOf(&r).Elem(), c.r.all)
		return &r, needs, err
	}
	rt.needsOf = func(c *call) ([]need, error) {
		_, needs, err := decode(c)
		return needs, err
	}
	rt.serve = func(c *call) {
		r, needs, err := decode(c)
		if err != nil {
			writeError(c.ctx, err)
			return
		}
		if !c.authorize(needs) || !c.admitQuota(r) {
			return
		}
		exec(c.s, c, r)
		c.settleQuota()
	}
	return rt
}

// raw makes a row whose handler reads the request itself: for routes with
// nothing to decode (static files, /metrics) and the WebSocket upgrade.
func raw(method, pattern string, h func(s *Server, ctx *fasthttp.RequestCtx), opts ...routeOpt) *route {
	rt := &route{method: method, pattern: pattern, segs: splitPath(pattern), plan: planOf(reflect.TypeFor[struct{}]())}
	for _, o := range opts {
		o(rt)
	}
	if rt.meter != quota.Requests {
		panic(fmt.Sprintf("gateway: %s %s: a raw row decodes nothing to meter", method, pattern))
	}
	rt.needsOf = func(*call) ([]need, error) { return rt.all, nil }
	rt.serve = func(c *call) {
		if !c.authorize(rt.all) || !c.admitQuota(nil) {
			return
		}
		h(c.s, c.ctx)
	}
	return rt
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// table is the gateway's routes, matched in order.
type table struct {
	routes []*route
}

// match finds the row of a request. When the path matches rows of other
// methods only, it returns errMethodNotAllowed; no row: errNotFound.
func (t *table) match(method string, segs []string) (*route, []string, error) {
	pathMatched := false
	for _, r := range t.routes {
		vars, ok := r.matchPath(segs)
		if !ok {
			continue
		}
		if r.method != method && !(r.method == "GET" && method == "HEAD") {
			pathMatched = true
			continue
		}
		return r, vars, nil
	}
	if pathMatched {
		return nil, nil, errMethodNotAllowed
	}
	return nil, nil, errNotFound
}

func (r *route) matchPath(segs []string) ([]string, bool) {
	n := len(r.segs)
	if n > 0 && r.segs[n-1] == "*" {
		if len(segs) < n-1 {
			return nil, false
		}
		segs, n = segs[:n-1], n-1
	} else if len(segs) != n {
		return nil, false
	}
	var vars []string
	for i := 0; i < n; i++ {
		p := r.segs[i]
		if isVar(p) {
			if segs[i] == "" {
				return nil, false
			}
			vars = append(vars, segs[i])
		} else if p != segs[i] {
			return nil, false
		}
	}
	return vars, true
}

// decodeStrict decodes a JSON object body into v: member names match the
// json tags exactly (case-sensitive), unknown and duplicate members are
// errors, and nothing may follow the object. (encoding/json matches names
// case-insensitively and lets the last duplicate win, so a check reading
// one member and a handler reading another could disagree.)
func decodeStrict(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return core.Invalidf("the request body must be a JSON object")
	}
	if err := jsonv2.Unmarshal(body, v, jsonv2.RejectUnknownMembers(true)); err != nil {
		return core.Invalidf("invalid JSON body: %v", err)
	}
	return nil
}

// decode fills the request value pv (a pointer) from the path, the query
// and the body, once.
func (c *call) decode(pv reflect.Value) error {
	v := pv.Elem()
	plan := c.r.plan
	for _, f := range plan.path {
		v.FieldByIndex(f.index).SetString(c.pathVar(f.key))
	}
	if len(plan.query) > 0 {
		args := c.ctx.QueryArgs()
		for _, f := range plan.query {
			if args.Has(f.key) {
				v.FieldByIndex(f.index).SetString(string(args.Peek(f.key)))
			}
		}
	}
	req := pv.Interface()
	switch d := req.(type) {
	case bodyDecoder:
		if err := d.decodeBody(c, c.ctx.PostBody()); err != nil {
			return err
		}
	default:
		if plan.hasBody {
			body := c.ctx.PostBody()
			_, opt := req.(optionalBody)
			if t := bytes.TrimSpace(body); opt && (len(t) == 0 || string(t) == "null") {
				// no body: every field keeps its default
			} else {
				if err := decodeStrict(body, req); err != nil {
					return err
				}
			}
		}
	}
	if p, ok := req.(parser); ok {
		if err := p.parse(c); err != nil {
			return err
		}
	}
	return nil
}

// authorize checks needs for the caller; on a denial it answers 403,
// audits it and returns false. Admins (and other nodes) hold every need.
func (c *call) authorize(needs []need) bool {
	if len(needs) > 0 {
		c.first = &needs[0]
	}
	if c.sec == nil || c.p.Admin {
		return true
	}
	for i := range needs {
		nd := &needs[i]
		if nd.name == "*" {
			if !c.sec.AllowedAll(c.p, nd.rt, nd.op) {
				c.s.deny(c.ctx, c.sec, c.p, c.action(), string(nd.rt)+":*", string(nd.op),
					fmt.Sprintf("principal %q may not %s every %s (listing needs a wildcard ACL)", c.p.Name, nd.op, nd.rt))
				return false
			}
			continue
		}
		if !c.sec.Allowed(c.p, nd.rt, nd.name, nd.op) {
			c.first = nd
			c.s.deny(c.ctx, c.sec, c.p, c.action(), string(nd.rt)+":"+nd.name, string(nd.op),
				fmt.Sprintf("principal %q may not %s %s %q", c.p.Name, nd.op, nd.rt, nd.name))
			return false
		}
	}
	return true
}

// check authorizes needs found while executing (what the request leads
// to: a member's topics, a subscription's dead-letter topic). It audits a
// denial and returns an error for the caller to answer.
func (c *call) check(needs ...need) error {
	if c.sec == nil || c.p.Admin {
		return nil
	}
	for _, nd := range needs {
		if !c.sec.Allowed(c.p, nd.rt, nd.name, nd.op) {
			msg := fmt.Sprintf("principal %q may not %s %s %q", c.p.Name, nd.op, nd.rt, nd.name)
			c.sec.Audit(auth.Event{Principal: c.p.Name, Via: c.p.Via, Action: c.action(), Resource: string(nd.rt) + ":" + nd.name,
				Operation: string(nd.op), Result: "denied", Status: 403, Source: c.ctx.RemoteAddr().String(), Reason: msg})
			return fmt.Errorf("%w: %s", core.ErrForbidden, msg)
		}
	}
	return nil
}

// may reports whether the caller holds a need, without auditing (for
// filtering what a description shows).
func (c *call) may(rt auth.ResourceType, name string, op auth.Operation) bool {
	return c.sec == nil || c.p.Admin || c.sec.Allowed(c.p, rt, name, op)
}

func (c *call) action() string { return string(c.ctx.Method()) + " " + string(c.ctx.Path()) }

// reqPlan is what reflection found in a request type, computed once per
// type: where its path, query and need fields are.
type reqPlan struct {
	typ     reflect.Type
	path    []fieldRef
	query   []fieldRef
	fields  []needField
	hasBody bool // the type has JSON body fields
}

type fieldRef struct {
	index []int
	key   string
}

// needField is a field tagged need:"type:op[,optional]"; path leads to it
// (slices and nested structs are walked).
type needField struct {
	rt       auth.ResourceType
	op       auth.Operation
	optional bool
	steps    []step
	source   string // for docs: {t}, <query.q>, <body.a[].b>, or the field's doc tag
}

type step struct {
	index []int
	slice bool // the field is a slice: every element
}

var plans sync.Map // reflect.Type → *reqPlan

func planOf(t reflect.Type) *reqPlan {
	if p, ok := plans.Load(t); ok {
		return p.(*reqPlan)
	}
	p := &reqPlan{typ: t}
	p.walk(t, nil, nil, "", true)
	plans.Store(t, p)
	return p
}

// walk collects the tagged fields of t. top: t is the request type itself
// (path and query tags are only read there).
// An embedded struct is flattened into its parent: tagged json:"-" (a
// request type embeds another's path fields that way) or untagged (its
// fields are members of the body); base is the index path to it.
func (p *reqPlan) walk(t reflect.Type, base []int, steps []step, prefix string, top bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		f.Index = append(append([]int(nil), base...), f.Index...)
		if tag := f.Tag.Get("json"); f.Anonymous && f.Type.Kind() == reflect.Struct && (tag == "-" || tag == "") {
			p.walk(f.Type, f.Index, steps, prefix, top) // flattened, or inlined in the body (as encoding/json does)
			continue
		}
		if !f.IsExported() {
			continue
		}
		jsonName, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		source := ""
		if top {
			if k := f.Tag.Get("path"); k != "" {
				mustNoJSON(t, f)
				p.path = append(p.path, fieldRef{index: f.Index, key: k})
				source = "{" + k + "}"
			}
			if k := f.Tag.Get("query"); k != "" {
				mustNoJSON(t, f)
				p.query = append(p.query, fieldRef{index: f.Index, key: k})
				source = "<query." + k + ">"
			}
		}
		if source == "" && jsonName != "-" {
			if jsonName == "" {
				jsonName = f.Name
			}
			if top {
				p.hasBody = true
			}
			source = "<body." + prefix + jsonName + ">"
		}
		if source == "" {
			source = f.Tag.Get("doc")
		}
		ft := f.Type
		here := append(append([]step(nil), steps...), step{index: f.Index})
		if ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.Uint8 {
			here[len(here)-1].slice = true
			ft = ft.Elem()
			source = strings.TrimSuffix(source, ">") + "[]>"
		}
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if tag := f.Tag.Get("need"); tag != "" {
			spec, opts, _ := strings.Cut(tag, ",")
			rt, o, ok := strings.Cut(spec, ":")
			if !ok || ft.Kind() != reflect.String {
				panic(fmt.Sprintf("gateway: %s.%s: need tag %q must be type:op on a string", t, f.Name, tag))
			}
			p.fields = append(p.fields, needField{rt: auth.ResourceType(rt), op: auth.Operation(o),
				optional: opts == "optional", steps: here, source: source})
			continue
		}
		if ft.Kind() == reflect.Struct && jsonName != "-" && f.Tag.Get("path") == "" {
			p.walk(ft, nil, here, prefix+jsonName+nestSep(here), false)
		}
	}
}

func nestSep(steps []step) string {
	if steps[len(steps)-1].slice {
		return "[]."
	}
	return "."
}

func mustNoJSON(t reflect.Type, f reflect.StructField) {
	if f.Tag.Get("json") != "-" || f.Type.Kind() != reflect.String {
		panic(fmt.Sprintf("gateway: %s.%s: path and query fields are strings tagged json:\"-\"", t, f.Name))
	}
}

// needs lists the needs of a decoded request value v, then extra. An
// optional need with an empty name is skipped; a required one with an
// empty name is a bad request (for everyone: it names nothing to check).
func (p *reqPlan) needs(v reflect.Value, extra []need) ([]need, error) {
	var out []need
	var err error
	for i := range p.fields {
		nf := &p.fields[i]
		collect(v, nf.steps, func(name string) {
			if name == "" {
				if !nf.optional && err == nil {
					err = core.Invalidf("%s must name a %s", strings.Trim(nf.source, "<>{}"), nf.rt)
				}
				return
			}
			out = append(out, need{rt: nf.rt, op: nf.op, name: name})
		})
	}
	return append(out, extra...), err
}

func collect(v reflect.Value, steps []step, fn func(string)) {
	if len(steps) == 0 {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return
			}
			v = v.Elem()
		}
		fn(v.String())
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	f := v.FieldByIndex(steps[0].index)
	if steps[0].slice {
		for i := 0; i < f.Len(); i++ {
			collect(f.Index(i), steps[1:], fn)
		}
		return
	}
	collect(f, steps[1:], fn)
}
