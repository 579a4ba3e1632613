package iam

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

const (
	backupRole    = "arn:aws:iam::000000000000:role/keyline-backupupload"
	backupSession = "arn:aws:sts::000000000000:assumed-role/keyline-backupupload/keyline-backupupload"
	restoreRole   = "arn:aws:iam::000000000000:role/keyline-restore"
	customerKey   = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	platformKey   = "arn:aws:kms:us-east-1:000000000000:key/0000abcd-12ab-34cd-56ef-1234567890ab"
	backupObject  = "arn:aws:s3:::keyline-backups-000000000000/org/org-1/app/a/b1"
	tableA        = "arn:aws:dynamodb:us-east-1:000000000000:table/a"
	tableB        = "arn:aws:dynamodb:us-east-1:000000000000:table/b"
)

var (
	// The backup role's identity policy: data keys for org-1 only; denies
	// everything without TLS.
	roleKMSPolicy = MustParsePolicy("backupupload", `{"Version":"2012-10-17","Statement":[
		{"Sid":"DataKeysForOrg","Effect":"Allow","Action":["KMS:generatedatakey","kms:Decrypt"],"Resource":"arn:aws:kms:*:*:key/*",
		 "Condition":{"StringEquals":{"kms:EncryptionContext:keyline:org":"org-1"}}},
		{"Sid":"Objects","Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::keyline-backups-000000000000/org/*"},
		{"Sid":"DenyInsecure","Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}`)
	keyPolicyRootOnly = func(account string) *Policy {
		return MustParsePolicy("key-policy", `{"Version":"2012-10-17","Statement":[
		{"Sid":"EnableIAMUserPermissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::`+account+`:root"},"Action":"kms:*","Resource":"*"}]}`)
	}
	keyPolicyNamesRole = MustParsePolicy("key-policy", `{"Version":"2012-10-17","Statement":[
		{"Sid":"KeylineBackup","Effect":"Allow","Principal":{"AWS":"`+backupRole+`"},"Action":["kms:GenerateDataKey*","kms:Decrypt"],"Resource":"*",
		 "Condition":{"StringEquals":{"kms:EncryptionContext:keyline:org":"org-1"}}}]}`)
	keyPolicyNamesOtherRole = MustParsePolicy("key-policy", `{"Version":"2012-10-17","Statement":[
		{"Sid":"RestoreOnly","Effect":"Allow","Principal":{"AWS":"`+restoreRole+`"},"Action":"kms:*","Resource":"*"}]}`)
	keyPolicyDelegatesToPlatform = MustParsePolicy("key-policy", `{"Version":"2012-10-17","Statement":[
		{"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"kms:*","Resource":"*"},
		{"Sid":"Keyline","Effect":"Allow","Principal":{"AWS":"000000000000"},"Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*"},
		{"Sid":"PinOrg","Effect":"Deny","Principal":"*","Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*",
		 "Condition":{"StringNotEquals":{"kms:EncryptionContext:keyline:org":"org-1"}}}]}`)
)

func kmsRequest(principal, action, key, org string) *Request {
	ctx := Context{"aws:SecureTransport": Bool(true)}
	if org != "" {
		ctx[ctxOrg] = String(org)
		ctx[ctxKeys] = Strings("keyline:org")
	}
	return &Request{Principal: principal, Action: action, Resource: key, Context: ctx}
}

