package iam

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// This file generates varied requests and policies shaped like the ones
// keyline deploys: Lambda roles in the platform account with KMS actions
// conditioned on the keyline:org / keyline:app encryption context, S3
// prefix and DynamoDB leading-key conditions; customer key policies that
// delegate to their account root or name the platform's roles and pin
// kms:EncryptionContext:keyline:org; bucket, table and bus policies.

const (
	platformAccount = "000000000000"
	customerA       = "111111111111"
	customerB       = "222222222222"
	strangerAccount = "333333333333"
	region          = "us-east-1"
	keylineBus      = "arn:aws:events:us-east-1:000000000000:event-bus/keyline"
	lineageTable    = "arn:aws:dynamodb:us-east-1:000000000000:table/keyline-lineage"
	backupBucket    = "keyline-backups-000000000000"
	keylineFunction = "arn:aws:lambda:us-east-1:000000000000:function:keyline-backup"
	ctxOrg          = "kms:EncryptionContext:keyline:org"
	ctxApp          = "kms:EncryptionContext:keyline:app"
	ctxKeys         = "kms:EncryptionContextKeys"
)

var (
	genAccounts  = []string{platformAccount, customerA, customerB, strangerAccount}
	genRoles     = []string{"keyline-backupupload", "keyline-restore", "keyline-keyhealth", "keyline-revoke", "customer-admin"}
	genOrgs      = []string{"org-1", "org-2", "org-3"}
	genApps      = []string{"app-1", "app-2", "billing", "App-1"}
	genKMSCrypto = []string{"kms:GenerateDataKey", "kms:Decrypt", "kms:Encrypt", "kms:ReEncryptFrom", "kms:GenerateDataKeyWithoutPlaintext"}
	genKMSAdmin  = []string{"kms:DescribeKey", "kms:ScheduleKeyDeletion", "kms:DisableKey", "kms:EnableKey", "kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:CancelKeyDeletion"}
	genS3Object  = []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
	genDynamo    = []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}
	genServices  = []string{"events.amazonaws.com", "lambda.amazonaws.com", "s3.amazonaws.com"}
)

type generator struct {
	r *rand.Rand
	// The request being generated, so that some statements target it.
	hintAction, hintResource, hintRole, hintAccount string
}

func newGenerator(seed uint64) *generator {
	return &generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *generator) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }
func (g *generator) chance(p float64) bool   { return g.r.Float64() < p }

func keyARN(account string, n int) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%08d-1111-2222-3333-444444444444", region, account, n)
}

func roleARN(account, role string) string {
	return "arn:aws:iam::" + account + ":role/" + role
}

// jsonList renders one string or an array.
func (g *generator) jsonList(xs ...string) string {
	if len(xs) == 1 && g.chance(0.5) {
		return fmt.Sprintf("%q", xs[0])
	}
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return "[" + strings.Join(q, ",") + "]"
}

func (g *generator) some(xs []string, max int) []string {
	n := 1 + g.r.IntN(max)
	out := make([]string, 0, n)
	seen := map[string]bool{}
	for len(out) < n {
		x := g.pick(xs)
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
		if len(seen) == len(xs) {
			break
		}
	}
	return out
}

