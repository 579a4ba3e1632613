package lineage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyline/keyline/internal/fanout"
)

// Migration to the key item (the upgrade step run by `keyline local` on start and by the
// one-off keystatemigrate function in AWS). Items written before the key item existed
// copied a key's revocation onto every app: generations in state REVOKED (with revokedBy
// and awaitingOperator), apps with status DEACTIVATED, and a KEY#arn / CLOCK item with the
// last applied event. Reads already treat them correctly (derive.go); Migrate rewrites them:
//
//  1. for each generation in state REVOKED: the key item KEY#arn / META is created REVOKED
//     (since, cause and event of that generation, AwaitingOperator kept) unless it exists;
//     then the generation becomes ACTIVE, PENDING or RETIRED as its app says, its GSI1 sort
//     key is rewritten with the state (as is any generation's written before it carried it);
//  2. each app item: status ACTIVE or REENCRYPTING (whether a generation is pending), its
//     key ARNs filled, Version+1, conditional on the version read;
//     and each key its app's generations use gets the KEY#arn / ORG#id item of the app's org;
//  3. each KEY#arn / CLOCK item: its last applied event moves onto the key item (when the
//     key item has none), then the CLOCK item is retired (type KEYCLOCK_RETIRED, expiring by
//     TTL at once): the upgrade deletes nothing, the key's audit entries share its partition.
//
// Every write is conditional on what was read, so Migrate may run again, concurrently with
// itself or with the live system, and does nothing to an upgraded table.

// MigrationReport says what Migrate changed.
type MigrationReport struct {
	Apps        int `json:"apps"`
	Generations int `json:"generations"`
	Keys        int `json:"keys"`
	Clocks      int `json:"clocks"`
	// Accounts counts the account claims written for orgs created before accounts were
	// claimed (an AWS account belongs to one org).
	Accounts int `json:"accounts"`
}

type migrationCounts struct {
	mu sync.Mutex
	r  MigrationReport
}

func (c *migrationCounts) add(apps, gens, keys int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r.Apps += apps
	c.r.Generations += gens
	c.r.Keys += keys
}

// Migrate upgrades every legacy item of the table (see above). Idempotent.
func (s *Store) Migrate(ctx context.Context) (MigrationReport, error) {
	in := &dynamodb.ScanInput{
		TableName:                aws.String(s.table),
		FilterExpression:         aws.String("#ty = :app OR #ty = :gen OR #ty = :clock OR #ty = :org"),
		ExpressionAttributeNames: map[string]string{"#ty": "Type"},
		ExpressionAttributeValues: item{
			":app": str(typeApp), ":gen": str(typeGen), ":clock": str(typeClock), ":org": str(typeOrg),
		},
		ConsistentRead: aws.Bool(true),
	}
	apps := map[string]bool{}
	var order []string
	var clocks, orgs []item
	p := dynamodb.NewScanPaginator(s.db, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return MigrationReport{}, fmt.Errorf("lineage: migrate: scan: %w", err)
		}
		for _, m := range page.Items {
			ty := attrS(m, "Type")
			switch {
			case ty == typeClock:
				clocks = append(clocks, m)
				continue
			case ty == typeOrg:
				orgs = append(orgs, m)
				continue
			case ty == typeApp && !legacyApp(m):
				continue
			case ty == typeGen && !legacyGen(m):
				continue
			}
			id := strings.TrimPrefix(attrS(m, attrPK), "APP#")
			if !apps[id] {
				apps[id] = true
				order = append(order, id)
			}
		}
	}
	// Each app is upgraded on its own: one that fails leaves the others to be upgraded, and
	// the next run (every write is conditional) picks it up again.
	var counts migrationCounts
	err := fanout.Each(ctx, s.par, order, func(ctx context.Context, id string) error {
		a, gens, keys, err := s.migrateAppCount(ctx, id)
		counts.add(a, gens, keys)
		if err != nil {
			return fmt.Errorf("app %s: %w", id, err)
		}
		return nil
	})
	if err != nil {
		return counts.r, fmt.Errorf("lineage: migrate: %w", err)
	}
	for _, m := range clocks {
		if err := s.migrateClock(ctx, m); err != nil {
			return counts.r, fmt.Errorf("lineage: migrate: %w", err)
		}
		counts.r.Clocks++
	}
	for _, m := range orgs {
		n, err := s.claimAccounts(ctx, m)
		if err != nil {
			return counts.r, fmt.Errorf("lineage: migrate: %w", err)
		}
		counts.r.Accounts += n
	}
	if counts.r != (MigrationReport{}) {
		s.log.InfoContext(ctx, "lineage migrated to key items", "apps", counts.r.Apps, "generations", counts.r.Generations,
			"keys", counts.r.Keys, "clocks", counts.r.Clocks, "accounts", counts.r.Accounts)
	}
	return counts.r, nil
}

