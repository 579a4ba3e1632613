package stack

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
)

// setupPar is the parallelism of the benchmarks' setup writes.
const setupPar = 32

// revokeSetup is a key with apps on it, each with backups, and the items of a sample of
// those apps as they were before the revocation.
type revokeSetup struct {
	key     string
	apps    []string
	before  map[string]map[string]map[string]ddbtypes.AttributeValue // app → SK → item
	perApp  bool                                                     // one GenerateDataKey per app (else one shared wrapped key)
	setup   time.Duration
	backups int
}

// setupRevoke creates n CMK apps on a fresh key, each with backups records (lease taken,
// backup recorded), and keeps a sample of their items. With perApp, every app is made by
// the lineage store (CreateApp with its own data key: one GenerateDataKey with the app's
// context; AcquireBackupLease and RecordBackup per backup). Otherwise one template app is
// made that way and its items (app, generation, audit, backups) are copied to the other
// apps with BatchWriteItem, the app id replaced: the same items the store writes, without
// 10 000 transactions of setup; the apps then share the template's wrapped data key,
// which nothing unwraps in this benchmark.
func setupRevoke(ctx context.Context, e *benchEnv, tag string, n, backups int, perApp bool, sample int) (*revokeSetup, error) {
	start := time.Now()
	key, err := e.newKey(ctx, "revoke "+tag)
	if err != nil {
		return nil, err
	}
	s := &revokeSetup{key: key, perApp: perApp, backups: backups, before: map[string]map[string]map[string]ddbtypes.AttributeValue{}}
	run := time.Now().UnixNano() % 1e9
	for i := range n {
		s.apps = append(s.apps, fmt.Sprintf("rv%s-%d-%05d", tag, run, i))
	}
	kp := keys.NewKMS(awskms.NewFromConfig(e.st.AWSConfig()), keys.Options{})
	viaStore := func(ctx context.Context, i int) error {
		app := s.apps[i]
		wrapped, err := objects.NewGenerationKey(ctx, kp, e.orgs, app, 1, key)
		if err != nil {
			return err
		}
		if _, err := e.st.Store.CreateApp(ctx, lineage.App{ID: app, OrgID: e.orgs, KeyModel: lineage.KeyModelCMK}, key, wrapped, lineage.Cause{Actor: "bench"}); err != nil {
			return err
		}
		for j := range backups {
			id := fmt.Sprintf("%032x", uint64(i)<<16|uint64(j)+1)
			if _, err := e.st.Store.AcquireBackupLease(ctx, app, id, time.Minute); err != nil {
				return fmt.Errorf("lease %s: %w", app, err)
			}
			if _, err := e.st.Store.RecordBackup(ctx, lineage.Backup{AppID: app, ID: id, Generation: 1, KeyARN: key,
				ObjectKey: "backups/" + app + "/" + id + ".klb", SizeBytes: 1 << 20, Digest: strings.Repeat("ab", 32), ObjectCount: 10},
				id, lineage.Cause{Actor: "bench"}); err != nil {
				return fmt.Errorf("record backup of %s: %w", app, err)
			}
		}
		return nil
	}
	db := awsddb.NewFromConfig(e.st.AWSConfig())
	if perApp {
		err = parallel(ctx, n, setupPar, viaStore)
	} else {
		err = s.cloneTemplate(ctx, e, db, viaStore)
	}
	if err != nil {
		return nil, fmt.Errorf("setup of %d apps: %w", n, err)
	}
	// The sample: apps spread over the key's whole range.
	step := max(1, n/sample)
	for i := 0; i < n; i += step {
		items, err := appItems(ctx, db, e.st.TableName(), s.apps[i])
		if err != nil {
			return nil, err
		}
		if len(items) != 3+3*backups {
			return nil, fmt.Errorf("app %s has %d items after the setup, want %d", s.apps[i], len(items), 3+3*backups)
		}
		s.before[s.apps[i]] = items
	}
	s.setup = time.Since(start)
	return s, nil
}

