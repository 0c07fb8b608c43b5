package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig enables bearer JWTs (OIDC-style access tokens) besides API
// tokens. Keys come from a JWKS file, a JWKS URL (an OIDC issuer's
// jwks_uri), a PEM public key file, or an HMAC secret file; at least one
// is needed to turn JWTs on.
type JWTConfig struct {
	JWKSFile       string // {"keys":[...]}: RSA (RS256), EC P-256 (ES256), OKP Ed25519 (EdDSA), oct (HS256)
	PublicKeyFile  string // PEM: RSA, ECDSA P-256 or Ed25519 public key (or certificate)
	HMACSecretFile string // raw bytes, at least 32, for HS256
	Issuer         string // required "iss" when set
	Audience       string // required in "aud" when set
	PrincipalClaim string // claim naming the principal; default "sub"
	// Leeway tolerates clock skew on exp and nbf; default 30 s.
	Leeway time.Duration

	// JWKSURL is fetched for public keys (RSA, EC P-256, OKP Ed25519; oct
	// keys in it are ignored: a published HMAC key signs nothing). https,
	// or http to a loopback host only. Fetched by Run at start, every
	// JWKSRefresh, and when a token names an unknown kid.
	JWKSURL string
	// JWKSMinInterval bounds fetches: never two within it, whatever
	// tokens arrive; default 30 s.
	JWKSMinInterval time.Duration
	// JWKSRefresh is the periodic refetch; default 1 h, negative: none.
	JWKSRefresh time.Duration
	// JWKSFetchTimeout bounds one fetch; default 10 s.
	JWKSFetchTimeout time.Duration
	// JWKSMaxBytes bounds the fetched document; default 1 MiB.
	JWKSMaxBytes int64
	// JWKSClient fetches the URL; default a plain http.Client (the
	// request carries the fetch timeout).
	JWKSClient *http.Client
	// Now is the clock for exp/nbf and the fetch bound; default time.Now.
	Now func() time.Time
	// Logger reports fetch failures; default slog.Default().
	Logger *slog.Logger
}

// Enabled reports whether any key source is configured.
func (c JWTConfig) Enabled() bool {
	return c.JWKSFile != "" || c.PublicKeyFile != "" || c.HMACSecretFile != "" || c.JWKSURL != ""
}

// Validate checks the configuration (the JWKS URL's form; files are read
// by NewJWTVerifier).
func (c JWTConfig) Validate() error {
	if c.JWKSURL != "" {
		if err := validJWKSURL(c.JWKSURL); err != nil {
			return err
		}
	}
	if c.Leeway < 0 || c.JWKSMinInterval < 0 || c.JWKSFetchTimeout < 0 || c.JWKSMaxBytes < 0 {
		return errors.New("jwt: durations and sizes must not be negative")
	}
	return nil
}

