package lineage

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/keyline/keyline/internal/decl"
)

// DefaultReactivationWindow is how long after a revocation a returning key reactivates its
// apps by itself (B1); later, an operator must.
const DefaultReactivationWindow = decl.ReactivationWindowHours * time.Hour

// FindGenerationsByKey returns every generation (of any app, in any state) whose key is
// keyARN, through all pages of the GSI1 query (eventually consistent), ordered by state,
// then app and generation. Their key state is not derived (see GetKey).
func (s *Store) FindGenerationsByKey(ctx context.Context, keyARN string) ([]Generation, error) {
	if keyARN == "" {
		return nil, invalid("key ARN is empty")
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrGSI1PK},
		ExpressionAttributeValues: item{":pk": str(keyPK(keyARN))},
	}
	if s.limit > 0 {
		in.Limit = aws.Int32(s.limit)
	}
	var out []Generation
	p := dynamodb.NewQueryPaginator(s.db, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("lineage: find generations of key %s: %w", keyARN, err)
		}
		for _, m := range page.Items {
			var g Generation
			if err := unmarshal(m, &g); err != nil {
				return nil, err
			}
			out = append(out, g)
		}
	}
	return out, nil
}

// ReactivateApp is the operator's decision for an app deactivated by its key past the
// reactivation window (B1, K6: the operator decides per key): after the caller verified the
// key, the app's active key becomes USABLE, which reactivates every app on that key, and it
// is audited on the key's trail. An app deactivated only by a hold is released instead.
// Idempotent on an app already reactivated.
func (s *Store) ReactivateApp(ctx context.Context, appID string, cause Cause) (App, error) {
	app, keys, err := s.getAppKeys(ctx, appID)
	if err != nil {
		return App{}, err
	}
	if app.Status != AppDeactivated {
		return app, nil
	}
	if k := keys[app.ActiveKeyARN]; !k.Usable() {
		if _, err := s.OperatorReactivateKey(ctx, app.ActiveKeyARN, cause); err != nil {
			return App{}, err
		}
	} else if app.Hold == "" && k.Version == 0 {
		// A legacy per-app revocation on a key with no key item: the key item records it.
		if err := s.migrateApp(ctx, appID); err != nil {
			return App{}, err
		}
		if _, err := s.OperatorReactivateKey(ctx, app.ActiveKeyARN, cause); err != nil {
			return App{}, err
		}
	}
	if app.Hold != "" {
		return s.ReleaseApp(ctx, appID, cause)
	}
	return s.GetApp(ctx, appID)
}

// HoldApp is an operator's hold on one app: it is deactivated (derived) whatever its key's
// state until ReleaseApp. Idempotent.
func (s *Store) HoldApp(ctx context.Context, appID, reason string, cause Cause) (App, error) {
	if reason == "" {
		return App{}, invalid("hold of app %s: the reason is empty", appID)
	}
	return s.changeApp(ctx, appID, "hold", func(app *App, now time.Time) (appChange, error) {
		if app.Hold == reason {
			return appChange{noWrite: true}, nil
		}
		app.Hold = reason
		return appChange{audit: &AuditEntry{AppID: app.ID, Action: ActionAppHeld, Cause: cause, Detail: map[string]string{"reason": reason}}}, nil
	})
}

// ReleaseApp releases an operator's hold on the app. Idempotent.
func (s *Store) ReleaseApp(ctx context.Context, appID string, cause Cause) (App, error) {
	return s.changeApp(ctx, appID, "release", func(app *App, now time.Time) (appChange, error) {
		if app.Hold == "" {
			return appChange{noWrite: true}, nil
		}
		prev := app.Hold
		app.Hold = ""
		return appChange{audit: &AuditEntry{AppID: app.ID, Action: ActionAppReleased, Cause: cause, Detail: map[string]string{"hold": prev}}}, nil
	})
}