// cloneTemplate makes s.apps[0] through the store and copies its items to every other app.
func (s *revokeSetup) cloneTemplate(ctx context.Context, e *benchEnv, db *awsddb.Client, viaStore func(context.Context, int) error) error {
	if err := viaStore(ctx, 0); err != nil {
		return err
	}
	tmpl, err := appItems(ctx, db, e.st.TableName(), s.apps[0])
	if err != nil {
		return err
	}
	var all []map[string]ddbtypes.AttributeValue
	for _, app := range s.apps[1:] {
		for _, it := range tmpl {
			all = append(all, replaceID(it, s.apps[0], app).(*ddbtypes.AttributeValueMemberM).Value)
		}
	}
	return batchPut(ctx, db, e.st.TableName(), all, 16)
}

// replaceID copies an item (as an M value) with every string containing from rewritten to to.
func replaceID(v any, from, to string) ddbtypes.AttributeValue {
	switch x := v.(type) {
	case map[string]ddbtypes.AttributeValue:
		return replaceID(&ddbtypes.AttributeValueMemberM{Value: x}, from, to)
	case *ddbtypes.AttributeValueMemberM:
		m := make(map[string]ddbtypes.AttributeValue, len(x.Value))
		for k, e := range x.Value {
			m[k] = replaceID(e, from, to)
		}
		return &ddbtypes.AttributeValueMemberM{Value: m}
	case *ddbtypes.AttributeValueMemberL:
		l := make([]ddbtypes.AttributeValue, len(x.Value))
		for i, e := range x.Value {
			l[i] = replaceID(e, from, to)
		}
		return &ddbtypes.AttributeValueMemberL{Value: l}
	case *ddbtypes.AttributeValueMemberS:
		return &ddbtypes.AttributeValueMemberS{Value: strings.ReplaceAll(x.Value, from, to)}
	case ddbtypes.AttributeValue:
		return x
	}
	panic(fmt.Sprintf("replaceID: unexpected %T", v))
}

// batchPut writes items with BatchWriteItem, 25 per call, par calls at once.
func batchPut(ctx context.Context, db *awsddb.Client, table string, items []map[string]ddbtypes.AttributeValue, par int) error {
	batches := (len(items) + 24) / 25
	return parallel(ctx, batches, par, func(ctx context.Context, b int) error {
		var reqs []ddbtypes.WriteRequest
		for _, it := range items[b*25 : min(len(items), (b+1)*25)] {
			reqs = append(reqs, ddbtypes.WriteRequest{PutRequest: &ddbtypes.PutRequest{Item: it}})
		}
		in := map[string][]ddbtypes.WriteRequest{table: reqs}
		for attempt := 0; len(in[table]) > 0; attempt++ {
			if attempt > 10 {
				return fmt.Errorf("batch write: %d items left unprocessed", len(in[table]))
			}
			out, err := db.BatchWriteItem(ctx, &awsddb.BatchWriteItemInput{RequestItems: in})
			if err != nil {
				return fmt.Errorf("batch write: %w", err)
			}
			in = out.UnprocessedItems
		}
		return nil
	})
}

// appItems returns every item of the app's partition by sort key.
func appItems(ctx context.Context, db *awsddb.Client, table, app string) (map[string]map[string]ddbtypes.AttributeValue, error) {
	out := map[string]map[string]ddbtypes.AttributeValue{}
	p := awsddb.NewQueryPaginator(db, &awsddb.QueryInput{
		TableName: aws.String(table), KeyConditionExpression: aws.String("PK = :pk"), ConsistentRead: aws.Bool(true),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":pk": &ddbtypes.AttributeValueMemberS{Value: "APP#" + app}},
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("items of %s: %w", app, err)
		}
		for _, it := range page.Items {
			sk, _ := it["SK"].(*ddbtypes.AttributeValueMemberS)
			if sk == nil {
				return nil, fmt.Errorf("an item of %s has no SK", app)
			}
			out[sk.Value] = it
		}
	}
	return out, nil
}

