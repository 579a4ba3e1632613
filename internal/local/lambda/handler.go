package lambda

import (
	"bytes"
	"context"
	"sync"

	awslambda "github.com/aws/aws-lambda-go/lambda"
)

// concurrentHandler runs a handler through aws-lambda-go's wrapper safely from many
// goroutines at once. The wrapper returns the bytes of a pooled buffer it has already put
// back into its pool (fine in Lambda, where one invocation runs at a time per sandbox); a
// concurrent invocation of the same wrapper may overwrite them before the caller reads
// them. Each wrapper here serves one invocation at a time (a wrapper per concurrent
// invocation, like a sandbox per concurrent request), and its result is copied before the
// wrapper is used again.
type concurrentHandler struct {
	pool sync.Pool
}

// NewHandler returns an aws-lambda-go Handler for h (any shape lambda.NewHandler takes)
// that is safe for concurrent use and whose results stay valid after it returns.
func NewHandler(h any) awslambda.Handler {
	c := &concurrentHandler{}
	c.pool.New = func() any { return awslambda.NewHandler(h) }
	return c
}

// Invoke runs the handler on payload.
func (c *concurrentHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	h := c.pool.Get().(awslambda.Handler)
	defer c.pool.Put(h)
	out, err := h.Invoke(ctx, payload)
	return bytes.Clone(out), err
}
