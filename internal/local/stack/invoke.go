package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/local/authz"
	"github.com/keyline/keyline/internal/local/lambda"
)

// ErrNoEndpoint is reported when AWS_ENDPOINT_URL is not set.
var ErrNoEndpoint = errors.New("AWS_ENDPOINT_URL is not set: start `keyline local` and export AWS_ENDPOINT_URL=http://127.0.0.1:4566 (its endpoint)")

// ErrUnknownFunction is wrapped by InvokeOnce when the deployment has no such function.
var ErrUnknownFunction = errors.New("no such function")

// InvokeOnce runs one function's handler, built exactly as Lambda builds it from the
// environment the running `keyline local` recorded in dataDir, with event as its payload,
// against the endpoint in AWS_ENDPOINT_URL. A handler error is returned as the
// *invoke.FunctionError the Lambda runtime would report.
func InvokeOnce(ctx context.Context, dataDir, name string, event []byte, logger *slog.Logger) ([]byte, error) {
	fn, ok := infra.Description().Function(name)
	if !ok {
		var names []string
		for _, f := range infra.Description().Functions {
			names = append(names, f.Name)
		}
		return nil, fmt.Errorf("%w %q (functions: %v)", ErrUnknownFunction, name, names)
	}
	st, err := readStackState(dataDir)
	if err != nil {
		return nil, fmt.Errorf("read the stack's settings (is `keyline local --data-dir %s` running?): %w", dataDir, err)
	}
	env, ok := st.Functions[name]
	if !ok {
		return nil, fmt.Errorf("%s records no environment for %s", filepath.Join(dataDir, stackFile), name)
	}
	cfg, err := invokeAWSConfig(ctx, name)
	if err != nil {
		return nil, err
	}
	h, err := buildHandler(ctx, name, env, cfg, clock.Real(), logger)
	if err != nil {
		return nil, err
	}
	reg := lambda.New(lambda.Options{Region: cfg.Region, Logger: logger})
	reg.RegisterFunction(lambda.Function{Name: name, Handler: h, Timeout: fn.Timeout})
	return reg.Invoke(ctx, name, event)
}

// invokeAWSConfig is the SDK configuration from the environment, as Lambda's would be,
// with AWS_ENDPOINT_URL required; region us-east-1 and, unless the environment sets
// credentials, the function's own role's (as in Lambda, and as the local stack runs it).
func invokeAWSConfig(ctx context.Context, function string) (aws.Config, error) {
	if os.Getenv("AWS_ENDPOINT_URL") == "" {
		return aws.Config{}, ErrNoEndpoint
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
		opts = append(opts, config.WithRegion(localRegion))
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" && os.Getenv("AWS_PROFILE") == "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(authz.FunctionAccessKeyID(function), functionSecret, "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}