// kmsCondition is a condition block over the encryption context and
// request keys, or "" for none.
func (g *generator) kmsCondition() string {
	var parts []string
	add := func(op, key, vals string) { parts = append(parts, fmt.Sprintf("%q:{%q:%s}", op, key, vals)) }
	switch g.r.IntN(16) {
	case 0, 1:
		add("StringEquals", ctxOrg, g.jsonList(g.some(genOrgs, 2)...))
	case 2:
		add("StringLike", ctxApp, g.jsonList("app-*"))
	case 3:
		add("ForAllValues:StringEquals", ctxKeys, g.jsonList("keyline:org", "keyline:app"))
	case 4:
		add("ForAnyValue:StringEquals", ctxKeys, g.jsonList("keyline:app"))
	case 5:
		add("Null", ctxApp, g.jsonList(g.pick([]string{"true", "false"})))
	case 6:
		add("StringEqualsIfExists", "kms:ViaService", g.jsonList("s3.us-east-1.amazonaws.com", "dynamodb.us-east-1.amazonaws.com"))
	case 7:
		add("Bool", "aws:SecureTransport", g.jsonList(g.pick([]string{"true", "false"})))
	case 8:
		add("StringNotEquals", ctxOrg, g.jsonList(g.pick(genOrgs)))
	case 9:
		add("StringEqualsIgnoreCase", ctxApp, g.jsonList("app-1"))
	case 10:
		add("StringNotLike", ctxApp, g.jsonList("bill*", "x?y"))
	case 11:
		add("StringEquals", "kms:CallerAccount", g.jsonList(g.some(genAccounts, 2)...))
	case 12:
		add("ForAllValues:StringLike", ctxKeys, g.jsonList("keyline:*"))
	case 13:
		add(g.pick([]string{"ForAnyValue:StringEqualsIfExists", "ForAnyValue:StringNotEqualsIfExists", "ForAllValues:StringEqualsIfExists"}), ctxKeys, g.jsonList("keyline:org"))
	}
	if g.chance(0.3) {
		add("StringEquals", "aws:ResourceAccount", g.jsonList(g.pick(genAccounts)))
	}
	if g.chance(0.2) {
		add("StringNotEqualsIfExists", "aws:SourceAccount", g.jsonList(strangerAccount))
	}
	if g.chance(0.2) {
		add("ArnLike", "aws:PrincipalArn", g.jsonList("arn:aws:iam::*:role/keyline-*"))
	}
	if g.chance(0.15) {
		add("ArnNotEquals", "aws:PrincipalArn", g.jsonList(roleARN(platformAccount, "keyline-revoke")))
	}
	if len(parts) == 0 {
		return ""
	}
	// Several keys under one operator must be merged into one object.
	return mergeConditions(parts)
}

// mergeConditions merges `"Op":{"k":v}` parts, combining keys of the same
// operator into one object (JSON objects cannot repeat a name).
func mergeConditions(parts []string) string {
	byOp := map[string][]string{}
	var order []string
	for _, p := range parts {
		op, rest, _ := strings.Cut(p, ":{")
		if _, ok := byOp[op]; !ok {
			order = append(order, op)
		}
		byOp[op] = append(byOp[op], strings.TrimSuffix(rest, "}"))
	}
	var out []string
	for _, op := range order {
		seen := map[string]bool{}
		var keys []string
		for _, kv := range byOp[op] {
			k, _, _ := strings.Cut(kv, ":")
			if !seen[k] {
				seen[k] = true
				keys = append(keys, kv)
			}
		}
		out = append(out, op+":{"+strings.Join(keys, ",")+"}")
	}
	return `,"Condition":{` + strings.Join(out, ",") + "}"
}

func (g *generator) effect() string {
	if g.chance(0.2) {
		return "Deny"
	}
	return "Allow"
}

