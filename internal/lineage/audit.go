package lineage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	if err := validID("app", e.AppID); err != nil {
		return nil, err
	}
	if e.Action == "" {
		return nil, invalid("audit entry of app %s has no action", e.AppID)
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
	return marshal(*e, typeAudit, appPK(e.AppID), sk)
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

// ListAudit returns the app's audit trail, oldest first (Seq orders equal timestamps).
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

// ObserveKeyEvent orders key events per key (B3): it reports apply=true and records eventTime
// when eventTime is not older than the latest applied event of keyARN, and apply=false for
// an older event, which must be ignored. Events with an equal eventTime all apply
// (CloudTrail times have one-second resolution; their order cannot be known).
func (s *Store) ObserveKeyEvent(ctx context.Context, keyARN string, eventTime time.Time, eventID string) (bool, error) {
	if keyARN == "" {
		return false, invalid("key ARN is empty")
	}
	if eventTime.IsZero() {
		return false, invalid("event %s has no event time", eventID)
	}
	t := eventTime.UTC().UnixNano()
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(s.table),
		Key:                 keyOf(keyPK(keyARN), "CLOCK"),
		UpdateExpression:    aws.String("SET #t = :t, #id = :id, #ty = :ty, #at = :at"),
		ConditionExpression: aws.String("attribute_not_exists(PK) OR #t <= :t"),
		ExpressionAttributeNames: map[string]string{
			"#t": "lastEventTime", "#id": "lastEventId", "#ty": "Type", "#at": "lastEventAt",
		},
		ExpressionAttributeValues: item{
			":t": &types.AttributeValueMemberN{Value: strconv.FormatInt(t, 10)}, ":id": str(eventID),
			":ty": str(typeClock), ":at": tm(eventTime),
		},
	})
	if isCondFailed(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lineage: observe key event %s of %s: %w", eventID, keyARN, err)
	}
	return true, nil
}
