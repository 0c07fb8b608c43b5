package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weir-broker/weir/core"
)

// Catalog tables (the replicated metadata shard).
const (
	principalsTable = "auth_principals" // name → PrincipalInfo
	tokensTable     = "auth_tokens"     // SHA-256 hex of the token → tokenRecord
	aclsTable       = "auth_acls"       // id → ACL
)

// TokenPrefix starts every API token Weir issues.
const TokenPrefix = "weir_"

// BootstrapPrincipal is the name of the admin authenticated by the
// bootstrap token (WEIR_ADMIN_TOKEN); NodePrincipal the name of another
// node presenting the cluster secret.
const (
	BootstrapPrincipal = "admin"
	NodePrincipal      = "weir-node"
	Anonymous          = "anonymous"
)

// Config configures the security service.
type Config struct {
	// Enabled turns authentication and authorization on. Off: every
	// request is the anonymous admin (the single-node try-out default).
	Enabled bool
	// AdminToken, when set, authenticates the bootstrap admin principal.
	AdminToken string
	// ClusterSecret authenticates other nodes on /v1/internal/* and
	// /v1/cluster/join (sent in the Weir-Node-Secret header).
	ClusterSecret string
	JWT           JWTConfig
	// Audit configures the __audit topic.
	Audit AuditConfig
	// MaxConnsPerPrincipal bounds the WebSocket connections one principal
	// holds on a node; default 1024.
	MaxConnsPerPrincipal int
	Logger               *slog.Logger
}

// Principal is an authenticated caller.
type Principal struct {
	Name  string
	Admin bool   // a superuser: every ACL check passes
	Via   string // token, jwt, mtls, bootstrap, node, anonymous
	Node  bool   // another node of the cluster
}

// PrincipalInfo is a principal as stored and listed.
type PrincipalInfo struct {
	Name      string      `json:"name"`
	Admin     bool        `json:"admin"`
	CreatedAt int64       `json:"created_at"`
	CreatedBy string      `json:"created_by,omitempty"`
	Tokens    []TokenInfo `json:"tokens,omitempty"`
}

// TokenInfo describes an issued token (never the token itself).
type TokenInfo struct {
	ID        string `json:"id"`
	Principal string `json:"principal"`
	CreatedAt int64  `json:"created_at"`
	CreatedBy string `json:"created_by,omitempty"`
}

// snapshot is the decoded security catalog, rebuilt when the catalog changes.
//
// A record that does not decode is never taken for an absent or empty one:
// it is logged (once per rebuild) and refused. A corrupt token record
// authenticates no one; a corrupt principal record refuses that principal
// whatever its credential (it might have been an admin, or not); a
// corrupt ACL record, whose principal cannot be read, grants nothing (ACLs
// only allow) and is listed by its id in the log so an admin can remove it.
type snapshot struct {
	principals map[string]PrincipalInfo
	tokens     map[string]TokenInfo // by hash
	acls       map[string][]ACL     // by principal
	all        []ACL

	badPrincipals map[string]error // principal records that do not decode, by name
	badTokens     map[string]error // token records that do not decode, by hash
}

// Service authenticates and authorizes requests and keeps the audit log.
// Safe for concurrent use.
type Service struct {
	cfg   Config
	store core.Store
	jwt   *JWTVerifier
	log   *slog.Logger
	audit *auditor

	mu      sync.Mutex
	snap    *snapshot
	changed <-chan struct{}
}

// New returns the service. With cfg.Enabled and JWT keys configured it
// loads them (an error if they are unreadable).
func New(store core.Store, cfg Config) (*Service, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxConnsPerPrincipal <= 0 {
		cfg.MaxConnsPerPrincipal = 1024
	}
	s := &Service{cfg: cfg, store: store, log: cfg.Logger}
	if cfg.JWT.Enabled() {
		if cfg.JWT.Logger == nil {
			cfg.JWT.Logger = cfg.Logger
		}
		v, err := NewJWTVerifier(cfg.JWT)
		if err != nil {
			return nil, err
		}
		s.jwt = v
	}
	if cfg.Enabled {
		s.audit = newAuditor(store, cfg.Audit, cfg.Logger)
	}
	return s, nil
}