// writeCheck compares the sample's items after the revocation with before: every app must
// be DEACTIVATED, no backup item may have changed, and it returns the items written
// (changed or added) per app, by kind.
func (s *revokeSetup) writeCheck(ctx context.Context, e *benchEnv) (perApp float64, kinds map[string]int, err error) {
	db := awsddb.NewFromConfig(e.st.AWSConfig())
	kinds = map[string]int{}
	total, backupsSeen := 0, 0
	for app, before := range s.before {
		after, err := appItems(ctx, db, e.st.TableName(), app)
		if err != nil {
			return 0, nil, err
		}
		meta, ok := after["META"]
		if st, _ := meta["status"].(*ddbtypes.AttributeValueMemberS); !ok || st == nil || st.Value != string(lineage.AppDeactivated) {
			return 0, nil, fmt.Errorf("app %s is not DEACTIVATED after the revocation: %v", app, meta["status"])
		}
		for sk, it := range after {
			kind := sk
			if i := strings.IndexByte(sk, '#'); i > 0 {
				kind = sk[:i]
			}
			if strings.HasPrefix(sk, "BACKUP") {
				backupsSeen++
			}
			if old, ok := before[sk]; ok && reflect.DeepEqual(old, it) {
				continue
			}
			if strings.HasPrefix(sk, "BACKUP") {
				return 0, nil, fmt.Errorf("app %s: backup item %s was written by the revocation", app, sk)
			}
			kinds[kind]++
			total++
		}
		for sk := range before {
			if _, ok := after[sk]; !ok {
				return 0, nil, fmt.Errorf("app %s: item %s vanished", app, sk)
			}
		}
	}
	if want := len(s.before) * s.backups; backupsSeen < want {
		return 0, nil, fmt.Errorf("the sample has %d backup items, want at least %d", backupsSeen, want)
	}
	return float64(total) / float64(len(s.before)), kinds, nil
}

// revokeWatch tells when every generation on a key has left ACTIVE/PENDING. It walks the
// key's generations in the index order (the order RevokeKey works in) from a frontier:
// everything before the frontier was seen revoked, and a revoked generation never comes
// back by itself, so each poll reads only from the first generation not yet seen revoked.
type revokeWatch struct {
	db      *awsddb.Client
	table   string
	keyPK   string
	want    int
	seen    int
	from    map[string]ddbtypes.AttributeValue
	polls   int
	pollDur time.Duration
	// first is when a poll first saw a generation revoked (zero until then).
	first time.Time
	start time.Time
}

func (w *revokeWatch) String() string {
	return fmt.Sprintf("%d polls, mean poll %v, total polling %v, first app seen deactivated after %v",
		w.polls, (w.pollDur / time.Duration(max(1, w.polls))).Round(time.Microsecond), w.pollDur.Round(time.Millisecond),
		w.first.Sub(w.start).Round(time.Millisecond))
}

func (w *revokeWatch) poll(ctx context.Context) (bool, error) {
	start := time.Now()
	defer func() { w.polls++; w.pollDur += time.Since(start) }()
	for {
		out, err := w.db.Query(ctx, &awsddb.QueryInput{
			TableName: aws.String(w.table), IndexName: aws.String(lineage.GSI1),
			KeyConditionExpression:    aws.String("GSI1PK = :pk"),
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":pk": &ddbtypes.AttributeValueMemberS{Value: w.keyPK}},
			ExpressionAttributeNames:  map[string]string{"#s": "state"},
			ProjectionExpression:      aws.String("PK, SK, GSI1PK, GSI1SK, #s"),
			ExclusiveStartKey:         w.from, Limit: aws.Int32(100),
		})
		if err != nil {
			return false, err
		}
		for _, it := range out.Items {
			st, _ := it["state"].(*ddbtypes.AttributeValueMemberS)
			if st == nil || st.Value == string(lineage.GenActive) || st.Value == string(lineage.GenPending) {
				return false, nil
			}
			w.from = map[string]ddbtypes.AttributeValue{"PK": it["PK"], "SK": it["SK"], "GSI1PK": it["GSI1PK"], "GSI1SK": it["GSI1SK"]}
			w.seen++
			if w.first.IsZero() {
				w.first = time.Now()
			}
		}
		if out.LastEvaluatedKey == nil {
			if w.seen < w.want {
				return false, fmt.Errorf("the key has %d generations, want %d", w.seen, w.want)
			}
			return true, nil
		}
	}
}

