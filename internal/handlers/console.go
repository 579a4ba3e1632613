package handlers

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/console"
	"github.com/keyline/keyline/internal/provision"
)

func consoleHandlers() map[string]Constructor {
	return map[string]Constructor{
		"console-api": func(ctx context.Context, d Deps) (any, error) {
			srv, err := NewConsole(d)
			if err != nil {
				return nil, err
			}
			return console.APIGateway(srv), nil
		},
		"console-authorizer": func(ctx context.Context, d Deps) (any, error) {
			a, err := NewConsoleAuthorizer(d)
			if err != nil {
				return nil, err
			}
			return a.Authorize, nil
		},
	}
}

// NewConsoleAuthorizer builds the console API's API Gateway TOKEN authorizer: the same
// token check as the console (console.Tokens), from the table and the operator-token hash.
func NewConsoleAuthorizer(d Deps) (*console.Authorizer, error) {
	table, err := d.Get(infra.EnvTableName)
	if err != nil {
		return nil, err
	}
	opHash, err := d.Get(infra.EnvOperatorTokenHash)
	if err != nil {
		return nil, err
	}
	tokens, err := console.NewTokens(dynamodb.NewFromConfig(d.AWS), table, opHash, d.Clock.Now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", infra.EnvOperatorTokenHash, err)
	}
	return console.NewAuthorizer(tokens, d.Logger), nil
}

// NewConsole builds the console API from the function's configuration; `keyline local`
// serves the same server directly over HTTP.
func NewConsole(d Deps) (*console.Server, error) {
	var cfg struct{ providerKey, opHash, smBackup, smReencrypt, smRestore string }
	for _, s := range []struct {
		dst *string
		key string
	}{
		{&cfg.providerKey, infra.EnvProviderKeyARN},
		{&cfg.opHash, infra.EnvOperatorTokenHash}, {&cfg.smBackup, StateMachineEnv("backup")},
		{&cfg.smReencrypt, StateMachineEnv("reencrypt")}, {&cfg.smRestore, StateMachineEnv("restore")},
	} {
		v, err := d.Get(s.key)
		if err != nil {
			return nil, err
		}
		*s.dst = v
	}
	p, err := newPlatform(d)
	if err != nil {
		return nil, err
	}
	src, err := p.objectSource(d, 0, 0)
	if err != nil {
		return nil, err
	}
	tokens, err := console.NewTokens(p.ddb, p.table, cfg.opHash, d.Clock.Now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", infra.EnvOperatorTokenHash, err)
	}
	return console.New(console.Options{
		Store:         p.store,
		Objects:       src,
		Provision:     &provision.Provisioner{Store: p.store, Keys: p.keys, ProviderKeyARN: cfg.providerKey},
		Tokens:        tokens,
		Executions:    console.SFN{Client: sfn.NewFromConfig(d.AWS)},
		Machines:      console.StateMachines{Backup: cfg.smBackup, Reencrypt: cfg.smReencrypt, Restore: cfg.smRestore},
		Restores:      console.RestoreRules{Store: p.store, Keys: p.keys},
		Reactivations: p.revocation,
		Logger:        d.Logger,
		Now:           d.Clock.Now,
	}), nil
}
