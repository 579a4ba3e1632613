// Package handlers maps each function of the deployment description (infra) to the
// constructor of its Lambda handler, so that `functions/<name>/main.go` and the local
// runtime build exactly the same handler from the same configuration.
package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"

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

// StateMachineEnv is the environment variable that carries a state machine's ARN.
func StateMachineEnv(name string) string {
	return infra.StateMachineEnv(name)
}

// Constructor builds a handler: any function shape aws-lambda-go's lambda.NewHandler accepts.
type Constructor func(ctx context.Context, d Deps) (any, error)

// Constructors returns the constructor of every function, by function name.
func Constructors() map[string]Constructor {
	all := map[string]Constructor{}
	for _, part := range []map[string]Constructor{dataHandlers(), keyHandlers(), consoleHandlers()} {
		for name, c := range part {
			if _, dup := all[name]; dup {
				panic("handlers: duplicate function " + name) // a programming error caught by the package's tests
			}
			all[name] = c
		}
	}
	return all
}

// Names returns the registered function names, sorted.
func Names() []string {
	var out []string
	for n := range Constructors() {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// EnvFromOS reads settings from the process environment (as in Lambda).
func EnvFromOS(key string) string { return os.Getenv(key) }