// identityPolicy generates a role's identity-based policy of 1–10
// statements.
func (g *generator) identityPolicy(name string) *Policy {
	n := 1 + g.r.IntN(10)
	var stmts []string
	for i := 0; i < n; i++ {
		sid := fmt.Sprintf(`"Sid":"S%d",`, i)
		if g.chance(0.2) {
			sid = ""
		}
		var body string
		if g.hintAction != "" && g.chance(0.25) {
			stmts = append(stmts, "{"+sid+g.targeted(true)+"}")
			continue
		}
		switch g.r.IntN(9) {
		case 0, 1, 2:
			res := g.pick([]string{keyARN(g.pick(genAccounts), g.r.IntN(3)), "arn:aws:kms:*:" + g.pick(genAccounts) + ":key/*", "*", "arn:aws:kms:us-east-1:*:key/0000000?-*"})
			body = fmt.Sprintf(`"Effect":%q,"Action":%s,"Resource":%s%s`, g.effect(), g.jsonList(g.some(append(genKMSCrypto, "kms:GenerateDataKey*", "kms:*", "KMS:decrypt"), 3)...), g.jsonList(res), g.kmsCondition())
		case 3:
			body = fmt.Sprintf(`"Effect":%q,"NotAction":%s,"Resource":%s`, g.effect(), g.jsonList(g.some(genKMSAdmin, 3)...), g.jsonList("arn:aws:kms:*:*:key/*"))
		case 4:
			body = fmt.Sprintf(`"Effect":"Allow","Action":%s,"NotResource":%s`, g.jsonList(g.some(append(genKMSAdmin, "kms:Describe*"), 2)...), g.jsonList(keyARN(g.pick(genAccounts), g.r.IntN(3))))
		case 5:
			prefix := "org/" + g.pick(genOrgs) + "/*"
			body = fmt.Sprintf(`"Effect":%q,"Action":%s,"Resource":%s`, g.effect(), g.jsonList(g.some(genS3Object, 2)...), g.jsonList("arn:aws:s3:::"+backupBucket+"/"+prefix))
		case 6:
			cond := ""
			switch g.r.IntN(3) {
			case 0:
				cond = fmt.Sprintf(`,"Condition":{"StringLike":{"s3:prefix":%s}}`, g.jsonList("org/"+g.pick(genOrgs)+"/*"))
			case 1:
				cond = `,"Condition":{"NumericLessThanEquals":{"s3:max-keys":"1000"}}`
			}
			body = fmt.Sprintf(`"Effect":%q,"Action":"s3:ListBucket","Resource":"arn:aws:s3:::%s"%s`, g.effect(), backupBucket, cond)
		case 7:
			cond := ""
			switch g.r.IntN(3) {
			case 0:
				cond = fmt.Sprintf(`,"Condition":{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":%s}}`, g.jsonList("ORG#"+g.pick(genOrgs)+"*"))
			case 1:
				cond = fmt.Sprintf(`,"Condition":{"ForAnyValue:StringEquals":{"dynamodb:LeadingKeys":%s}}`, g.jsonList("ORG#"+g.pick(genOrgs)))
			}
			body = fmt.Sprintf(`"Effect":%q,"Action":%s,"Resource":%s%s`, g.effect(), g.jsonList(g.some(append(genDynamo, "dynamodb:*"), 2)...), g.jsonList(lineageTable, lineageTable+"/index/*"), cond)
		case 8:
			body = fmt.Sprintf(`"Effect":%q,"Action":["events:PutEvents","lambda:InvokeFunction"],"Resource":[%q,%q]`, g.effect(), keylineBus, keylineFunction)
		}
		stmts = append(stmts, "{"+sid+body+"}")
	}
	return MustParsePolicy(name, `{"Version":"2012-10-17","Statement":[`+strings.Join(stmts, ",")+`]}`)
}

// targeted renders a statement body aimed at the request being generated:
// its action (or a wildcard over it), its resource or "*", and a condition
// of the kind the service uses.
func (g *generator) targeted(identity bool) string {
	action := g.hintAction
	svc, name, _ := strings.Cut(action, ":")
	switch g.r.IntN(5) {
	case 0:
		action = svc + ":*"
	case 1:
		action = strings.ToLower(action)
	case 2:
		action = svc + ":" + name[:len(name)/2] + "*"
	}
	resource := g.hintResource
	if g.chance(0.4) {
		resource = "*"
	}
	eff := "Allow"
	if g.chance(0.15) {
		eff = "Deny"
	}
	cond := ""
	switch svc {
	case "kms":
		cond = g.kmsCondition()
	case "s3":
		if g.chance(0.5) {
			cond = fmt.Sprintf(`,"Condition":{"StringLikeIfExists":{"s3:prefix":%s}}`, g.jsonList("org/"+g.pick(genOrgs)+"/*"))
		}
	case "dynamodb":
		switch g.r.IntN(4) {
		case 0:
			cond = fmt.Sprintf(`,"Condition":{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":%s}}`, g.jsonList("ORG#"+g.pick(genOrgs)+"*"))
		case 1:
			cond = fmt.Sprintf(`,"Condition":{"ForAnyValue:StringEqualsIfExists":{"dynamodb:LeadingKeys":%s}}`, g.jsonList("ORG#"+g.pick(genOrgs), "APP#x"))
		case 2:
			cond = fmt.Sprintf(`,"Condition":{"ForAllValues:StringNotLike":{"dynamodb:LeadingKeys":%s}}`, g.jsonList("APP#*"))
		}
	default:
		if g.chance(0.4) {
			cond = fmt.Sprintf(`,"Condition":{"StringEqualsIfExists":{"aws:SourceAccount":%s}}`, g.jsonList(g.some(genAccounts, 2)...))
		}
	}
	principal := ""
	if !identity {
		principal = `"Principal":` + g.principal() + ","
	}
	return fmt.Sprintf(`"Effect":%q,%s"Action":%q,"Resource":%q%s`, eff, principal, action, resource, cond)
}

