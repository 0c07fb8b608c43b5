package objstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/weir-broker/weir/core"
)

// Mem is an in-memory core.ObjectStore for tests, with failure injection:
// while Fail holds an error, every call returns it. Safe for concurrent use.
type Mem struct {
	mu   sync.Mutex // guards the fields below
	objs map[string]memObject
	fail error
	puts int
}

type memObject struct {
	data []byte
	at   time.Time
}

var _ core.ObjectStore = (*Mem)(nil)

// NewMem returns an empty store.
func NewMem() *Mem { return &Mem{objs: map[string]memObject{}} }

// Fail makes every later call return err (nil: work again).
func (m *Mem) Fail(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

// Puts counts successful Put calls.
func (m *Mem) Puts() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.puts
}

func (m *Mem) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.fail
}

// Put implements core.ObjectStore.
func (m *Mem) Put(ctx context.Context, key string, body io.ReadSeeker, size int64) error {
	data := make([]byte, size)
	if _, err := io.ReadFull(body, data); err != nil {
		return fmt.Errorf("objstore: put %s: %w", key, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	m.objs[key] = memObject{data: data, at: time.Now()}
	m.puts++
	return nil
}

// Get implements core.ObjectStore.
func (m *Mem) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	o, ok := m.objs[key]
	if !ok {
		return nil, fmt.Errorf("%w: %s", core.ErrObjectNotFound, key)
	}
	return io.NopCloser(bytes.NewReader(o.data)), nil
}

// Delete implements core.ObjectStore.
func (m *Mem) Delete(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return err
	}
	delete(m.objs, key)
	return nil
}

// List implements core.ObjectStore.
func (m *Mem) List(ctx context.Context, prefix string) ([]core.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	var out []core.ObjectInfo
	for k, o := range m.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, core.ObjectInfo{Key: k, Size: int64(len(o.data)), LastModified: o.at})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
