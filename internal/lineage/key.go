package lineage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The key item (KEY#arn / META) is the one place a KMS key's state lives. The store
// enforces, here and nowhere else:
//
//   - K1 A key is USABLE or REVOKED. A key without an item has never seen a key event and is
//     USABLE. Generations, apps and backups never copy the key's state: an app is
//     deactivated, a generation unusable and a backup unrestorable exactly while the key
//     item says REVOKED, derived on every read (one BatchGetItem of the keys on a page).
//   - K2 Revoking or reactivating a key is one conditional write of its key item (with its
//     audit entry on the key's trail in the same transaction), whatever the number of apps
//     on the key: every app on it changes at that instant.
//   - K3 Key events apply in eventTime order per key, whatever order they arrive in: the
//     write is refused when the event is older than the last one applied, equal times being
//     ordered by event id, so every replica decides the same. A refused event changes
//     nothing. An event equal to the last applied one is a repeat and changes nothing.
//   - K4 Every write conditions on the key item's version as read, so a decision is never
//     made on a state that changed underneath it (a loser reads again and decides again).
//   - K5 Every change that needs a usable key (backup lease and record, restore start,
//     re-encryption begin and commit) carries a ConditionCheck on the key item in its own
//     transaction: it cannot commit after the revocation did.
//   - K6 B1: a key that comes back within the reactivation window of its revocation becomes
//     USABLE; past the window it stays REVOKED, marked AwaitingOperator, until an operator
//     reactivates the key. The operator decides per key, not per app: the window and the
//     revocation are facts of the key, every app on it shares them, and a per-app decision
//     would need one write per app when the key returns (the fan-out K2 removes) and would
//     split the apps of one usable key into states no key event explains. An operator who
//     wants one app kept down holds that app (App.Hold).
//   - K7 A generation RETIRED by re-encryption stays RETIRED: a key's return makes only
//     ACTIVE and PENDING generations usable again.

// KeyState is the state of a KMS key as keyline applies it.
type KeyState string

const (
	// KeyUsable: the key may be used (the state of a key without an item).
	KeyUsable KeyState = "USABLE"
	// KeyRevoked: the key was disabled, scheduled for deletion or found revoked; nothing is
	// sealed under it or opened with it, and every app whose active generation uses it is
	// deactivated.
	KeyRevoked KeyState = "REVOKED"
)

// typeKey is the Type of key items.
const typeKey = "KEY"

// Key is the state of one KMS key ARN.
type Key struct {
	ARN   string   `json:"keyArn"`
	State KeyState `json:"state"`
	// Since is when the key entered State (for REVOKED: the revocation B1's window runs from).
	Since time.Time `json:"since"`
	// Cause says why: the key event's name ("DisableKey"), or the error or check behind it.
	Cause string `json:"cause,omitempty"`
	// CauseEventID is the id of the event (or check) that brought the key into State.
	CauseEventID string `json:"causeEventId,omitempty"`
	// AwaitingOperator is set on a REVOKED key that came back in KMS after the reactivation
	// window: keyline keeps it REVOKED until an operator reactivates it (K6).
	AwaitingOperator bool `json:"awaitingOperator,omitempty"`
	// LastEventTime and LastEventID identify the last key event applied (K3).
	LastEventTime time.Time `json:"lastEventTime,omitempty"`
	LastEventID   string    `json:"lastEventId,omitempty"`
	// Version is incremented by every write of the key item (K4).
	Version int64 `json:"version"`
}

// Usable reports whether the key may be used.
func (k Key) Usable() bool { return k.State != KeyRevoked }

// Reason says in words why the key is not usable ("" when it is).
func (k Key) Reason() string {
	if k.Usable() {
		return ""
	}
	why := k.Cause
	if why == "" {
		why = "revoked"
	}
	if k.CauseEventID != "" {
		why += ", event " + k.CauseEventID
	}
	r := fmt.Sprintf("key %s is revoked (%s, since %s)", k.ARN, why, k.Since.UTC().Format(time.RFC3339))
	if k.AwaitingOperator {
		r += "; it came back after the reactivation window: an operator must reactivate it"
	} else {
		r += ": re-enable the key"
	}
	return r
}

// KeyEventRef identifies the key event behind a change: its id and eventTime (K3).
type KeyEventRef struct {
	ID   string
	Time time.Time
}

// after reports whether e is newer than the last event applied to k (K3).
func (e KeyEventRef) after(k Key) bool {
	if k.LastEventID == "" {
		return true
	}
	t, last := e.Time.UTC().UnixNano(), k.LastEventTime.UTC().UnixNano()
	return t > last || (t == last && e.ID > k.LastEventID)
}

// KeyChangeResult is what applying a key event did.
type KeyChangeResult struct {
	// Key is the key item after the call.
	Key Key
	// Applied: the event was the newest for the key and is now its last applied event.
	Applied bool
	// Changed: the key's state (or its AwaitingOperator mark) changed.
	Changed bool
	// OutOfOrder: a newer event was applied already; nothing changed (K3).
	OutOfOrder bool
	// Repeat: this very event was the last one applied (a retried delivery); nothing
	// changed, but what follows a change (notifications) may not have happened: redo it.
	Repeat bool
}

func attrKeyState() map[string]string { return map[string]string{"#kst": "state"} }

// keyUsableCheck is the ConditionCheck of K5: the key item is absent or USABLE.
func (s *Store) keyUsableCheck(arn string) types.TransactWriteItem {
	return s.check(keyOf(keyPK(arn), skMeta), "attribute_not_exists(PK) OR #kst = :usable",
		attrKeyState(), item{":usable": str(string(KeyUsable))})
}

// keyUsableChecks returns the ConditionChecks for the distinct non-empty ARNs.
func (s *Store) keyUsableChecks(arns ...string) []types.TransactWriteItem {
	if s.noKeyChecks {
		return nil
	}
	var out []types.TransactWriteItem
	seen := map[string]bool{}
	for _, a := range arns {
		if a == "" || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, s.keyUsableCheck(a))
	}
	return out
}