// principal renders a Principal element.
func (g *generator) principal() string {
	if g.hintRole != "" && g.chance(0.3) {
		if strings.HasSuffix(g.hintRole, servicePrincipalTL) {
			return fmt.Sprintf(`{"Service":%s}`, g.jsonList(g.hintRole))
		}
		return fmt.Sprintf(`{"AWS":%s}`, g.jsonList(g.hintRole))
	}
	if g.hintAccount != "" && g.chance(0.15) {
		return fmt.Sprintf(`{"AWS":%s}`, g.jsonList("arn:aws:iam::"+g.hintAccount+":root"))
	}
	switch g.r.IntN(8) {
	case 0:
		return `"*"`
	case 1:
		return fmt.Sprintf(`{"AWS":%s}`, g.jsonList(g.pick(genAccounts)))
	case 2, 3:
		return fmt.Sprintf(`{"AWS":%s}`, g.jsonList("arn:aws:iam::"+g.pick(genAccounts)+":root"))
	case 4, 5:
		return fmt.Sprintf(`{"AWS":%s}`, g.jsonList(roleARN(platformAccount, g.pick(genRoles[:4])), roleARN(g.pick(genAccounts), g.pick(genRoles))))
	case 6:
		return fmt.Sprintf(`{"Service":%s}`, g.jsonList(g.pick(genServices)))
	}
	return fmt.Sprintf(`{"AWS":%s}`, g.jsonList(roleARN(g.pick(genAccounts), g.pick(genRoles))))
}

// keyPolicy generates a KMS key policy for a key in account.
func (g *generator) keyPolicy(account string) *Policy {
	var stmts []string
	if g.chance(0.6) {
		root := "arn:aws:iam::" + account + ":root"
		if g.chance(0.3) {
			root = account
		}
		actions := `"kms:*"`
		if g.chance(0.2) {
			actions = g.jsonList(g.some(append(genKMSAdmin, "kms:Describe*"), 3)...)
		}
		stmts = append(stmts, fmt.Sprintf(`{"Sid":"EnableIAMUserPermissions","Effect":"Allow","Principal":{"AWS":%q},"Action":%s,"Resource":"*"}`, root, actions))
	}
	n := g.r.IntN(4)
	for i := 0; i < n; i++ {
		if g.chance(0.3) {
			stmts = append(stmts, fmt.Sprintf(`{"Sid":"T%d",`, i)+g.targeted(false)+"}")
			continue
		}
		eff := g.effect()
		princ := g.principal()
		elem := "Principal"
		if eff == "Deny" && g.chance(0.2) {
			elem = "NotPrincipal"
			princ = fmt.Sprintf(`{"AWS":%s}`, g.jsonList(roleARN(platformAccount, g.pick(genRoles[:4])), "arn:aws:iam::"+account+":root"))
		}
		stmts = append(stmts, fmt.Sprintf(`{"Sid":"K%d","Effect":%q,%q:%s,"Action":%s,"Resource":"*"%s}`,
			i, eff, elem, princ, g.jsonList(g.some(append(genKMSCrypto, "kms:GenerateDataKey*", "kms:DescribeKey", "kms:*"), 3)...), g.kmsCondition()))
	}
	if len(stmts) == 0 {
		stmts = append(stmts, fmt.Sprintf(`{"Sid":"OnlyBackup","Effect":"Allow","Principal":{"AWS":%q},"Action":"kms:Decrypt","Resource":"*"}`, roleARN(platformAccount, "keyline-backupupload")))
	}
	return MustParsePolicy("key-policy", `{"Version":"2012-10-17","Id":"key-policy","Statement":[`+strings.Join(stmts, ",")+`]}`)
}

