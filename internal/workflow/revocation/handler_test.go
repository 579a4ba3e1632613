package revocation_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/handlers"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/local/functions"
	"github.com/keyline/keyline/internal/testenv"
	"github.com/keyline/keyline/internal/workflow/keyhealth"
	"github.com/keyline/keyline/internal/workflow/revocation"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

// TestSampleEventsThroughHandler runs every sample event of events/ through the keyevent
// function as Lambda runs it (functions.Build, aws-lambda-go's JSON path, SDK clients
// configured from the environment like in Lambda), on DynamoDB Local and local-kms.
func TestSampleEventsThroughHandler(t *testing.T) {
	e := newEnv(t) // for the table's DynamoDB Local, the KMS key and the app
	_, kmsURL := testenv.KMS(t)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", testenv.DynamoDBEndpoint(t))
	t.Setenv("AWS_ENDPOINT_URL_KMS", kmsURL)
	t.Setenv("AWS_REGION", testenv.DynamoDBRegion)
	t.Setenv("AWS_ACCESS_KEY_ID", "keyline") // DynamoDB Local keeps tables per access key
	t.Setenv("AWS_SECRET_ACCESS_KEY", "keyline")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")

	k := e.newKey()
	e.app("a1", k)
	settings := map[string]string{infra.EnvTableName: e.store.Table(), infra.EnvReactivationWindow: "10d"}
	deps := func(ctx context.Context) (handlers.Deps, error) {
		cfg, err := config.LoadDefaultConfig(ctx)
		return handlers.Deps{AWS: cfg, Env: func(k string) string { return settings[k] }, Logger: slog.Default(),
			Clock: clocktest.NewFake(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))}, err // after every sample's eventTime
	}
	build := func(name string) lambda.Handler {
		h, err := functions.Build(e.ctx, name, deps)
		if err != nil {
			t.Fatalf("build %s: %v", name, err)
		}
		return lambda.NewHandler(h)
	}
	keyEvent, health := build(infra.FnKeyEvent), build(infra.FnKeyHealth)
	invoke := func(name string) revocation.Result {
		t.Helper()
		out, err := keyEvent.Invoke(e.ctx, event(t, name, k, "", time.Time{}))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var res revocation.Result
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatal(err)
		}
		return res
	}

	if res := invoke("kms-disable-key-failed.json"); res.Outcome != revocation.OutcomeFailedCall {
		t.Fatalf("failed DisableKey: %+v", res)
	}
	e.wantStatus("a1", lineage.AppActive)

	e.disable(k)
	if res := invoke("kms-disable-key.json"); res.Outcome != revocation.OutcomeRevoked || !res.Changed || res.Key.State != lineage.KeyRevoked {
		t.Fatalf("DisableKey: %+v", res)
	}
	e.wantStatus("a1", lineage.AppDeactivated)

	if res := invoke("kms-schedule-key-deletion.json"); res.Outcome != revocation.OutcomeRevoked || res.Changed {
		t.Fatalf("ScheduleKeyDeletion: %+v", res)
	}
	if res := invoke("kms-cancel-key-deletion.json"); res.Outcome != revocation.OutcomeAwaitingEnable || res.Key.State != lineage.KeyRevoked {
		t.Fatalf("CancelKeyDeletion: %+v", res)
	}
	e.wantStatus("a1", lineage.AppDeactivated)

	e.enable(k)
	if res := invoke("kms-enable-key.json"); res.Outcome != revocation.OutcomeReactivated || !res.Changed || !res.Key.Usable() {
		t.Fatalf("EnableKey: %+v", res)
	}
	e.wantStatus("a1", lineage.AppActive)

	// The same delivery again: a duplicate.
	if res := invoke("kms-enable-key.json"); res.Outcome != revocation.OutcomeDuplicate {
		t.Fatalf("EnableKey again: %+v", res)
	}

	// A malformed event is the Invalid error type (its Lambda errorType), nothing changed.
	_, err := keyEvent.Invoke(e.ctx, []byte(`{"source":"aws.kms","detail":{"eventSource":"kms.amazonaws.com","eventName":"DisableKey","eventID":"m","eventTime":"2026-11-27T12:00:00Z","requestParameters":{"keyId":"alias/x"}}}`))
	var inv *wferr.Invalid
	if !errors.As(err, &inv) {
		t.Fatalf("malformed event: %T %v, want *wferr.Invalid", err, err)
	}
	e.wantStatus("a1", lineage.AppActive)

	// The key-health schedule event through the keyhealth function.
	out, err := health.Invoke(e.ctx, sample(t, "schedule-key-health.json"))
	if err != nil {
		t.Fatalf("keyhealth: %v", err)
	}
	var rep keyhealth.Report
	if err := json.Unmarshal(out, &rep); err != nil || rep.Healthy != 1 || rep.Apps != 1 {
		t.Fatalf("keyhealth report %s (%v)", out, err)
	}
}