func attrS(m item, name string) string {
	if v, ok := m[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func legacyApp(m item) bool {
	st := attrS(m, "status")
	return st == string(AppDeactivated) || attrS(m, "activeKeyArn") == "" && attrS(m, "keyModel") == string(KeyModelCMK)
}

func legacyGen(m item) bool {
	st := attrS(m, "state")
	if st == string(GenRevoked) {
		return true
	}
	if attrS(m, "keyArn") == "" {
		return false
	}
	return !strings.HasPrefix(attrS(m, attrGSI1SK), st+"#")
}

func (s *Store) migrateApp(ctx context.Context, appID string) error {
	_, _, _, err := s.migrateAppCount(ctx, appID)
	return err
}

// migrateAppCount upgrades one app's generations and app item; it returns how many apps,
// generations and key items it wrote.
func (s *Store) migrateAppCount(ctx context.Context, appID string) (apps, gens, keys int, err error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return apps, gens, keys, err
			}
		}
		m, err := s.getItem(ctx, appPK(appID), skMeta)
		if err != nil {
			return apps, gens, keys, err
		}
		if m == nil {
			return apps, gens, keys, nil
		}
		var app App
		if err := unmarshal(m, &app); err != nil {
			return apps, gens, keys, err
		}
		var all []Generation
		var raws []item
		err = s.queryPrefix(ctx, appPK(appID), "GEN#", func(m item) error {
			var g Generation
			if err := unmarshal(m, &g); err != nil {
				return err
			}
			all = append(all, g)
			raws = append(raws, m)
			return nil
		})
		if err != nil {
			return apps, gens, keys, err
		}
		for _, g := range all {
			if err := s.noteKeyOrg(ctx, g.KeyARN, app.OrgID); err != nil {
				return apps, gens, keys, err
			}
		}
		retry := false
		for i, g := range all {
			if !legacyGen(raws[i]) {
				continue
			}
			target := g.State
			if g.State == GenRevoked {
				switch {
				case app.ActiveGeneration == g.Number:
					target = GenActive
				case app.PendingGeneration == g.Number:
					target = GenPending
				default:
					target = GenRetired
				}
				if g.KeyARN != "" {
					created, err := s.ensureRevokedKey(ctx, g, attrS(raws[i], "revokedBy"), raws[i])
					if err != nil {
						return apps, gens, keys, err
					}
					if created {
						keys++
					}
				}
			}
			upd := s.genStateUpdate(g, []GenerationState{g.State}, target, g.StateReason, g.Since)
			upd.Update.UpdateExpression = aws.String(*upd.Update.UpdateExpression + " REMOVE revokedBy, awaitingOperator")
			_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
				TableName: aws.String(s.table), Key: upd.Update.Key, UpdateExpression: upd.Update.UpdateExpression,
				ConditionExpression: upd.Update.ConditionExpression, ExpressionAttributeNames: upd.Update.ExpressionAttributeNames,
				ExpressionAttributeValues: upd.Update.ExpressionAttributeValues,
			})
			if isCondFailed(err) {
				retry = true
				continue
			}
			if err != nil {
				return apps, gens, keys, fmt.Errorf("generation %d of app %s: %w", g.Number, appID, err)
			}
			gens++
		}
		if retry {
			continue
		}
		if !legacyApp(m) {
			return apps, gens, keys, nil
		}
		next := app
		for _, g := range all {
			if g.Number == app.ActiveGeneration {
				next.ActiveKeyARN = g.KeyARN
			}
			if g.Number == app.PendingGeneration && app.PendingGeneration != 0 {
				next.PendingKeyARN = g.KeyARN
			}
		}
		next.Status = storedStatus(next)
		next.Version = app.Version + 1
		nm, err := s.appItem(next)
		if err != nil {
			return apps, gens, keys, err
		}
		err = s.transact(ctx, []types.TransactWriteItem{s.put(nm, "#v = :v", map[string]string{"#v": "version"}, item{":v": num(app.Version)})})
		var f *txFailure
		if errors.As(err, &f) {
			continue
		}
		if err != nil {
			return apps, gens, keys, err
		}
		apps++
		return apps, gens, keys, nil
	}
	return apps, gens, keys, &ConflictError{AppID: appID, What: "migrate: the app kept changing concurrently"}
}