// Enabled reports whether authentication is on.
func (s *Service) Enabled() bool { return s != nil && s.cfg.Enabled }

// Config returns the service's configuration.
func (s *Service) Config() Config { return s.cfg }

// Run writes the audit log and keeps a JWKS URL's keys fresh until ctx
// ends; it returns when both are done.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if s.jwt != nil {
		wg.Go(func() { s.jwt.Run(ctx) })
	}
	if s.audit != nil {
		wg.Go(func() { s.audit.run(ctx) })
	}
	wg.Wait()
}

// AnonymousAdmin is the principal of every request when auth is off.
var AnonymousAdmin = Principal{Name: Anonymous, Admin: true, Via: "anonymous"}

// HashToken is the stored form of a token: hex SHA-256. Tokens carry 256
// bits of randomness, so a fast hash is enough.
func HashToken(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// NewToken returns a fresh random API token.
func NewToken() string {
	var b [32]byte
	rand.Read(b[:])
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func unauthenticated(msg string) error {
	return fmt.Errorf("%w: %s", core.ErrUnauthenticated, msg)
}

// corruptRefusal refuses a credential whose stored record (what) does not
// decode: unauthenticated (401) and core.ErrCorrupt.
func corruptRefusal(what string, err error) error {
	return fmt.Errorf("%w: %s is corrupt (%w: %v); an admin must delete and recreate it", core.ErrUnauthenticated, what, core.ErrCorrupt, err)
}

// Authenticate resolves a bearer token (an API token or a JWT).
func (s *Service) Authenticate(tok string) (Principal, error) {
	if tok == "" {
		return Principal{}, unauthenticated("no credentials: send Authorization: Bearer <token>")
	}
	if len(tok) > MaxTokenBytes {
		return Principal{}, unauthenticated("token too long")
	}
	if s.cfg.AdminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AdminToken)) == 1 {
		return Principal{Name: BootstrapPrincipal, Admin: true, Via: "bootstrap"}, nil
	}
	if strings.HasPrefix(tok, TokenPrefix) {
		h := HashToken(tok)
		snap := s.snapshot()
		rec, ok := snap.tokens[h]
		// Looked up by hash: timing reveals nothing about stored tokens.
		if !ok {
			if err := snap.badTokens[h]; err != nil {
				return Principal{}, corruptRefusal("this token's stored record", err)
			}
			return Principal{}, unauthenticated("unknown or revoked token")
		}
		if err := snap.badPrincipals[rec.Principal]; err != nil {
			return Principal{}, corruptRefusal(fmt.Sprintf("principal %q's stored record", rec.Principal), err)
		}
		return Principal{Name: rec.Principal, Admin: s.isAdmin(rec.Principal, "token"), Via: "token"}, nil
	}
	if s.jwt != nil && LooksLikeJWT(tok) {
		c, err := s.jwt.Verify(tok)
		if err != nil {
			return Principal{}, unauthenticated(err.Error())
		}
		if err := s.snapshot().badPrincipals[c.Principal]; err != nil {
			return Principal{}, corruptRefusal(fmt.Sprintf("principal %q's stored record", c.Principal), err)
		}
		return Principal{Name: c.Principal, Admin: s.isAdmin(c.Principal, "jwt"), Via: "jwt"}, nil
	}
	return Principal{}, unauthenticated("unknown or revoked token")
}

// AuthenticateCert maps a verified client certificate's subject common
// name to a principal.
func (s *Service) AuthenticateCert(cn string) (Principal, error) {
	if !ValidPrincipalName(cn) {
		return Principal{}, unauthenticated("the client certificate's subject common name is not a valid principal name")
	}
	if err := s.snapshot().badPrincipals[cn]; err != nil {
		return Principal{}, corruptRefusal(fmt.Sprintf("principal %q's stored record", cn), err)
	}
	return Principal{Name: cn, Admin: s.isAdmin(cn, "mtls"), Via: "mtls"}, nil
}

// NodeSecretOK reports whether v is the cluster secret (constant time).
func (s *Service) NodeSecretOK(v string) bool {
	return s.cfg.ClusterSecret != "" && subtle.ConstantTimeCompare([]byte(v), []byte(s.cfg.ClusterSecret)) == 1
}

