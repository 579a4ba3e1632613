// Package authz is the seam between the local endpoint and policy evaluation: who signed
// a request (Principal, from its SigV4 access key id), what the request needs to be
// allowed (Checks: an IAM action on a resource with the request's condition keys, one per
// action the request performs, as each service defines them), and the Authorizer that
// decides. The services' packages say what their requests need (the Extractor of each);
// the endpoint asks the Authorizer before a request reaches its service.
package authz

import (
	"context"
	"regexp"
	"strings"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/local/iam"
)

// KeylineAccount is the account of keyline's own resources locally.
const KeylineAccount = "000000000000"

// accountKey matches an access key id that stands for an account's root user.
var accountKey = regexp.MustCompile(`^[0-9]{12}$`)

// Principal is who signed a request.
type Principal struct {
	// AccessKeyID is the SigV4 access key id the request was signed with.
	AccessKeyID string
	// Account is the caller's account.
	Account string
	// ARN is the caller: arn:aws:iam::ACCOUNT:root for an account's root user, or the role
	// session arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION of a function.
	ARN string
	// Root marks an account's root user.
	Root bool
	// Function names the local function whose role the key belongs to ("" for a root user).
	Function string
	// RoleARN is the function's role (arn:aws:iam::ACCOUNT:role/ROLE).
	RoleARN string
}

// Root returns the root user of account.
func Root(account, accessKeyID string) Principal {
	return Principal{AccessKeyID: accessKeyID, Account: account, ARN: iam.RootARN(account), Root: true}
}

// FunctionRole returns the principal of a function calling with its role's credentials.
func FunctionRole(account, function, accessKeyID string) Principal {
	role := RoleName(function)
	return Principal{
		AccessKeyID: accessKeyID, Account: account, Function: function,
		RoleARN: infra.RoleARN("", account, infra.DefaultStackName, function),
		ARN:     iam.AssumedRoleARN(account, role, role),
	}
}

// RoleName is the name of a function's role: the deployment contract's (infra.RoleName in
// keyline's stack), so that a customer's key policy naming keyline's roles names these.
func RoleName(function string) string { return infra.RoleName(infra.DefaultStackName, function) }

// FunctionAccessKeyID is the access key id a local function signs its requests with.
func FunctionAccessKeyID(function string) string {
	return "ASIAKEYLINE" + strings.ToUpper(strings.NewReplacer("-", "", "_", "").Replace(function))
}

// Principals resolves access key ids.
type Principals struct {
	byKey map[string]Principal
}

// NewPrincipals returns a resolver that knows the given functions' keys (account: keyline's).
func NewPrincipals(account string, functions []string) *Principals {
	p := &Principals{byKey: map[string]Principal{}}
	for _, f := range functions {
		k := FunctionAccessKeyID(f)
		p.byKey[k] = FunctionRole(account, f, k)
	}
	return p
}

// Resolve returns the principal of an access key id: a function's role for a function's
// key, the root of that account for a 12-digit key, keyline's account root otherwise.
func (p *Principals) Resolve(accessKeyID string) Principal {
	if p != nil {
		if pr, ok := p.byKey[accessKeyID]; ok {
			return pr
		}
	}
	if accountKey.MatchString(accessKeyID) {
		return Root(accessKeyID, accessKeyID)
	}
	return Root(KeylineAccount, accessKeyID)
}

// Value is a condition key's value: one string, or a set for a multivalued key
// (kms:EncryptionContextKeys, dynamodb:LeadingKeys).
type Value struct {
	Values []string `json:"values"`
	Multi  bool     `json:"multi,omitempty"`
}

// One is a single-valued condition key value.
func One(s string) Value { return Value{Values: []string{s}} }

// Set is a multivalued condition key value.
func Set(ss ...string) Value { return Value{Values: ss, Multi: true} }

// Check is one authorization a request needs: an IAM action on a resource, with the
// request's condition keys.
type Check struct {
	Action   string
	Resource string
	// ResourceAccount owns the resource (aws:ResourceAccount).
	ResourceAccount string
	Context         map[string]Value
}

// Decision is the Authorizer's answer to one Check.
type Decision struct {
	Allowed bool
	// Message is AWS's AccessDenied message for a denial.
	Message string
	// Statement names the deciding statement (policy/Sid): the Allow that allowed, or the
	// Deny that denied.
	Statement string
	// Missing says, for an implicit denial, which allow was missing: the statement that
	// would have allowed the call.
	Missing string
}

// Authorizer decides one check for a principal.
type Authorizer interface {
	Authorize(ctx context.Context, p Principal, c Check) Decision
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(ctx context.Context, p Principal, c Check) Decision

// Authorize calls f.
func (f AuthorizerFunc) Authorize(ctx context.Context, p Principal, c Check) Decision {
	return f(ctx, p, c)
}

// Request is what an Extractor looks at: the caller, the operation's name and the body.
type Request struct {
	Principal Principal
	Region    string
	// Method, Path and Query are the HTTP request's (S3 is addressed by them).
	Method string
	Path   string
	Query  map[string][]string
	// Header holds the request's headers (x-amz-copy-source, …).
	Header map[string][]string
	// Target is the X-Amz-Target header's operation (after the '.'), "" for S3.
	Target string
	Body   []byte
}

// Extractor says which checks a service's request needs. An error means the request
// cannot be understood; the endpoint then lets the service answer it (with its own
// validation error), as nothing is done on its behalf.
type Extractor interface {
	Checks(ctx context.Context, r *Request) ([]Check, error)
}

// ExtractorFunc adapts a function to Extractor.
type ExtractorFunc func(ctx context.Context, r *Request) ([]Check, error)

// Checks calls f.
func (f ExtractorFunc) Checks(ctx context.Context, r *Request) ([]Check, error) { return f(ctx, r) }
