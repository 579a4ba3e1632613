package iam

import (
	"encoding/json"
	"testing"
)

// evalCondition compiles a one-operator condition block and evaluates it.
func evalCondition(t *testing.T, block string, ctx Context) bool {
	t.Helper()
	conds, err := parseConditionBlock(json.RawMessage(block))
	if err != nil {
		t.Fatalf("parse %s: %v", block, err)
	}
	for i := range conds {
		if !conds[i].eval(ctx) {
			return false
		}
	}
	return true
}

func TestConditionOperators(t *testing.T) {
	org := func(v string) Context { return Context{ctxOrg: String(v)} }
	keys := func(v ...string) Context { return Context{ctxKeys: Strings(v...)} }
	none := Context{}
	tests := []struct {
		name  string
		block string
		ctx   Context
		want  bool
	}{
		// StringEquals: exact, case-sensitive; several values OR'd.
		{"StringEquals match", `{"StringEquals":{"kms:EncryptionContext:keyline:org":"org-1"}}`, org("org-1"), true},
		{"StringEquals case differs", `{"StringEquals":{"kms:EncryptionContext:keyline:org":"org-1"}}`, org("ORG-1"), false},
		{"StringEquals second value", `{"StringEquals":{"kms:EncryptionContext:keyline:org":["org-1","org-2"]}}`, org("org-2"), true},
		{"StringEquals absent key", `{"StringEquals":{"kms:EncryptionContext:keyline:org":"org-1"}}`, none, false},
		{"StringEquals key name case-insensitive", `{"StringEquals":{"KMS:ENCRYPTIONCONTEXT:KEYLINE:ORG":"org-1"}}`, org("org-1"), true},
		{"StringEquals context key case-insensitive", `{"StringEquals":{"aws:sourceaccount":"111111111111"}}`, Context{"AWS:SourceAccount": String("111111111111")}, true},
		{"StringEquals on multivalued key needs a set operator", `{"StringEquals":{"kms:EncryptionContextKeys":"keyline:org"}}`, keys("keyline:org"), false},
		{"StringEquals boolean value as text", `{"StringEquals":{"aws:SecureTransport":true}}`, Context{"aws:SecureTransport": Bool(true)}, true},
		// StringNotEquals: none of the values; absent key is true.
		{"StringNotEquals different", `{"StringNotEquals":{"kms:EncryptionContext:keyline:org":["org-1","org-2"]}}`, org("org-3"), true},
		{"StringNotEquals equal to one", `{"StringNotEquals":{"kms:EncryptionContext:keyline:org":["org-1","org-2"]}}`, org("org-2"), false},
		{"StringNotEquals absent key", `{"StringNotEquals":{"kms:EncryptionContext:keyline:org":"org-1"}}`, none, true},
		// IgnoreCase variants.
		{"StringEqualsIgnoreCase", `{"StringEqualsIgnoreCase":{"kms:EncryptionContext:keyline:org":"ORG-1"}}`, org("org-1"), true},
		{"StringEqualsIgnoreCase differs", `{"StringEqualsIgnoreCase":{"kms:EncryptionContext:keyline:org":"ORG-1"}}`, org("org-2"), false},
		{"StringNotEqualsIgnoreCase", `{"StringNotEqualsIgnoreCase":{"kms:EncryptionContext:keyline:org":"ORG-1"}}`, org("org-1"), false},
		// StringLike / StringNotLike: * and ?, case-sensitive.
		{"StringLike star", `{"StringLike":{"s3:prefix":"org/org-1/*"}}`, Context{"s3:prefix": String("org/org-1/app/x")}, true},
		{"StringLike star empty", `{"StringLike":{"s3:prefix":"org/org-1/*"}}`, Context{"s3:prefix": String("org/org-1/")}, true},
		{"StringLike other prefix", `{"StringLike":{"s3:prefix":"org/org-1/*"}}`, Context{"s3:prefix": String("org/org-2/")}, false},
		{"StringLike question mark", `{"StringLike":{"s3:prefix":"org-?"}}`, Context{"s3:prefix": String("org-7")}, true},
		{"StringLike question mark needs one char", `{"StringLike":{"s3:prefix":"org-?"}}`, Context{"s3:prefix": String("org-")}, false},
		{"StringLike case-sensitive", `{"StringLike":{"s3:prefix":"ORG/*"}}`, Context{"s3:prefix": String("org/x")}, false},
		{"StringNotLike matching", `{"StringNotLike":{"s3:prefix":["a*","org/*"]}}`, Context{"s3:prefix": String("org/x")}, false},
		{"StringNotLike not matching", `{"StringNotLike":{"s3:prefix":["a*","b*"]}}`, Context{"s3:prefix": String("org/x")}, true},
		// Numeric.
		{"NumericEquals", `{"NumericEquals":{"s3:max-keys":"10"}}`, Context{"s3:max-keys": String("10.0")}, true},
		{"NumericNotEquals", `{"NumericNotEquals":{"s3:max-keys":"10"}}`, Context{"s3:max-keys": String("10")}, false},
		{"NumericLessThan true", `{"NumericLessThan":{"s3:max-keys":"10"}}`, Context{"s3:max-keys": String("9")}, true},
		{"NumericLessThan equal", `{"NumericLessThan":{"s3:max-keys":"10"}}`, Context{"s3:max-keys": String("10")}, false},
		{"NumericLessThanEquals equal", `{"NumericLessThanEquals":{"s3:max-keys":10}}`, Context{"s3:max-keys": String("10")}, true},
		{"NumericGreaterThan", `{"NumericGreaterThan":{"s3:max-keys":"10"}}`, Context{"s3:max-keys": String("11")}, true},
		{"NumericGreaterThanEquals below", `{"NumericGreaterThanEquals":{"s3:max-keys":"10"}}`, Context{"s3:max-keys": String("9")}, false},
		{"Numeric request not a number", `{"NumericLessThan":{"s3:max-keys":"10"}}`, Context{"s3:max-keys": String("many")}, false},
		// Bool.
		{"Bool true", `{"Bool":{"aws:SecureTransport":"true"}}`, Context{"aws:SecureTransport": Bool(true)}, true},
		{"Bool false vs true", `{"Bool":{"aws:SecureTransport":"false"}}`, Context{"aws:SecureTransport": Bool(true)}, false},
		{"Bool JSON boolean", `{"Bool":{"aws:SecureTransport":false}}`, Context{"aws:SecureTransport": Bool(false)}, true},
		{"Bool absent", `{"Bool":{"aws:SecureTransport":"false"}}`, none, false},
		{"BoolIfExists absent", `{"BoolIfExists":{"aws:SecureTransport":"false"}}`, none, true},
		// Arn operators: part-wise, wildcards within a part.
		{"ArnLike", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/keyline-*"}}`, Context{"aws:PrincipalArn": String("arn:aws:iam::111111111111:role/keyline-x")}, true},
		{"ArnLike other role", `{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/keyline-*"}}`, Context{"aws:PrincipalArn": String("arn:aws:iam::111111111111:role/admin")}, false},
		{"ArnLike star does not cross a colon", `{"ArnLike":{"aws:SourceArn":"arn:aws:kms:*:111111111111:key/*"}}`, Context{"aws:SourceArn": String("arn:aws:kms:us-east-1:999999999999:111111111111:key/a")}, false},
		{"ArnEquals", `{"ArnEquals":{"aws:SourceArn":"arn:aws:events:us-east-1:000000000000:rule/r"}}`, Context{"aws:SourceArn": String("arn:aws:events:us-east-1:000000000000:rule/r")}, true},
		{"ArnNotEquals same", `{"ArnNotEquals":{"aws:SourceArn":"arn:aws:events:us-east-1:000000000000:rule/r"}}`, Context{"aws:SourceArn": String("arn:aws:events:us-east-1:000000000000:rule/r")}, false},
		{"ArnNotLike other", `{"ArnNotLike":{"aws:SourceArn":"arn:aws:events:*:*:rule/r*"}}`, Context{"aws:SourceArn": String("arn:aws:events:us-east-1:000000000000:rule/x")}, true},
		{"ArnNotLike request not an ARN", `{"ArnNotLike":{"aws:SourceArn":"arn:aws:events:*:*:rule/r*"}}`, Context{"aws:SourceArn": String("not-an-arn")}, false},
		{"ArnNotLike absent", `{"ArnNotLike":{"aws:SourceArn":"arn:aws:events:*:*:rule/r*"}}`, none, true},
		// IpAddress.
		{"IpAddress in range", `{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, Context{"aws:SourceIp": String("10.1.2.3")}, true},
		{"IpAddress outside", `{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","192.168.1.1"]}}`, Context{"aws:SourceIp": String("192.168.1.2")}, false},
		{"NotIpAddress outside", `{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}`, Context{"aws:SourceIp": String("192.168.1.2")}, true},
		// Null.
		{"Null true absent", `{"Null":{"kms:EncryptionContext:keyline:app":"true"}}`, none, true},
		{"Null true present", `{"Null":{"kms:EncryptionContext:keyline:app":"true"}}`, Context{ctxApp: String("a")}, false},
		{"Null false present", `{"Null":{"kms:EncryptionContext:keyline:app":false}}`, Context{ctxApp: String("a")}, true},
		{"Null false absent", `{"Null":{"kms:EncryptionContext:keyline:app":"false"}}`, none, false},
		{"Null empty multivalued is absent", `{"Null":{"kms:EncryptionContextKeys":"true"}}`, keys(), true},
		// IfExists.
		{"StringEqualsIfExists absent", `{"StringEqualsIfExists":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}}`, none, true},
		{"StringEqualsIfExists present differs", `{"StringEqualsIfExists":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}}`, Context{"kms:ViaService": String("lambda.us-east-1.amazonaws.com")}, false},
		{"StringEqualsIfExists present equal", `{"StringEqualsIfExists":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}}`, Context{"kms:ViaService": String("s3.us-east-1.amazonaws.com")}, true},
		// ForAllValues: every request value; true when absent or empty.
		{"ForAllValues subset", `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["keyline:org","keyline:app"]}}`, keys("keyline:org"), true},
		{"ForAllValues extra key", `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["keyline:org","keyline:app"]}}`, keys("keyline:org", "other"), false},
		{"ForAllValues absent", `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["keyline:org"]}}`, none, true},
		{"ForAllValues empty set", `{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["keyline:org"]}}`, keys(), true},
		{"ForAllValues single-valued key", `{"ForAllValues:StringLike":{"kms:EncryptionContext:keyline:org":"org-*"}}`, org("org-1"), true},
		{"ForAllValues negated", `{"ForAllValues:StringNotEquals":{"dynamodb:LeadingKeys":["ORG#x"]}}`, Context{"dynamodb:LeadingKeys": Strings("ORG#a", "ORG#x")}, false},
		{"ForAllValues StringLike leading keys", `{"ForAllValues:StringLike":{"dynamodb:LeadingKeys":"ORG#org-1*"}}`, Context{"dynamodb:LeadingKeys": Strings("ORG#org-1", "ORG#org-1#APP#a")}, true},
		// ForAnyValue: some request value; false when absent.
		{"ForAnyValue one matches", `{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"keyline:app"}}`, keys("keyline:org", "keyline:app"), true},
		{"ForAnyValue none match", `{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"keyline:app"}}`, keys("keyline:org"), false},
		{"ForAnyValue absent", `{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"keyline:app"}}`, none, false},
		{"ForAnyValue empty set", `{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"keyline:app"}}`, keys(), false},
		{"ForAnyValue IfExists absent is still false (AWS ignores IfExists here)", `{"ForAnyValue:StringEqualsIfExists":{"kms:EncryptionContextKeys":"keyline:app"}}`, none, false},
		{"ForAllValues IfExists absent", `{"ForAllValues:StringEqualsIfExists":{"kms:EncryptionContextKeys":"keyline:app"}}`, none, true},
		{"ForAnyValue IfExists present", `{"ForAnyValue:StringEqualsIfExists":{"kms:EncryptionContextKeys":"keyline:app"}}`, keys("x"), false},
		// Several keys and operators are AND'd.
		{"two keys both hold", `{"StringEquals":{"kms:EncryptionContext:keyline:org":"org-1","kms:EncryptionContext:keyline:app":"a"}}`, Context{ctxOrg: String("org-1"), ctxApp: String("a")}, true},
		{"two keys one fails", `{"StringEquals":{"kms:EncryptionContext:keyline:org":"org-1","kms:EncryptionContext:keyline:app":"a"}}`, Context{ctxOrg: String("org-1"), ctxApp: String("b")}, false},
		{"two operators one fails", `{"StringEquals":{"kms:EncryptionContext:keyline:org":"org-1"},"Bool":{"aws:SecureTransport":"true"}}`, Context{ctxOrg: String("org-1"), "aws:SecureTransport": Bool(false)}, false},
		{"operator name case-insensitive", `{"stringequals":{"kms:EncryptionContext:keyline:org":"org-1"}}`, org("org-1"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := evalCondition(t, tt.block, tt.ctx); got != tt.want {
				t.Errorf("%s with %v = %v, want %v", tt.block, tt.ctx, got, tt.want)
			}
		})
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		fold, want bool
	}{
		{"*", "", false, true},
		{"a*c", "abbbc", false, true},
		{"a*c", "abbbd", false, false},
		{"a*b*c", "axxbyyc", false, true},
		{"a*b*c", "axxbyy", false, false},
		{"a?c", "abc", false, true},
		{"a?c", "ac", false, false},
		{"a?c", "aéc", false, true},
		{"GenerateDataKey*", "generatedatakeywithoutplaintext", true, true},
		{"GenerateDataKey*", "generatedatakeywithoutplaintext", false, false},
		{"", "", false, true},
		{"", "x", false, false},
	}
	for _, tt := range tests {
		if got := glob(tt.pattern, tt.s, tt.fold); got != tt.want {
			t.Errorf("glob(%q, %q, %v) = %v, want %v", tt.pattern, tt.s, tt.fold, got, tt.want)
		}
	}
}
