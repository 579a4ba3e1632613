package authz_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/local/authz"
	"github.com/keyline/keyline/internal/local/iam"
)

// staticPolicies serves one role policy and one key policy.
type staticPolicies struct {
	role, key *iam.Policy
}

func (s staticPolicies) Identity(authz.Principal) ([]*iam.Policy, error) {
	return []*iam.Policy{s.role}, nil
}
func (s staticPolicies) Resource(context.Context, authz.Check) (*iam.Policy, error) {
	return s.key, nil
}

// Rounds and decisions per round of BenchmarkIAMDecision.
const (
	iamRounds         = 7
	iamRoundDecisions = 20000
)

// BenchmarkIAMDecision: what the endpoint pays per check: one cross-account KMS decision (a
// function's role asking a customer key for a data key under keyline's encryption context),
// through the authorizer the endpoint uses. Figure: the median over rounds of the mean time
// per decision, in µs.
func BenchmarkIAMDecision(b *testing.B) {
	a := authz.NewIAM(staticPolicies{role: iam.MustParsePolicy("keyline-"+fn, rolePolicy), key: iam.MustParsePolicy("key-policy", keyPolicy)})
	p := authz.FunctionRole(authz.KeylineAccount, fn, authz.FunctionAccessKeyID(fn))
	c := authz.Check{Action: "kms:GenerateDataKey", Resource: "arn:aws:kms:us-east-1:" + customer + ":key/1234abcd-12ab-34cd-56ef-1234567890ab",
		ResourceAccount: customer, Context: map[string]authz.Value{authz.CtxCallerAccount: authz.One(authz.KeylineAccount), authz.CtxResourceAccount: authz.One(customer)}}
	authz.AddEncryptionContext(c.Context, map[string]string{"keyline:org": orgOne, "keyline:app": "app-1"})
	ctx := context.Background()
	if d := a.Authorize(ctx, p, c); !d.Allowed {
		b.Fatalf("the benchmark's decision is not an allow: %+v", d)
	}
	for range b.N {
		rounds := make([]float64, 0, iamRounds)
		for range iamRounds {
			start := time.Now()
			for range iamRoundDecisions {
				a.Authorize(ctx, p, c)
			}
			rounds = append(rounds, float64(time.Since(start).Microseconds())/iamRoundDecisions)
		}
		sort.Float64s(rounds)
		b.ReportMetric(rounds[len(rounds)/2], "iam_eval_us")
	}
}
