package iam

import (
	"fmt"
	"strings"
)

// Names used for principals and resources.
const (
	kmsService         = "kms"
	kmsKeyPrefix       = "key/"
	stsService         = "sts"
	iamService         = "iam"
	assumedRolePrefix  = "assumed-role/"
	servicePrincipalTL = ".amazonaws.com"
	defaultPartition   = "aws"

	// RootImplicitPolicyName names the identity policy that stands for the
	// account root user's implicit full permissions in its own account.
	RootImplicitPolicyName = "account-root-implicit-full-access"
)

// rootImplicitPolicy is the root user's implicit identity permission: every
// action on every resource. It only ever counts as an identity-based policy,
// so it cannot override a KMS key policy or a cross-account resource policy.
var rootImplicitPolicy = MustParsePolicy(RootImplicitPolicyName,
	`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`)

// Request is one authorization request: who calls, what action on which
// resource, and the request context the conditions are evaluated against.
type Request struct {
	// Account is the caller's account id. Empty means the account in
	// Principal.
	Account string
	// Principal is the caller: an IAM role or user ARN, an STS session ARN
	// (arn:aws:sts::ACCT:assumed-role/ROLE/SESSION), the account root
	// (arn:aws:iam::ACCT:root), or a service principal name such as
	// "events.amazonaws.com".
	Principal string
	// Root marks the caller as the account root user (locally, an access
	// key id of 12 digits). Principal may then be empty.
	Root bool
	// Action is "service:Action", e.g. "kms:GenerateDataKey".
	Action string
	// Resource is the resource's ARN ("*" for actions without a resource).
	Resource string
	// ResourceAccount owns the resource. Empty means the account in the
	// resource ARN, or the caller's account when the ARN has none (S3).
	ResourceAccount string
	// Context holds the condition keys of the request (aws:SecureTransport,
	// kms:EncryptionContext:keyline:app, kms:EncryptionContextKeys,
	// dynamodb:LeadingKeys, s3:prefix, …).
	Context Context
}

// caller is the request's principal, resolved for matching.
type caller struct {
	arn     string
	roleARN string // the role of an assumed-role session
	account string
	root    bool
	service bool
}

func resolveCaller(r *Request) caller {
	c := caller{arn: r.Principal, account: r.Account, root: r.Root}
	if !strings.HasPrefix(c.arn, arnPrefix+":") && strings.HasSuffix(c.arn, servicePrincipalTL) {
		c.service = true
		c.account = ""
		return c
	}
	a, ok := splitARN(c.arn)
	if ok {
		if c.account == "" {
			c.account = a.account
		}
		switch {
		case a.service == iamService && a.resource == rootResourceName:
			c.root = true
		case a.service == stsService && strings.HasPrefix(a.resource, assumedRolePrefix):
			role, _, _ := strings.Cut(a.resource[len(assumedRolePrefix):], "/")
			c.roleARN = arnPrefix + ":" + a.partition + ":" + iamService + "::" + a.account + ":role/" + role
		}
	}
	if c.root && c.arn == "" {
		c.arn = RootARN(c.account)
	}
	return c
}

// RootARN returns the ARN of an account's root user.
func RootARN(account string) string {
	return arnPrefix + ":" + defaultPartition + ":" + iamService + "::" + account + ":" + rootResourceName
}

// AssumedRoleARN returns the STS ARN of a role session, the caller
// identity AWS names in messages for a Lambda function's role.
func AssumedRoleARN(account, role, session string) string {
	return arnPrefix + ":" + defaultPartition + ":" + stsService + "::" + account + ":" + assumedRolePrefix + role + "/" + session
}

// resourceAccount returns the account owning the request's resource.
func (r *Request) resourceAccount(c *caller) string {
	if r.ResourceAccount != "" {
		return r.ResourceAccount
	}
	if a, ok := splitARN(r.Resource); ok && a.account != "" {
		return a.account
	}
	return c.account
}