// GetKey returns the key's state (strongly consistent); a key without an item is USABLE.
func (s *Store) GetKey(ctx context.Context, arn string) (Key, error) {
	if err := validKeyARN(arn); err != nil {
		return Key{}, err
	}
	m, err := s.getItem(ctx, keyPK(arn), skMeta)
	if err != nil {
		return Key{}, err
	}
	return decodeKey(arn, m)
}

func decodeKey(arn string, m item) (Key, error) {
	if m == nil {
		return Key{ARN: arn, State: KeyUsable}, nil
	}
	var k Key
	if err := unmarshal(m, &k); err != nil {
		return Key{}, err
	}
	if k.ARN == "" {
		k.ARN = arn
	}
	if k.State == "" {
		k.State = KeyUsable
	}
	return k, nil
}

// getKeys reads the keys of arns with one BatchGetItem per 100 distinct keys (strongly
// consistent); absent keys are USABLE.
func (s *Store) getKeys(ctx context.Context, arns []string) (map[string]Key, error) {
	out := map[string]Key{}
	var want []string
	for _, a := range arns {
		if a == "" {
			continue
		}
		if _, ok := out[a]; ok {
			continue
		}
		out[a] = Key{ARN: a, State: KeyUsable}
		want = append(want, a)
	}
	const batchGetMax = 100
	for len(want) > 0 {
		n := min(len(want), batchGetMax)
		chunk := want[:n]
		want = want[n:]
		keys := make([]item, 0, len(chunk))
		for _, a := range chunk {
			keys = append(keys, keyOf(keyPK(a), skMeta))
		}
		req := map[string]types.KeysAndAttributes{s.table: {Keys: keys, ConsistentRead: aws.Bool(true)}}
		for attempt := 0; len(req) > 0; attempt++ {
			if attempt > 0 {
				if attempt >= maxAttempts {
					return nil, fmt.Errorf("lineage: read %d keys: unprocessed after %d attempts", len(chunk), attempt)
				}
				if err := backoff(ctx, attempt); err != nil {
					return nil, err
				}
			}
			res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, fmt.Errorf("lineage: read %d keys: %w", len(chunk), err)
			}
			for _, m := range res.Responses[s.table] {
				pk, _ := m[attrPK].(*types.AttributeValueMemberS)
				if pk == nil {
					continue
				}
				arn := pk.Value[len("KEY#"):]
				k, err := decodeKey(arn, m)
				if err != nil {
					return nil, err
				}
				out[arn] = k
			}
			req = res.UnprocessedKeys
		}
	}
	return out, nil
}

