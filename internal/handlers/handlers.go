// Package handlers holds what every Lambda function of the deployment is built from: its
// dependencies (Deps), the platform of clients and domain services (Platform), and Main,
// the whole of a `functions/<name>/main.go`. The handlers themselves are in its
// sub-packages, split by plane so that a function's binary holds only what it uses:
// data (backups, restores, drills), key (key events, key health, re-encryption) and
// console (the console API and its authorizer).
package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/clock"
)

// Deps is what every handler is built from: AWS clients' configuration (its endpoint
// comes from AWS_ENDPOINT_URL in Lambda and locally alike), the function's environment,
// a logger and a clock.
type Deps struct {
	AWS    aws.Config
	Env    func(key string) string
	Logger *slog.Logger
	Clock  clock.Clock
}

// Get returns the environment value for key, or an error naming the missing setting.
func (d Deps) Get(key string) (string, error) {
	v := d.Env(key)
	if v == "" {
		return "", fmt.Errorf("missing setting %s: set it in the function's environment (the deployment injects it)", key)
	}
	return v, nil
}

// StateMachineARN returns the ARN of the named state machine from the environment.
func (d Deps) StateMachineARN(name string) (string, error) {
	return d.Get(StateMachineEnv(name))
}

// IntSetting reads a positive whole number from the environment, def when unset.
func (d Deps) IntSetting(key string, def int) (int, error) {
	v := d.Env(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("setting %s=%q: want a positive whole number", key, v)
	}
	return n, nil
}

// StateMachineEnv is the environment variable that carries a state machine's ARN.
func StateMachineEnv(name string) string {
	return infra.StateMachineEnv(name)
}

// Constructor builds a handler of type H: any function shape aws-lambda-go's
// lambda.NewHandler accepts. Each function's main.go names its own.
type Constructor[H any] func(ctx context.Context, d Deps) (H, error)

// Untyped is a constructor whose handler's type is known only at run time: what the
// local runtime keeps, by function name, to build every function in one process.
type Untyped func(ctx context.Context, d Deps) (any, error)

// Erase turns a typed constructor into an Untyped one.
func Erase[H any](c Constructor[H]) Untyped {
	return func(ctx context.Context, d Deps) (any, error) {
		h, err := c(ctx, d)
		if err != nil {
			return nil, err
		}
		return h, nil
	}
}

// EnvFromOS reads settings from the process environment (as in Lambda).
func EnvFromOS(key string) string { return os.Getenv(key) }
