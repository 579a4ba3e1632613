package iam

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
)

// RecordEnv names the environment variable that turns recording on: when
// it holds a file name, every decision Evaluate makes is appended to that
// file as one JSON line (a Record).
const RecordEnv = "KEYLINE_IAM_RECORD"

const recordFileMode = 0o644

// Record is one recorded decision: the request, the policies it was
// evaluated against and the decision. Records are what the independent
// comparison replays.
type Record struct {
	Principal       string  `json:"principal"`
	Account         string  `json:"account"`
	Root            bool    `json:"root,omitempty"`
	Action          string  `json:"action"`
	Resource        string  `json:"resource"`
	ResourceAccount string  `json:"resourceAccount"`
	Context         Context `json:"context"`
	// IdentityPolicies are the caller's identity-based policies as
	// evaluated (for the root user, including its implicit full access).
	IdentityPolicies []RecordedPolicy `json:"identityPolicies"`
	ResourcePolicy   *RecordedPolicy  `json:"resourcePolicy,omitempty"`
	Decision         RecordedDecision `json:"decision"`
}

// RecordedPolicy is a policy in a Record, with the account it lives in.
type RecordedPolicy struct {
	Name    string          `json:"name"`
	Account string          `json:"account"`
	Policy  json.RawMessage `json:"policy"`
}

// RecordedDecision is a Decision in a Record.
type RecordedDecision struct {
	Allowed   bool   `json:"allowed"`
	Reason    string `json:"reason"`
	Statement string `json:"statement,omitempty"`
	Grant     string `json:"grant,omitempty"`
	Missing   string `json:"missing,omitempty"`
}

// NewRecord builds the Record of one evaluation.
func NewRecord(req *Request, identity []*Policy, resource *Policy, d Decision) Record {
	c := resolveCaller(req)
	resAcct := req.resourceAccount(&c)
	rec := Record{
		Principal:       c.arn,
		Account:         c.account,
		Root:            c.root,
		Action:          req.Action,
		Resource:        req.Resource,
		ResourceAccount: resAcct,
		Context:         make(Context, len(req.Context)),
		Decision: RecordedDecision{
			Allowed:   d.Allowed,
			Reason:    d.Reason.String(),
			Statement: d.Statement.String(),
			Grant:     d.Grant.String(),
			Missing:   d.Missing,
		},
	}
	// A multivalued key without values is absent from the request.
	for k, v := range req.Context {
		if v.present() {
			rec.Context[k] = v
		}
	}
	if !c.service {
		if c.root {
			rec.IdentityPolicies = append(rec.IdentityPolicies, RecordedPolicy{Name: rootImplicitPolicy.name, Account: c.account, Policy: rootImplicitPolicy.doc})
		}
		for _, p := range identity {
			rec.IdentityPolicies = append(rec.IdentityPolicies, RecordedPolicy{Name: p.name, Account: c.account, Policy: p.doc})
		}
	}
	if rec.IdentityPolicies == nil {
		rec.IdentityPolicies = []RecordedPolicy{}
	}
	if resource != nil {
		rec.ResourcePolicy = &RecordedPolicy{Name: resource.name, Account: resAcct, Policy: resource.doc}
	}
	return rec
}

// Recorder appends decisions as JSON lines to a writer. It is safe for
// concurrent use; each line is written with a single Write.
type Recorder struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

// NewRecorder returns a Recorder writing to w.
func NewRecorder(w io.Writer) *Recorder { return &Recorder{w: w} }

// OpenRecorder returns a Recorder appending to the named file (created if
// missing). Several processes may append to the same file.
func OpenRecorder(path string) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, recordFileMode)
	if err != nil {
		return nil, fmt.Errorf("open decision record %s: %w", path, err)
	}
	return NewRecorder(f), nil
}

// Record appends the record of one evaluation.
func (r *Recorder) Record(req *Request, identity []*Policy, resource *Policy, d Decision) {
	line, err := json.Marshal(NewRecord(req, identity, resource, d))
	if err != nil {
		r.setErr(fmt.Errorf("encode decision record: %w", err))
		return
	}
	line = append(line, '\n')
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.w.Write(line); err != nil && r.err == nil {
		r.err = fmt.Errorf("write decision record: %w", err)
	}
}

func (r *Recorder) setErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
}

// Err returns the first error the recorder met, if any.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

var (
	defaultRecorderOnce sync.Once
	defaultRecorder     *Recorder
)

// DefaultRecorder returns the recorder named by KEYLINE_IAM_RECORD, or nil
// when recording is off. A file that cannot be opened is reported once on
// standard error and recording stays off.
func DefaultRecorder() *Recorder {
	defaultRecorderOnce.Do(func() {
		path := os.Getenv(RecordEnv)
		if path == "" {
			return
		}
		r, err := OpenRecorder(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "iam: %s: %v\n", RecordEnv, err)
			return
		}
		defaultRecorder = r
	})
	return defaultRecorder
}