func (c JWTConfig) withDefaults() JWTConfig {
	if c.PrincipalClaim == "" {
		c.PrincipalClaim = "sub"
	}
	if c.Leeway == 0 {
		c.Leeway = 30 * time.Second
	}
	if c.JWKSMinInterval == 0 {
		c.JWKSMinInterval = 30 * time.Second
	}
	if c.JWKSRefresh == 0 {
		c.JWKSRefresh = time.Hour
	}
	if c.JWKSFetchTimeout == 0 {
		c.JWKSFetchTimeout = 10 * time.Second
	}
	if c.JWKSMaxBytes == 0 {
		c.JWKSMaxBytes = 1 << 20
	}
	if c.JWKSClient == nil {
		c.JWKSClient = &http.Client{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// MaxTokenBytes bounds a bearer token (API token or JWT).
const MaxTokenBytes = 16 << 10

var errJWT = errors.New("invalid JWT")

type jwtKey struct {
	kid string
	alg string // the one algorithm this key verifies
	pub crypto.PublicKey
	mac []byte
}

// JWTVerifier checks signed JWTs against configured keys. Constructed
// inert: a JWKS URL is first fetched by Run. Safe for concurrent use.
type JWTVerifier struct {
	cfg  JWTConfig
	keys []jwtKey // from files; fixed
	jwks *jwksSource
	now  func() time.Time
}

// NewJWTVerifier validates cfg and loads the keys of its files.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	v := &JWTVerifier{cfg: cfg, now: cfg.Now}
	if cfg.JWKSFile != "" {
		b, err := os.ReadFile(cfg.JWKSFile)
		if err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		keys, err := ParseJWKS(b)
		if err != nil {
			return nil, fmt.Errorf("jwks %s: %w", cfg.JWKSFile, err)
		}
		v.keys = append(v.keys, keys...)
	}
	if cfg.PublicKeyFile != "" {
		b, err := os.ReadFile(cfg.PublicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("jwt key: %w", err)
		}
		k, err := parsePEMPublicKey(b)
		if err != nil {
			return nil, fmt.Errorf("jwt key %s: %w", cfg.PublicKeyFile, err)
		}
		v.keys = append(v.keys, k)
	}
	if cfg.HMACSecretFile != "" {
		b, err := os.ReadFile(cfg.HMACSecretFile)
		if err != nil {
			return nil, fmt.Errorf("jwt secret: %w", err)
		}
		b = []byte(strings.TrimSpace(string(b)))
		if len(b) < 32 {
			return nil, fmt.Errorf("jwt secret %s: at least 32 bytes are needed", cfg.HMACSecretFile)
		}
		v.keys = append(v.keys, jwtKey{alg: "HS256", mac: b})
	}
	if cfg.JWKSURL != "" {
		v.jwks = newJWKSSource(cfg)
	}
	if len(v.keys) == 0 && v.jwks == nil {
		return nil, errors.New("jwt: no key configured")
	}
	return v, nil
}

func parsePEMPublicKey(b []byte) (jwtKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return jwtKey{}, errors.New("not PEM")
	}
	var pub any
	var err error
	if blk.Type == "CERTIFICATE" {
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(blk.Bytes); err == nil {
			pub = c.PublicKey
		}
	} else {
		pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
	}
	if err != nil {
		return jwtKey{}, err
	}
	return keyFor("", pub)
}

func keyFor(kid string, pub any) (jwtKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return jwtKey{}, errors.New("RSA keys need at least 2048 bits")
		}
		return jwtKey{kid: kid, alg: "RS256", pub: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return jwtKey{}, errors.New("only P-256 EC keys (ES256) are supported")
		}
		return jwtKey{kid: kid, alg: "ES256", pub: k}, nil
	case ed25519.PublicKey:
		return jwtKey{kid: kid, alg: "EdDSA", pub: k}, nil
	}
	return jwtKey{}, fmt.Errorf("unsupported key type %T", pub)
}

// ParseJWKS reads a JSON Web Key Set (a file): a key it cannot use is an
// error, keys of unknown types and encryption keys are skipped.
func ParseJWKS(b []byte) ([]jwtKey, error) { return parseJWKS(b, false) }