func validKeyARN(arn string) error {
	if arn == "" {
		return invalid("key ARN is empty")
	}
	if len(arn) > 2048 {
		return invalid("key ARN is longer than 2048 characters")
	}
	return nil
}

// keyDecision is what a key change function decided.
type keyDecision struct {
	next    Key
	audit   *AuditEntry
	changed bool
	noWrite bool
}

// changeKey is the one place key items are written (K2, K3, K4): it reads the key item,
// refuses an event not newer than the last applied one (ev.ID == "" for changes that are
// not key events, such as an operator's reactivation), lets fn decide, and writes the key
// item with Version+1 conditional on the version read and on the event order, with fn's
// audit entry on the key's trail, in one transaction.
func (s *Store) changeKey(ctx context.Context, arn string, ev KeyEventRef, what string, fn func(k Key, now time.Time) (keyDecision, error)) (KeyChangeResult, error) {
	if err := validKeyARN(arn); err != nil {
		return KeyChangeResult{}, err
	}
	if ev.ID != "" && ev.Time.IsZero() {
		return KeyChangeResult{}, invalid("key event %s has no event time", ev.ID)
	}
	var lastErr error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return KeyChangeResult{}, err
			}
		}
		cur, err := s.GetKey(ctx, arn)
		if err != nil {
			return KeyChangeResult{}, err
		}
		if ev.ID != "" && ev.ID == cur.LastEventID && ev.Time.Equal(cur.LastEventTime) {
			return KeyChangeResult{Key: cur, Repeat: true}, nil
		}
		if ev.ID != "" && !ev.after(cur) {
			return KeyChangeResult{Key: cur, OutOfOrder: true}, nil
		}
		now := s.clock.Now().UTC()
		d, err := fn(cur, now)
		if err != nil {
			return KeyChangeResult{}, err
		}
		if d.noWrite {
			return KeyChangeResult{Key: cur}, nil
		}
		next := d.next
		next.ARN = arn
		if next.State != KeyUsable && next.State != KeyRevoked {
			return KeyChangeResult{}, invariant("key %s: unknown state %q", arn, next.State)
		}
		if next.AwaitingOperator && next.State != KeyRevoked {
			return KeyChangeResult{}, invariant("key %s: only a REVOKED key awaits an operator", arn)
		}
		if ev.ID != "" {
			next.LastEventTime, next.LastEventID = ev.Time.UTC(), ev.ID
		}
		next.Version = cur.Version + 1
		m, err := marshal(next, typeKey, keyPK(arn), skMeta)
		if err != nil {
			return KeyChangeResult{}, err
		}
		m["lastEventNanos"] = num(next.LastEventTime.UnixNano())
		if next.LastEventID == "" {
			m["lastEventNanos"] = num(0)
		}
		cond := "attribute_not_exists(PK) OR version = :v"
		values := item{":v": num(cur.Version)}
		if ev.ID != "" {
			// K3 in the write itself: whatever was read, an older event never lands.
			cond = "(" + cond + ") AND (attribute_not_exists(PK) OR attribute_not_exists(lastEventNanos) OR lastEventNanos < :t OR (lastEventNanos = :t AND lastEventId < :id))"
			values[":t"] = num(ev.Time.UTC().UnixNano())
			values[":id"] = str(ev.ID)
		}
		items := []types.TransactWriteItem{s.put(m, cond, nil, values)}
		if d.audit != nil {
			d.audit.KeyARN = arn
			d.audit.AppID = ""
			a, err := s.auditItem(*d.audit, now)
			if err != nil {
				return KeyChangeResult{}, err
			}
			items = append(items, a)
		}
		err = s.transact(ctx, items)
		if err == nil {
			return KeyChangeResult{Key: next, Applied: ev.ID != "", Changed: d.changed}, nil
		}
		var f *txFailure
		if errors.As(err, &f) && f.retryable() {
			lastErr = err
			continue
		}
		return KeyChangeResult{}, fmt.Errorf("lineage: %s of key %s: %w", what, arn, err)
	}
	return KeyChangeResult{}, &ConflictError{What: fmt.Sprintf("%s of key %s: the key kept changing concurrently (%d attempts; last: %v)", what, arn, maxAttempts, lastErr)}
}