// NodeAuth is the principal of another node.
var NodeAuth = Principal{Name: NodePrincipal, Admin: true, Node: true, Via: "node"}

// isAdmin is the one admin decision (docs/security.md, "Who is an
// admin"). via says how the name was authenticated:
//
//   - "bootstrap" (the bootstrap token itself) and "node" (the cluster
//     secret): admin;
//   - "token", "jwt", "mtls": admin only if a principal of that name is
//     stored with admin set. The name alone proves nothing: a JWT with
//     sub "admin" or a certificate with CN "admin" is the bootstrap admin
//     only if "admin" was also created as an admin principal;
//   - "stored" (a pipeline's recorded creator, by name): a stored admin,
//     or the bootstrap admin's name while a bootstrap token is configured
//     (Allowed keeps anyone else of that name from creating pipelines).
func (s *Service) isAdmin(name, via string) bool {
	switch via {
	case "bootstrap", "node":
		return true
	case "stored":
		if name == BootstrapPrincipal && s.cfg.AdminToken != "" {
			return true
		}
	}
	return s.snapshot().principals[name].Admin // false for a corrupt record: never guessed
}

// Internal reports whether a topic is internal (ReservedPrefix, e.g.
// __audit): only admins and other nodes may write, create, delete or
// alter it, whatever the ACLs say.
func Internal(rt ResourceType, name string) bool {
	return rt == Topic && strings.HasPrefix(name, ReservedPrefix)
}

// adminOnly reports the operations on an internal topic reserved to admins.
func adminOnly(op Operation) bool {
	return op == Write || op == Create || op == Delete || op == Alter
}

// Allowed reports whether p may do op on the resource rt/name. Admins
// (and nodes) may do everything. Writing, creating, deleting or altering
// an internal topic (Internal) is for admins only, whatever the ACLs say;
// reading one needs a literal ACL naming it (ACL.Matches). A non-admin
// principal named like the bootstrap admin may not create pipelines while
// a bootstrap token is configured: a pipeline runs with the rights of its
// creator's name, and that name's are the bootstrap admin's.
func (s *Service) Allowed(p Principal, rt ResourceType, name string, op Operation) bool {
	if p.Admin {
		return true
	}
	if Internal(rt, name) && adminOnly(op) {
		return false
	}
	snap := s.snapshot()
	if snap.badPrincipals[p.Name] != nil {
		return false // its stored record does not decode: refused (logged at rebuild)
	}
	if rt == Pipeline && op == Create && p.Name == BootstrapPrincipal && s.cfg.AdminToken != "" {
		return false
	}
	for _, a := range snap.acls[p.Name] {
		if a.Matches(rt, name) && a.Allows(op) {
			return true
		}
	}
	return false
}

// AllowedAll reports whether p may do op on every resource of type rt
// (list endpoints): an admin, or an ACL with a wildcard pattern.
func (s *Service) AllowedAll(p Principal, rt ResourceType, op Operation) bool {
	if p.Admin {
		return true
	}
	if rt == Topic && adminOnly(op) {
		return false // every topic includes the internal ones
	}
	snap := s.snapshot()
	if snap.badPrincipals[p.Name] != nil {
		return false
	}
	for _, a := range snap.acls[p.Name] {
		if a.ResourceType == rt && a.Wildcard() && a.Allows(op) {
			return true
		}
	}
	return false
}

// PrincipalAllowed implements core.AccessChecker for pipelines: the
// rights of a stored principal, by name. With auth off everything is
// allowed; an empty name (a pipeline created with auth off) is allowed
// nothing once auth is on, except by an admin's re-creation.
func (s *Service) PrincipalAllowed(name, resourceType, resource, op string) bool {
	if !s.Enabled() {
		return true
	}
	if name == "" {
		return false
	}
	return s.Allowed(Principal{Name: name, Admin: s.isAdmin(name, "stored")}, ResourceType(resourceType), resource, Operation(op))
}