// parseJWKS reads a key set; published (a JWKS URL) skips every key it
// cannot use, HMAC keys included, instead of refusing the set.
func parseJWKS(b []byte, published bool) ([]jwtKey, error) {
	var set struct {
		Keys []struct {
			Kty, Kid, Alg, Use, Crv, N, E, X, Y, K string
		} `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, err
	}
	var out []jwtKey
	for _, k := range set.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		var key jwtKey
		var err error
		switch k.Kty {
		case "RSA":
			n, e1 := b64(k.N)
			e, e2 := b64(k.E)
			if e1 != nil || e2 != nil || len(e) > 4 || len(e) == 0 {
				err = fmt.Errorf("key %q: bad RSA parameters", k.Kid)
				break
			}
			key, err = keyFor(k.Kid, &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())})
		case "EC":
			if k.Crv != "P-256" {
				err = fmt.Errorf("key %q: curve %q (only P-256)", k.Kid, k.Crv)
				break
			}
			x, e1 := b64(k.X)
			y, e2 := b64(k.Y)
			if e1 != nil || e2 != nil || len(x) != 32 || len(y) != 32 {
				err = fmt.Errorf("key %q: bad EC parameters", k.Kid)
				break
			}
			raw := append(append([]byte{4}, x...), y...)
			pk, perr := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
			if perr != nil {
				err = fmt.Errorf("key %q: %v", k.Kid, perr)
				break
			}
			key, err = keyFor(k.Kid, pk)
		case "OKP":
			x, e1 := b64(k.X)
			if k.Crv != "Ed25519" || e1 != nil || len(x) != ed25519.PublicKeySize {
				err = fmt.Errorf("key %q: bad OKP key (only Ed25519)", k.Kid)
				break
			}
			key, err = keyFor(k.Kid, ed25519.PublicKey(x))
		case "oct":
			if published {
				continue
			}
			s, e1 := b64(k.K)
			if e1 != nil || len(s) < 32 {
				err = fmt.Errorf("key %q: an HMAC key needs at least 32 bytes", k.Kid)
				break
			}
			key = jwtKey{kid: k.Kid, alg: "HS256", mac: s}
		default:
			continue
		}
		if err == nil && k.Alg != "" && k.Alg != key.alg {
			err = fmt.Errorf("key %q: alg %q does not fit its key type (%s)", k.Kid, k.Alg, key.alg)
		}
		if err != nil && published {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, key)
	}
	if len(out) == 0 {
		return nil, errors.New("no usable signing key")
	}
	return out, nil
}

func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// Claims are the parts of a verified JWT Weir uses.
type Claims struct {
	Principal string
	Expires   time.Time
}

// LooksLikeJWT reports whether a bearer token has a JWT's shape.
func LooksLikeJWT(tok string) bool { return strings.Count(tok, ".") == 2 }

// jwtAlgorithms are the only algorithms accepted; each key verifies
// exactly one of them (keyFor, ParseJWKS).
var jwtAlgorithms = []string{"RS256", "ES256", "EdDSA", "HS256"}

// Verify checks the token's signature, algorithm, expiry, not-before,
// issuer and audience, and returns its principal. Parsing, signature and
// claim checks are golang-jwt/jwt v5's; "alg":"none", unknown algorithms
// and an algorithm that does not match the key's type are refused (the
// key function offers only keys whose one algorithm is the header's).
// With a JWKS URL, a token whose kid no key has triggers a refetch of the
// key set, at most once per JWKSMinInterval. Safe for concurrent use.
func (v *JWTVerifier) Verify(tok string) (Claims, error) {
	if len(tok) > MaxTokenBytes {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", errJWT, MaxTokenBytes)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(jwtAlgorithms),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(v.cfg.Leeway),
		jwt.WithTimeFunc(v.now),
	}
	if v.cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.cfg.Issuer))
	}
	if v.cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.cfg.Audience))
	}
	claims := jwt.MapClaims{}
	_, err := jwt.NewParser(opts...).ParseWithClaims(tok, claims, v.keyFunc)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %v", errJWT, err)
	}
	p, _ := claims[v.cfg.PrincipalClaim].(string)
	if !ValidPrincipalName(p) {
		return Claims{}, fmt.Errorf("%w: claim %q is not a valid principal name", errJWT, v.cfg.PrincipalClaim)
	}
	var exp time.Time
	if e, err := claims.GetExpirationTime(); err == nil && e != nil {
		exp = e.Time
	}
	return Claims{Principal: p, Expires: exp}, nil
}

// keyFunc offers the library the keys that may have signed t: those whose
// algorithm is t's and whose kid matches t's (when both have one).
func (v *JWTVerifier) keyFunc(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New("critical header extensions are not supported")
	}
	alg, _ := t.Header["alg"].(string)
	kid, _ := t.Header["kid"].(string)
	set := matchingKeys(v.keys, alg, kid)
	if v.jwks != nil {
		set = append(set, matchingKeys(v.jwks.current(), alg, kid)...)
		if len(set) == 0 && v.jwks.refetch() {
			set = matchingKeys(v.jwks.current(), alg, kid)
		}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("no %s key with kid %q", alg, kid)
	}
	return jwt.VerificationKeySet{Keys: set}, nil
}

func matchingKeys(keys []jwtKey, alg, kid string) []jwt.VerificationKey {
	var out []jwt.VerificationKey
	for _, k := range keys {
		if k.alg != alg || (kid != "" && k.kid != "" && k.kid != kid) {
			continue
		}
		if k.mac != nil {
			out = append(out, k.mac)
		} else {
			out = append(out, k.pub)
		}
	}
	return out
}

// Run keeps a JWKS URL's key set fresh until ctx ends: a fetch at once,
// then every JWKSRefresh and whenever Verify meets an unknown kid (never
// more often than JWKSMinInterval). Without a JWKS URL it returns at once.
func (v *JWTVerifier) Run(ctx context.Context) {
	if v.jwks != nil {
		v.jwks.run(ctx)
	}
}
