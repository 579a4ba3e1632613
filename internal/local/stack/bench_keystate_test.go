package stack

// The `make bench` figures of issue 11: revoking and reactivating a key is one conditional
// write of its key item, whatever the number of apps on it, and the per-app notifications
// are paged out of the key-event function.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	awseb "github.com/aws/aws-sdk-go-v2/service/eventbridge"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/benchfmt"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/workflow/revocation"
)

const (
	// keyStateApps is the number of apps on the big key (KEYLINE_BENCH_KEY_APPS overrides
	// it for a quick run; the figures' names carry the number used).
	keyStateApps = 100000
	// keyStatePairs is how many alternating (1 app, many apps) pairs the ratios are the
	// medians of.
	keyStatePairs = 7
	// keyStateSinkBus receives the benchmark's events: a bus without rules, so that PutEvents
	// is paid for but no function runs.
	keyStateSinkBus = "keyline-bench-sink"
	// setupPar is the parallelism of the benchmark's setup writes.
	setupPar = 16
)

// cloneApps writes n copies of the template app's items (app and generation 1, as the
// store wrote them) with BatchWriteItem, the template's id replaced by each new id. This is
// setup: the same items CreateApp writes, without n transactions.
func cloneApps(ctx context.Context, db *awsddb.Client, table, templateID string, ids []string) error {
	var tmpl []map[string]ddbtypes.AttributeValue
	for _, sk := range []string{"META", "GEN#00000001"} {
		out, err := db.GetItem(ctx, &awsddb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
			Key: map[string]ddbtypes.AttributeValue{"PK": &ddbtypes.AttributeValueMemberS{Value: "APP#" + templateID}, "SK": &ddbtypes.AttributeValueMemberS{Value: sk}}})
		if err != nil || out.Item == nil {
			return fmt.Errorf("template item %s: %v", sk, err)
		}
		tmpl = append(tmpl, out.Item)
	}
	clone := func(m map[string]ddbtypes.AttributeValue, id string) map[string]ddbtypes.AttributeValue {
		c := make(map[string]ddbtypes.AttributeValue, len(m))
		for k, v := range m {
			if s, ok := v.(*ddbtypes.AttributeValueMemberS); ok {
				c[k] = &ddbtypes.AttributeValueMemberS{Value: strings.ReplaceAll(s.Value, templateID, id)}
				continue
			}
			c[k] = v
		}
		return c
	}
	const perBatch = 25
	batches := (len(ids)*len(tmpl) + perBatch - 1) / perBatch
	return parallel(ctx, batches, setupPar, func(ctx context.Context, b int) error {
		var reqs []ddbtypes.WriteRequest
		for i := b * perBatch; i < min((b+1)*perBatch, len(ids)*len(tmpl)); i++ {
			reqs = append(reqs, ddbtypes.WriteRequest{PutRequest: &ddbtypes.PutRequest{Item: clone(tmpl[i%len(tmpl)], ids[i/len(tmpl)])}})
		}
		for attempt := 0; len(reqs) > 0; attempt++ {
			if attempt > 20 {
				return fmt.Errorf("batch %d: %d items unprocessed", b, len(reqs))
			}
			out, err := db.BatchWriteItem(ctx, &awsddb.BatchWriteItemInput{RequestItems: map[string][]ddbtypes.WriteRequest{table: reqs}})
			if err != nil {
				return err
			}
			reqs = out.UnprocessedItems[table]
		}
		return nil
	})
}

