package lineage

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/keyline/keyline/internal/decl"
)

type item = map[string]types.AttributeValue

// Item types (the Type attribute) and key prefixes.
const (
	typeOrg     = "ORG"
	typeApp     = "APP"
	typeGen     = "GEN"
	typeBackup  = "BACKUP"
	typeBackRef = "BACKUPREF"
	typeSkip    = "SKIP"
	typeRestore = "RESTORE"
	typeAudit   = "AUDIT"
	typeEvent   = "EVENT"
	typeClock   = "KEYCLOCK"
	// typeClockRetired is a CLOCK item the upgrade moved onto its key item (expires by TTL).
	typeClockRetired = "KEYCLOCK_RETIRED"
	typeAccount      = "ACCOUNT"

	skMeta  = "META"
	gsiOrgs = "ORGS"
)

// sortable time: fixed width, UTC, so that string order is time order.
const skTime = "20060102T150405.000000000Z"

func appPK(id string) string       { return decl.AppPartitionPrefix + id }
func orgPK(id string) string       { return decl.OrgPartitionPrefix + id }
func keyPK(arn string) string      { return decl.KeyPartitionPrefix + arn }
func eventPK(id string) string     { return "EVENT#" + id }
func accountPK(id string) string   { return decl.AccountPartitionPrefix + id }
func genSK(n int) string           { return fmt.Sprintf("GEN#%08d", n) }
func backupRefSK(id string) string { return "BACKUPREF#" + id }
func restoreSK(id string) string   { return "RESTORE#" + id }
func backupSK(t time.Time, id string) string {
	return "BACKUP#" + t.UTC().Format(skTime) + "#" + id
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func num(v int64) types.AttributeValue  { return &types.AttributeValueMemberN{Value: fmt.Sprint(v)} }
func tm(t time.Time) types.AttributeValue {
	return &types.AttributeValueMemberS{Value: t.UTC().Format(time.RFC3339Nano)}
}

func keyOf(pk, sk string) item { return item{attrPK: str(pk), attrSK: str(sk)} }

func encOpts(o *attributevalue.EncoderOptions) { o.TagKey = "json" }
func decOpts(o *attributevalue.DecoderOptions) { o.TagKey = "json" }

// marshal encodes v (a domain type, attribute names from its json tags) plus its keys.
func marshal(v any, typ, pk, sk string, extra ...string) (item, error) {
	m, err := attributevalue.MarshalMapWithOptions(v, encOpts)
	if err != nil {
		return nil, fmt.Errorf("lineage: encode %s: %w", typ, err)
	}
	m[attrPK] = str(pk)
	m[attrSK] = str(sk)
	m["Type"] = str(typ)
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = str(extra[i+1])
	}
	return m, nil
}

func unmarshal(m item, v any) error {
	if err := attributevalue.UnmarshalMapWithOptions(m, v, decOpts); err != nil {
		return fmt.Errorf("lineage: decode item %v/%v: %w", m[attrPK], m[attrSK], err)
	}
	return nil
}

// appItem encodes an app as stored: its status is ACTIVE or REENCRYPTING (whether a
// generation is pending), never DEACTIVATED, which is derived on read (key.go, K1); the
// derived reason is not stored either.
func (s *Store) appItem(a App) (item, error) {
	a.Status = storedStatus(a)
	if a.Status == AppActive {
		a.StatusReason = ""
	} else if !strings.HasPrefix(a.StatusReason, "re-encrypting") {
		a.StatusReason = fmt.Sprintf("re-encrypting from generation %d to generation %d", a.ActiveGeneration, a.PendingGeneration)
	}
	return marshal(a, typeApp, appPK(a.ID), skMeta, attrGSI1PK, orgPK(a.OrgID), attrGSI1SK, "APP#"+a.ID)
}