// snapshot returns the decoded catalog, rebuilding it after a change.
func (s *Service) snapshot() *snapshot {
	s.mu.Lock()
	if s.snap != nil {
		select {
		case <-s.changed:
		default:
			s.mu.Unlock()
			return s.snap
		}
	}
	s.changed = s.store.CatalogChanged()
	var bad []func() // logged once the lock is released
	snap := &snapshot{principals: map[string]PrincipalInfo{}, tokens: map[string]TokenInfo{}, acls: map[string][]ACL{},
		badPrincipals: map[string]error{}, badTokens: map[string]error{}}
	corrupt := func(table, key string, err error) {
		bad = append(bad, func() {
			s.log.Error("security catalog record does not decode: refused until an admin deletes and recreates it",
				"table", table, "key", key, "err", err)
		})
	}
	for k, v := range s.store.CatalogList(principalsTable) {
		var p PrincipalInfo
		if err := json.Unmarshal(v, &p); err != nil {
			snap.badPrincipals[k] = err
			corrupt(principalsTable, k, err)
			continue
		}
		snap.principals[k] = p
	}
	for k, v := range s.store.CatalogList(tokensTable) {
		var t TokenInfo
		if err := json.Unmarshal(v, &t); err != nil {
			snap.badTokens[k] = err
			corrupt(tokensTable, k, err)
			continue
		}
		snap.tokens[k] = t
	}
	for k, v := range s.store.CatalogList(aclsTable) {
		var a ACL
		if err := json.Unmarshal(v, &a); err != nil {
			corrupt(aclsTable, k, err) // grants nothing; RemoveACL(k) deletes it
			continue
		}
		snap.acls[a.Principal] = append(snap.acls[a.Principal], a)
		snap.all = append(snap.all, a)
	}
	sort.Slice(snap.all, func(i, j int) bool {
		if snap.all[i].Principal != snap.all[j].Principal {
			return snap.all[i].Principal < snap.all[j].Principal
		}
		return snap.all[i].ID < snap.all[j].ID
	})
	s.snap = snap
	s.mu.Unlock()
	for _, log := range bad {
		log()
	}
	return snap
}

// CreateToken issues a new token for the principal name, creating the
// principal (with admin as given) when it does not exist yet. The token is
// returned once and stored only hashed.
func (s *Service) CreateToken(ctx context.Context, name string, admin bool, by string) (string, TokenInfo, PrincipalInfo, error) {
	if !ValidPrincipalName(name) {
		return "", TokenInfo{}, PrincipalInfo{}, core.Invalidf("principal name %q must be 1–128 characters of [A-Za-z0-9._@:=-]", name)
	}
	if name == NodePrincipal || name == Anonymous {
		return "", TokenInfo{}, PrincipalInfo{}, core.Invalidf("principal name %q is reserved", name)
	}
	now := time.Now().UnixMilli()
	p := PrincipalInfo{Name: name, Admin: admin, CreatedAt: now, CreatedBy: by}
	if raw, ok := s.store.CatalogGet(principalsTable, name); ok {
		if err := json.Unmarshal(raw, &p); err != nil {
			return "", TokenInfo{}, PrincipalInfo{}, fmt.Errorf("%w: principal %q's stored record does not decode (%v); delete the principal and create it again", core.ErrCorrupt, name, err)
		}
		if admin && !p.Admin {
			return "", TokenInfo{}, PrincipalInfo{}, core.Invalidf("principal %q exists and is not an admin; delete it and create it again to change that", name)
		}
	} else {
		b, _ := json.Marshal(p)
		if _, err := s.store.CatalogPut(ctx, principalsTable, name, b, core.CatalogCond{IfAbsent: true}); err != nil {
			return "", TokenInfo{}, PrincipalInfo{}, err
		}
	}
	tok := NewToken()
	h := HashToken(tok)
	info := TokenInfo{ID: h[:16], Principal: name, CreatedAt: now, CreatedBy: by}
	b, _ := json.Marshal(info)
	if _, err := s.store.CatalogPut(ctx, tokensTable, h, b, core.CatalogCond{IfAbsent: true}); err != nil {
		return "", TokenInfo{}, PrincipalInfo{}, err
	}
	return tok, info, p, nil
}