// otherResourcePolicy generates a bucket, table, bus or function policy.
func (g *generator) otherResourcePolicy(resource string) *Policy {
	var action string
	switch {
	case strings.HasPrefix(resource, "arn:aws:s3:::"):
		action = g.jsonList(append(g.some(genS3Object, 2), "s3:ListBucket")...)
		resource = "arn:aws:s3:::" + backupBucket + "*"
	case strings.HasPrefix(resource, "arn:aws:dynamodb"):
		action = g.jsonList(g.some(genDynamo, 3)...)
	case strings.HasPrefix(resource, "arn:aws:events"):
		action = `"events:PutEvents"`
	default:
		action = `"lambda:InvokeFunction"`
	}
	n := 1 + g.r.IntN(3)
	var stmts []string
	for i := 0; i < n; i++ {
		if g.chance(0.3) {
			stmts = append(stmts, fmt.Sprintf(`{"Sid":"T%d",`, i)+g.targeted(false)+"}")
			continue
		}
		cond := ""
		switch g.r.IntN(4) {
		case 0:
			cond = fmt.Sprintf(`,"Condition":{"StringEquals":{"aws:SourceAccount":%s}}`, g.jsonList(g.some(genAccounts, 2)...))
		case 1:
			cond = `,"Condition":{"Bool":{"aws:SecureTransport":"false"}}`
		}
		stmts = append(stmts, fmt.Sprintf(`{"Sid":"R%d","Effect":%q,"Principal":%s,"Action":%s,"Resource":%q%s}`, i, g.effect(), g.principal(), action, resource, cond))
	}
	return MustParsePolicy("resource-policy", `{"Version":"2012-10-17","Statement":[`+strings.Join(stmts, ",")+`]}`)
}

// genCase is one generated evaluation.
type genCase struct {
	req      Request
	identity []*Policy
	resource *Policy
}

