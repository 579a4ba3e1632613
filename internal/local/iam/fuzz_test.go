package iam

import "testing"

// FuzzParsePolicy checks that any document either fails to parse with an
// error or parses into a policy that evaluates without panicking, and that
// parsing is deterministic.
func FuzzParsePolicy(f *testing.F) {
	for _, seed := range []string{
		`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:*","Resource":"*"}}`,
		`{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":["111111111111"]},"NotAction":"s3:*","NotResource":"arn:aws:s3:::b/*","Condition":{"ForAnyValue:StringLikeIfExists":{"a:b":["x*",1,true]},"Null":{"c:d":"true"}}}]}`,
		`{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"10"},"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},"ArnLike":{"aws:SourceArn":"arn:aws:*:*:*:*"}}}}`,
		`{"Statement":{"Effect":"Allow","Action":"a:?*?","Resource":"arn:aws:s3:::*?"}}`,
	} {
		f.Add(seed, "kms:Decrypt", "arn:aws:kms:us-east-1:111111111111:key/k", "v")
	}
	f.Fuzz(func(t *testing.T, doc, action, resource, value string) {
		p, err := ParsePolicy("fuzz", []byte(doc))
		_, err2 := ParsePolicy("fuzz", []byte(doc))
		if (err == nil) != (err2 == nil) {
			t.Fatalf("parsing is not deterministic: %v vs %v", err, err2)
		}
		if err != nil {
			return
		}
		req := &Request{Principal: "arn:aws:iam::111111111111:role/r", Action: action, Resource: resource,
			Context: Context{"a:b": String(value), "aws:SourceIp": String(value), "s3:max-keys": Strings(value, value)}}
		d := evaluate(req, []*Policy{p}, p)
		if d.Allowed != (d.Reason == Allowed) {
			t.Fatalf("decision %+v is inconsistent", d)
		}
		_ = d.AccessDeniedMessage(req)
	})
}
