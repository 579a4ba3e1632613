// Package console builds the console's Lambda handlers: the console API behind API
// Gateway and its TOKEN authorizer. Only the console functions import it, so the console
// and its web assets stay out of every other function's binary.
package console

import (
	"context"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/console"
	"github.com/keyline/keyline/internal/handlers"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/provision"
	"github.com/keyline/keyline/internal/secret/awssecret"
)

// API is the console-api function: the console server behind API Gateway.
func API(_ context.Context, d handlers.Deps) (func(context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error), error) {
	srv, err := NewServer(d)
	if err != nil {
		return nil, err
	}
	return console.APIGateway(srv), nil
}

// Authorizer is the console-authorizer function: the API Gateway TOKEN authorizer.
func Authorizer(_ context.Context, d handlers.Deps) (func(context.Context, events.APIGatewayCustomAuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error), error) {
	a, err := NewAuthorizer(d)
	if err != nil {
		return nil, err
	}
	return a.Authorize, nil
}

// NewAuthorizer builds the console API's API Gateway TOKEN authorizer: the same token
// check as the console (console.Tokens), from the table and the operator token's secret.
func NewAuthorizer(d handlers.Deps) (*console.Authorizer, error) {
	table, err := d.Get(infra.EnvTableName)
	if err != nil {
		return nil, err
	}
	op, err := operatorSecret(d)
	if err != nil {
		return nil, err
	}
	store := lineage.New(dynamodb.NewFromConfig(d.AWS), table, lineage.Options{Clock: d.Clock, Logger: d.Logger})
	tokens, err := console.NewTokens(store, op, d.Clock.Now)
	if err != nil {
		return nil, err
	}
	return console.NewAuthorizer(tokens, d.Logger), nil
}

// NewServer builds the console API from the function's configuration; `keyline local`
// serves the same server directly over HTTP.
func NewServer(d handlers.Deps) (*console.Server, error) {
	var cfg struct{ providerKey, smBackup, smReencrypt, smRestore string }
	for _, s := range []struct {
		dst *string
		key string
	}{
		{&cfg.providerKey, infra.EnvProviderKeyARN},
		{&cfg.smBackup, handlers.StateMachineEnv(infra.SMBackup)},
		{&cfg.smReencrypt, handlers.StateMachineEnv(infra.SMReencrypt)}, {&cfg.smRestore, handlers.StateMachineEnv(infra.SMRestore)},
	} {
		v, err := d.Get(s.key)
		if err != nil {
			return nil, err
		}
		*s.dst = v
	}
	p, err := handlers.NewPlatform(d)
	if err != nil {
		return nil, err
	}
	src, err := p.ObjectSource(d, 0, 0)
	if err != nil {
		return nil, err
	}
	op, err := operatorSecret(d)
	if err != nil {
		return nil, err
	}
	tokens, err := console.NewTokens(p.Store, op, d.Clock.Now)
	if err != nil {
		return nil, err
	}
	return console.New(console.Options{
		Store:         p.Store,
		Objects:       src,
		Provision:     &provision.Provisioner{Store: p.Store, Keys: p.Keys, ProviderKeyARN: cfg.providerKey},
		Tokens:        tokens,
		Executions:    console.SFN{Client: sfn.NewFromConfig(d.AWS)},
		Machines:      console.StateMachines{Backup: cfg.smBackup, Reencrypt: cfg.smReencrypt, Restore: cfg.smRestore},
		Restores:      console.RestoreRules{Store: p.Store, Keys: p.Keys},
		Reactivations: p.Revocation,
		// A customer key refusing a request feeds the revocation path (B2).
		Revocations: p.Revocation,
		Logger:      d.Logger,
		Now:         d.Clock.Now,
		// Optional: names keyline's account in the answer to a refused key.
		KeylineAccount: d.Env(infra.EnvAccount),
	}), nil
}

// operatorSecret is the operator token's secret, read with GetSecretValue (Secrets Manager in
// AWS, the local endpoint's locally): its ARN is in the environment, its value never is.
func operatorSecret(d handlers.Deps) (*awssecret.Source, error) {
	arn, err := d.Get(infra.EnvOperatorTokenSecret)
	if err != nil {
		return nil, err
	}
	src, err := awssecret.New(secretsmanager.NewFromConfig(d.AWS), arn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", infra.EnvOperatorTokenSecret, err)
	}
	return src, nil
}
