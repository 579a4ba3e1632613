package fault

import (
	"context"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ObserverAPIOption marks an SDK client's requests as an observer's (NoFaultHeader): the
// endpoint never faults them. Add it to a client's APIOptions.
func ObserverAPIOption(stack *middleware.Stack) error {
	return stack.Build.Add(middleware.BuildMiddlewareFunc("keylineNoFault", func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
		if req, ok := in.Request.(*smithyhttp.Request); ok {
			req.Header.Set(NoFaultHeader, "1")
		}
		return next.HandleBuild(ctx, in)
	}), middleware.After)
}
