package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
)

// putEventsServer speaks EventBridge's PutEvents (JSON 1.1) over HTTP, so the real SDK client
// is exercised. failFirst makes the first attempt of every entry fail with a throttling code;
// failAlways makes every entry fail.
type putEventsServer struct {
	mu         sync.Mutex
	calls      int
	maxEntries int
	seen       map[string]int // detail → attempts
	delivered  map[string]int // detail → deliveries
	failFirst  bool
	failAlways bool
	buses      map[string]bool
	sources    map[string]bool
}

type wireEntry struct {
	Source       string
	DetailType   string
	Detail       string
	EventBusName string
	Resources    []string
}

func (s *putEventsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if got := r.Header.Get("X-Amz-Target"); got != "AWSEvents.PutEvents" {
		http.Error(w, "unexpected target "+got, http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var in struct{ Entries []wireEntry }
	if err := json.Unmarshal(body, &in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.maxEntries = max(s.maxEntries, len(in.Entries))
	type result struct {
		EventId      string `json:",omitempty"`
		ErrorCode    string `json:",omitempty"`
		ErrorMessage string `json:",omitempty"`
	}
	out := struct {
		FailedEntryCount int
		Entries          []result
	}{}
	for i, e := range in.Entries {
		s.buses[e.EventBusName] = true
		s.sources[e.Source] = true
		s.seen[e.Detail]++
		if s.failAlways || (s.failFirst && s.seen[e.Detail] == 1) {
			out.FailedEntryCount++
			out.Entries = append(out.Entries, result{ErrorCode: "ThrottlingException", ErrorMessage: "slow down"})
			continue
		}
		s.delivered[e.Detail]++
		out.Entries = append(out.Entries, result{EventId: fmt.Sprintf("ev-%d-%d", s.calls, i)})
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

func newServer(t *testing.T, s *putEventsServer) *eventbridge.Client {
	t.Helper()
	s.seen, s.delivered, s.buses, s.sources = map[string]int{}, map[string]int{}, map[string]bool{}, map[string]bool{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return eventbridge.New(eventbridge.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  aws.AnonymousCredentials{},
	})
}

func events(n int) []Event {
	out := make([]Event, n)
	for i := range out {
		out[i] = Event{DetailType: DetailAppDeactivated, Detail: map[string]any{"appId": fmt.Sprintf("app-%03d", i)},
			Resources: []string{"arn:aws:kms:us-east-1:111122223333:key/k"}, Time: time.Unix(1700000000, 0)}
	}
	return out
}

func TestEventBridgeBatchesAndRetriesFailedEntries(t *testing.T) {
	s := &putEventsServer{failFirst: true}
	client := newServer(t, s)
	em, err := NewEventBridge(client, "keyline-bus", EventBridgeOptions{BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Emit(context.Background(), events(25)...); err != nil {
		t.Fatalf("emit: %v", err)
	}
	if s.maxEntries > MaxBatch {
		t.Errorf("a call carried %d entries, more than %d", s.maxEntries, MaxBatch)
	}
	if len(s.delivered) != 25 {
		t.Fatalf("delivered %d distinct events, want 25", len(s.delivered))
	}
	for d, n := range s.delivered {
		if n != 1 {
			t.Errorf("event %s delivered %d times", d, n)
		}
		if s.seen[d] != 2 {
			t.Errorf("event %s attempted %d times, want 2 (failed once, then retried)", d, s.seen[d])
		}
	}
	// 3 first calls (10+10+5), 3 retries of the failed entries.
	if s.calls != 6 {
		t.Errorf("calls = %d, want 6", s.calls)
	}
	if !s.buses["keyline-bus"] || len(s.buses) != 1 || !s.sources[Source] || len(s.sources) != 1 {
		t.Errorf("buses %v sources %v, want only keyline-bus and %q", s.buses, s.sources, Source)
	}
}

func TestEventBridgeReportsUndeliveredEvents(t *testing.T) {
	s := &putEventsServer{failAlways: true}
	client := newServer(t, s)
	em, err := NewEventBridge(client, "keyline-bus", EventBridgeOptions{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = em.Emit(context.Background(), events(12)...)
	var ee *EmitError
	if !errors.As(err, &ee) || !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("err = %v, want *EmitError", err)
	}
	if ee.Failed != 12 || ee.Total != 12 || ee.Codes["ThrottlingException"] != 12 {
		t.Errorf("EmitError = %+v, want 12 of 12 failed with ThrottlingException", ee)
	}
	for d, n := range s.seen {
		if n != 3 {
			t.Errorf("event %s attempted %d times, want 3", d, n)
		}
	}
}

// Batches the context keeps from starting count as not delivered, and the error says why.
func TestEventBridgeCountsBatchesNeverSent(t *testing.T) {
	s := &putEventsServer{}
	client := newServer(t, s)
	em, err := NewEventBridge(client, "keyline-bus", EventBridgeOptions{BaseDelay: time.Millisecond, MaxDelay: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = em.Emit(ctx, events(25)...)
	var ee *EmitError
	if !errors.As(err, &ee) || !errors.Is(err, ErrNotDelivered) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want an *EmitError wrapping context.Canceled", err)
	}
	if ee.Failed != 25 || ee.Total != 25 || s.calls != 0 {
		t.Errorf("EmitError = %+v after %d calls, want 25 of 25 failed and no call", ee, s.calls)
	}
}

func TestEmitRefusesInvalidEventsBeforeSending(t *testing.T) {
	s := &putEventsServer{}
	client := newServer(t, s)
	em, err := NewEventBridge(client, "keyline-bus", EventBridgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := [][]Event{
		{{DetailType: ""}},
		{{DetailType: DetailAppDeactivated, Detail: []int{1, 2}}},
		{{DetailType: DetailAppDeactivated, Detail: make(chan int)}},
	}
	for i, evs := range bad {
		if err := em.Emit(context.Background(), append(events(3), evs...)...); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("case %d: err = %v, want ErrInvalidEvent", i, err)
		}
	}
	if s.calls != 0 {
		t.Errorf("%d calls made for invalid input", s.calls)
	}
	if err := em.Emit(context.Background()); err != nil || s.calls != 0 {
		t.Errorf("empty emit: err %v, calls %d", err, s.calls)
	}
}