// RevokeToken deletes the token with this id (the first 16 hex digits of
// its hash); name, when not empty, must be its principal.
func (s *Service) RevokeToken(ctx context.Context, name, id string) error {
	for h, t := range s.tokensOf(name) {
		if t.ID == id {
			_, err := s.store.CatalogDelete(ctx, tokensTable, h, core.CatalogCond{})
			return err
		}
	}
	return fmt.Errorf("%w: no token %q for principal %q", core.ErrPrincipalNotFound, id, name)
}

func (s *Service) tokensOf(name string) map[string]TokenInfo {
	out := map[string]TokenInfo{}
	for h, v := range s.store.CatalogList(tokensTable) {
		var t TokenInfo
		if json.Unmarshal(v, &t) == nil && (name == "" || t.Principal == name) {
			out[h] = t
		}
	}
	return out
}

// DeletePrincipal deletes a principal with its tokens and ACLs.
func (s *Service) DeletePrincipal(ctx context.Context, name string) error {
	if _, ok := s.store.CatalogGet(principalsTable, name); !ok {
		return fmt.Errorf("%w: %q", core.ErrPrincipalNotFound, name)
	}
	for h := range s.tokensOf(name) {
		if _, err := s.store.CatalogDelete(ctx, tokensTable, h, core.CatalogCond{}); err != nil {
			return err
		}
	}
	for _, a := range s.ACLs(name) {
		if _, err := s.store.CatalogDelete(ctx, aclsTable, a.ID, core.CatalogCond{}); err != nil {
			return err
		}
	}
	_, err := s.store.CatalogDelete(ctx, principalsTable, name, core.CatalogCond{})
	return err
}

// Principals lists the stored principals with their tokens' ids.
func (s *Service) Principals() []PrincipalInfo {
	snap := s.snapshot()
	out := make([]PrincipalInfo, 0, len(snap.principals))
	for _, p := range snap.principals {
		for _, t := range snap.tokens {
			if t.Principal == p.Name {
				p.Tokens = append(p.Tokens, t)
			}
		}
		sort.Slice(p.Tokens, func(i, j int) bool { return p.Tokens[i].CreatedAt < p.Tokens[j].CreatedAt })
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// AddACL validates and stores an ACL; its id is assigned here.
func (s *Service) AddACL(ctx context.Context, a ACL, by string) (ACL, error) {
	if err := a.Validate(); err != nil {
		return a, core.Invalidf("%v", err)
	}
	var id [8]byte
	rand.Read(id[:])
	a.ID = hex.EncodeToString(id[:])
	a.CreatedAt = time.Now().UnixMilli()
	a.CreatedBy = by
	b, _ := json.Marshal(a)
	if _, err := s.store.CatalogPut(ctx, aclsTable, a.ID, b, core.CatalogCond{IfAbsent: true}); err != nil {
		return a, err
	}
	return a, nil
}

// ACLs lists the ACLs, of one principal when name is not empty.
func (s *Service) ACLs(name string) []ACL {
	snap := s.snapshot()
	if name != "" {
		return append([]ACL(nil), snap.acls[name]...)
	}
	return append([]ACL(nil), snap.all...)
}

// RemoveACL deletes an ACL by id.
func (s *Service) RemoveACL(ctx context.Context, id string) (ACL, error) {
	raw, ok := s.store.CatalogGet(aclsTable, id)
	if !ok {
		return ACL{}, fmt.Errorf("%w: %q", core.ErrACLNotFound, id)
	}
	var a ACL
	if err := json.Unmarshal(raw, &a); err != nil {
		// A corrupt ACL (logged when read) is deleted all the same:
		// removing it is how an admin repairs it.
		a = ACL{ID: id}
	}
	ok, err := s.store.CatalogDelete(ctx, aclsTable, id, core.CatalogCond{})
	if err == nil && !ok {
		err = fmt.Errorf("%w: %q", core.ErrACLNotFound, id)
	}
	return a, err
}

// Audit records an event in the __audit topic (asynchronously; see
// auditor). A no-op with auth off.
func (s *Service) Audit(e Event) {
	if s == nil || s.audit == nil {
		return
	}
	s.audit.add(e)
}