// isKMSKey reports whether the request is a KMS action on a KMS key, where
// the key policy is the primary access control. A request that names a key
// by alias must be evaluated against the key's ARN, as AWS authorizes it
// against the key.
func isKMSKey(action, resource string) bool {
	svc, _, _ := strings.Cut(action, ":")
	if !strings.EqualFold(svc, kmsService) {
		return false
	}
	a, ok := splitARN(resource)
	return ok && a.service == kmsService && len(a.resource) >= len(kmsKeyPrefix) &&
		strings.EqualFold(a.resource[:len(kmsKeyPrefix)], kmsKeyPrefix)
}

// Reason is why a decision came out as it did.
type Reason uint8

// The three outcomes of an evaluation.
const (
	ImplicitDeny Reason = iota
	ExplicitDeny
	Allowed
)

// String names the reason.
func (r Reason) String() string {
	switch r {
	case ImplicitDeny:
		return "ImplicitDeny"
	case ExplicitDeny:
		return "ExplicitDeny"
	case Allowed:
		return "Allowed"
	}
	return "Reason(?)"
}

// PolicyKind says which kind of policy a statement belongs to.
type PolicyKind uint8

// Kinds of policy.
const (
	IdentityPolicy PolicyKind = iota + 1
	ResourcePolicy
)

// String returns AWS's name of the policy type ("identity-based", …).
func (k PolicyKind) String() string {
	switch k {
	case IdentityPolicy:
		return "identity-based"
	case ResourcePolicy:
		return "resource-based"
	}
	return ""
}

// StatementRef names one statement of one policy.
type StatementRef struct {
	Policy string     `json:"policy,omitempty"`
	Sid    string     `json:"sid,omitempty"`
	Index  int        `json:"index"`
	Kind   PolicyKind `json:"kind,omitempty"`
	Effect Effect     `json:"-"`
}

// IsZero reports whether the reference names no statement.
func (s StatementRef) IsZero() bool { return s.Policy == "" && s.Kind == 0 }

// String renders "policy/Sid" (or "policy/#index" without a Sid).
func (s StatementRef) String() string {
	if s.IsZero() {
		return ""
	}
	if s.Sid != "" {
		return s.Policy + "/" + s.Sid
	}
	return fmt.Sprintf("%s/#%d", s.Policy, s.Index)
}

// Decision is the outcome of Evaluate.
type Decision struct {
	Allowed bool
	Reason  Reason
	// Statement is the deciding statement: the Deny for ExplicitDeny, the
	// Allow for Allowed (the identity-based one when two were needed).
	// It is zero for ImplicitDeny.
	Statement StatementRef
	// Grant is, for an allow that needed both kinds of policy (cross-account
	// access, or a KMS key policy delegating to the account), the
	// resource-policy statement that let the identity-based policy count.
	Grant StatementRef
	// Kind is the kind of policy that denied (ExplicitDeny) or that had no
	// allow (ImplicitDeny); it selects AWS's wording of the denial.
	Kind PolicyKind
	// Missing says, for an ImplicitDeny, what allow was missing.
	Missing string
}

// String summarises the decision for a log line: what allowed or denied
// the request, or what allow was missing.
func (d Decision) String() string {
	switch d.Reason {
	case Allowed:
		if !d.Grant.IsZero() {
			return "Allowed by " + d.Statement.String() + " (" + d.Statement.Kind.String() + ") with " + d.Grant.String() + " (" + d.Grant.Kind.String() + ")"
		}
		return "Allowed by " + d.Statement.String() + " (" + d.Statement.Kind.String() + ")"
	case ExplicitDeny:
		return "ExplicitDeny by " + d.Statement.String() + " (" + d.Kind.String() + ")"
	}
	return "ImplicitDeny: " + d.Missing
}