// countStatus pages through the org's apps (one BatchGetItem of the keys per page) and
// counts those in status st.
func countStatus(ctx context.Context, s *lineage.Store, org string, st lineage.AppStatus) (int, int, error) {
	n, all := 0, 0
	for cursor := ""; ; {
		page, err := s.ListAppsByOrg(ctx, org, cursor, 1000)
		if err != nil {
			return 0, 0, err
		}
		for _, a := range page.Items {
			all++
			if a.Status == st {
				n++
			}
		}
		if page.Next == "" {
			return n, all, nil
		}
		cursor = page.Next
	}
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// BenchmarkKeyState: a DisableKey / EnableKey event handled by the key-event path (dedupe
// markers, the key item's conditional write with its audit entry, the B8 lookup of
// pending generations, the notifications' first event put on a bus) for a key with 1 app
// and for a key with 100,000 apps, in alternating pairs; after the first of each, every
// app on the key is read back (listing pages, derived status) in the expected state. Then
// the notifications of the big key's revocation are drained page by page into PutEvents.
func BenchmarkKeyState(b *testing.B) {
	e := sharedBench(b)
	ctx := context.Background()
	n := keyStateApps
	if v := os.Getenv("KEYLINE_BENCH_KEY_APPS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("KEYLINE_BENCH_KEY_APPS=%q", v)
		}
	}
	cfg := e.st.AWSConfig()
	if _, err := e.st.Bus.CreateEventBus(keyStateSinkBus); err != nil && !strings.Contains(err.Error(), "exists") {
		b.Fatal(err)
	}
	sink, err := audit.NewEventBridge(awseb.NewFromConfig(cfg), keyStateSinkBus, audit.EventBridgeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	// The revocation path's test round trips run as the key-event function's role.
	kp := keys.NewKMS(awskms.NewFromConfig(functionConfig(cfg, infra.FnKeyEvent)), keys.Options{})
	quiet := slog.New(slog.DiscardHandler)
	svc, err := revocation.New(revocation.Config{Store: e.st.Store, Keys: kp, Emitter: sink, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	store := e.st.Store
	run := time.Now().UnixNano() % 1e9
	org := fmt.Sprintf("ks-org-%d", run)
	// Each org's key lives in that org's own account (an account belongs to one org) and
	// admits keyline for that org.
	small, err := e.st.CreateCustomerKey(ctx, fmt.Sprintf("3%011d", run), org+"-1", "key state: one app", false)
	if err != nil {
		b.Fatal(err)
	}
	big, err := e.st.CreateCustomerKey(ctx, fmt.Sprintf("4%011d", run), org, fmt.Sprintf("key state: %d apps", n), false)
	if err != nil {
		b.Fatal(err)
	}
	// The orgs enrol the keys' account, so that the key events count (B10).
	account, ok := lineage.KeyAccount(big)
	if !ok {
		b.Fatalf("key ARN %s names no account", big)
	}
	if _, err := store.CreateOrg(ctx, lineage.Org{ID: org, Name: "key-state bench", Accounts: []string{account}}); err != nil {
		b.Fatal(err)
	}
	smallApp := fmt.Sprintf("ks%d-one", run)
	smallAccount, ok := lineage.KeyAccount(small)
	if !ok {
		b.Fatalf("key ARN %s names no account", small)
	}
	if _, err := store.CreateOrg(ctx, lineage.Org{ID: org + "-1", Name: "key-state bench, one app", Accounts: []string{smallAccount}}); err != nil {
		b.Fatal(err)
	}
	if _, err := store.CreateApp(ctx, lineage.App{ID: smallApp, OrgID: org + "-1", KeyModel: lineage.KeyModelCMK}, small, []byte("w"), lineage.Cause{}); err != nil {
		b.Fatal(err)
	}
	tmpl := fmt.Sprintf("ks%d-tmpl", run)
	if _, err := store.CreateApp(ctx, lineage.App{ID: tmpl, OrgID: org, KeyModel: lineage.KeyModelCMK}, big, []byte("w"), lineage.Cause{}); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n-1)
	for i := range ids {
		ids[i] = fmt.Sprintf("ks%d-%06d", run, i)
	}
	setup := time.Now()
	// Setup writes go straight to DynamoDB Local, not through the endpoint.
	direct := awsddb.NewFromConfig(cfg, func(o *awsddb.Options) { o.BaseEndpoint = aws.String(e.st.ddb.Endpoint()) })
	if err := cloneApps(ctx, direct, e.st.TableName(), tmpl, ids); err != nil {
		b.Fatal(err)
	}
	b.Logf("setup: %d apps on one key in %s", n, time.Since(setup).Round(time.Millisecond))

	seq := 0
	// keyEvent is a key event as CloudTrail delivers it: from the key's own account (both
	// keys' ARNs were checked to name one above).
	keyEvent := func(id, key, name string) revocation.KeyEvent {
		keyAccount, _ := lineage.KeyAccount(key)
		return revocation.KeyEvent{ID: id, Name: name, Time: time.Now().UTC(), KeyARN: key,
			Source: revocation.EventSourceKMS, EnvelopeAccount: keyAccount, RecipientAccount: keyAccount}
	}
	handle := func(key, name string) time.Duration {
		b.Helper()
		seq++
		ev := keyEvent(fmt.Sprintf("ks-%d-%04d", run, seq), key, name)
		start := time.Now()
		res, err := svc.HandleEvent(ctx, ev)
		d := time.Since(start)
		if err != nil {
			b.Fatalf("%s of %s: %v", name, key, err)
		}
		if !res.Changed {
			b.Fatalf("%s of %s changed nothing: %+v", name, key, res)
		}
		return d
	}
	verify := func(what string, st lineage.AppStatus) {
		b.Helper()
		start := time.Now()
		got, all, err := countStatus(ctx, store, org, st)
		if err != nil || got != n || all != n {
			b.Fatalf("after %s: %d of %d apps on the key read %s (%v), want %d", what, got, all, st, err, n)
		}
		one, err := store.GetApp(ctx, smallApp)
		if err != nil || one.Status != st {
			b.Fatalf("after %s: the one app reads %s (%v), want %s", what, one.Status, err, st)
		}
		b.Logf("after %s: all %d apps read %s (checked in %s)", what, n, st, time.Since(start).Round(time.Millisecond))
	}

	// Whatever happens, the big key's apps do not stay due: the benchmarks after this one
	// share the deployment, and 100,000 active apps would be backed up by its scheduled run.
	b.Cleanup(func() {
		ev := keyEvent(fmt.Sprintf("ks-%d-cleanup", run), big, revocation.EventDisableKey)
		if _, err := svc.HandleEvent(context.WithoutCancel(ctx), ev); err != nil {
			b.Logf("cleanup: revoking the big key: %v", err)
		}
	})

	// A warm-up pair, not counted: its first events meet cold caches and connections. After
	// each of its halves, every app on the key is read back in the expected state.
	handle(small, revocation.EventDisableKey)
	handle(big, revocation.EventDisableKey)
	verify("the DisableKey event", lineage.AppDeactivated)
	handle(small, revocation.EventEnableKey)
	handle(big, revocation.EventEnableKey)
	verify("the EnableKey event", lineage.AppActive)

	var rev1, revN, react1, reactN, revRatio, reactRatio []float64
	b.ResetTimer()
	for i := range keyStatePairs {
		var t1, tN time.Duration
		if i%2 == 0 {
			t1, tN = handle(small, revocation.EventDisableKey), handle(big, revocation.EventDisableKey)
		} else {
			tN, t1 = handle(big, revocation.EventDisableKey), handle(small, revocation.EventDisableKey)
		}
		rev1, revN, revRatio = append(rev1, ms(t1)), append(revN, ms(tN)), append(revRatio, float64(tN)/float64(t1))
		if i%2 == 0 {
			t1, tN = handle(small, revocation.EventEnableKey), handle(big, revocation.EventEnableKey)
		} else {
			tN, t1 = handle(big, revocation.EventEnableKey), handle(small, revocation.EventEnableKey)
		}
		react1, reactN, reactRatio = append(react1, ms(t1)), append(reactN, ms(tN)), append(reactRatio, float64(tN)/float64(t1))
	}
	b.StopTimer()

	// The notifications of one revocation of the big key, drained page by page.
	handle(big, revocation.EventDisableKey)
	k, err := store.GetKey(ctx, big)
	if err != nil {
		b.Fatal(err)
	}
	notifier, err := revocation.NewNotifier(revocation.NotifierConfig{Store: store, Emitter: sink, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	apps, sent, err := notifier.Drain(ctx, revocation.FirstPage(big, revocation.ChangeRevoked, k, lineage.Cause{Actor: "bench"}))
	notify := time.Since(start)
	if err != nil || apps != n || sent != n {
		b.Fatalf("notifications: %d apps counted, %d events sent (%v), want %d", apps, sent, err, n)
	}

	name := strconv.Itoa(n)
	b.ReportMetric(median(rev1), "revoke_1_app_ms")
	b.ReportMetric(median(revN), "revoke_"+name+"_apps_ms")
	b.ReportMetric(median(react1), "reactivate_1_app_ms")
	b.ReportMetric(median(reactN), "reactivate_"+name+"_apps_ms")
	for _, r := range []*benchfmt.Ratio{
		{Name: "revoke_" + name + "_vs_1_ratio", Ratios: revRatio},
		{Name: "reactivate_" + name + "_vs_1_ratio", Ratios: reactRatio},
	} {
		if err := r.Report(b); err != nil {
			b.Fatal(err)
		}
		if err := benchfmt.Note(b, r.Name, "both sides handle one key event through the key-event path (dedupe markers, the key item's "+
			"conditional write with its audit entry, the B8 lookup, the notifications' first event put on a bus); one key has %d apps, "+
			"the other 1; medians of %d alternating pairs after one uncounted warm-up pair", n, keyStatePairs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(notify.Seconds(), "notify_"+name+"_apps_s")
	if err := benchfmt.Note(b, "notify_"+name+"_apps_s", "one key change's notifications drained page by page (%d apps a page) "+
		"in one process: the count, the per-key event and %d App Deactivated events through PutEvents on the local endpoint; "+
		"keyline local runs the same pages as notify-function invocations through the bus", revocation.DefaultNotifyPageSize, n); err != nil {
		b.Fatal(err)
	}
	b.Logf("revoke ms: 1 app %v, %d apps %v; reactivate ms: 1 app %v, %d apps %v; notify %s", rev1, n, revN, react1, n, reactN, notify.Round(time.Millisecond))
}
