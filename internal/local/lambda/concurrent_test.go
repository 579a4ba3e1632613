package lambda_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	awslambda "github.com/aws/aws-lambda-go/lambda"

	"github.com/keyline/keyline/internal/local/lambda"
)

type echoIn struct {
	ID string `json:"id"`
}

// echo returns its input id, padded so that results are of a size worth reusing buffers for.
func echo(_ context.Context, in echoIn) (map[string]string, error) {
	return map[string]string{"id": in.ID, "pad": strings.Repeat(in.ID, 64)}, nil
}

// concurrentMismatches invokes h from many goroutines and counts results that are not the
// invocation's own.
func concurrentMismatches(h awslambda.Handler) int {
	const workers, calls = 16, 400
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				id := fmt.Sprintf("w%02d-%04d", w, i)
				out, err := h.Invoke(context.Background(), []byte(`{"id":"`+id+`"}`))
				var got map[string]string
				if err != nil || json.Unmarshal(out, &got) != nil || got["id"] != id {
					mu.Lock()
					bad++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return bad
}

// TestConcurrentInvocationsKeepTheirResults: Step Functions runs Map items concurrently
// through one registered function; each invocation must get its own result.
func TestConcurrentInvocationsKeepTheirResults(t *testing.T) {
	if bad := concurrentMismatches(lambda.NewHandler(echo)); bad != 0 {
		t.Fatalf("%d invocations got another invocation's result", bad)
	}
	r := lambda.New(lambda.Options{})
	r.Register("echo", echo)
	inv := handlerFunc(func(ctx context.Context, p []byte) ([]byte, error) { return r.Invoke(ctx, "echo", p) })
	if bad := concurrentMismatches(inv); bad != 0 {
		t.Fatalf("registry: %d invocations got another invocation's result", bad)
	}
}

type handlerFunc func(context.Context, []byte) ([]byte, error)

func (f handlerFunc) Invoke(ctx context.Context, p []byte) ([]byte, error) { return f(ctx, p) }
