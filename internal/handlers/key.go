package handlers

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/workflow/keyhealth"
	"github.com/keyline/keyline/internal/workflow/reencrypt"
	"github.com/keyline/keyline/internal/workflow/revocation"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

// keyEnv is what the key plane's handlers are built from.
type keyEnv struct{ *platform }

// newKeyEnv builds the platform for a key-plane function.
func newKeyEnv(_ context.Context, d Deps) (*keyEnv, error) {
	p, err := newPlatform(d)
	if err != nil {
		return nil, err
	}
	return &keyEnv{p}, nil
}

// reencryptService builds the re-encryption steps; withObjects adds the data source (Batch
// moves objects, Commit drops the stash of their previous versions, Abort puts them back).
func (e *keyEnv) reencryptService(d Deps, withObjects bool) (*reencrypt.Service, error) {
	cfg := reencrypt.Config{Store: e.store, Keys: e.keys, Revoker: e.revocation, Emitter: e.events,
		ProviderKeyARN: d.Env(infra.EnvProviderKeyARN), Clock: d.Clock, Logger: d.Logger}
	if withObjects {
		src, err := e.objectSource(d, 0, 0)
		if err != nil {
			return nil, err
		}
		cfg.Objects = src
		cfg.Prefix = src.Prefix()
	}
	return reencrypt.New(cfg)
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

// reencryptStep adapts one re-encryption step to a handler whose errors are wferr types.
func reencryptStep[In, Out any](withObjects bool, pick func(*reencrypt.Service) func(context.Context, In) (Out, error)) Constructor {
	return func(ctx context.Context, d Deps) (any, error) {
		env, err := newKeyEnv(ctx, d)
		if err != nil {
			return nil, err
		}
		svc, err := env.reencryptService(d, withObjects)
		if err != nil {
			return nil, err
		}
		step := pick(svc)
		return func(ctx context.Context, in In) (Out, error) {
			out, err := step(ctx, in)
			return out, wferr.From(err)
		}, nil
	}
}

func keyHandlers() map[string]Constructor {
	return map[string]Constructor{
		// The EventBridge rule on CloudTrail KMS key events (R8, B1, B3).
		infra.FnKeyEvent: func(ctx context.Context, d Deps) (any, error) {
			env, err := newKeyEnv(ctx, d)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, raw json.RawMessage) (revocation.Result, error) {
				res, err := env.revocation.HandleCloudTrail(ctx, raw)
				return res, keyEventError(err)
			}, nil
		},
		// A key change's notification pages (B5), one page per invocation.
		infra.FnKeyNotify: func(ctx context.Context, d Deps) (any, error) {
			env, err := newKeyEnv(ctx, d)
			if err != nil {
				return nil, err
			}
			n, err := revocation.NewNotifier(revocation.NotifierConfig{Store: env.store, Emitter: env.events, Clock: d.Clock, Logger: d.Logger})
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, raw json.RawMessage) (revocation.NotifyResult, error) {
				res, err := n.HandlePage(ctx, raw)
				return res, keyEventError(err)
			}, nil
		},
		// The one-off upgrade to the key item; its input is ignored.
		infra.FnKeyStateMigrate: func(ctx context.Context, d Deps) (any, error) {
			env, err := newKeyEnv(ctx, d)
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, _ json.RawMessage) (lineage.MigrationReport, error) {
				rep, err := env.store.Migrate(ctx)
				return rep, wferr.From(err)
			}, nil
		},
		// The key-health schedule (B2); its input is ignored.
		infra.FnKeyHealth: func(ctx context.Context, d Deps) (any, error) {
			env, err := newKeyEnv(ctx, d)
			if err != nil {
				return nil, err
			}
			chk, err := keyhealth.New(keyhealth.Config{Store: env.store, Keys: env.keys, Revoker: env.revocation, Logger: d.Logger})
			if err != nil {
				return nil, err
			}
			return func(ctx context.Context, _ json.RawMessage) (keyhealth.Report, error) {
				rep, err := chk.Run(ctx)
				return rep, wferr.From(err)
			}, nil
		},
		infra.FnReencryptValidate: reencryptStep(false, func(s *reencrypt.Service) func(context.Context, reencrypt.Request) (reencrypt.State, error) {
			return s.Validate
		}),
		infra.FnReencryptBegin: reencryptStep(false, func(s *reencrypt.Service) func(context.Context, reencrypt.State) (reencrypt.State, error) {
			return s.Begin
		}),
		infra.FnReencryptBatch: reencryptStep(true, func(s *reencrypt.Service) func(context.Context, reencrypt.Batch) (reencrypt.BatchResult, error) {
			return s.Batch
		}),
		infra.FnReencryptCommit: reencryptStep(true, func(s *reencrypt.Service) func(context.Context, reencrypt.State) (reencrypt.Outcome, error) {
			return s.Commit
		}),
		infra.FnReencryptAbort: reencryptStep(true, func(s *reencrypt.Service) func(context.Context, reencrypt.State) (reencrypt.Outcome, error) {
			return s.Abort
		}),
	}
}