// next generates one request with its policies.
func (g *generator) next() genCase {
	var c genCase
	// The caller.
	account := genAccounts[g.r.IntN(3)]
	switch x := g.r.IntN(10); {
	case x == 0:
		c.req.Root = true
		c.req.Principal = RootARN(account)
	case x == 1:
		c.req.Principal = g.pick(genServices)
		account = ""
	case x < 6:
		role := g.pick(genRoles)
		c.req.Principal = "arn:aws:sts::" + account + ":assumed-role/" + role + "/" + role
	default:
		c.req.Principal = roleARN(account, g.pick(genRoles))
	}
	c.req.Account = account
	g.hintAccount, g.hintRole = account, ""
	if strings.Contains(c.req.Principal, ":assumed-role/") || strings.Contains(c.req.Principal, ":role/") {
		role := c.req.Principal[strings.LastIndex(c.req.Principal, "role/")+len("role/"):]
		role, _, _ = strings.Cut(role, "/")
		g.hintRole = roleARN(account, role)
	} else if account == "" {
		g.hintRole = c.req.Principal // a service principal
	}

	ctx := Context{}
	if g.chance(0.9) {
		ctx["aws:SecureTransport"] = Bool(g.chance(0.9))
	}
	if account != "" {
		ctx["aws:PrincipalAccount"] = String(account)
		if !c.req.Root && g.chance(0.8) {
			arn := c.req.Principal
			if strings.Contains(arn, ":assumed-role/") {
				parts := strings.Split(arn, "/")
				arn = roleARN(account, parts[1])
			}
			ctx["aws:PrincipalArn"] = String(arn)
		}
	} else if g.chance(0.7) {
		ctx["aws:SourceAccount"] = String(g.pick(genAccounts))
	}

	// The action and resource.
	switch x := g.r.IntN(10); {
	case x < 6:
		keyAccount := g.pick(genAccounts)
		c.req.Resource = keyARN(keyAccount, g.r.IntN(3))
		c.req.ResourceAccount = keyAccount
		if g.chance(0.75) {
			c.req.Action = g.pick(genKMSCrypto)
			keys := []string{}
			if g.chance(0.75) {
				ctx[ctxOrg] = String(g.pick(genOrgs))
				keys = append(keys, "keyline:org")
			}
			if g.chance(0.7) {
				ctx[ctxApp] = String(g.pick(genApps))
				keys = append(keys, "keyline:app")
			}
			if g.chance(0.1) {
				ctx["kms:EncryptionContext:other"] = String("x")
				keys = append(keys, "other")
			}
			if len(keys) > 0 || g.chance(0.5) {
				// An encryption context with no pairs has no keys; the
				// Recorder leaves the empty key out of the request.
				ctx[ctxKeys] = Strings(keys...)
			}
			if g.chance(0.4) {
				ctx["kms:ViaService"] = String(g.pick([]string{"s3.us-east-1.amazonaws.com", "dynamodb.us-east-1.amazonaws.com", "lambda.us-east-1.amazonaws.com"}))
			}
		} else {
			c.req.Action = g.pick(genKMSAdmin)
		}
		if account != "" {
			ctx["kms:CallerAccount"] = String(account)
		}
		g.hintAction, g.hintResource = c.req.Action, c.req.Resource
		if g.chance(0.95) {
			c.resource = g.keyPolicy(keyAccount)
		}
	case x < 8:
		c.req.ResourceAccount = platformAccount
		if g.chance(0.7) {
			c.req.Action = g.pick(genS3Object)
			c.req.Resource = "arn:aws:s3:::" + backupBucket + "/org/" + g.pick(genOrgs) + "/app/" + g.pick(genApps) + "/b1"
		} else {
			c.req.Action = "s3:ListBucket"
			c.req.Resource = "arn:aws:s3:::" + backupBucket
			if g.chance(0.8) {
				ctx["s3:prefix"] = String("org/" + g.pick(genOrgs) + "/")
			}
			if g.chance(0.5) {
				ctx["s3:max-keys"] = String(g.pick([]string{"10", "1000", "5000"}))
			}
		}
		g.hintAction, g.hintResource = c.req.Action, c.req.Resource
		if g.chance(0.5) {
			c.resource = g.otherResourcePolicy(c.req.Resource)
		}
	case x < 9:
		c.req.ResourceAccount = platformAccount
		c.req.Action = g.pick(genDynamo)
		c.req.Resource = lineageTable
		if g.chance(0.75) {
			lk := g.some([]string{"ORG#org-1", "ORG#org-2", "ORG#org-1#APP#a", "APP#x"}, 2)
			ctx["dynamodb:LeadingKeys"] = Strings(lk...)
		}
		g.hintAction, g.hintResource = c.req.Action, c.req.Resource
		if g.chance(0.3) {
			c.resource = g.otherResourcePolicy(c.req.Resource)
		}
	default:
		c.req.ResourceAccount = platformAccount
		if g.chance(0.5) {
			c.req.Action, c.req.Resource = "events:PutEvents", keylineBus
		} else {
			c.req.Action, c.req.Resource = "lambda:InvokeFunction", keylineFunction
		}
		g.hintAction, g.hintResource = c.req.Action, c.req.Resource
		if g.chance(0.7) {
			c.resource = g.otherResourcePolicy(c.req.Resource)
		}
	}
	if g.chance(0.9) {
		ctx["aws:ResourceAccount"] = String(c.req.ResourceAccount)
	}
	c.req.Context = ctx

	if !strings.HasSuffix(c.req.Principal, ".amazonaws.com") {
		for i, n := 0, 1+g.r.IntN(2); i < n; i++ {
			c.identity = append(c.identity, g.identityPolicy(fmt.Sprintf("policy-%d", i)))
		}
	}
	return c
}
