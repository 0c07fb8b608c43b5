package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-broker/weir/internal/devcerts"
	tu "github.com/weir-broker/weir/internal/testutil"
)

// HTTP transport edge cases (issue 12, findings 5, 7 and 8): answers given
// before the body is read arrive whole, never as a TCP reset.

// rawExchange sends head (and body, when not nil) on a new connection and
// reads the answer, all under one deadline. It then checks the server
// closed the connection cleanly: EOF, not a reset.
func rawExchange(t *testing.T, addr, head string, body []byte) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	if body != nil {
		if _, err := c.Write(body); err != nil {
			t.Fatalf("write body: %v", err)
		}
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer body: %v", err)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after the answer: %d bytes, %v; want EOF (a lingering close)", n, err)
	}
	return resp, b
}

func errorCode(b []byte) string {
	return (&tu.Response{Body: b}).ErrorCode()
}

// unknownLength hides a body's length from net/http: it is sent chunked.
type unknownLength struct{ io.Reader }

func TestTooLargeBodyGets413NeverAReset(t *testing.T) {
	s := startNode(t, t.TempDir(), func(c *Config) { c.Gateway.MaxBodyBytes = 1 << 20 })
	defer stop(t, s)
	u := s.URL()
	createTopic(t, u, "t", 1)
	big := bytes.Repeat([]byte("x"), 2<<20)
	for _, tc := range []struct {
		name string
		body func() io.Reader
	}{
		{"content-length", func() io.Reader { return bytes.NewReader(big) }},
		{"chunked", func() io.Reader { return unknownLength{bytes.NewReader(big)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < 20; i++ {
				req, _ := http.NewRequest("POST", u+"/v1/topics/t/records", tc.body())
				req.Header.Set("Content-Type", "application/octet-stream")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("round %d: %v (want the 413 answer)", i, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 413 || errorCode(b) != "too_large" {
					t.Fatalf("round %d: %d %s %v, want 413 too_large", i, resp.StatusCode, b, err)
				}
			}
		})
	}
	t.Run("raw partial body", func(t *testing.T) {
		// The client sent part of the body and is still sending: the answer
		// comes first, then a clean close once the node drained.
		head := "POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 2097152\r\n\r\n"
		resp, b := rawExchange(t, s.Addr(), head, big[:256<<10])
		if resp.StatusCode != 413 || errorCode(b) != "too_large" {
			t.Fatalf("got %d %s, want 413 too_large", resp.StatusCode, b)
		}
	})
	t.Run("expect 100-continue", func(t *testing.T) {
		// No "100 Continue": the 413 comes without the client sending the body.
		head := "POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 2097152\r\nExpect: 100-continue\r\n\r\n"
		resp, b := rawExchange(t, s.Addr(), head, nil)
		if resp.StatusCode != 413 || errorCode(b) != "too_large" {
			t.Fatalf("got %d %s, want 413 too_large (and no 100 Continue)", resp.StatusCode, b)
		}
	})
	t.Run("expect 100-continue within the limit", func(t *testing.T) {
		r := tu.Do(t, "POST", u+"/v1/topics/t/records", []byte("small"))
		if r.Status != 200 {
			t.Fatalf("produce: %d %s", r.Status, r.Body)
		}
	})
}

func TestHeaderOverflowEchoesNothing(t *testing.T) {
	s := startNode(t, t.TempDir())
	defer stop(t, s)
	const secret = "weir_SECRET-TOKEN-MUST-NOT-ECHO"
	head := "GET /v1/topics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + secret + "\r\nX-Pad: " + strings.Repeat("p", 5000) + "\r\n\r\n"
	resp, b := rawExchange(t, s.Addr(), head, nil)
	if resp.StatusCode != 400 || errorCode(b) != "bad_request" {
		t.Fatalf("got %d %s, want 400 bad_request", resp.StatusCode, b)
	}
	for _, leak := range []string{secret, "Authorization", "X-Pad", "ppppp", "GET /v1"} {
		if strings.Contains(string(b), leak) {
			t.Fatalf("the 400 echoes the request (%q): %s", leak, b)
		}
	}
	// A malformed request line, too.
	resp, b = rawExchange(t, s.Addr(), "BAD\x01REQUEST "+secret+"\r\n\r\n", nil)
	if resp.StatusCode != 400 || strings.Contains(string(b), secret) {
		t.Fatalf("got %d %s, want a 400 quoting nothing", resp.StatusCode, b)
	}
}

func TestUnauthenticatedBodiesAreNotRead(t *testing.T) {
	s := startNode(t, t.TempDir(), func(c *Config) {
		c.Security.Auth = true
		c.Security.AdminToken = testAdminToken
	})
	defer stop(t, s)
	u := s.URL()
	admin := newSecClient(t, u, testAdminToken, nil)
	if r := admin.do("POST", "/v1/topics", map[string]any{"name": "t"}); r.Status != 201 {
		t.Fatalf("create topic: %d %s", r.Status, r.Body)
	}

	// Each client declares 16 MiB and sends 64 KiB: the 401 arrives while
	// it still holds 16 MiB - 64 KiB unsent, so the node read no body.
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	cases := []struct{ name, creds string }{
		{"no credentials", ""},
		{"unknown token", "Authorization: Bearer weir_unknownunknownunknownunknownunknown0000\r\n"},
		{"not bearer", "Authorization: Basic YWxpY2U6cHc=\r\n"},
		{"wrong cluster secret", "Weir-Node-Secret: not-the-secret-at-all\r\n"},
	}
	const parallel = 40
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	for i := 0; i < parallel; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tc := cases[i%len(cases)]
			head := fmt.Sprintf("POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n%sContent-Length: %d\r\n\r\n", tc.creds, 16<<20)
			if err := expect401(s.Addr(), head, chunk); err != nil {
				errs <- fmt.Errorf("%s: %w", tc.name, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	t.Run("expect 100-continue", func(t *testing.T) {
		head := "PUT /v1/modules/m HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\nExpect: 100-continue\r\n\r\n"
		if err := expect401(s.Addr(), head, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("chunked", func(t *testing.T) {
		head := "POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
		if err := expect401(s.Addr(), head, append([]byte("10000\r\n"), chunk...)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("credentials pass", func(t *testing.T) {
		r := admin.do("POST", "/v1/topics/t/records", map[string]any{"records": []any{map[string]any{"value": "a"}}})
		if r.Status != 200 {
			t.Fatalf("produce as admin: %d %s", r.Status, r.Body)
		}
		if r := newSecClient(t, u, "", nil).do("GET", "/healthz", nil); r.Status != 200 {
			t.Fatalf("healthz: %d", r.Status)
		}
	})
	t.Run("audited", func(t *testing.T) {
		tu.Eventually(t, 20*time.Second, "an audit event of an early 401", func() bool {
			for _, e := range auditEvents(t, admin) {
				if e.Result == "unauthenticated" && e.Status == 401 && e.Action == "POST /v1/topics/t/records" {
					return true
				}
			}
			return false
		})
	})
	t.Run("tiny unauthenticated body", func(t *testing.T) {
		// Read (one byte), refused by the normal path: 401 just the same.
		r := newSecClient(t, u, "", nil).do("POST", "/v1/topics/t/records", []byte("x"))
		if r.Status != 401 || r.ErrorCode() != "unauthenticated" {
			t.Fatalf("got %d %s, want 401", r.Status, r.Body)
		}
	})
}

// expect401 sends head and body, then must read a 401 unauthenticated with
// WWW-Authenticate and a clean close (no reset), under a deadline.
func expect401(addr, head string, body []byte) error {
	return expect401On(func() (net.Conn, error) { return net.Dial("tcp", addr) }, head, body)
}

func expect401On(dial func() (net.Conn, error), head string, body []byte) error {
	c, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, head); err != nil {
		return err
	}
	if body != nil {
		if _, err := c.Write(body); err != nil {
			return fmt.Errorf("write body: %w", err)
		}
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fmt.Errorf("read answer (did the node wait for the body?): %w", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 401 || errorCode(b) != "unauthenticated" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		return fmt.Errorf("got %d %v %s, want 401 unauthenticated with WWW-Authenticate", resp.StatusCode, resp.Header, b)
	}
	if n, err := br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		return fmt.Errorf("after the 401: %d bytes, %v; want EOF", n, err)
	}
	return nil
}

func TestTLSEarlyAnswersNeverReset(t *testing.T) {
	dir := t.TempDir()
	if _, err := devcerts.Write(dir, nil, nil); err != nil {
		t.Fatal(err)
	}
	f := func(n string) string { return filepath.Join(dir, n) }
	s := securedNode(t, func(c *Config) {
		c.Security.TLSCert, c.Security.TLSKey = f("server.pem"), f("server-key.pem")
		c.Gateway.MaxBodyBytes = 1 << 20
	})
	defer stop(t, s)
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(f("ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	tc := &tls.Config{RootCAs: pool}
	admin := newSecClient(t, s.URL(), testAdminToken, tc)
	admin.expect(201, "POST", "/v1/topics", map[string]any{"name": "t"})
	big := bytes.Repeat([]byte("x"), 2<<20)
	for i := 0; i < 10; i++ {
		r, err := admin.try("POST", "/v1/topics/t/records", big)
		if err != nil || r.Status != 413 || r.ErrorCode() != "too_large" {
			t.Fatalf("round %d: %v %v, want 413 too_large", i, err, r)
		}
	}
	dial := func() (net.Conn, error) { return tls.Dial("tcp", s.Addr(), tc) }
	head := "POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
	for i := 0; i < 10; i++ {
		if err := expect401On(dial, head, big[:64<<10]); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
}
