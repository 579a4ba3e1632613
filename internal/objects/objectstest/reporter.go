package objectstest

import (
	"context"
	"sync"
)

// Reporter records the revocations a workflow reports (it stands in for the revocation
// path, B2): the key ARN of each ReportRevoked call, in order.
type Reporter struct {
	mu    sync.Mutex
	calls []string
}

// ReportRevoked records keyARN.
func (r *Reporter) ReportRevoked(_ context.Context, keyARN, _ string, _ error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, keyARN)
	return nil
}

// Calls returns the key ARNs reported so far.
func (r *Reporter) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}