// RevokeKey applies a key revocation (R8): the key becomes REVOKED in one conditional write,
// which deactivates every app whose active generation uses it and makes every generation
// on it unusable, at that instant (K2). ev orders it among the key's events (K3); a
// revocation found by a check or a KMS error passes an ev made from the time it was found.
// Repeating it, or revoking a revoked key, changes nothing but the last applied event.
func (s *Store) RevokeKey(ctx context.Context, arn, cause string, ev KeyEventRef, by Cause) (KeyChangeResult, error) {
	if ev.ID == "" {
		return KeyChangeResult{}, invalid("revocation of key %s: the event id is empty", arn)
	}
	if cause == "" {
		cause = "key revoked"
	}
	return s.changeKey(ctx, arn, ev, "revoke", func(k Key, now time.Time) (keyDecision, error) {
		if k.State == KeyRevoked {
			return keyDecision{next: k}, nil // a newer event that agrees: only the order moves on
		}
		next := Key{State: KeyRevoked, Since: now, Cause: cause, CauseEventID: ev.ID}
		return keyDecision{next: next, changed: true, audit: &AuditEntry{Action: ActionKeyRevoked, Cause: by, Detail: map[string]string{
			"keyArn": arn, "reason": cause, "eventId": ev.ID, "eventTime": ev.Time.UTC().Format(time.RFC3339Nano),
		}}}, nil
	})
}

// ReactivateKey applies a key's return (B1), after the caller verified the key with a test
// round trip: a REVOKED key becomes USABLE in one conditional write (every app on it is
// reactivated and its backups under an ACTIVE generation restorable again; RETIRED
// generations stay retired, K7), unless it was revoked longer than window ago: then it
// stays REVOKED, marked AwaitingOperator (audited once, K6). window <= 0 means
// DefaultReactivationWindow.
func (s *Store) ReactivateKey(ctx context.Context, arn string, window time.Duration, ev KeyEventRef, by Cause) (KeyChangeResult, error) {
	if ev.ID == "" {
		return KeyChangeResult{}, invalid("reactivation of key %s: the event id is empty", arn)
	}
	if window <= 0 {
		window = DefaultReactivationWindow
	}
	return s.changeKey(ctx, arn, ev, "reactivate", func(k Key, now time.Time) (keyDecision, error) {
		if k.State != KeyRevoked {
			return keyDecision{next: k}, nil
		}
		if now.Sub(k.Since) > window {
			next := k
			next.AwaitingOperator = true
			d := keyDecision{next: next}
			if !k.AwaitingOperator {
				d.changed = true
				d.audit = &AuditEntry{Action: ActionReactivationWaiting, Cause: by, Detail: map[string]string{
					"keyArn": arn, "revokedAt": k.Since.Format(time.RFC3339), "window": window.String(), "eventId": ev.ID,
				}}
			}
			return d, nil
		}
		return keyDecision{next: Key{State: KeyUsable, Since: now, Cause: "reactivated: the key is usable again", CauseEventID: ev.ID},
			changed: true, audit: &AuditEntry{Action: ActionKeyReactivated, Cause: by, Detail: map[string]string{
				"keyArn": arn, "revokedAt": k.Since.Format(time.RFC3339), "eventId": ev.ID, "operator": "false",
			}}}, nil
	})
}

