package lineage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

const defaultPageSize = 100

// CreateOrg creates an org (ID required; CreatedAt defaults to now) with its enrolled accounts
// and optional key ARNs (validated, see Org). ErrDuplicate if it exists; ErrAccountEnrolled if
// another org enrolled one of its accounts. The org item and one claim item per account
// (`ACCOUNT#<id>`/`META`, naming the org) are written in one transaction, each only if absent,
// so an AWS account belongs to one org whatever the concurrency.
func (s *Store) CreateOrg(ctx context.Context, org Org) (Org, error) {
	if err := validID("org", org.ID); err != nil {
		return Org{}, err
	}
	if err := validateEnrolment(&org); err != nil {
		return Org{}, err
	}
	if org.CreatedAt.IsZero() {
		org.CreatedAt = s.clock.Now()
	}
	org.CreatedAt = org.CreatedAt.UTC()
	m, err := marshal(org, typeOrg, orgPK(org.ID), skMeta, attrGSI1PK, gsiOrgs, attrGSI1SK, "ORG#"+org.ID)
	if err != nil {
		return Org{}, err
	}
	items := []types.TransactWriteItem{s.putNew(m)}
	for _, a := range org.Accounts {
		claim, err := marshal(accountClaim{OrgID: org.ID, CreatedAt: org.CreatedAt}, typeAccount, accountPK(a), skMeta)
		if err != nil {
			return Org{}, err
		}
		items = append(items, s.putNew(claim))
	}
	err = s.transact(ctx, items)
	var tf *txFailure
	if errors.As(err, &tf) {
		if tf.failed(0) {
			return Org{}, fmt.Errorf("%w: org %s exists", ErrDuplicate, org.ID)
		}
		for i, a := range org.Accounts {
			if tf.failed(i + 1) {
				return Org{}, &AccountEnrolledError{Account: a}
			}
		}
	}
	if err != nil {
		return Org{}, fmt.Errorf("lineage: create org %s: %w", org.ID, err)
	}
	return org, nil
}

// accountClaim is the item that ties an enrolled AWS account to its one org.
type accountClaim struct {
	OrgID     string    `json:"OrgID"`
	CreatedAt time.Time `json:"CreatedAt"`
}

// AccountOrg returns the org that enrolled an AWS account, or ErrNotFound.
func (s *Store) AccountOrg(ctx context.Context, account string) (string, error) {
	if !ValidAccountID(account) {
		return "", invalid("%q is not an AWS account id (12 digits)", account)
	}
	m, err := s.getItem(ctx, accountPK(account), skMeta)
	if err != nil {
		return "", err
	}
	if m == nil {
		return "", notFound("account %s", account)
	}
	var c accountClaim
	if err := unmarshal(m, &c); err != nil {
		return "", err
	}
	return c.OrgID, nil
}

// GetOrg returns an org, or ErrNotFound.
func (s *Store) GetOrg(ctx context.Context, orgID string) (Org, error) {
	if err := validID("org", orgID); err != nil {
		return Org{}, err
	}
	m, err := s.getItem(ctx, orgPK(orgID), skMeta)
	if err != nil {
		return Org{}, err
	}
	if m == nil {
		return Org{}, notFound("org %s", orgID)
	}
	var o Org
	return o, unmarshal(m, &o)
}

// ListOrgs returns one page of orgs ordered by id; cursor "" starts, limit <= 0 means 100.
func (s *Store) ListOrgs(ctx context.Context, cursor string, limit int) (Page[Org], error) {
	var page Page[Org]
	after, err := decodeCursor(cursor)
	if err != nil {
		return page, err
	}
	if limit <= 0 {
		limit = defaultPageSize
	}
	items, more, err := s.gsiAfter(ctx, gsiOrgs, "ORG#", after.Org, limit)
	if err != nil {
		return page, err
	}
	for _, m := range items {
		var o Org
		if err := unmarshal(m, &o); err != nil {
			return page, err
		}
		page.Items = append(page.Items, o)
	}
	if more && len(page.Items) > 0 {
		page.Next = encodeCursor(listCursor{Org: page.Items[len(page.Items)-1].ID})
	}
	return page, nil
}

