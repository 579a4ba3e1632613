package iam

import "testing"

// benchRolePolicy is a keyline Lambda role's identity policy of ten
// statements; the matching one comes late.
var benchRolePolicy = MustParsePolicy("keyline-backupupload", `{"Version":"2012-10-17","Statement":[
	{"Sid":"Lineage","Effect":"Allow","Action":["dynamodb:GetItem","dynamodb:PutItem","dynamodb:Query","dynamodb:UpdateItem"],
	 "Resource":["arn:aws:dynamodb:us-east-1:000000000000:table/keyline-lineage","arn:aws:dynamodb:us-east-1:000000000000:table/keyline-lineage/index/*"],
	 "Condition":{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":["ORG#*"]}}},
	{"Sid":"Objects","Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":"arn:aws:s3:::keyline-backups-000000000000/org/*"},
	{"Sid":"List","Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::keyline-backups-000000000000","Condition":{"StringLike":{"s3:prefix":["org/*"]}}},
	{"Sid":"Events","Effect":"Allow","Action":"events:PutEvents","Resource":"arn:aws:events:us-east-1:000000000000:event-bus/keyline"},
	{"Sid":"States","Effect":"Allow","Action":["states:StartExecution","states:DescribeExecution"],"Resource":"arn:aws:states:us-east-1:000000000000:stateMachine:keyline-*"},
	{"Sid":"Describe","Effect":"Allow","Action":["kms:DescribeKey","kms:GetKeyRotationStatus"],"Resource":"arn:aws:kms:*:*:key/*"},
	{"Sid":"DenyInsecure","Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}},
	{"Sid":"DenyForeignAccounts","Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceAccount":["333333333333"]}}},
	{"Sid":"DenyAdmin","Effect":"Deny","Action":["kms:ScheduleKeyDeletion","kms:PutKeyPolicy","kms:DisableKey"],"Resource":"*"},
	{"Sid":"DataKeys","Effect":"Allow","Action":["kms:GenerateDataKey*","kms:Decrypt"],"Resource":"arn:aws:kms:*:*:key/*",
	 "Condition":{"StringLike":{"kms:EncryptionContext:keyline:org":"org-*","kms:EncryptionContext:keyline:app":"*"},
	              "ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["keyline:org","keyline:app","keyline:backup"]},
	              "StringEqualsIfExists":{"kms:ViaService":["s3.us-east-1.amazonaws.com"]}}}]}`)

// benchKeyPolicy is a customer key policy: the owner's root, keyline's
// backup role pinned to one org, and a deny for other orgs.
var benchKeyPolicy = MustParsePolicy("key-policy", `{"Version":"2012-10-17","Id":"keyline","Statement":[
	{"Sid":"EnableIAMUserPermissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"kms:*","Resource":"*"},
	{"Sid":"KeylineAdmin","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:role/keyline-keyhealth"},"Action":["kms:DescribeKey","kms:GetKeyRotationStatus"],"Resource":"*"},
	{"Sid":"KeylineBackup","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:role/keyline-backupupload","arn:aws:iam::000000000000:role/keyline-restore"]},
	 "Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*",
	 "Condition":{"StringEquals":{"kms:EncryptionContext:keyline:org":"org-1","kms:CallerAccount":"000000000000"},"Bool":{"aws:SecureTransport":"true"}}},
	{"Sid":"PinOrg","Effect":"Deny","Principal":"*","Action":["kms:GenerateDataKey*","kms:Decrypt","kms:Encrypt"],"Resource":"*",
	 "Condition":{"StringNotEquals":{"kms:EncryptionContext:keyline:org":"org-1"}}}]}`)

// BenchmarkEvaluate measures one cross-account KMS decision: a backup role
// asking a customer's key for a data key under the org's encryption context.
func BenchmarkEvaluate(b *testing.B) {
	req := &Request{
		Principal:       "arn:aws:sts::000000000000:assumed-role/keyline-backupupload/keyline-backupupload",
		Action:          "kms:GenerateDataKey",
		Resource:        "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		ResourceAccount: "111111111111",
		Context: Context{
			"kms:EncryptionContext:keyline:org": String("org-1"),
			"kms:EncryptionContext:keyline:app": String("app-1"),
			"kms:EncryptionContextKeys":         Strings("keyline:org", "keyline:app"),
			"kms:CallerAccount":                 String("000000000000"),
			"kms:ViaService":                    String("s3.us-east-1.amazonaws.com"),
			"aws:SecureTransport":               Bool(true),
			"aws:ResourceAccount":               String("111111111111"),
			"aws:PrincipalAccount":              String("000000000000"),
		},
	}
	identity := []*Policy{benchRolePolicy}
	if d := Evaluate(req, identity, benchKeyPolicy); !d.Allowed || d.Grant.Sid != "KeylineBackup" {
		b.Fatalf("benchmark request is not allowed as expected: %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		Evaluate(req, identity, benchKeyPolicy)
	}
}
