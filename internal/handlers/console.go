package handlers

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/console"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
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
	var cfg struct{ table, data, providerKey, opHash, smBackup, smReencrypt, smRestore string }
	for _, s := range []struct {
		dst *string
		key string
	}{
		{&cfg.table, infra.EnvTableName}, {&cfg.data, infra.EnvDataBucket}, {&cfg.providerKey, infra.EnvProviderKeyARN},
		{&cfg.opHash, infra.EnvOperatorTokenHash}, {&cfg.smBackup, StateMachineEnv("backup")},
		{&cfg.smReencrypt, StateMachineEnv("reencrypt")}, {&cfg.smRestore, StateMachineEnv("restore")},
	} {
		v, err := d.Get(s.key)
		if err != nil {
			return nil, err
		}
		*s.dst = v
	}
	ddb := dynamodb.NewFromConfig(d.AWS)
	store := lineage.New(ddb, cfg.table, lineage.Options{Clock: d.Clock})
	kp := keys.NewKMS(kms.NewFromConfig(d.AWS), keys.Options{Logger: d.Logger})
	src, err := objects.NewS3(objects.Config{
		S3:     s3.NewFromConfig(d.AWS, func(o *s3.Options) { o.UsePathStyle = d.Env("KEYLINE_S3_PATH_STYLE") == "true" }),
		Bucket: cfg.data, Lineage: store, DynamoDB: ddb, Table: cfg.table, Keys: kp,
		ProviderKeyARN: cfg.providerKey, Logger: d.Logger, Clock: d.Clock,
	})
	if err != nil {
		return nil, err
	}
	tokens, err := console.NewTokens(ddb, cfg.table, cfg.opHash, d.Clock.Now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", infra.EnvOperatorTokenHash, err)
	}
	return console.New(console.Options{
		Store:      store,
		Objects:    src,
		Provision:  &provision.Provisioner{Store: store, Keys: kp, ProviderKeyARN: cfg.providerKey},
		Tokens:     tokens,
		Executions: console.SFN{Client: sfn.NewFromConfig(d.AWS)},
		Machines:   console.StateMachines{Backup: cfg.smBackup, Reencrypt: cfg.smReencrypt, Restore: cfg.smRestore},
		Restores:   console.RestoreRules{Store: store, Keys: kp},
		Logger:     d.Logger,
		Now:        d.Clock.Now,
	}), nil
}
