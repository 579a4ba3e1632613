package states

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sync"
)

// ErrTaskTokenUnknown is returned for a task token no task is waiting on (never issued, already
// answered, or timed out).
var ErrTaskTokenUnknown = errors.New("task token is not valid, or its task has finished")

// ErrInvalidTaskOutput is returned by SendSuccess for output that is not JSON.
var ErrInvalidTaskOutput = errors.New("task output is not valid JSON")

// TaskTokens issues the tokens of ".waitForTaskToken" tasks and delivers the outcomes that
// SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat report. It is safe for concurrent use.
type TaskTokens struct {
	mu      sync.Mutex
	waiting map[string]*tokenWait
}

type tokenWait struct {
	done      chan tokenResult
	heartbeat chan struct{}
}

type tokenResult struct {
	output json.RawMessage
	err    *TaskError
}

// NewTaskTokens returns an empty registry.
func NewTaskTokens() *TaskTokens { return &TaskTokens{waiting: map[string]*tokenWait{}} }

func (t *TaskTokens) issue() (string, *tokenWait) {
	var b [48]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	w := &tokenWait{done: make(chan tokenResult, 1), heartbeat: make(chan struct{}, 1)}
	t.mu.Lock()
	t.waiting[tok] = w
	t.mu.Unlock()
	return tok, w
}

func (t *TaskTokens) release(tok string) {
	t.mu.Lock()
	delete(t.waiting, tok)
	t.mu.Unlock()
}

func (t *TaskTokens) take(tok string) (*tokenWait, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w, ok := t.waiting[tok]
	if !ok {
		return nil, ErrTaskTokenUnknown
	}
	delete(t.waiting, tok)
	return w, nil
}

// SendSuccess completes the task waiting on token with output.
func (t *TaskTokens) SendSuccess(token string, output json.RawMessage) error {
	if !json.Valid(output) {
		return ErrInvalidTaskOutput
	}
	w, err := t.take(token)
	if err != nil {
		return err
	}
	w.done <- tokenResult{output: append(json.RawMessage(nil), output...)}
	return nil
}

// SendFailure fails the task waiting on token.
func (t *TaskTokens) SendFailure(token, errName, cause string) error {
	w, err := t.take(token)
	if err != nil {
		return err
	}
	w.done <- tokenResult{err: &TaskError{Name: errName, Cause: cause}}
	return nil
}

// SendHeartbeat tells the task waiting on token that its worker is alive.
func (t *TaskTokens) SendHeartbeat(token string) error {
	t.mu.Lock()
	w, ok := t.waiting[token]
	t.mu.Unlock()
	if !ok {
		return ErrTaskTokenUnknown
	}
	select {
	case w.heartbeat <- struct{}{}:
	default:
	}
	return nil
}
