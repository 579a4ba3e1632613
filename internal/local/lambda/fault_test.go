package lambda_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/local/fault"
	"github.com/keyline/keyline/internal/local/invoke"
	"github.com/keyline/keyline/internal/local/lambda"
)

// counting registers "work", which counts the invocations that ran to their end and, when
// slow, waits for its context or for a long time.
func counting(t *testing.T, in *fault.Injector, slow bool) (*lambda.Registry, *atomic.Int32, *atomic.Int32) {
	t.Helper()
	r := lambda.New(lambda.Options{Faults: in})
	var started, finished atomic.Int32
	r.Register("work", func(ctx context.Context, _ map[string]any) (string, error) {
		started.Add(1)
		if slow {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(time.Minute):
			}
		}
		finished.Add(1)
		return "done", nil
	})
	return r, &started, &finished
}

func crashAt(t *testing.T, point string) *fault.Injector {
	t.Helper()
	in, err := fault.New(fault.Config{Lambda: []fault.LambdaCrash{{Function: "work", Nth: 1, Point: point, Window: fault.Duration(20 * time.Millisecond)}}}, fault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func wantCrash(t *testing.T, err error) {
	t.Helper()
	fe, ok := invoke.AsFunctionError(err)
	if !ok || fe.Type != lambda.CrashErrorType {
		t.Fatalf("want a %s function error, got %v", lambda.CrashErrorType, err)
	}
}

// A crash at the start runs nothing; at the end the work is done and the answer lost; at a
// random point the handler is cut off there. The next invocation runs normally.
func TestLambdaCrashPoints(t *testing.T) {
	ctx := context.Background()

	r, started, _ := counting(t, crashAt(t, fault.PointStart), false)
	_, err := r.Invoke(ctx, "work", []byte(`{}`))
	wantCrash(t, err)
	if started.Load() != 0 {
		t.Fatal("a crash at the start ran the handler")
	}
	if out, err := r.Invoke(ctx, "work", []byte(`{}`)); err != nil || string(out) != `"done"` {
		t.Fatalf("second invocation: %s %v", out, err)
	}

	r, _, finished := counting(t, crashAt(t, fault.PointEnd), false)
	_, err = r.Invoke(ctx, "work", []byte(`{}`))
	wantCrash(t, err)
	if finished.Load() != 1 {
		t.Fatal("a crash at the end did not let the handler finish its work")
	}

	r, started, finished = counting(t, crashAt(t, fault.PointRandom), true)
	begin := time.Now()
	_, err = r.Invoke(ctx, "work", []byte(`{}`))
	wantCrash(t, err)
	if started.Load() != 1 || finished.Load() != 0 || time.Since(begin) > 10*time.Second {
		t.Fatalf("a random crash: started %d, finished %d, after %v", started.Load(), finished.Load(), time.Since(begin))
	}
}

// The Lambda service's own faults on the in-process path: throttling is
// ErrTooManyRequests (Step Functions' Lambda.TooManyRequestsException), a 5xx ErrServiceFault.
func TestLambdaServiceFaultsInProcess(t *testing.T) {
	in, err := fault.New(fault.Config{Rules: []fault.Rule{{Service: fault.ServiceLambda, Throttle: 1}}}, fault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, started, _ := counting(t, in, false)
	if _, err := r.Invoke(context.Background(), "work", nil); !errors.Is(err, lambda.ErrTooManyRequests) || started.Load() != 0 {
		t.Fatalf("throttled: %v (handler ran %d times)", err, started.Load())
	}
	in, _ = fault.New(fault.Config{Rules: []fault.Rule{{Service: fault.ServiceLambda, ServerError: 1}}}, fault.Options{})
	r, _, _ = counting(t, in, false)
	if _, err := r.Invoke(context.Background(), "work", nil); !errors.Is(err, lambda.ErrServiceFault) {
		t.Fatalf("5xx: %v", err)
	}
}
