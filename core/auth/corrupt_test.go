package auth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/weir-broker/weir/core"
)

// syncBuffer is a log destination safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestCorruptSecurityRecords: a security catalog record that does not
// decode is logged and refused, never taken for an absent or empty one.
func TestCorruptSecurityRecords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var logs syncBuffer
	store := newCatalogStore()
	s, err := New(store, Config{Enabled: true, AdminToken: testBootstrap, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	bobTok, _, _, err := s.CreateToken(ctx, "bob", false, "test")
	if err != nil {
		t.Fatal(err)
	}
	eveTok, _, _, err := s.CreateToken(ctx, "eve", false, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddACL(ctx, ACL{Principal: "bob", ResourceType: Topic, Pattern: "*", Operations: []Operation{Read}}, "test"); err != nil {
		t.Fatal(err)
	}
	bob := Principal{Name: "bob", Via: "token"}
	if !s.Allowed(bob, Topic, "t", Read) {
		t.Fatal("bob may not read before the corruption")
	}

	// Corrupt bob's principal record and eve's token record.
	store.CatalogPut(ctx, principalsTable, "bob", []byte(`{"name":"bob","admin":tru`), core.CatalogCond{})
	store.CatalogPut(ctx, tokensTable, HashToken(eveTok), []byte(`not json`), core.CatalogCond{})
	store.CatalogPut(ctx, aclsTable, "badacl", []byte(`{"principal":`), core.CatalogCond{})

	if _, err := s.Authenticate(bobTok); !errors.Is(err, core.ErrUnauthenticated) || !errors.Is(err, core.ErrCorrupt) || !strings.Contains(err.Error(), `principal "bob"`) {
		t.Errorf("bob's token with a corrupt principal record: %v, want unauthenticated and corrupt", err)
	}
	if _, err := s.AuthenticateCert("bob"); !errors.Is(err, core.ErrCorrupt) {
		t.Errorf("bob's certificate with a corrupt principal record: %v, want corrupt", err)
	}
	if s.Allowed(bob, Topic, "t", Read) || s.AllowedAll(bob, Topic, Read) || s.PrincipalAllowed("bob", "topic", "t", "read") {
		t.Error("a principal whose record is corrupt is still allowed what its ACLs say")
	}
	if _, err := s.Authenticate(eveTok); !errors.Is(err, core.ErrUnauthenticated) || !errors.Is(err, core.ErrCorrupt) {
		t.Errorf("eve's corrupt token record: %v, want unauthenticated and corrupt", err)
	}
	if _, _, _, err := s.CreateToken(ctx, "bob", false, "test"); !errors.Is(err, core.ErrCorrupt) {
		t.Errorf("a token for a corrupt principal: %v, want corrupt", err)
	}
	for _, key := range []string{"key=bob", "key=badacl", "table=" + tokensTable} {
		if !strings.Contains(logs.String(), key) {
			t.Errorf("the log does not name the corrupt record %s:\n%s", key, logs.String())
		}
	}
	// Removing the corrupt ACL is the repair.
	if a, err := s.RemoveACL(ctx, "badacl"); err != nil || a.ID != "badacl" {
		t.Errorf("RemoveACL of a corrupt record: %+v %v", a, err)
	}
}