// storedStatus is the status an app item stores: REENCRYPTING while a generation is pending.
func storedStatus(a App) AppStatus {
	if a.PendingGeneration != 0 {
		return AppReencrypting
	}
	return AppActive
}

// gsiGenPrefix is the start of a generation's GSI1 sort key in state st: generations on a
// key are listed by state (PENDING ones for B8, ACTIVE ones for the notifications) without
// reading the others.
func gsiGenPrefix(st GenerationState) string { return string(st) + "#APP#" }

// prefixEnd is the least string above every string that starts with prefix (a prefix that
// ends with an ASCII byte below 0x7f, such as "GEN#"): a sort key starts with prefix exactly
// when it is BETWEEN prefix AND prefixEnd(prefix), no key being prefixEnd itself. Prefix
// queries use BETWEEN rather than begins_with: both are one seek in DynamoDB, but DynamoDB
// Local scans the whole partition for begins_with (at 100,000 apps on a key, about 100 ms
// a query against a few ms for BETWEEN).
func prefixEnd(prefix string) string {
	return prefix[:len(prefix)-1] + string(prefix[len(prefix)-1]+1)
}

func gsiGenSK(st GenerationState, appID string, n int) string {
	return fmt.Sprintf("%s%s#GEN#%08d", gsiGenPrefix(st), appID, n)
}

func (s *Store) genItem(g Generation) (item, error) {
	g.KeyRevoked, g.KeyReason = false, ""
	if g.KeyARN == "" {
		return marshal(g, typeGen, appPK(g.AppID), genSK(g.Number))
	}
	return marshal(g, typeGen, appPK(g.AppID), genSK(g.Number),
		attrGSI1PK, keyPK(g.KeyARN), attrGSI1SK, gsiGenSK(g.State, g.AppID, g.Number))
}

func (s *Store) put(m item, cond string, names map[string]string, values item) types.TransactWriteItem {
	p := &types.Put{TableName: aws.String(s.table), Item: m}
	if cond != "" {
		p.ConditionExpression = aws.String(cond)
	}
	if len(names) > 0 {
		p.ExpressionAttributeNames = names
	}
	if len(values) > 0 {
		p.ExpressionAttributeValues = values
	}
	return types.TransactWriteItem{Put: p}
}

func (s *Store) putNew(m item) types.TransactWriteItem {
	return s.put(m, "attribute_not_exists(PK)", nil, nil)
}

func (s *Store) update(key item, expr, cond string, names map[string]string, values item) types.TransactWriteItem {
	u := &types.Update{TableName: aws.String(s.table), Key: key, UpdateExpression: aws.String(expr)}
	if cond != "" {
		u.ConditionExpression = aws.String(cond)
	}
	if len(names) > 0 {
		u.ExpressionAttributeNames = names
	}
	if len(values) > 0 {
		u.ExpressionAttributeValues = values
	}
	return types.TransactWriteItem{Update: u}
}

func (s *Store) check(key item, cond string, names map[string]string, values item) types.TransactWriteItem {
	c := &types.ConditionCheck{TableName: aws.String(s.table), Key: key, ConditionExpression: aws.String(cond)}
	if len(names) > 0 {
		c.ExpressionAttributeNames = names
	}
	if len(values) > 0 {
		c.ExpressionAttributeValues = values
	}
	return types.TransactWriteItem{ConditionCheck: c}
}

// genStateUpdate moves a generation from one state to another, conditionally, and its
// GSI1 sort key with it (only a generation with a key has one).
func (s *Store) genStateUpdate(g Generation, from []GenerationState, to GenerationState, reason string, now time.Time) types.TransactWriteItem {
	appID, n := g.AppID, g.Number
	names := map[string]string{"#st": "state", "#sr": "stateReason", "#since": "since"}
	values := item{":to": str(string(to)), ":sr": str(reason), ":now": tm(now)}
	expr := "SET #st = :to, #sr = :sr, #since = :now"
	if g.KeyARN != "" {
		names["#gsk"] = attrGSI1SK
		values[":gsk"] = str(gsiGenSK(to, appID, n))
		expr += ", #gsk = :gsk"
	}
	var conds []string
	for i, f := range from {
		k := fmt.Sprintf(":from%d", i)
		values[k] = str(string(f))
		conds = append(conds, "#st = "+k)
	}
	return s.update(keyOf(appPK(appID), genSK(n)), expr, "attribute_exists(PK) AND ("+strings.Join(conds, " OR ")+")", names, values)
}

