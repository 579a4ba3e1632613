package audittest_test

import (
	"context"
	"errors"
	"testing"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/audit/audittest"
)

func TestRecorder(t *testing.T) {
	events := []audit.Event{
		{DetailType: audit.DetailAppDeactivated, Detail: map[string]any{"appId": "a1"}},
		{DetailType: audit.DetailAppDeactivated, Detail: map[string]any{"appId": "a2"}},
		{DetailType: audit.DetailAppDeactivated, Detail: map[string]any{"appId": "a3"}},
	}
	var r audittest.Recorder
	if err := r.Emit(context.Background(), events...); err != nil {
		t.Fatal(err)
	}
	if err := r.Emit(context.Background(), audit.Event{}); !errors.Is(err, audit.ErrInvalidEvent) {
		t.Errorf("err = %v", err)
	}
	if r.Count(audit.DetailAppDeactivated) != 3 || len(r.Events()) != 3 {
		t.Errorf("recorded %d", len(r.Events()))
	}
	r.Reset()
	if len(r.Events()) != 0 {
		t.Error("reset kept events")
	}
}
