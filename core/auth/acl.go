// Package auth holds Weir's security model: principals and their API
// tokens (stored hashed in the replicated catalog), JWT validation
// (golang-jwt/jwt v5; keys from files or a JWKS URL kept fresh by
// Service.Run), one rule for who is an admin whatever the credential,
// ACLs with literal and prefix patterns, internal topics (__*) writable by
// admins only, and the audit log with per-source caps (docs/security.md).
// It depends on core, golang-jwt and the standard library.
package auth

import (
	"fmt"
	"strings"
)

// ResourceType is the kind of thing an ACL protects.
type ResourceType string

// The resource types.
const (
	Topic        ResourceType = "topic"
	Group        ResourceType = "group"
	Subscription ResourceType = "subscription" // named "topic/subscription"
	Module       ResourceType = "module"
	Pipeline     ResourceType = "pipeline"
	Cluster      ResourceType = "cluster" // one resource, named "cluster"
)

// ResourceTypes lists every resource type.
var ResourceTypes = []ResourceType{Topic, Group, Subscription, Module, Pipeline, Cluster}

// Operation is what a request does to a resource.
type Operation string

// The operations.
const (
	Read     Operation = "read"
	Write    Operation = "write"
	Create   Operation = "create"
	Delete   Operation = "delete"
	Alter    Operation = "alter"
	Describe Operation = "describe"
)

// Operations lists every operation.
var Operations = []Operation{Read, Write, Create, Delete, Alter, Describe}

// PatternType says how an ACL's pattern matches resource names.
type PatternType string

// The pattern types.
const (
	Literal PatternType = "literal" // the exact name; "*" matches every name
	Prefix  PatternType = "prefix"  // every name that starts with the pattern
)

// ReservedPrefix starts the names of internal topics (__audit). Only a
// literal ACL naming one exactly matches it: wildcards and prefixes never do.
const ReservedPrefix = "__"

// ClusterName is the name of the one cluster resource.
const ClusterName = "cluster"

// ACL allows one principal some operations on the resources of one type
// whose names match a pattern. There are no deny rules: what no ACL
// allows is denied.
type ACL struct {
	ID           string       `json:"id"`
	Principal    string       `json:"principal"`
	ResourceType ResourceType `json:"resource_type"`
	Pattern      string       `json:"pattern"`
	PatternType  PatternType  `json:"pattern_type"`
	Operations   []Operation  `json:"operations"`
	CreatedAt    int64        `json:"created_at,omitempty"`
	CreatedBy    string       `json:"created_by,omitempty"`
}

// MaxPatternLen bounds an ACL pattern (names are at most 249 characters;
// a subscription is topic/name).
const MaxPatternLen = 512

// Validate checks an ACL and fills defaults (literal patterns).
func (a *ACL) Validate() error {
	if !ValidPrincipalName(a.Principal) {
		return fmt.Errorf("principal %q must be 1–128 characters of [A-Za-z0-9._@:=-]", a.Principal)
	}
	if !validResourceType(a.ResourceType) {
		return fmt.Errorf("resource_type %q must be one of topic, group, subscription, module, pipeline, cluster", a.ResourceType)
	}
	if a.PatternType == "" {
		a.PatternType = Literal
	}
	if a.PatternType != Literal && a.PatternType != Prefix {
		return fmt.Errorf("pattern_type %q must be literal or prefix", a.PatternType)
	}
	if err := ValidatePattern(a.Pattern, a.PatternType); err != nil {
		return err
	}
	if a.ResourceType == Cluster && a.PatternType == Literal && a.Pattern != ClusterName && a.Pattern != "*" {
		return fmt.Errorf("the cluster resource is named %q", ClusterName)
	}
	if len(a.Operations) == 0 {
		return fmt.Errorf("an ACL needs at least one operation (read, write, create, delete, alter, describe)")
	}
	seen := map[Operation]bool{}
	ops := a.Operations[:0]
	for _, op := range a.Operations {
		op = Operation(strings.ToLower(string(op)))
		if !validOperation(op) {
			return fmt.Errorf("operation %q must be one of read, write, create, delete, alter, describe", op)
		}
		if !seen[op] {
			seen[op] = true
			ops = append(ops, op)
		}
	}
	a.Operations = ops
	return nil
}

// ValidatePattern checks a pattern: printable ASCII without spaces, at
// most MaxPatternLen bytes; a literal pattern is not empty (an empty
// prefix matches every name).
func ValidatePattern(p string, t PatternType) error {
	if len(p) > MaxPatternLen {
		return fmt.Errorf("pattern is longer than %d bytes", MaxPatternLen)
	}
	if t == Literal && p == "" {
		return fmt.Errorf("a literal pattern must not be empty (use \"*\" for every name)")
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("pattern %q holds a character that is not printable ASCII", p)
		}
	}
	return nil
}

// ParsePattern reads the CLI's pattern syntax: "name" (literal), "*" (every
// name) or "prefix*" (a prefix pattern).
func ParsePattern(s string) (string, PatternType, error) {
	t := Literal
	if len(s) > 1 && strings.HasSuffix(s, "*") {
		s, t = strings.TrimSuffix(s, "*"), Prefix
	}
	if err := ValidatePattern(s, t); err != nil {
		return "", "", err
	}
	return s, t, nil
}

// Matches reports whether the ACL's pattern matches name. Reserved names
// (ReservedPrefix) match only a literal pattern equal to them.
func (a *ACL) Matches(rt ResourceType, name string) bool {
	if a.ResourceType != rt {
		return false
	}
	return matchPattern(a.Pattern, a.PatternType, name)
}

func matchPattern(pattern string, t PatternType, name string) bool {
	if strings.HasPrefix(name, ReservedPrefix) {
		return t == Literal && pattern == name
	}
	switch t {
	case Literal:
		return pattern == "*" || pattern == name
	case Prefix:
		return strings.HasPrefix(name, pattern)
	}
	return false
}

// Allows reports whether the ACL grants op. Every operation implies
// describe.
func (a *ACL) Allows(op Operation) bool {
	for _, o := range a.Operations {
		if o == op || op == Describe {
			return true
		}
	}
	return false
}

// Wildcard reports whether the ACL matches every (non-reserved) name.
func (a *ACL) Wildcard() bool {
	return a.PatternType == Literal && a.Pattern == "*" || a.PatternType == Prefix && a.Pattern == ""
}

func validResourceType(rt ResourceType) bool {
	for _, t := range ResourceTypes {
		if t == rt {
			return true
		}
	}
	return false
}

func validOperation(op Operation) bool {
	for _, o := range Operations {
		if o == op {
			return true
		}
	}
	return false
}

// ValidPrincipalName: 1–128 characters of [A-Za-z0-9._@:=-] (a JWT
// subject or a certificate's common name fit).
func ValidPrincipalName(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == '-', c == '@', c == ':', c == '=':
		default:
			return false
		}
	}
	return true
}
