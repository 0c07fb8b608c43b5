package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"time"
)

// JWTConfig enables bearer JWTs (OIDC-style access tokens) besides API
// tokens. Keys come from a JWKS file, a PEM public key file, or an HMAC
// secret file; at least one is needed to turn JWTs on.
type JWTConfig struct {
	JWKSFile       string // {"keys":[...]}: RSA (RS256), EC P-256 (ES256), OKP Ed25519 (EdDSA), oct (HS256)
	PublicKeyFile  string // PEM: RSA, ECDSA P-256 or Ed25519 public key (or certificate)
	HMACSecretFile string // raw bytes, at least 32, for HS256
	Issuer         string // required "iss" when set
	Audience       string // required in "aud" when set
	PrincipalClaim string // claim naming the principal; default "sub"
	Leeway         time.Duration
}

// Enabled reports whether any key source is configured.
func (c JWTConfig) Enabled() bool {
	return c.JWKSFile != "" || c.PublicKeyFile != "" || c.HMACSecretFile != ""
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

// JWTVerifier checks signed JWTs against fixed keys.
type JWTVerifier struct {
	cfg  JWTConfig
	keys []jwtKey
	now  func() time.Time
}

// NewJWTVerifier loads the configured keys.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.PrincipalClaim == "" {
		cfg.PrincipalClaim = "sub"
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	v := &JWTVerifier{cfg: cfg, now: time.Now}
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
	if len(v.keys) == 0 {
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

// ParseJWKS reads a JSON Web Key Set.
func ParseJWKS(b []byte) ([]jwtKey, error) {
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
				return nil, fmt.Errorf("key %q: bad RSA parameters", k.Kid)
			}
			key, err = keyFor(k.Kid, &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())})
		case "EC":
			if k.Crv != "P-256" {
				return nil, fmt.Errorf("key %q: curve %q (only P-256)", k.Kid, k.Crv)
			}
			x, e1 := b64(k.X)
			y, e2 := b64(k.Y)
			if e1 != nil || e2 != nil || len(x) != 32 || len(y) != 32 {
				return nil, fmt.Errorf("key %q: bad EC parameters", k.Kid)
			}
			raw := append(append([]byte{4}, x...), y...)
			pk, perr := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
			if perr != nil {
				return nil, fmt.Errorf("key %q: %v", k.Kid, perr)
			}
			key, err = keyFor(k.Kid, pk)
		case "OKP":
			x, e1 := b64(k.X)
			if k.Crv != "Ed25519" || e1 != nil || len(x) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("key %q: bad OKP key (only Ed25519)", k.Kid)
			}
			key, err = keyFor(k.Kid, ed25519.PublicKey(x))
		case "oct":
			s, e1 := b64(k.K)
			if e1 != nil || len(s) < 32 {
				return nil, fmt.Errorf("key %q: an HMAC key needs at least 32 bytes", k.Kid)
			}
			key = jwtKey{kid: k.Kid, alg: "HS256", mac: s}
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		if k.Alg != "" && k.Alg != key.alg {
			return nil, fmt.Errorf("key %q: alg %q does not fit its key type (%s)", k.Kid, k.Alg, key.alg)
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

// Verify checks the token's signature, algorithm, expiry, not-before,
// issuer and audience, and returns its principal. "alg":"none", unknown
// algorithms and an algorithm that does not match the key's type are
// refused.
func (v *JWTVerifier) Verify(tok string) (Claims, error) {
	if len(tok) > MaxTokenBytes {
		return Claims{}, fmt.Errorf("%w: longer than %d bytes", errJWT, MaxTokenBytes)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return Claims{}, fmt.Errorf("%w: not three dot-separated parts", errJWT)
	}
	hb, err := b64(parts[0])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: header is not base64url", errJWT)
	}
	var hdr struct {
		Alg  string   `json:"alg"`
		Kid  string   `json:"kid"`
		Crit []string `json:"crit"`
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return Claims{}, fmt.Errorf("%w: header is not JSON", errJWT)
	}
	switch hdr.Alg {
	case "RS256", "ES256", "EdDSA", "HS256":
	default:
		return Claims{}, fmt.Errorf("%w: algorithm %q is not accepted", errJWT, hdr.Alg)
	}
	if len(hdr.Crit) > 0 {
		return Claims{}, fmt.Errorf("%w: critical header extensions are not supported", errJWT)
	}
	sig, err := b64(parts[2])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: signature is not base64url", errJWT)
	}
	signed := tok[:len(parts[0])+1+len(parts[1])]
	ok := false
	for _, k := range v.keys {
		if k.alg != hdr.Alg || (hdr.Kid != "" && k.kid != "" && k.kid != hdr.Kid) {
			continue
		}
		if verifySig(k, signed, sig) {
			ok = true
			break
		}
	}
	if !ok {
		return Claims{}, fmt.Errorf("%w: bad signature", errJWT)
	}
	pb, err := b64(parts[1])
	if err != nil {
		return Claims{}, fmt.Errorf("%w: payload is not base64url", errJWT)
	}
	var c map[string]any
	dec := json.NewDecoder(strings.NewReader(string(pb)))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		return Claims{}, fmt.Errorf("%w: payload is not a JSON object", errJWT)
	}
	now := v.now()
	exp, ok := numericDate(c["exp"])
	if !ok {
		return Claims{}, fmt.Errorf("%w: no exp claim", errJWT)
	}
	if now.After(exp.Add(v.cfg.Leeway)) {
		return Claims{}, fmt.Errorf("%w: expired at %s", errJWT, exp.UTC().Format(time.RFC3339))
	}
	if nbf, ok := numericDate(c["nbf"]); ok && now.Add(v.cfg.Leeway).Before(nbf) {
		return Claims{}, fmt.Errorf("%w: not valid before %s", errJWT, nbf.UTC().Format(time.RFC3339))
	}
	if v.cfg.Issuer != "" {
		if iss, _ := c["iss"].(string); iss != v.cfg.Issuer {
			return Claims{}, fmt.Errorf("%w: issuer %q is not %q", errJWT, iss, v.cfg.Issuer)
		}
	}
	if v.cfg.Audience != "" && !hasAudience(c["aud"], v.cfg.Audience) {
		return Claims{}, fmt.Errorf("%w: audience is not %q", errJWT, v.cfg.Audience)
	}
	p, _ := c[v.cfg.PrincipalClaim].(string)
	if !ValidPrincipalName(p) {
		return Claims{}, fmt.Errorf("%w: claim %q is not a valid principal name", errJWT, v.cfg.PrincipalClaim)
	}
	return Claims{Principal: p, Expires: exp}, nil
}

func verifySig(k jwtKey, signed string, sig []byte) bool {
	h := sha256.Sum256([]byte(signed))
	switch k.alg {
	case "HS256":
		m := hmac.New(sha256.New, k.mac)
		m.Write([]byte(signed))
		return hmac.Equal(m.Sum(nil), sig)
	case "RS256":
		return rsa.VerifyPKCS1v15(k.pub.(*rsa.PublicKey), crypto.SHA256, h[:], sig) == nil
	case "ES256":
		if len(sig) != 64 {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.pub.(*ecdsa.PublicKey), h[:], r, s)
	case "EdDSA":
		return ed25519.Verify(k.pub.(ed25519.PublicKey), []byte(signed), sig)
	}
	return false
}

func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > 1e11 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

func hasAudience(v any, want string) bool {
	switch a := v.(type) {
	case string:
		return a == want
	case []any:
		for _, x := range a {
			if s, _ := x.(string); s == want {
				return true
			}
		}
	}
	return false
}