func TestEvaluate(t *testing.T) {
	secure := Context{"aws:SecureTransport": Bool(true)}
	tests := []struct {
		name     string
		req      *Request
		identity []*Policy
		resource *Policy
		want     Reason
		// statement is the deciding statement ("policy/Sid"), grant the
		// resource statement that let an identity policy count.
		statement, grant string
		kind             PolicyKind
		missing          string
	}{
		{
			name: "same account KMS: key policy delegates to root, identity allows",
			req:  kmsRequest(backupSession, "kms:GenerateDataKey", platformKey, "org-1"), identity: []*Policy{roleKMSPolicy}, resource: keyPolicyRootOnly("000000000000"),
			want: Allowed, statement: "backupupload/DataKeysForOrg", grant: "key-policy/EnableIAMUserPermissions", kind: IdentityPolicy,
		},
		{
			name: "same account KMS: delegated, but identity condition fails",
			req:  kmsRequest(backupSession, "kms:GenerateDataKey", platformKey, "org-2"), identity: []*Policy{roleKMSPolicy}, resource: keyPolicyRootOnly("000000000000"),
			want: ImplicitDeny, kind: IdentityPolicy, missing: "no identity-based policy allows",
		},
		{
			name: "same account KMS: identity allows but key policy neither names the role nor delegates",
			req:  kmsRequest(backupSession, "kms:GenerateDataKey", platformKey, "org-1"), identity: []*Policy{roleKMSPolicy}, resource: keyPolicyNamesOtherRole,
			want: ImplicitDeny, kind: ResourcePolicy, missing: "the key policy does not allow",
		},
		{
			name: "same account KMS: no key policy at all",
			req:  kmsRequest(backupSession, "kms:GenerateDataKey", platformKey, "org-1"), identity: []*Policy{roleKMSPolicy},
			want: ImplicitDeny, kind: ResourcePolicy, missing: "no key policy",
		},
		{
			name: "same account KMS: key policy names the session's role, no identity policy needed",
			req:  kmsRequest(backupSession, "kms:GenerateDataKeyWithoutPlaintext", platformKey, "org-1"), resource: keyPolicyNamesRole,
			want: Allowed, statement: "key-policy/KeylineBackup", kind: ResourcePolicy,
		},
		{
			name: "same account KMS: key policy names the role, but its condition fails",
			req:  kmsRequest(backupSession, "kms:Decrypt", platformKey, "org-3"), resource: keyPolicyNamesRole,
			want: ImplicitDeny, kind: ResourcePolicy,
		},
		{
			name: "cross account KMS: key names the role and identity allows",
			req:  kmsRequest(backupSession, "kms:Decrypt", customerKey, "org-1"), identity: []*Policy{roleKMSPolicy}, resource: keyPolicyNamesRole,
			want: Allowed, statement: "backupupload/DataKeysForOrg", grant: "key-policy/KeylineBackup", kind: IdentityPolicy,
		},
		{
			name: "cross account KMS: key names the role but the caller's identity policy does not allow",
			req:  kmsRequest(backupSession, "kms:Decrypt", customerKey, "org-1"), resource: keyPolicyNamesRole,
			want: ImplicitDeny, kind: IdentityPolicy, missing: "no identity-based policy in account 000000000000",
		},
		{
			name: "cross account KMS: key delegates to the caller's account, identity allows",
			req:  kmsRequest(backupSession, "kms:GenerateDataKey", customerKey, "org-1"), identity: []*Policy{roleKMSPolicy}, resource: keyPolicyDelegatesToPlatform,
			want: Allowed, statement: "backupupload/DataKeysForOrg", grant: "key-policy/Keyline", kind: IdentityPolicy,
		},
		{
			name: "cross account KMS: key policy only trusts its own account",
			req:  kmsRequest(backupSession, "kms:GenerateDataKey", customerKey, "org-1"), identity: []*Policy{roleKMSPolicy}, resource: keyPolicyRootOnly("111111111111"),
			want: ImplicitDeny, kind: ResourcePolicy, missing: "no resource-based policy allows",
		},
		{
			name: "cross account KMS: key policy denies another org to every principal",
			req:  kmsRequest(backupSession, "kms:GenerateDataKey", customerKey, "org-2"), identity: []*Policy{MustParsePolicy("all", `{"Statement":{"Effect":"Allow","Action":"kms:*","Resource":"*"}}`)}, resource: keyPolicyDelegatesToPlatform,
			want: ExplicitDeny, statement: "key-policy/PinOrg", kind: ResourcePolicy,
		},
		{
			name: "cross account KMS: action the delegation does not cover",
			req:  kmsRequest(backupSession, "kms:ScheduleKeyDeletion", customerKey, ""), identity: []*Policy{MustParsePolicy("all", `{"Statement":{"Effect":"Allow","Action":"kms:*","Resource":"*"}}`)}, resource: keyPolicyDelegatesToPlatform,
			want: ImplicitDeny, kind: ResourcePolicy,
		},
		{
			name:     "explicit deny in identity policy beats a key policy allow",
			req:      &Request{Principal: backupSession, Action: "kms:Decrypt", Resource: platformKey, Context: Context{"aws:SecureTransport": Bool(false), ctxOrg: String("org-1")}},
			identity: []*Policy{roleKMSPolicy}, resource: keyPolicyNamesRole,
			want: ExplicitDeny, statement: "backupupload/DenyInsecure", kind: IdentityPolicy,
		},
		{
			name:     "deny to an account in a resource policy applies to its roles",
			req:      &Request{Principal: backupRole, Action: "s3:GetObject", Resource: backupObject, ResourceAccount: "000000000000", Context: secure},
			identity: []*Policy{roleKMSPolicy},
			resource: MustParsePolicy("bucket", `{"Statement":{"Sid":"NoPlatform","Effect":"Deny","Principal":{"AWS":"000000000000"},"Action":"s3:*","Resource":"arn:aws:s3:::keyline-backups-000000000000/*"}}`),
			want:     ExplicitDeny, statement: "bucket/NoPlatform", kind: ResourcePolicy,
		},
		{
			name: "root: implicit full identity permissions in its own account",
			req:  &Request{Root: true, Account: "000000000000", Action: "s3:DeleteObject", Resource: backupObject, ResourceAccount: "000000000000"},
			want: Allowed, statement: RootImplicitPolicyName + "/#0", kind: IdentityPolicy,
		},
		{
			name:     "root: still needs the key policy for its own KMS key",
			req:      &Request{Root: true, Account: "000000000000", Action: "kms:Decrypt", Resource: platformKey},
			resource: keyPolicyNamesOtherRole,
			want:     ImplicitDeny, kind: ResourcePolicy,
		},
		{
			name:     "root: key policy delegating to the root allows it",
			req:      &Request{Principal: "arn:aws:iam::000000000000:root", Action: "kms:ScheduleKeyDeletion", Resource: platformKey},
			resource: keyPolicyRootOnly("000000000000"),
			want:     Allowed, statement: RootImplicitPolicyName + "/#0", grant: "key-policy/EnableIAMUserPermissions", kind: IdentityPolicy,
		},
		{
			name: "root: cross-account needs the resource policy",
			req:  &Request{Root: true, Account: "111111111111", Action: "s3:GetObject", Resource: backupObject, ResourceAccount: "000000000000"},
			want: ImplicitDeny, kind: ResourcePolicy,
		},
		{
			name:     "root: explicit deny in a resource policy applies",
			req:      &Request{Root: true, Account: "000000000000", Action: "s3:GetObject", Resource: backupObject, ResourceAccount: "000000000000"},
			resource: MustParsePolicy("bucket", `{"Statement":{"Sid":"D","Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"*"}}`),
			want:     ExplicitDeny, statement: "bucket/D", kind: ResourcePolicy,
		},
		{
			name:     "same account: bucket policy naming the role is enough",
			req:      &Request{Principal: backupSession, Action: "s3:GetObject", Resource: backupObject, ResourceAccount: "000000000000"},
			resource: MustParsePolicy("bucket", `{"Statement":{"Sid":"B","Effect":"Allow","Principal":{"AWS":"`+backupRole+`"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::keyline-backups-000000000000/*"}}`),
			want:     Allowed, statement: "bucket/B", kind: ResourcePolicy,
		},
		{
			name:     "same account: bucket policy naming only the account grants nothing by itself",
			req:      &Request{Principal: backupSession, Action: "s3:GetObject", Resource: backupObject, ResourceAccount: "000000000000"},
			resource: MustParsePolicy("bucket", `{"Statement":{"Sid":"B","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"s3:GetObject","Resource":"*"}}`),
			want:     ImplicitDeny, kind: IdentityPolicy, missing: "no identity-based policy allows",
		},
		{
			name:     "cross account: identity allows, bucket policy names another account",
			req:      &Request{Principal: "arn:aws:iam::111111111111:role/customer-admin", Action: "s3:GetObject", Resource: backupObject, ResourceAccount: "000000000000"},
			identity: []*Policy{MustParsePolicy("admin", `{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*"}}`)},
			resource: MustParsePolicy("bucket", `{"Statement":{"Sid":"B","Effect":"Allow","Principal":{"AWS":"222222222222"},"Action":"s3:GetObject","Resource":"*"}}`),
			want:     ImplicitDeny, kind: ResourcePolicy,
		},
		{
			name:     "NotAction: allows every other action",
			req:      &Request{Principal: backupRole, Action: "dynamodb:Query", Resource: tableA},
			identity: []*Policy{MustParsePolicy("p", `{"Statement":{"Sid":"N","Effect":"Allow","NotAction":["dynamodb:Delete*","kms:*"],"Resource":"*"}}`)},
			want:     Allowed, statement: "p/N", kind: IdentityPolicy,
		},
		{
			name:     "NotAction: the excluded action is not allowed",
			req:      &Request{Principal: backupRole, Action: "dynamodb:DeleteItem", Resource: tableA},
			identity: []*Policy{MustParsePolicy("p", `{"Statement":{"Sid":"N","Effect":"Allow","NotAction":["dynamodb:Delete*","kms:*"],"Resource":"*"}}`)},
			want:     ImplicitDeny, kind: IdentityPolicy,
		},
		{
			name:     "NotResource: the excluded resource is not allowed",
			req:      &Request{Principal: backupRole, Action: "dynamodb:Query", Resource: tableA},
			identity: []*Policy{MustParsePolicy("p", `{"Statement":{"Sid":"N","Effect":"Allow","Action":"dynamodb:*","NotResource":"`+tableA+`"}}`)},
			want:     ImplicitDeny, kind: IdentityPolicy,
		},
		{
			name:     "NotResource: other resources are allowed",
			req:      &Request{Principal: backupRole, Action: "dynamodb:Query", Resource: tableB},
			identity: []*Policy{MustParsePolicy("p", `{"Statement":{"Sid":"N","Effect":"Allow","Action":"dynamodb:*","NotResource":"`+tableA+`"}}`)},
			want:     Allowed, statement: "p/N", kind: IdentityPolicy,
		},
		{
			name:     "NotPrincipal deny: applies to principals not listed",
			req:      &Request{Principal: "arn:aws:sts::000000000000:assumed-role/keyline-restore/s", Action: "s3:GetObject", Resource: backupObject, ResourceAccount: "000000000000"},
			identity: []*Policy{roleKMSPolicy},
			resource: MustParsePolicy("bucket", `{"Statement":{"Sid":"OnlyBackup","Effect":"Deny","NotPrincipal":{"AWS":"`+backupRole+`"},"Action":"s3:*","Resource":"*"}}`),
			want:     ExplicitDeny, statement: "bucket/OnlyBackup", kind: ResourcePolicy,
		},
		{
			name:     "NotPrincipal deny: the listed principal is spared",
			req:      &Request{Principal: backupSession, Action: "s3:GetObject", Resource: backupObject, ResourceAccount: "000000000000"},
			identity: []*Policy{roleKMSPolicy},
			resource: MustParsePolicy("bucket", `{"Statement":{"Sid":"OnlyBackup","Effect":"Deny","NotPrincipal":{"AWS":"`+backupRole+`"},"Action":"s3:*","Resource":"*"}}`),
			want:     Allowed, statement: "backupupload/Objects", kind: IdentityPolicy,
		},
		{
			name:     "service principal allowed by the function policy",
			req:      &Request{Principal: "events.amazonaws.com", Action: "lambda:InvokeFunction", Resource: keylineFunction, Context: Context{"aws:SourceAccount": String("000000000000")}},
			resource: MustParsePolicy("function", `{"Statement":{"Sid":"Events","Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"*","Condition":{"StringEquals":{"aws:SourceAccount":"000000000000"}}}}`),
			want:     Allowed, statement: "function/Events", kind: ResourcePolicy,
		},
		{
			name:     "service principal from another source account",
			req:      &Request{Principal: "events.amazonaws.com", Action: "lambda:InvokeFunction", Resource: keylineFunction, Context: Context{"aws:SourceAccount": String("333333333333")}},
			resource: MustParsePolicy("function", `{"Statement":{"Sid":"Events","Effect":"Allow","Principal":{"Service":"events.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"*","Condition":{"StringEquals":{"aws:SourceAccount":"000000000000"}}}}`),
			want:     ImplicitDeny, kind: ResourcePolicy,
		},
		{
			name:     "deny with StringNotEqualsIfExists: absent key denies",
			req:      &Request{Principal: backupRole, Action: "kms:Decrypt", Resource: platformKey, Context: Context{ctxOrg: String("org-1")}},
			identity: []*Policy{roleKMSPolicy, MustParsePolicy("via", `{"Statement":{"Sid":"ViaS3","Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"StringNotEqualsIfExists":{"kms:ViaService":"s3.us-east-1.amazonaws.com"},"Null":{"kms:ViaService":"true"}}}}`)},
			resource: keyPolicyRootOnly("000000000000"),
			want:     ExplicitDeny, statement: "via/ViaS3", kind: IdentityPolicy,
		},
		{
			name:     "deny with StringNotEqualsIfExists: matching value passes",
			req:      &Request{Principal: backupRole, Action: "kms:Decrypt", Resource: platformKey, Context: Context{ctxOrg: String("org-1"), "kms:ViaService": String("s3.us-east-1.amazonaws.com")}},
			identity: []*Policy{roleKMSPolicy, MustParsePolicy("via", `{"Statement":{"Sid":"ViaS3","Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"StringNotEqualsIfExists":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}}}}`)},
			resource: keyPolicyRootOnly("000000000000"),
			want:     Allowed, statement: "backupupload/DataKeysForOrg", grant: "key-policy/EnableIAMUserPermissions", kind: IdentityPolicy,
		},
		{
			name:     "ForAllValues allow over an empty key set allows (the documented pitfall)",
			req:      &Request{Principal: backupRole, Action: "kms:Encrypt", Resource: platformKey, Context: Context{ctxKeys: Strings()}},
			identity: []*Policy{MustParsePolicy("p", `{"Statement":{"Sid":"OnlyOrgKeys","Effect":"Allow","Action":"kms:Encrypt","Resource":"*","Condition":{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":"keyline:org"}}}}`)},
			resource: keyPolicyRootOnly("000000000000"),
			want:     Allowed, statement: "p/OnlyOrgKeys", grant: "key-policy/EnableIAMUserPermissions", kind: IdentityPolicy,
		},
		{
			name: "no policies at all",
			req:  &Request{Principal: backupRole, Action: "dynamodb:Query", Resource: tableA},
			want: ImplicitDeny, kind: IdentityPolicy, missing: "no identity-based policy allows the action dynamodb:Query",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Evaluate(tt.req, tt.identity, tt.resource)
			if d.Reason != tt.want || d.Allowed != (tt.want == Allowed) {
				t.Fatalf("decision %+v, want %v", d, tt.want)
			}
			if got := d.Statement.String(); got != tt.statement {
				t.Errorf("statement %q, want %q", got, tt.statement)
			}
			if got := d.Grant.String(); got != tt.grant {
				t.Errorf("grant %q, want %q", got, tt.grant)
			}
			if d.Kind != tt.kind {
				t.Errorf("kind %v, want %v", d.Kind, tt.kind)
			}
			if tt.want == ImplicitDeny && d.Missing == "" {
				t.Errorf("implicit deny without a Missing text")
			}
			if !strings.Contains(d.Missing, tt.missing) {
				t.Errorf("missing %q does not contain %q", d.Missing, tt.missing)
			}
		})
	}
}