// txFailure describes a canceled transaction: which items' conditions failed.
type txFailure struct {
	codes []string
	err   error
}

func (f *txFailure) Error() string { return fmt.Sprintf("transaction canceled %v: %v", f.codes, f.err) }
func (f *txFailure) Unwrap() error { return f.err }

// failed reports whether item i's condition failed.
func (f *txFailure) failed(i int) bool {
	return i < len(f.codes) && f.codes[i] == "ConditionalCheckFailed"
}

// retryable reports whether re-reading and trying again may succeed.
func (f *txFailure) retryable() bool {
	if len(f.codes) == 0 {
		return true
	}
	for _, c := range f.codes {
		switch c {
		case "ConditionalCheckFailed", "TransactionConflict":
			return true
		}
	}
	return false
}

// transact runs the items as one TransactWriteItems. A canceled transaction is a *txFailure.
func (s *Store) transact(ctx context.Context, items []types.TransactWriteItem) error {
	if len(items) == 0 {
		return nil
	}
	_, err := s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err == nil {
		return nil
	}
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		f := &txFailure{err: err}
		for _, r := range tc.CancellationReasons {
			f.codes = append(f.codes, aws.ToString(r.Code))
		}
		return f
	}
	var tce *types.TransactionConflictException
	if errors.As(err, &tce) {
		return &txFailure{codes: []string{"TransactionConflict"}, err: err}
	}
	return fmt.Errorf("lineage: transact: %w", err)
}

func isCondFailed(err error) bool {
	var cf *types.ConditionalCheckFailedException
	return errors.As(err, &cf)
}

// backoff sleeps a little, growing with the attempt, with jitter.
func backoff(ctx context.Context, attempt int) error {
	d := time.Duration(2<<min(attempt, 6)) * time.Millisecond
	d = d/2 + time.Duration(rand.Int64N(int64(d)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// getItem reads one item with a strongly consistent read; nil when absent.
func (s *Store) getItem(ctx context.Context, pk, sk string) (item, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: keyOf(pk, sk), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("lineage: get %s/%s: %w", pk, sk, err)
	}
	return out.Item, nil
}

// queryPrefix reads every item of partition pk whose sort key begins with prefix, in order,
// through all pages (strongly consistent).
func (s *Store) queryPrefix(ctx context.Context, pk, prefix string, fn func(item) error) error {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("PK = :pk AND SK BETWEEN :pre AND :end"),
		ExpressionAttributeValues: item{":pk": str(pk), ":pre": str(prefix), ":end": str(prefixEnd(prefix))},
		ConsistentRead:            aws.Bool(true),
	}
	if s.limit > 0 {
		in.Limit = aws.Int32(s.limit)
	}
	p := dynamodb.NewQueryPaginator(s.db, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("lineage: query %s/%s*: %w", pk, prefix, err)
		}
		for _, it := range out.Items {
			if err := fn(it); err != nil {
				return err
			}
		}
	}
	return nil
}

// validID accepts ids that keep the keys unambiguous.
func validID(kind, id string) error {
	if id == "" {
		return invalid("%s id is empty", kind)
	}
	if len(id) > 200 {
		return invalid("%s id is longer than 200 characters", kind)
	}
	for _, r := range id {
		if r == '#' || r <= ' ' || r == 0x7f {
			return invalid("%s id %q contains '#', a space or a control character", kind, id)
		}
	}
	return nil
}
