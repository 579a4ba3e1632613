// Package key builds the key plane's Lambda handlers: CloudTrail key events (R8, B1, B3),
// their notification pages (B5), the key-state upgrade, the key-health check (B2) and the re-encryption steps (R4, R6, B8). Each exported
// constructor is named by its function's main.go.
package key

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/handlers"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/workflow/keyhealth"
	"github.com/keyline/keyline/internal/workflow/reencrypt"
	"github.com/keyline/keyline/internal/workflow/revocation"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

// The re-encryption steps, one constructor each. Batch, Commit and Abort need the data
// source (Batch moves objects, Commit drops the stash of their previous versions, Abort
// puts them back); Validate and Begin touch only the lineage and KMS.
var (
	ReencryptValidate = reencryptStep(withoutObjects, (*reencrypt.Service).Validate)
	ReencryptBegin    = reencryptStep(withoutObjects, (*reencrypt.Service).Begin)
	ReencryptBatch    = reencryptStep(withObjects, (*reencrypt.Service).Batch)
	ReencryptCommit   = reencryptStep(withObjects, (*reencrypt.Service).Commit)
	ReencryptAbort    = reencryptStep(withObjects, (*reencrypt.Service).Abort)
)

// KeyEvent is the target of the EventBridge rule on CloudTrail KMS key events (R8, B1, B3).
func KeyEvent(_ context.Context, d handlers.Deps) (func(context.Context, json.RawMessage) (revocation.Result, error), error) {
	p, err := handlers.NewPlatform(d)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, raw json.RawMessage) (revocation.Result, error) {
		res, err := p.Revocation.HandleCloudTrail(ctx, raw)
		return res, keyEventError(err)
	}, nil
}

// KeyHealth is the target of the key-health schedule (B2); its input is ignored.
func KeyHealth(_ context.Context, d handlers.Deps) (func(context.Context, json.RawMessage) (keyhealth.Report, error), error) {
	p, err := handlers.NewPlatform(d)
	if err != nil {
		return nil, err
	}
	chk, err := keyhealth.New(keyhealth.Config{Store: p.Store, Keys: p.Keys, Revoker: p.Revocation, Logger: d.Logger,
		Executions: keyhealth.SFNExecutions{Client: sfn.NewFromConfig(d.AWS)}})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, _ json.RawMessage) (keyhealth.Report, error) {
		rep, err := chk.Run(ctx)
		return rep, wferr.From(err)
	}, nil
}

// KeyNotify sends a key change's notification pages (B5), one page per invocation.
func KeyNotify(_ context.Context, d handlers.Deps) (func(context.Context, json.RawMessage) (revocation.NotifyResult, error), error) {
	p, err := handlers.NewPlatform(d)
	if err != nil {
		return nil, err
	}
	n, err := revocation.NewNotifier(revocation.NotifierConfig{Store: p.Store, Emitter: p.Events, Clock: d.Clock, Logger: d.Logger})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, raw json.RawMessage) (revocation.NotifyResult, error) {
		res, err := n.HandlePage(ctx, raw)
		return res, keyEventError(err)
	}, nil
}

// KeyStateMigrate is the one-off upgrade to the key item; its input is ignored.
func KeyStateMigrate(_ context.Context, d handlers.Deps) (func(context.Context, json.RawMessage) (lineage.MigrationReport, error), error) {
	p, err := handlers.NewPlatform(d)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, _ json.RawMessage) (lineage.MigrationReport, error) {
		rep, err := p.Store.Migrate(ctx)
		return rep, wferr.From(err)
	}, nil
}

// keyEventError maps the revocation path's errors onto the workflow error types.
func keyEventError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, revocation.ErrMalformedEvent) {
		return &wferr.Invalid{Msg: err.Error()}
	}
	return wferr.From(err)
}

// objectsNeed says whether a re-encryption step needs the apps' data source.
type objectsNeed bool

const (
	withObjects    objectsNeed = true
	withoutObjects objectsNeed = false
)

// reencryptService builds the re-encryption steps, with the data source when need says so.
func reencryptService(d handlers.Deps, need objectsNeed) (*reencrypt.Service, error) {
	p, err := handlers.NewPlatform(d)
	if err != nil {
		return nil, err
	}
	cfg := reencrypt.Config{Store: p.Store, Keys: p.Keys, Revoker: p.Revocation, Emitter: p.Events,
		ProviderKeyARN: d.Env(infra.EnvProviderKeyARN), Clock: d.Clock, Logger: d.Logger}
	if need == withObjects {
		src, err := p.ObjectSource(d, 0, 0)
		if err != nil {
			return nil, err
		}
		cfg.Objects = src
		cfg.Prefix = src.Prefix()
	}
	return reencrypt.New(cfg)
}

// reencryptStep adapts one re-encryption step to a handler whose errors are wferr types.
func reencryptStep[In, Out any](need objectsNeed, method func(*reencrypt.Service, context.Context, In) (Out, error)) handlers.Constructor[func(context.Context, In) (Out, error)] {
	return func(_ context.Context, d handlers.Deps) (func(context.Context, In) (Out, error), error) {
		svc, err := reencryptService(d, need)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, in In) (Out, error) {
			out, err := method(svc, ctx, in)
			return out, wferr.From(err)
		}, nil
	}
}
