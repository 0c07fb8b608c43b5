package auth

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// jwksSource keeps the key set published at a JWKS URL. Its run goroutine
// (owned by JWTVerifier.Run, hence Service.Run) does every fetch; Verify
// only asks for one (refetch) and waits at most the fetch timeout.
//
// mu guards the fields below it; it is never held across a fetch.
type jwksSource struct {
	cfg  JWTConfig
	kick chan struct{} // cap 1: a fetch is wanted

	mu       sync.Mutex
	keys     []jwtKey
	running  bool          // run is serving kicks
	inflight bool          // a fetch is wanted or under way
	last     time.Time     // when the last fetch started (cfg.Now)
	done     chan struct{} // closed when the fetch under way ends
}

func newJWKSSource(cfg JWTConfig) *jwksSource {
	return &jwksSource{cfg: cfg, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// validJWKSURL accepts https, and http only to a loopback host (a plain
// http key set could be replaced by anyone on the path).
func validJWKSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("jwt: JWKS URL %q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("jwt: JWKS URL %q must be https (http only to a loopback host)", raw)
	}
	return fmt.Errorf("jwt: JWKS URL %q must be https", raw)
}

// current returns the last fetched keys (never modified in place).
func (s *jwksSource) current() []jwtKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys
}

// refetch asks run for a fresh key set and waits for it (at most the fetch
// timeout). It reports false at once when the last fetch started less than
// JWKSMinInterval ago, or when run is not running: an unknown kid never
// costs more than one fetch per interval, whoever sends it.
func (s *jwksSource) refetch() bool {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return false
	}
	if !s.inflight {
		if !s.last.IsZero() && s.cfg.Now().Sub(s.last) < s.cfg.JWKSMinInterval {
			s.mu.Unlock()
			return false
		}
		s.inflight = true
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	done := s.done
	s.mu.Unlock()
	t := time.NewTimer(s.cfg.JWKSFetchTimeout + time.Second)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// run fetches at once, then on every kick and every JWKSRefresh, until
// ctx ends.
func (s *jwksSource) run(ctx context.Context) {
	s.mu.Lock()
	s.running, s.inflight = true, true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running = false
		s.mu.Unlock()
	}()
	var tick <-chan time.Time
	if s.cfg.JWKSRefresh > 0 {
		t := time.NewTicker(s.cfg.JWKSRefresh)
		defer t.Stop()
		tick = t.C
	}
	s.fetchOnce(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-tick:
			s.mu.Lock()
			due := !s.inflight && s.cfg.Now().Sub(s.last) >= s.cfg.JWKSMinInterval
			s.inflight = s.inflight || due
			s.mu.Unlock()
			if !due {
				continue
			}
		}
		s.fetchOnce(ctx)
	}
}

// fetchOnce fetches the set (inflight is set) and wakes the waiters. A
// failed fetch keeps the previous keys.
func (s *jwksSource) fetchOnce(ctx context.Context) {
	s.mu.Lock()
	s.last = s.cfg.Now()
	s.mu.Unlock()
	keys, err := s.fetch(ctx)
	if err != nil && ctx.Err() == nil {
		s.cfg.Logger.Warn("jwt: JWKS fetch failed; keeping the previous keys", "url", s.cfg.JWKSURL, "err", err)
	}
	s.mu.Lock()
	if err == nil {
		s.keys = keys
	}
	s.inflight = false
	close(s.done)
	s.done = make(chan struct{})
	s.mu.Unlock()
}

func (s *jwksSource) fetch(ctx context.Context) ([]jwtKey, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.JWKSFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.JWKSURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := s.cfg.JWKSClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.JWKSMaxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > s.cfg.JWKSMaxBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", s.cfg.JWKSMaxBytes)
	}
	return parseJWKS(b, true)
}
