package lineage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// auditItem builds the Put of an audit entry stamped now (unless it has a time) with the
// store's next sequence number.
func (s *Store) auditItem(e AuditEntry, now time.Time) (types.TransactWriteItem, error) {
	m, err := s.auditRecord(&e, now)
	if err != nil {
		return types.TransactWriteItem{}, err
	}
	return s.putNew(m), nil
}

func (s *Store) auditRecord(e *AuditEntry, now time.Time) (item, error) {
	pk := keyPK(e.KeyARN)
	if e.KeyARN == "" {
		if err := validID("app", e.AppID); err != nil {
			return nil, err
		}
		pk = appPK(e.AppID)
	} else if e.AppID != "" {
		return nil, invalid("audit entry names both app %s and key %s: a key's entry is shown in its apps' trails", e.AppID, e.KeyARN)
	}
	if e.Action == "" {
		return nil, invalid("audit entry of %s has no action", pk)
	}
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC()
	if e.Actor == "" {
		e.Actor = e.Cause.Actor
	}
	e.Seq = s.seq.Add(1)
	sk := fmt.Sprintf("AUDIT#%s#%020d#%s", e.Time.Format(skTime), e.Seq, s.nonce)
	return marshal(*e, typeAudit, pk, sk)
}

// AppendAudit appends an entry to the app's audit trail (Time defaults to now; Seq is set).
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	m, err := s.auditRecord(&e, s.clock.Now().UTC())
	if err != nil {
		return AuditEntry{}, err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table), Item: m, ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if err != nil {
		return AuditEntry{}, fmt.Errorf("lineage: append audit to app %s: %w", e.AppID, err)
	}
	return e, nil
}

// ListAudit returns the app's audit trail merged with the trails of the keys its
// generations used (while they used them), oldest first: a key's revocation is recorded
// once, on the key, and shows in the trail of every app on it.
func (s *Store) ListAudit(ctx context.Context, appID string) ([]AuditEntry, error) {
	if err := validID("app", appID); err != nil {
		return nil, err
	}
	var out []AuditEntry
	err := s.queryPrefix(ctx, appPK(appID), "AUDIT#", func(m item) error {
		var e AuditEntry
		if err := unmarshal(m, &e); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	gens, err := s.ListGenerations(ctx, appID)
	if errors.Is(err, ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	// Each key's span of use: from its first generation's creation to its last one's
	// retirement (open while one is ACTIVE or PENDING).
	type span struct {
		from, to time.Time
		open     bool
	}
	spans := map[string]*span{}
	var order []string
	for _, g := range gens {
		if g.KeyARN == "" {
			continue
		}
		sp, ok := spans[g.KeyARN]
		if !ok {
			sp = &span{from: g.CreatedAt}
			spans[g.KeyARN] = sp
			order = append(order, g.KeyARN)
		}
		if g.State == GenRetired {
			if g.Since.After(sp.to) {
				sp.to = g.Since
			}
		} else {
			sp.open = true
		}
	}
	for _, arn := range order {
		sp := spans[arn]
		err := s.queryPrefix(ctx, keyPK(arn), "AUDIT#", func(m item) error {
			var e AuditEntry
			if err := unmarshal(m, &e); err != nil {
				return err
			}
			if e.Time.Before(sp.from) || (!sp.open && e.Time.After(sp.to)) {
				return nil
			}
			out = append(out, e)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].Seq < out[j].Seq
	})
	return out, nil
}

// ListKeyAudit returns the key's own audit trail, oldest first.
func (s *Store) ListKeyAudit(ctx context.Context, arn string) ([]AuditEntry, error) {
	if err := validKeyARN(arn); err != nil {
		return nil, err
	}
	var out []AuditEntry
	err := s.queryPrefix(ctx, keyPK(arn), "AUDIT#", func(m item) error {
		var e AuditEntry
		if err := unmarshal(m, &e); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// RecordSkip records that a backup of the app did not run and why (R5): a SKIP item and a
// "backup.skipped" audit entry, in one transaction.
func (s *Store) RecordSkip(ctx context.Context, appID, reason string, cause Cause) error {
	if err := validID("app", appID); err != nil {
		return err
	}
	if reason == "" {
		return invalid("skip of app %s has no reason", appID)
	}
	now := s.clock.Now().UTC()
	sk := Skip{AppID: appID, Time: now, Reason: reason, Cause: cause}
	m, err := marshal(sk, typeSkip, appPK(appID), fmt.Sprintf("SKIP#%s#%020d#%s", now.Format(skTime), s.seq.Add(1), s.nonce))
	if err != nil {
		return err
	}
	a, err := s.auditItem(AuditEntry{AppID: appID, Action: ActionBackupSkipped, Cause: cause,
		Detail: map[string]string{"reason": reason}}, now)
	if err != nil {
		return err
	}
	exists := s.check(keyOf(appPK(appID), skMeta), "attribute_exists(PK)", nil, nil)
	if err := s.transact(ctx, []types.TransactWriteItem{exists, s.putNew(m), a}); err != nil {
		if f := (*txFailure)(nil); errors.As(err, &f) && f.failed(0) {
			return notFound("app %s", appID)
		}
		return fmt.Errorf("lineage: record skip of app %s: %w", appID, err)
	}
	return nil
}

// ListSkips returns the app's skipped backups, oldest first.
func (s *Store) ListSkips(ctx context.Context, appID string) ([]Skip, error) {
	if err := validID("app", appID); err != nil {
		return nil, err
	}
	var out []Skip
	err := s.queryPrefix(ctx, appPK(appID), "SKIP#", func(m item) error {
		var k Skip
		if err := unmarshal(m, &k); err != nil {
			return err
		}
		out = append(out, k)
		return nil
	})
	return out, err
}

// MarkEventSeen records an event id for ttl; ErrDuplicate if it was already seen (B3).
// An entry past its expiry counts as unseen even before DynamoDB's TTL removes it.
func (s *Store) MarkEventSeen(ctx context.Context, eventID string, ttl time.Duration) error {
	if eventID == "" {
		return invalid("event id is empty")
	}
	if ttl <= 0 {
		return invalid("event dedupe ttl must be positive, got %s", ttl)
	}
	now := s.clock.Now().UTC()
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table),
		Item: item{
			attrPK: str(eventPK(eventID)), attrSK: str("EVENT"), "Type": str(typeEvent),
			"seenAt": tm(now), attrExpiresAt: num(now.Add(ttl).Unix()),
		},
		ConditionExpression:       aws.String("attribute_not_exists(PK) OR ExpiresAt <= :now"),
		ExpressionAttributeValues: item{":now": num(now.Unix())},
	})
	if isCondFailed(err) {
		return fmt.Errorf("%w: event %s already seen", ErrDuplicate, eventID)
	}
	if err != nil {
		return fmt.Errorf("lineage: mark event %s seen: %w", eventID, err)
	}
	return nil
}
