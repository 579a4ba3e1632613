package invariants

import (
	"sort"
	"sync"
	"time"
)

// Kinds of recorded operations.
const (
	// OpWrite is a client's PUT of an object (Digest: sha256 of the bytes sent).
	OpWrite = "write"
	// OpRead is a client's GET of an object (Digest: sha256 of the bytes received).
	OpRead = "read"
	// OpObserve is a read of an app's state (Status: the HTTP status, AppStatus: what it said).
	OpObserve = "observe"
	// OpForeign is a call made with one org's token about another org's app (I10).
	OpForeign = "foreign"
	// OpKeyChange is a customer's change of a KMS key (Detail: DisableKey, EnableKey, …).
	OpKeyChange = "key-change"
	// OpRestore is a restore requested into App: it may put any earlier content back (I6).
	OpRestore = "restore"
)

// Op is one operation of a client, with its times and result, as the soak and tests record it.
type Op struct {
	Seq   int64     `json:"seq"`
	Kind  string    `json:"kind"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Org is the org whose token made the call; App and Path what it concerned.
	Org  string `json:"org,omitempty"`
	App  string `json:"appId,omitempty"`
	Path string `json:"path,omitempty"`
	// CMK says the object is in CMK scope.
	CMK bool `json:"cmk,omitempty"`
	// Digest is the sha256 (hex) of the bytes written or read.
	Digest string `json:"digest,omitempty"`
	// Generation is the key generation the answer named (X-Keyline-Generation, the PUT's answer).
	Generation int `json:"generation,omitempty"`
	// Status is the HTTP status of the answer (0: no answer: the outcome is unknown).
	Status int `json:"status"`
	// AppStatus is the app's status an observation saw.
	AppStatus string `json:"appStatus,omitempty"`
	KeyARN    string `json:"keyArn,omitempty"`
	Detail    string `json:"detail,omitempty"`
}

// OK says the operation succeeded (a 2xx answer).
func (o Op) OK() bool { return o.Status >= 200 && o.Status < 300 }

// Unknown says the operation's outcome is not known (no answer, or a 5xx): it may have happened.
func (o Op) Unknown() bool { return o.Status == 0 || o.Status >= 500 }

// Recorder keeps the history of operations; it is safe for concurrent use.
type Recorder struct {
	mu  sync.Mutex
	seq int64
	ops []Op
	now func() time.Time
}

// NewRecorder returns an empty Recorder on the real clock.
func NewRecorder() *Recorder { return &Recorder{now: time.Now} }

// Begin starts an operation and returns the function that ends it with its result.
func (r *Recorder) Begin(op Op) func(result Op) Op {
	op.Start = r.now()
	return func(res Op) Op {
		op.End = r.now()
		op.Status = res.Status
		if res.Digest != "" {
			op.Digest = res.Digest
		}
		if res.Generation != 0 {
			op.Generation = res.Generation
		}
		if res.AppStatus != "" {
			op.AppStatus = res.AppStatus
		}
		if res.Detail != "" {
			op.Detail = res.Detail
		}
		r.Add(op)
		return op
	}
}

// Add records a finished operation.
func (r *Recorder) Add(op Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	op.Seq = r.seq
	r.ops = append(r.ops, op)
}

// Ops returns the history so far, ordered by start time.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	out := append([]Op(nil), r.ops...)
	r.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Len is the number of recorded operations.
func (r *Recorder) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}
