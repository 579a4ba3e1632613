package wferr_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

// errorType is how aws-lambda-go names a handler error: the (pointed-to) type's name.
func errorType(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		return t.Elem().Name()
	}
	return t.Name()
}

func TestFromMapsToStatesErrorNames(t *testing.T) {
	revoked := &keys.KeyError{Class: keys.ClassRevoked, Op: "GenerateDataKey", KeyARN: "arn:k", Code: "DisabledException"}
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("seal: %w", revoked), "KeyRevoked"},
		{&keys.KeyError{Class: keys.ClassTransient, Code: "ThrottlingException"}, "Transient"},
		{&keys.KeyError{Class: keys.ClassBadRequest, Code: "InvalidCiphertextException"}, "Failed"},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), "Transient"},
		{&lineage.ConflictError{AppID: "a", Reason: lineage.ErrLeaseHeld}, "LeaseHeld"},
		{&lineage.ConflictError{AppID: "a"}, "Transient"},
		{&lineage.ConflictError{AppID: "a", Reason: lineage.ErrReencrypting}, "Failed"},
		{fmt.Errorf("%w: app x", lineage.ErrNotFound), "NotFound"},
		{fmt.Errorf("%w: bad", lineage.ErrInvalidInput), "Invalid"},
		{fmt.Errorf("wrapped: %w", &wferr.Refused{Code: "conflict", Msg: "no"}), "Refused"},
		{errors.New("boom"), "Failed"},
	}
	for _, c := range cases {
		got := wferr.From(c.err)
		if n := errorType(got); n != c.want {
			t.Errorf("From(%v) = %s (%v), want %s", c.err, n, got, c.want)
		}
	}
	if wferr.From(nil) != nil {
		t.Error("From(nil) != nil")
	}
	kr := wferr.From(revoked).(*wferr.KeyRevoked)
	if kr.KeyARN != "arn:k" {
		t.Errorf("KeyRevoked.KeyARN = %q", kr.KeyARN)
	}
}

type rep struct{ arn, cause string }

func (r *rep) ReportRevoked(_ context.Context, keyARN, cause string, _ error) error {
	r.arn, r.cause = keyARN, cause
	return nil
}

func TestReportIfRevoked(t *testing.T) {
	r := &rep{}
	if kr := wferr.ReportIfRevoked(context.Background(), r, nil, "backup", errors.New("other")); kr != nil || r.arn != "" {
		t.Fatalf("a non-key error was reported: %v %+v", kr, r)
	}
	if kr := wferr.ReportIfRevoked(context.Background(), r, nil, "backup", &keys.KeyError{Class: keys.ClassTransient, KeyARN: "k"}); kr != nil || r.arn != "" {
		t.Fatal("a transient error was reported")
	}
	kr := wferr.ReportIfRevoked(context.Background(), r, nil, "backup", fmt.Errorf("x: %w", &keys.KeyError{Class: keys.ClassRevoked, KeyARN: "k"}))
	if kr == nil || kr.KeyARN != "k" || r.arn != "k" || r.cause != "backup" {
		t.Fatalf("revoked error: %v %+v", kr, r)
	}
}