// timeRevocation disables the key through the endpoint and polls (every interval) until
// every app on it is deactivated; it returns the time from the DisableKey call.
func timeRevocation(ctx context.Context, e *benchEnv, s *revokeSetup, interval time.Duration) (time.Duration, *revokeWatch, error) {
	kc := awskms.NewFromConfig(e.st.AWSConfig())
	w := &revokeWatch{db: awsddb.NewFromConfig(e.st.AWSConfig()), table: e.st.TableName(), keyPK: "KEY#" + s.key, want: len(s.apps)}
	// Warm the clients' connections so the figure holds no dial.
	if _, err := kc.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(s.key)}); err != nil {
		return 0, nil, err
	}
	if done, err := (&revokeWatch{db: w.db, table: w.table, keyPK: w.keyPK, want: len(s.apps)}).poll(ctx); err != nil || done {
		return 0, nil, fmt.Errorf("before DisableKey: done=%v err=%v", done, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	start := time.Now()
	w.start = start
	if _, err := kc.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(s.key)}); err != nil {
		return 0, nil, err
	}
	for {
		done, err := w.poll(ctx)
		if err != nil {
			return 0, w, err
		}
		if done {
			return time.Since(start), w, nil
		}
		select {
		case <-ctx.Done():
			return 0, w, fmt.Errorf("%d of %d apps deactivated after %v: %w", w.seen, w.want, time.Since(start), ctx.Err())
		case <-time.After(interval):
		}
	}
}

// floorWrites makes n single-item conditional writes (UpdateItem with a condition on a
// version attribute) with par at once against the stack's DynamoDB endpoint, on items
// prepared beforehand; version is the items' current version. It returns the time taken.
func floorWrites(ctx context.Context, db *awsddb.Client, table string, pks []string, par, version int) (time.Duration, error) {
	start := time.Now()
	err := parallel(ctx, len(pks), par, func(ctx context.Context, i int) error {
		_, err := db.UpdateItem(ctx, &awsddb.UpdateItemInput{
			TableName: aws.String(table),
			Key: map[string]ddbtypes.AttributeValue{
				"PK": &ddbtypes.AttributeValueMemberS{Value: pks[i]}, "SK": &ddbtypes.AttributeValueMemberS{Value: "META"},
			},
			UpdateExpression:         aws.String("SET #st = :d ADD #v :one"),
			ConditionExpression:      aws.String("#v = :v"),
			ExpressionAttributeNames: map[string]string{"#st": "status", "#v": "version"},
			ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
				":d": &ddbtypes.AttributeValueMemberS{Value: "DEACTIVATED"}, ":one": &ddbtypes.AttributeValueMemberN{Value: "1"},
				":v": &ddbtypes.AttributeValueMemberN{Value: strconv.Itoa(version)},
			},
		})
		return err
	})
	return time.Since(start), err
}

