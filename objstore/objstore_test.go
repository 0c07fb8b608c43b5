package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/weir-broker/weir/core"
	tu "github.com/weir-broker/weir/internal/testutil"
	"github.com/weir-broker/weir/objstore"
)

// TestConformance runs every implementation of core.ObjectStore through
// the same checks: the in-memory fake and S3 against a real versitygw.
func TestConformance(t *testing.T) {
	t.Parallel()
	stores := map[string]func(t *testing.T) core.ObjectStore{
		"mem": func(*testing.T) core.ObjectStore { return objstore.NewMem() },
		"s3": func(t *testing.T) core.ObjectStore {
			srv := tu.StartS3(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := objstore.NewS3(ctx, objstore.S3Config{Endpoint: srv.Endpoint, Bucket: "conformance", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
			if err != nil {
				t.Fatal(err)
			}
			// The bucket exists now: a second store finds it.
			if _, err := objstore.NewS3(ctx, objstore.S3Config{Endpoint: srv.Endpoint, Bucket: "conformance", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}); err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			conformance(t, open(t))
		})
	}
}

func conformance(t *testing.T, s core.ObjectStore) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := bytes.Repeat([]byte("segment-bytes "), 1000)
	for _, k := range []string{"p/a/1.seg", "p/a/2.seg", "p/b/1.seg", "q/1.seg"} {
		if err := s.Put(ctx, k, bytes.NewReader(body), int64(len(body))); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	rc, err := s.Get(ctx, "p/a/2.seg")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	if _, err := s.Get(ctx, "p/none"); !errors.Is(err, core.ErrObjectNotFound) {
		t.Fatalf("get of a missing key: %v, want ErrObjectNotFound", err)
	}
	list, err := s.List(ctx, "p/a/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range list {
		keys = append(keys, o.Key)
		if o.Size != int64(len(body)) || o.LastModified.IsZero() {
			t.Fatalf("list entry %+v", o)
		}
	}
	if strings.Join(keys, ",") != "p/a/1.seg,p/a/2.seg" {
		t.Fatalf("list p/a/ = %v", keys)
	}
	if err := s.Delete(ctx, "p/a/1.seg"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "p/a/1.seg"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
	if list, _ := s.List(ctx, "p/"); len(list) != 2 {
		t.Fatalf("after delete, p/ lists %v", list)
	}
}

func TestMemFail(t *testing.T) {
	t.Parallel()
	m := objstore.NewMem()
	boom := errors.New("down")
	m.Fail(boom)
	if err := m.Put(context.Background(), "k", strings.NewReader("x"), 1); !errors.Is(err, boom) {
		t.Fatalf("put while failing: %v", err)
	}
	m.Fail(nil)
	if err := m.Put(context.Background(), "k", strings.NewReader("x"), 1); err != nil || m.Puts() != 1 {
		t.Fatalf("put after recovery: %v, %d puts", err, m.Puts())
	}
}

func TestS3ConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []objstore.S3Config{{}, {Endpoint: "http://x"}, {Endpoint: "http://x", Bucket: "b"}} {
		if c.Validate() == nil {
			t.Errorf("%+v validated", c)
		}
	}
}