func TestAccessDeniedMessage(t *testing.T) {
	tests := []struct {
		name     string
		req      *Request
		identity []*Policy
		resource *Policy
		want     string
	}{
		{
			name: "KMS key policy does not allow the cross-account caller",
			req:  kmsRequest(backupSession, "kms:GenerateDataKey", customerKey, "org-1"), identity: []*Policy{roleKMSPolicy}, resource: keyPolicyRootOnly("111111111111"),
			want: "User: " + backupSession + " is not authorized to perform: kms:GenerateDataKey on resource: " + customerKey +
				" because no resource-based policy allows the kms:GenerateDataKey action",
		},
		{
			name: "no identity-based policy",
			req:  &Request{Principal: backupSession, Action: "dynamodb:Query", Resource: tableA},
			want: "User: " + backupSession + " is not authorized to perform: dynamodb:Query on resource: " + tableA +
				" because no identity-based policy allows the dynamodb:Query action",
		},
		{
			name:     "explicit deny in an identity-based policy",
			req:      &Request{Principal: backupSession, Action: "s3:GetObject", Resource: backupObject, Context: Context{"aws:SecureTransport": Bool(false)}},
			identity: []*Policy{roleKMSPolicy},
			want: "User: " + backupSession + " is not authorized to perform: s3:GetObject on resource: " + backupObject +
				" with an explicit deny in an identity-based policy",
		},
		{
			name: "explicit deny in a resource-based policy",
			req:  kmsRequest(backupSession, "kms:Decrypt", customerKey, "org-9"), identity: []*Policy{roleKMSPolicy}, resource: keyPolicyDelegatesToPlatform,
			want: "User: " + backupSession + " is not authorized to perform: kms:Decrypt on resource: " + customerKey +
				" with an explicit deny in a resource-based policy",
		},
		{
			name: "root user",
			req:  &Request{Root: true, Account: "000000000000", Action: "kms:Decrypt", Resource: platformKey}, resource: keyPolicyNamesOtherRole,
			want: "User: arn:aws:iam::000000000000:root is not authorized to perform: kms:Decrypt on resource: " + platformKey +
				" because no resource-based policy allows the kms:Decrypt action",
		},
		{
			name: "allowed",
			req:  kmsRequest(backupSession, "kms:Decrypt", platformKey, "org-1"), resource: keyPolicyNamesRole,
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Evaluate(tt.req, tt.identity, tt.resource)
			if got := d.AccessDeniedMessage(tt.req); got != tt.want {
				t.Errorf("message\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestRecorder(t *testing.T) {
	var buf bytes.Buffer
	rec := NewRecorder(&buf)
	req := &Request{Root: true, Account: "000000000000", Action: "kms:Decrypt", Resource: platformKey,
		Context: Context{ctxOrg: String("org-1"), ctxKeys: Strings()}}
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				d := evaluate(req, []*Policy{roleKMSPolicy}, keyPolicyRootOnly("000000000000"))
				rec.Record(req, []*Policy{roleKMSPolicy}, keyPolicyRootOnly("000000000000"), d)
			}
		}()
	}
	wg.Wait()
	if err := rec.Err(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != workers*each {
		t.Fatalf("%d lines, want %d", len(lines), workers*each)
	}
	for _, l := range lines {
		var r Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if r.Principal != "arn:aws:iam::000000000000:root" || !r.Root || r.ResourceAccount != "000000000000" {
			t.Fatalf("record principal %q root %v resource account %q", r.Principal, r.Root, r.ResourceAccount)
		}
		if len(r.IdentityPolicies) != 2 || r.IdentityPolicies[0].Name != RootImplicitPolicyName || r.IdentityPolicies[1].Name != "backupupload" {
			t.Fatalf("identity policies %+v", r.IdentityPolicies)
		}
		if r.ResourcePolicy == nil || r.ResourcePolicy.Account != "000000000000" {
			t.Fatalf("resource policy %+v", r.ResourcePolicy)
		}
		if _, ok := r.Context[ctxKeys]; ok {
			t.Fatalf("empty multivalued key recorded: %v", r.Context)
		}
		if v := r.Context[ctxOrg]; v.IsMulti() || len(v.Values()) != 1 || v.Values()[0] != "org-1" {
			t.Fatalf("context %v", r.Context)
		}
		if !r.Decision.Allowed || r.Decision.Reason != "Allowed" || r.Decision.Grant != "key-policy/EnableIAMUserPermissions" {
			t.Fatalf("decision %+v", r.Decision)
		}
	}
}

func TestDecisionString(t *testing.T) {
	if got := AssumedRoleARN("000000000000", "keyline-backupupload", "keyline-backupupload"); got != backupSession {
		t.Errorf("AssumedRoleARN = %q, want %q", got, backupSession)
	}
	tests := []struct {
		req      *Request
		identity []*Policy
		resource *Policy
		want     string
	}{
		{kmsRequest(backupSession, "kms:Decrypt", customerKey, "org-1"), []*Policy{roleKMSPolicy}, keyPolicyNamesRole,
			"Allowed by backupupload/DataKeysForOrg (identity-based) with key-policy/KeylineBackup (resource-based)"},
		{kmsRequest(backupSession, "kms:Decrypt", platformKey, "org-1"), nil, keyPolicyNamesRole,
			"Allowed by key-policy/KeylineBackup (resource-based)"},
		{kmsRequest(backupSession, "kms:Decrypt", customerKey, "org-2"), []*Policy{roleKMSPolicy}, keyPolicyDelegatesToPlatform,
			"ExplicitDeny by key-policy/PinOrg (resource-based)"},
		{&Request{Principal: backupRole, Action: "dynamodb:Query", Resource: tableA}, nil, nil,
			"ImplicitDeny: no identity-based policy allows the action dynamodb:Query"},
	}
	for _, tt := range tests {
		if got := Evaluate(tt.req, tt.identity, tt.resource).String(); got != tt.want {
			t.Errorf("decision %q, want %q", got, tt.want)
		}
	}
}
