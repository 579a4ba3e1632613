package authz

import (
	"context"
	"fmt"
	"sync"

	"github.com/keyline/keyline/internal/local/iam"
)

// PolicySource gives the policies a check is evaluated against.
type PolicySource interface {
	// Identity returns the identity-based policies of a principal (a function's role
	// policy; none for an account's root user, whose permissions are implicit).
	Identity(p Principal) ([]*iam.Policy, error)
	// Resource returns the resource-based policy of a check's resource (a KMS key policy,
	// a bus policy), nil when the resource has none.
	Resource(ctx context.Context, c Check) (*iam.Policy, error)
}

// IAM is the Authorizer that evaluates checks with AWS's policy evaluation logic
// (package iam): explicit deny, then allow; cross-account access needs both the identity
// policy and the resource policy; a KMS key needs its key policy.
type IAM struct {
	src PolicySource
}

// NewIAM returns the IAM authorizer over a policy source.
func NewIAM(src PolicySource) *IAM { return &IAM{src: src} }

// Authorize evaluates one check. A policy that cannot be had denies (and says why).
func (a *IAM) Authorize(ctx context.Context, p Principal, c Check) Decision {
	req := &iam.Request{Account: p.Account, Principal: p.ARN, Root: p.Root, Action: c.Action, Resource: c.Resource,
		ResourceAccount: c.ResourceAccount, Context: make(iam.Context, len(c.Context))}
	for k, v := range c.Context {
		if v.Multi {
			req.Context[k] = iam.Strings(v.Values...)
		} else if len(v.Values) > 0 {
			req.Context[k] = iam.String(v.Values[0])
		}
	}
	identity, err := a.src.Identity(p)
	if err != nil {
		return Decision{Message: fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s because its identity-based policy could not be read: %v", p.ARN, c.Action, c.Resource, err),
			Missing: err.Error()}
	}
	resource, err := a.src.Resource(ctx, c)
	if err != nil {
		return Decision{Message: fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s because its resource-based policy could not be read: %v", p.ARN, c.Action, c.Resource, err),
			Missing: err.Error()}
	}
	d := iam.Evaluate(req, identity, resource)
	out := Decision{Allowed: d.Allowed, Statement: d.Statement.String(), Missing: d.Missing}
	if !d.Allowed {
		out.Message = d.AccessDeniedMessage(req)
	}
	return out
}

// PolicyCache parses policy documents once per (name, document).
type PolicyCache struct {
	mu sync.Mutex
	m  map[string]*iam.Policy
}

// Parse returns the parsed policy for a document.
func (pc *PolicyCache) Parse(name string, doc []byte) (*iam.Policy, error) {
	key := name + "\x00" + string(doc)
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if p, ok := pc.m[key]; ok {
		return p, nil
	}
	p, err := iam.ParsePolicy(name, doc)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", name, err)
	}
	if pc.m == nil {
		pc.m = map[string]*iam.Policy{}
	}
	if len(pc.m) > 4096 {
		clear(pc.m)
	}
	pc.m[key] = p
	return p, nil
}