// AccessDeniedMessage renders AWS's AccessDeniedException message for a
// denied request, e.g.
//
//	User: arn:aws:sts::000000000000:assumed-role/r/r is not authorized to perform:
//	kms:GenerateDataKey on resource: arn:aws:kms:…:key/… because no
//	resource-based policy allows the kms:GenerateDataKey action
//
// (on one line). An explicit deny reads "… with an explicit deny in a
// resource-based policy" / "… in an identity-based policy". It returns ""
// for an allowed request.
func (d Decision) AccessDeniedMessage(r *Request) string {
	if d.Allowed {
		return ""
	}
	c := resolveCaller(r)
	head := "User: " + c.arn + " is not authorized to perform: " + r.Action + " on resource: " + r.Resource
	kind := d.Kind
	if kind == 0 {
		kind = IdentityPolicy
	}
	if d.Reason == ExplicitDeny {
		article := "a"
		if kind == IdentityPolicy {
			article = "an"
		}
		return head + " with an explicit deny in " + article + " " + kind.String() + " policy"
	}
	return head + " because no " + kind.String() + " policy allows the " + r.Action + " action"
}

// principalMatch is how a resource-policy statement's principal matches.
type principalMatch uint8

const (
	principalNoMatch principalMatch = iota
	principalAccountMatch
	principalDirectMatch
)

// Evaluate decides req against the caller's identity-based policies and the
// resource's resource-based policy (nil when the resource has none), and
// records the decision when recording is enabled (see Recorder).
func Evaluate(req *Request, identity []*Policy, resource *Policy) Decision {
	d := evaluate(req, identity, resource)
	if r := DefaultRecorder(); r != nil {
		r.Record(req, identity, resource, d)
	}
	return d
}

// evaluate implements the rules stated in the package documentation.
func evaluate(req *Request, identity []*Policy, resource *Policy) Decision {
	c := resolveCaller(req)

	// Identity-based policies (none for a service principal; the root user
	// has implicit full identity permissions in its own account).
	var idAllow, idDeny StatementRef
	if !c.service {
		if c.root {
			idAllow, idDeny = scanIdentity(req, rootImplicitPolicy, idAllow, idDeny)
		}
		for _, p := range identity {
			if !idDeny.IsZero() {
				break
			}
			idAllow, idDeny = scanIdentity(req, p, idAllow, idDeny)
		}
	}
	// Rule 1: an explicit deny anywhere wins.
	if !idDeny.IsZero() {
		return Decision{Reason: ExplicitDeny, Statement: idDeny, Kind: IdentityPolicy}
	}

	var resDirect, resAccount, resDeny StatementRef
	if resource != nil {
		for i := range resource.statements {
			s := &resource.statements[i]
			if !s.matches(req) {
				continue
			}
			m := s.matchPrincipal(&c)
			if m == principalNoMatch {
				continue
			}
			// A Deny naming the caller's account applies to every
			// principal in the account.
			if s.effect == Deny {
				resDeny = s.ref(resource, ResourcePolicy)
				break
			}
			if m == principalDirectMatch && resDirect.IsZero() {
				resDirect = s.ref(resource, ResourcePolicy)
			} else if m == principalAccountMatch && resAccount.IsZero() {
				resAccount = s.ref(resource, ResourcePolicy)
			}
		}
	}
	if !resDeny.IsZero() {
		return Decision{Reason: ExplicitDeny, Statement: resDeny, Kind: ResourcePolicy}
	}

	allow := func(s, grant StatementRef) Decision {
		return Decision{Allowed: true, Reason: Allowed, Statement: s, Grant: grant, Kind: s.Kind}
	}
	deny := func(kind PolicyKind, format string, args ...any) Decision {
		return Decision{Reason: ImplicitDeny, Kind: kind, Missing: fmt.Sprintf(format, args...)}
	}

	// Rule 2: service principals are allowed only by a resource policy.
	if c.service {
		if !resDirect.IsZero() {
			return allow(resDirect, StatementRef{})
		}
		return deny(ResourcePolicy, "no resource-based policy allows %s to perform %s", c.arn, req.Action)
	}

	resAcct := req.resourceAccount(&c)
	if c.account == resAcct {
		if isKMSKey(req.Action, req.Resource) {
			// KMS: the key policy must allow the caller, or delegate to the
			// account (root) so that identity-based policies count.
			if !resDirect.IsZero() {
				return allow(resDirect, StatementRef{})
			}
			if !resAccount.IsZero() {
				if !idAllow.IsZero() {
					return allow(idAllow, resAccount)
				}
				return deny(IdentityPolicy, "no identity-based policy allows the action %s (the key policy delegates to account %s)", req.Action, resAcct)
			}
			if resource == nil {
				return deny(ResourcePolicy, "the key has no key policy, so nothing allows %s", req.Action)
			}
			return deny(ResourcePolicy, "the key policy does not allow %s to perform %s, and no statement that applies delegates to the account root %s", c.arn, req.Action, RootARN(resAcct))
		}
		// Same account: either an identity-based policy or a resource
		// policy naming the caller suffices.
		if !idAllow.IsZero() {
			return allow(idAllow, StatementRef{})
		}
		if !resDirect.IsZero() {
			return allow(resDirect, StatementRef{})
		}
		if resource != nil {
			return deny(IdentityPolicy, "no identity-based policy allows the action %s, and the resource-based policy does not allow %s", req.Action, c.arn)
		}
		return deny(IdentityPolicy, "no identity-based policy allows the action %s", req.Action)
	}

	// Cross account: both sides must allow.
	grant := resDirect
	if grant.IsZero() {
		grant = resAccount
	}
	if grant.IsZero() {
		if resource == nil {
			return deny(ResourcePolicy, "cross-account access from account %s needs a resource-based policy, and the resource has none", c.account)
		}
		return deny(ResourcePolicy, "no resource-based policy allows the action %s for %s or its account %s (cross-account)", req.Action, c.arn, c.account)
	}
	if idAllow.IsZero() {
		return deny(IdentityPolicy, "no identity-based policy in account %s allows the action %s (cross-account access needs the caller's identity-based policy too)", c.account, req.Action)
	}
	return allow(idAllow, grant)
}