// NoteKeyEvent applies a key event that changes no state (CancelKeyDeletion leaves the key
// Disabled): it moves the key's last applied event on (K3) and, when the key is revoked,
// records action on the key's trail once per event.
func (s *Store) NoteKeyEvent(ctx context.Context, arn, action, note string, ev KeyEventRef, by Cause) (KeyChangeResult, error) {
	if ev.ID == "" {
		return KeyChangeResult{}, invalid("key event on %s: the event id is empty", arn)
	}
	return s.changeKey(ctx, arn, ev, "note event", func(k Key, now time.Time) (keyDecision, error) {
		d := keyDecision{next: k}
		if k.State == KeyRevoked && action != "" {
			d.audit = &AuditEntry{Action: action, Cause: by, Detail: map[string]string{"keyArn": arn, "note": note, "eventId": ev.ID}}
		}
		return d, nil
	})
}

// OperatorReactivateKey is the operator's decision past the window (K6): a REVOKED key
// becomes USABLE whatever the window, after the caller verified it with a test round trip.
// It is not a key event: it does not move the key's event order. Idempotent.
func (s *Store) OperatorReactivateKey(ctx context.Context, arn string, by Cause) (KeyChangeResult, error) {
	return s.changeKey(ctx, arn, KeyEventRef{}, "operator reactivation", func(k Key, now time.Time) (keyDecision, error) {
		if k.State != KeyRevoked {
			return keyDecision{noWrite: true}, nil
		}
		next := k
		next.State, next.Since, next.Cause, next.CauseEventID, next.AwaitingOperator = KeyUsable, now, "reactivated by an operator", by.RequestID, false
		return keyDecision{next: next, changed: true, audit: &AuditEntry{Action: ActionKeyReactivated, Cause: by, Detail: map[string]string{
			"keyArn": arn, "revokedAt": k.Since.Format(time.RFC3339), "operator": "true",
		}}}, nil
	})
}

// typeKeyOrg is the Type of the KEY#arn / ORG#id items: an org has (or had) apps on the key.
const typeKeyOrg = "KEYORG"

// noteKeyOrg records that org has apps on the key (idempotent; written before the app's
// transaction, so that the orgs of a key are read without reading its apps).
func (s *Store) noteKeyOrg(ctx context.Context, arn, org string) error {
	if arn == "" || org == "" {
		return nil
	}
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item{
		attrPK: str(keyPK(arn)), attrSK: str("ORG#" + org), "Type": str(typeKeyOrg), "orgId": str(org),
	}})
	if err != nil {
		return fmt.Errorf("lineage: note org %s on key %s: %w", org, arn, err)
	}
	return nil
}

// KeyOrgs returns the orgs that have (or had) apps on the key, sorted: its KEY#arn / ORG#id
// items, one query whatever the number of apps; for a key written before they existed, the
// orgs of its generations (GSI1).
func (s *Store) KeyOrgs(ctx context.Context, arn string) ([]string, error) {
	if err := validKeyARN(arn); err != nil {
		return nil, err
	}
	var orgs []string
	err := s.queryPrefix(ctx, keyPK(arn), "ORG#", func(m item) error {
		if o := attrS(m, "orgId"); o != "" {
			orgs = append(orgs, o)
		}
		return nil
	})
	if err != nil || len(orgs) > 0 {
		slices.Sort(orgs)
		return orgs, err
	}
	gens, err := s.FindGenerationsByKey(ctx, arn)
	if err != nil {
		return nil, err
	}
	for _, g := range gens {
		if g.OrgID != "" && !slices.Contains(orgs, g.OrgID) {
			orgs = append(orgs, g.OrgID)
		}
	}
	slices.Sort(orgs)
	return orgs, nil
}

// CountAppsOnKey counts the apps whose ACTIVE generation uses the key (GSI1, eventually
// consistent), for the per-key event.
func (s *Store) CountAppsOnKey(ctx context.Context, arn string) (int, error) {
	if err := validKeyARN(arn); err != nil {
		return 0, err
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk BETWEEN :pre AND :end"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrGSI1PK, "#sk": attrGSI1SK},
		ExpressionAttributeValues: item{":pk": str(keyPK(arn)), ":pre": str(gsiGenPrefix(GenActive)), ":end": str(prefixEnd(gsiGenPrefix(GenActive)))},
		Select:                    types.SelectCount,
	}
	n := 0
	p := dynamodb.NewQueryPaginator(s.db, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("lineage: count apps on key %s: %w", arn, err)
		}
		n += int(page.Count)
	}
	return n, nil
}