// BenchmarkRevoke measures revocation end to end on the local deployment: from the KMS
// DisableKey call (through the endpoint: CloudTrail event → EventBridge rule → key-event
// function → lineage RevokeKey) until every app on the key is DEACTIVATED, for 100 and for
// 10 000 apps with backups; and the floor: 10 000 plain conditional UpdateItems against
// the same DynamoDB endpoint.
func BenchmarkRevoke(b *testing.B) {
	e := sharedBench(b)
	ctx := context.Background()
	const poll = 15 * time.Millisecond
	var t100, t10k, floor time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// 100 apps, 3 backups each, one GenerateDataKey per app.
		s100, err := setupRevoke(ctx, e, fmt.Sprintf("a%d", i), 100, 3, true, 100)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("setup: 100 apps × 3 backups (per-app data keys) in %v", s100.setup.Round(time.Millisecond))
		b.StartTimer()
		d, w, err := timeRevocation(ctx, e, s100, poll)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		t100 += d
		b.Logf("revoke 100 apps: %v (%v)", d.Round(time.Millisecond), w)
		if err := e.st.WaitIdle(ctx); err != nil {
			b.Fatal(err)
		}
		per, kinds, err := s100.writeCheck(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("revoke 100 apps: %.2f items written per app %v; 300 backup items unchanged", per, kinds)

		// 10 000 apps, 1 backup each, one shared wrapped data key.
		s10k, err := setupRevoke(ctx, e, fmt.Sprintf("b%d", i), 10000, 1, false, 100)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("setup: 10000 apps × 1 backup (template app made by the store, its items copied) in %v", s10k.setup.Round(time.Millisecond))
		b.StartTimer()
		d, w, err = timeRevocation(ctx, e, s10k, poll)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		t10k += d
		b.Logf("revoke 10000 apps: %v (%v)", d.Round(time.Millisecond), w)
		if err := e.st.WaitIdle(ctx); err != nil {
			b.Fatal(err)
		}
		per, kinds, err = s10k.writeCheck(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("revoke 10000 apps: %.2f items written per app (sample of %d) %v; backups unchanged", per, len(s10k.before), kinds)

		// The floor: the same number of single-item conditional writes, no keyline logic: one
		// UpdateItem per app on the same apps' items, conditional on their version.
		db := awsddb.NewFromConfig(e.st.AWSConfig())
		pks := make([]string, len(s10k.apps))
		for k, app := range s10k.apps {
			pks[k] = "APP#" + app
		}
		meta, err := appItems(ctx, db, e.st.TableName(), s10k.apps[0])
		if err != nil {
			b.Fatal(err)
		}
		vAttr, _ := meta["META"]["version"].(*ddbtypes.AttributeValueMemberN)
		if vAttr == nil {
			b.Fatalf("app %s has no version", s10k.apps[0])
		}
		version, err := strconv.Atoi(vAttr.Value)
		if err != nil {
			b.Fatal(err)
		}
		best := time.Duration(0)
		for _, par := range []int{32, 64, 128} {
			b.StartTimer()
			fd, err := floorWrites(ctx, db, e.st.TableName(), pks, par, version)
			b.StopTimer()
			if err != nil {
				if par == 32 {
					b.Fatal(err)
				}
				b.Logf("floor: 10000 conditional UpdateItems with %d at once failed (left out): %v", par, err)
				break
			}
			version++
			b.Logf("floor: 10000 conditional UpdateItems with %d at once: %v", par, fd.Round(time.Millisecond))
			if best == 0 || fd < best {
				best = fd
			}
		}
		floor += best
		if os.Getenv("KEYLINE_BENCH_REVOKE_VARIANTS") != "" {
			revokeVariants(ctx, b, e, i)
		}
	}
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(t100), "revoke_100_apps_ms")
	b.ReportMetric(ms(t10k), "revoke_10000_apps_ms")
	b.ReportMetric(ms(floor), "revoke_10000_floor_ms")
	b.ReportMetric(float64(t10k)/float64(floor), "revoke_10000_vs_floor_ratio")
}

// revokeVariants (KEYLINE_BENCH_REVOKE_VARIANTS=1 for all, or a list such as 1,2; run with
// -v, benchmark logs are cut at 10 lines otherwise) times lineage RevokeKey alone, called in
// process without the event path, on 10 000 apps, with the deployment's options and with
// more parallelism or apps batched per transaction: where the end-to-end time goes, and
// what would shorten it.
func revokeVariants(ctx context.Context, b *testing.B, e *benchEnv, i int) {
	variants := []struct {
		name string
		opts lineage.Options
	}{
		{"default (32 at once, 1 app per transaction)", lineage.Options{}},
		{"32 at once, 8 apps per transaction", lineage.Options{RevokeBatch: 8}},
		{"32 at once, 33 apps per transaction", lineage.Options{RevokeBatch: 33}},
	}
	if only := os.Getenv("KEYLINE_BENCH_REVOKE_VARIANTS"); only != "1" {
		// A comma-separated list of variant numbers (0-based) runs only those.
		var keep []int
		for _, f := range strings.Split(only, ",") {
			if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n >= 0 && n < len(variants) {
				keep = append(keep, n)
			}
		}
		picked := variants[:0:0]
		for _, n := range keep {
			picked = append(picked, variants[n])
		}
		variants = picked
	}
	for k, v := range variants {
		s, err := setupRevoke(ctx, e, fmt.Sprintf("v%d%d", i, k), 10000, 1, false, 20)
		if err != nil {
			b.Fatal(err)
		}
		v.opts.Logger = slog.New(slog.DiscardHandler)
		store := lineage.New(awsddb.NewFromConfig(e.st.AWSConfig()), e.st.TableName(), v.opts)
		start := time.Now()
		affected, err := store.RevokeKey(ctx, s.key, "DisableKey", lineage.Cause{EventID: "bench-variant", Actor: "bench"})
		d := time.Since(start)
		if err != nil || len(affected) != len(s.apps) {
			b.Fatalf("variant %s: %d apps revoked, err %v", v.name, len(affected), err)
		}
		b.Logf("variant: RevokeKey alone on 10000 apps, %s: %v", v.name, d.Round(time.Millisecond))
	}
}