// ensureRevokedKey creates the key item REVOKED from a legacy REVOKED generation unless the
// key item exists; it reports whether it created it.
func (s *Store) ensureRevokedKey(ctx context.Context, g Generation, revokedBy string, raw item) (bool, error) {
	awaiting := false
	if v, ok := raw["awaitingOperator"].(*types.AttributeValueMemberBOOL); ok {
		awaiting = v.Value
	}
	cause := g.StateReason
	if cause == "" {
		cause = "key revoked"
	}
	k := Key{ARN: g.KeyARN, State: KeyRevoked, Since: g.Since, Cause: cause, CauseEventID: revokedBy, AwaitingOperator: awaiting, Version: 1}
	m, err := marshal(k, typeKey, keyPK(g.KeyARN), skMeta)
	if err != nil {
		return false, err
	}
	m["lastEventNanos"] = num(0)
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table), Item: m, ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if isCondFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("key item of %s: %w", g.KeyARN, err)
	}
	return true, nil
}

// migrateClock moves a legacy CLOCK item's last applied event onto the key item and retires it.
func (s *Store) migrateClock(ctx context.Context, m item) error {
	arn := strings.TrimPrefix(attrS(m, attrPK), "KEY#")
	id := attrS(m, "lastEventId")
	var nanos string
	if v, ok := m["lastEventTime"].(*types.AttributeValueMemberN); ok {
		nanos = v.Value
	}
	if id != "" && nanos != "" {
		ns, err := strconv.ParseInt(nanos, 10, 64)
		if err != nil {
			return fmt.Errorf("clock of key %s: lastEventTime %q: %w", arn, nanos, err)
		}
		at := tm(time.Unix(0, ns))
		_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                aws.String(s.table),
			Key:                      keyOf(keyPK(arn), skMeta),
			UpdateExpression:         aws.String("SET lastEventNanos = :t, lastEventId = :id, lastEventTime = :at, keyArn = :arn, #st = if_not_exists(#st, :u), #ty = :ty ADD version :one"),
			ConditionExpression:      aws.String("attribute_not_exists(lastEventId) OR lastEventId = :empty OR lastEventNanos = :zero"),
			ExpressionAttributeNames: map[string]string{"#st": "state", "#ty": "Type"},
			ExpressionAttributeValues: item{
				":t": &types.AttributeValueMemberN{Value: nanos}, ":id": str(id), ":at": at, ":arn": str(arn),
				":u": str(string(KeyUsable)), ":ty": str(typeKey), ":one": num(1), ":empty": str(""), ":zero": num(0),
			},
		})
		if err != nil && !isCondFailed(err) {
			return fmt.Errorf("clock of key %s: %w", arn, err)
		}
	}
	// Retired, not deleted: no function deletes in a KEY# partition (the key's audit entries
	// live there); the item leaves the upgrade's scan and expires by the table's TTL.
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.table), Key: keyOf(keyPK(arn), "CLOCK"),
		UpdateExpression:          aws.String("SET #ty = :retired, #exp = :now"),
		ConditionExpression:       aws.String("#ty = :clock"),
		ExpressionAttributeNames:  map[string]string{"#ty": "Type", "#exp": attrExpiresAt},
		ExpressionAttributeValues: item{":retired": str(typeClockRetired), ":clock": str(typeClock), ":now": num(s.clock.Now().Unix())},
	})
	if err != nil && !isCondFailed(err) {
		return fmt.Errorf("retire clock of key %s: %w", arn, err)
	}
	return nil
}

// claimAccounts writes the claim of each account an org enrolled before accounts were
// claimed, and returns how many it wrote. An account another org claimed first stays that
// org's; the conflict is logged for the operator (orgs enrolled one account twice before the
// rule existed).
func (s *Store) claimAccounts(ctx context.Context, m item) (int, error) {
	var o Org
	if err := unmarshal(m, &o); err != nil {
		return 0, err
	}
	n := 0
	for _, a := range o.Accounts {
		claim, err := marshal(accountClaim{OrgID: o.ID, CreatedAt: o.CreatedAt}, typeAccount, accountPK(a), skMeta)
		if err != nil {
			return n, err
		}
		_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: claim,
			ConditionExpression: aws.String("attribute_not_exists(PK)")})
		if isCondFailed(err) {
			if holder, herr := s.AccountOrg(ctx, a); herr == nil && holder != o.ID {
				s.log.WarnContext(ctx, "lineage: an account is enrolled by two orgs; it stays with the first claim", "account", a, "org", o.ID, "claimedBy", holder)
			}
			continue
		}
		if err != nil {
			return n, fmt.Errorf("claim account %s of org %s: %w", a, o.ID, err)
		}
		n++
	}
	return n, nil
}