// gsiAfter reads up to limit items of GSI1 partition pk whose sort key is prefix+id with id
// after the given one ("" = from the start), and whether more may follow.
func (s *Store) gsiAfter(ctx context.Context, pk, prefix, after string, limit int) ([]item, bool, error) {
	in := &dynamodb.QueryInput{
		TableName: aws.String(s.table),
		IndexName: aws.String(GSI1),
		ExpressionAttributeNames: map[string]string{
			"#pk": attrGSI1PK, "#sk": attrGSI1SK,
		},
	}
	if after == "" {
		in.KeyConditionExpression = aws.String("#pk = :pk AND #sk BETWEEN :pre AND :end")
		in.ExpressionAttributeValues = item{":pk": str(pk), ":pre": str(prefix), ":end": str(prefixEnd(prefix))}
	} else {
		// Each of these GSI1 partitions holds only sort keys of this prefix.
		in.KeyConditionExpression = aws.String("#pk = :pk AND #sk > :after")
		in.ExpressionAttributeValues = item{":pk": str(pk), ":after": str(prefix + after)}
	}
	var out []item
	for {
		want := limit + 1 - len(out)
		in.Limit = aws.Int32(int32(want))
		if s.limit > 0 && s.limit < int32(want) {
			in.Limit = aws.Int32(s.limit)
		}
		res, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, false, fmt.Errorf("lineage: query %s %s: %w", GSI1, pk, err)
		}
		out = append(out, res.Items...)
		if len(out) > limit {
			return out[:limit], true, nil
		}
		if res.LastEvaluatedKey == nil {
			return out, false, nil
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
}

type listCursor struct {
	Org string `json:"o,omitempty"`
	App string `json:"a,omitempty"`
}

func encodeCursor(c listCursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (listCursor, error) {
	var c listCursor
	if s == "" {
		return c, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		return c, invalid("malformed cursor %q", s)
	}
	return c, nil
}

// CreateApp creates the app with generation 1 ACTIVE (firstKeyARN, wrappedDataKey) and an
// audit entry, in one transaction. app.ID and app.OrgID are required and the org must exist;
// KeyModel defaults to managed; a cmk app requires firstKeyARN (R1). Status, generations and
// Version are set by the store. ErrDuplicate if the app exists. The wrapped data key's
// encryption context must name generation 1.
func (s *Store) CreateApp(ctx context.Context, app App, firstKeyARN string, wrappedDataKey []byte, cause Cause) (App, error) {
	if err := validID("app", app.ID); err != nil {
		return App{}, err
	}
	if err := validID("org", app.OrgID); err != nil {
		return App{}, err
	}
	if app.KeyModel == "" {
		app.KeyModel = KeyModelManaged
	}
	if !app.KeyModel.Valid() {
		return App{}, invalid("app %s: unknown key model %q (want cmk or managed)", app.ID, app.KeyModel)
	}
	if app.KeyModel == KeyModelCMK && firstKeyARN == "" {
		return App{}, invalid("app %s: a cmk app needs the customer's key ARN", app.ID)
	}
	now := s.clock.Now().UTC()
	if app.CreatedAt.IsZero() {
		app.CreatedAt = now
	}
	app.CreatedAt = app.CreatedAt.UTC()
	app.Status, app.StatusReason = AppActive, ""
	app.ActiveGeneration, app.PendingGeneration, app.LatestGeneration = 1, 0, 1
	app.Version = 1
	app.ActiveKeyARN, app.PendingKeyARN, app.Hold = firstKeyARN, "", ""
	app.BackupLease = nil
	app.LastBackupAt = time.Time{}
	gen := Generation{AppID: app.ID, OrgID: app.OrgID, Number: 1, KeyARN: firstKeyARN, KeyModel: app.KeyModel,
		State: GenActive, Since: now, WrappedDataKey: wrappedDataKey, CreatedAt: now}
	am, err := s.appItem(app)
	if err != nil {
		return App{}, err
	}
	gm, err := s.genItem(gen)
	if err != nil {
		return App{}, err
	}
	audit, err := s.auditItem(AuditEntry{AppID: app.ID, Action: ActionAppCreated, Cause: cause, Detail: map[string]string{
		"orgId": app.OrgID, "keyModel": string(app.KeyModel), "keyArn": firstKeyARN, "generation": "1",
	}}, now)
	if err != nil {
		return App{}, err
	}
	if err := s.noteKeyOrg(ctx, firstKeyARN, app.OrgID); err != nil {
		return App{}, err
	}
	items := []types.TransactWriteItem{
		s.check(keyOf(orgPK(app.OrgID), skMeta), "attribute_exists(PK)", nil, nil),
		s.putNew(am), s.putNew(gm), audit,
	}
	items = append(items, s.keyUsableChecks(firstKeyARN)...)
	err = s.transact(ctx, items)
	var f *txFailure
	switch {
	case err == nil:
		return app, nil
	case errors.As(err, &f) && f.failed(1):
		return App{}, fmt.Errorf("%w: app %s exists", ErrDuplicate, app.ID)
	case errors.As(err, &f) && f.failed(0):
		return App{}, notFound("org %s (create it before its apps)", app.OrgID)
	case errors.As(err, &f) && f.failed(4):
		return App{}, conflict(app.ID, ErrKeyRevoked, "key %s is revoked: an app cannot be created on it", firstKeyARN)
	}
	return App{}, fmt.Errorf("lineage: create app %s: %w", app.ID, err)
}

// GetApp returns the app with its derived status (strongly consistent reads of the app and
// of its keys), or ErrNotFound.
func (s *Store) GetApp(ctx context.Context, appID string) (App, error) {
	a, _, err := s.getAppKeys(ctx, appID)
	return a, err
}

// ActiveKey returns the app and its active generation, both with their derived state: check
// app.Status and gen.Usable().
func (s *Store) ActiveKey(ctx context.Context, appID string) (App, Generation, error) {
	app, keys, err := s.getAppKeys(ctx, appID)
	if err != nil {
		return App{}, Generation{}, err
	}
	gen, err := s.getGenRaw(ctx, appID, app.ActiveGeneration)
	if err != nil {
		return App{}, Generation{}, err
	}
	deriveGen(&gen, &app, keys)
	return app, gen, nil
}

// ListApps returns one page of all apps (ordered by org, then app id); cursor "" starts,
// limit <= 0 means 100. It reads the org listing and each org's apps through GSI1 (Query,
// no Scan), so it is eventually consistent like any index read.
func (s *Store) ListApps(ctx context.Context, cursor string, limit int) (Page[App], error) {
	var page Page[App]
	c, err := decodeCursor(cursor)
	if err != nil {
		return page, err
	}
	if limit <= 0 {
		limit = defaultPageSize
	}
	org, afterApp := c.Org, c.App
	if org == "" {
		first, _, err := s.gsiAfter(ctx, gsiOrgs, "ORG#", "", 1)
		if err != nil || len(first) == 0 {
			return page, err
		}
		var o Org
		if err := unmarshal(first[0], &o); err != nil {
			return page, err
		}
		org = o.ID
	}
	for {
		apps, more, err := s.gsiAfter(ctx, orgPK(org), "APP#", afterApp, limit-len(page.Items))
		if err != nil {
			return page, err
		}
		for _, m := range apps {
			var a App
			if err := unmarshal(m, &a); err != nil {
				return page, err
			}
			page.Items = append(page.Items, a)
		}
		if more {
			page.Next = encodeCursor(listCursor{Org: org, App: page.Items[len(page.Items)-1].ID})
			return page, s.deriveApps(ctx, page.Items)
		}
		nextOrg, _, err := s.gsiAfter(ctx, gsiOrgs, "ORG#", org, 1)
		if err != nil {
			return page, err
		}
		if len(nextOrg) == 0 {
			return page, s.deriveApps(ctx, page.Items)
		}
		var o Org
		if err := unmarshal(nextOrg[0], &o); err != nil {
			return page, err
		}
		org, afterApp = o.ID, ""
		if len(page.Items) >= limit {
			page.Next = encodeCursor(listCursor{Org: org})
			return page, s.deriveApps(ctx, page.Items)
		}
	}
}

// ListAppsByOrg returns one page of an org's apps ordered by app id (GSI1, eventually
// consistent); cursor "" starts, limit <= 0 means 100.
func (s *Store) ListAppsByOrg(ctx context.Context, orgID, cursor string, limit int) (Page[App], error) {
	var page Page[App]
	if err := validID("org", orgID); err != nil {
		return page, err
	}
	c, err := decodeCursor(cursor)
	if err != nil {
		return page, err
	}
	if c.Org != "" && c.Org != orgID {
		return page, invalid("cursor belongs to another listing")
	}
	if limit <= 0 {
		limit = defaultPageSize
	}
	apps, more, err := s.gsiAfter(ctx, orgPK(orgID), "APP#", c.App, limit)
	if err != nil {
		return page, err
	}
	for _, m := range apps {
		var a App
		if err := unmarshal(m, &a); err != nil {
			return page, err
		}
		page.Items = append(page.Items, a)
	}
	if more {
		page.Next = encodeCursor(listCursor{Org: orgID, App: page.Items[len(page.Items)-1].ID})
	}
	return page, s.deriveApps(ctx, page.Items)
}

// GetGeneration returns generation n of the app, or ErrNotFound.
func (s *Store) GetGeneration(ctx context.Context, appID string, n int) (Generation, error) {
	if err := validID("app", appID); err != nil {
		return Generation{}, err
	}
	if n < 1 {
		return Generation{}, invalid("generation %d of app %s: generations start at 1", n, appID)
	}
	g, err := s.getGenRaw(ctx, appID, n)
	if err != nil {
		return Generation{}, err
	}
	var app *App
	if g.State == GenRevoked {
		a, err := s.getAppRaw(ctx, appID)
		if err != nil {
			return Generation{}, err
		}
		app = &a
	}
	keys, err := s.getKeys(ctx, []string{g.KeyARN})
	if err != nil {
		return Generation{}, err
	}
	deriveGen(&g, app, keys)
	return g, nil
}

// ListGenerations returns the app's lineage, generation 1 first, each with its derived key
// state (one BatchGetItem of their keys); ErrNotFound if the app has none, i.e. does not
// exist.
func (s *Store) ListGenerations(ctx context.Context, appID string) ([]Generation, error) {
	if err := validID("app", appID); err != nil {
		return nil, err
	}
	var out []Generation
	err := s.queryPrefix(ctx, appPK(appID), "GEN#", func(m item) error {
		var g Generation
		if err := unmarshal(m, &g); err != nil {
			return err
		}
		out = append(out, g)
		return nil
	})
	if err == nil && len(out) == 0 {
		return nil, notFound("app %s", appID)
	}
	if err != nil {
		return nil, err
	}
	return out, s.deriveGens(ctx, appID, out)
}

// deriveGens derives the key state of an app's generations with one BatchGetItem.
func (s *Store) deriveGens(ctx context.Context, appID string, gens []Generation) error {
	var arns []string
	var app *App
	for _, g := range gens {
		arns = append(arns, g.KeyARN)
		if g.State == GenRevoked && app == nil {
			a, err := s.getAppRaw(ctx, appID)
			if err != nil {
				return err
			}
			app = &a
		}
	}
	keys, err := s.getKeys(ctx, arns)
	if err != nil {
		return err
	}
	for i := range gens {
		deriveGen(&gens[i], app, keys)
	}
	return nil
}