// scanIdentity looks for matching statements of an identity-based policy,
// keeping the first Allow and the first Deny found.
func scanIdentity(req *Request, p *Policy, allow, deny StatementRef) (StatementRef, StatementRef) {
	for i := range p.statements {
		s := &p.statements[i]
		if !s.matches(req) {
			continue
		}
		if s.effect == Deny {
			return allow, s.ref(p, IdentityPolicy)
		}
		if allow.IsZero() {
			allow = s.ref(p, IdentityPolicy)
		}
	}
	return allow, deny
}

// matches reports whether the statement's action, resource and conditions
// apply to the request (principals are matched separately).
func (s *statement) matches(req *Request) bool {
	hit := false
	for _, a := range s.actions {
		if matchAction(a, req.Action) {
			hit = true
			break
		}
	}
	if hit == s.notAction {
		return false
	}
	if s.hasResource {
		hit = false
		for i := range s.resources {
			if s.resources[i].match(req.Resource) {
				hit = true
				break
			}
		}
		if hit == s.notResource {
			return false
		}
	}
	for i := range s.conditions {
		if !s.conditions[i].eval(req.Context) {
			return false
		}
	}
	return true
}

// matchPrincipal matches a resource-policy statement's Principal or
// NotPrincipal against the caller. A statement without either matches no
// one (a resource policy must name its principals).
func (s *statement) matchPrincipal(c *caller) principalMatch {
	if !s.hasPrincipal {
		return principalNoMatch
	}
	best := principalNoMatch
	for _, p := range s.principals {
		if m := p.match(c); m > best {
			best = m
		}
	}
	if s.notPrincipal {
		// NotPrincipal applies to everyone the list does not name, where
		// naming an account names every principal in it.
		if best == principalNoMatch {
			return principalDirectMatch
		}
		return principalNoMatch
	}
	return best
}

func (p principalPattern) match(c *caller) principalMatch {
	switch p.kind {
	case principalAny:
		return principalDirectMatch
	case principalAccount:
		if !c.service && p.value == c.account {
			return principalAccountMatch
		}
	case principalARN:
		if !c.service && (p.value == c.arn || c.roleARN != "" && p.value == c.roleARN) {
			return principalDirectMatch
		}
	case principalService, principalOther:
		if p.value == c.arn {
			return principalDirectMatch
		}
	}
	return principalNoMatch
}