// KeyAppsPage is one page of the apps whose ACTIVE generation uses a key.
type KeyAppsPage struct {
	Apps []AffectedApp
	// Next is the cursor of the following page ("" on the last).
	Next string
}

// AppsOnKey returns one page (at most limit, default 500) of the apps whose ACTIVE
// generation uses the key, through GSI1 (eventually consistent), for the per-app
// notifications; cursor "" starts.
func (s *Store) AppsOnKey(ctx context.Context, arn, cursor string, limit int) (KeyAppsPage, error) {
	if err := validKeyARN(arn); err != nil {
		return KeyAppsPage{}, err
	}
	if limit <= 0 {
		limit = 500
	}
	pre := gsiGenPrefix(GenActive)
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk BETWEEN :pre AND :end"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrGSI1PK, "#sk": attrGSI1SK},
		ExpressionAttributeValues: item{":pk": str(keyPK(arn)), ":pre": str(pre), ":end": str(prefixEnd(pre))},
		Limit:                     aws.Int32(int32(limit)),
	}
	if cursor != "" {
		in.ExpressionAttributeValues[":pre"] = str(cursor + "\x00")
	}
	res, err := s.db.Query(ctx, in)
	if err != nil {
		return KeyAppsPage{}, fmt.Errorf("lineage: apps on key %s: %w", arn, err)
	}
	var page KeyAppsPage
	for _, m := range res.Items {
		var g Generation
		if err := unmarshal(m, &g); err != nil {
			return KeyAppsPage{}, err
		}
		page.Apps = append(page.Apps, AffectedApp{AppID: g.AppID, OrgID: g.OrgID, Generation: g.Number, KeyARN: arn})
	}
	if res.LastEvaluatedKey != nil {
		if sk, ok := res.LastEvaluatedKey[attrGSI1SK].(*types.AttributeValueMemberS); ok {
			page.Next = sk.Value
		}
	}
	return page, nil
}

// FindPendingOnKey returns the PENDING generations whose key is arn (B8): found through
// GSI1 (eventually consistent), each confirmed with a strongly consistent read of its app
// (still re-encrypting to it). A re-encryption the index has not caught up with cannot
// commit anyway: its commit carries a ConditionCheck on the key (K5).
func (s *Store) FindPendingOnKey(ctx context.Context, arn string) ([]Generation, error) {
	if err := validKeyARN(arn); err != nil {
		return nil, err
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String("#pk = :pk AND #sk BETWEEN :pre AND :end"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrGSI1PK, "#sk": attrGSI1SK},
		ExpressionAttributeValues: item{":pk": str(keyPK(arn)), ":pre": str(gsiGenPrefix(GenPending)), ":end": str(prefixEnd(gsiGenPrefix(GenPending)))},
	}
	var out []Generation
	p := dynamodb.NewQueryPaginator(s.db, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("lineage: pending generations of key %s: %w", arn, err)
		}
		for _, m := range page.Items {
			var g Generation
			if err := unmarshal(m, &g); err != nil {
				return nil, err
			}
			app, err := s.GetApp(ctx, g.AppID)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if app.PendingGeneration != g.Number {
				continue // committed or aborted since the index saw it
			}
			fresh, err := s.GetGeneration(ctx, g.AppID, g.Number)
			if err != nil {
				return nil, err
			}
			if fresh.State == GenPending || fresh.State == GenRevoked {
				out = append(out, fresh)
			}
		}
	}
	return out, nil
}

// NotePendingRevoked records on the app's trail that its PENDING generation's key was
// revoked (B8): the re-encryption cannot commit (K5) and its workflow aborts. Idempotent
// per (app, generation, event).
func (s *Store) NotePendingRevoked(ctx context.Context, g Generation, eventID string, by Cause) error {
	_, err := s.AppendAudit(ctx, AuditEntry{AppID: g.AppID, Action: ActionPendingKeyRevoked, Cause: by, Detail: map[string]string{
		"keyArn": g.KeyARN, "generation": strconv.Itoa(g.Number), "eventId": eventID,
		"note": "the re-encryption cannot commit and aborts; the previous generation stays active",
	}})
	return err
}
