package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/keyline/keyline/internal/clock"
)

// Main is the whole of a `functions/<name>/main.go`: it reads the configuration from the
// environment, builds the function's handler with construct and starts the Lambda
// runtime. Logs are JSON (log/slog) and carry the request id through the context.
func Main[H any](name string, construct Constructor[H]) {
	logger := slog.New(NewContextHandler(slog.NewJSONHandler(os.Stdout, nil))).With("function", name)
	ctx := context.Background()
	h, err := Build(ctx, name, Erase(construct), func(ctx context.Context) (Deps, error) {
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return Deps{}, fmt.Errorf("load AWS configuration: %w", err)
		}
		return Deps{AWS: cfg, Env: EnvFromOS, Logger: logger, Clock: clock.Real()}, nil
	})
	if err != nil {
		logger.Error("cannot start function", "error", err)
		os.Exit(1)
	}
	lambda.Start(h)
}

// Build constructs the named function's handler with construct from the dependencies
// deps returns.
func Build(ctx context.Context, name string, construct Untyped, deps func(context.Context) (Deps, error)) (any, error) {
	d, err := deps(ctx)
	if err != nil {
		return nil, err
	}
	h, err := construct(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("build function %s: %w", name, err)
	}
	return h, nil
}
