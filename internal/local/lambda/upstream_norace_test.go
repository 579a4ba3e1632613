//go:build !race

// The race detector reports the upstream wrapper's shared buffer itself (and fails the
// test binary for it), so this demonstration of the defect runs in the plain test run only.

package lambda_test

import (
	"testing"

	awslambda "github.com/aws/aws-lambda-go/lambda"
)

// TestUpstreamWrapperSharesResults is the same check failing against the broken variant:
// aws-lambda-go's own wrapper, invoked concurrently, hands out bytes of a buffer it has
// already recycled. Should this ever fail, the upstream wrapper no longer does, and
// NewHandler's copy may go.
func TestUpstreamWrapperSharesResults(t *testing.T) {
	const rounds = 20
	bad := 0
	for range rounds {
		if bad = concurrentMismatches(awslambda.NewHandler(echo)); bad > 0 {
			break
		}
	}
	t.Logf("upstream wrapper, concurrent: %d mismatched results", bad)
	if bad == 0 {
		t.Fatalf("the upstream wrapper mixed up no results in %d rounds", rounds)
	}
}
