package iam

import (
	"errors"
	"strings"
	"testing"
)

func TestParsePolicyRejectsMalformed(t *testing.T) {
	tests := []struct {
		name, doc, wantErr string
	}{
		{"not JSON", `{`, "not a JSON object"},
		{"array document", `[]`, "not a JSON object"},
		{"unknown top-level", `{"Version":"2012-10-17","Statements":[]}`, `unknown top-level element "Statements"`},
		{"bad version", `{"Version":"2020-01-01","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`, "Version"},
		{"no statement", `{"Version":"2012-10-17"}`, "missing Statement"},
		{"empty statement list", `{"Statement":[]}`, "Statement is empty"},
		{"statement is a string", `{"Statement":"x"}`, "object or an array"},
		{"bad effect", `{"Statement":{"Effect":"allow","Action":"*","Resource":"*"}}`, `Effect "allow"`},
		{"missing effect", `{"Statement":{"Action":"*","Resource":"*"}}`, "Effect"},
		{"no action", `{"Statement":{"Effect":"Allow","Resource":"*"}}`, "missing Action or NotAction"},
		{"action and notaction", `{"Statement":{"Effect":"Allow","Action":"*","NotAction":"kms:*","Resource":"*"}}`, "both Action and NotAction"},
		{"action without service", `{"Statement":{"Effect":"Allow","Action":"GenerateDataKey","Resource":"*"}}`, "not \"service:action\""},
		{"resource and notresource", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}}`, "both Resource and NotResource"},
		{"empty action list", `{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}`, "empty array"},
		{"unknown statement element", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Conditions":{}}}`, `unknown element "Conditions"`},
		{"duplicate sid", `{"Statement":[{"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*"}]}`, "duplicate Sid"},
		{"principal string not star", `{"Statement":{"Effect":"Allow","Principal":"111111111111","Action":"*","Resource":"*"}}`, "must be \"*\""},
		{"unknown principal type", `{"Statement":{"Effect":"Allow","Principal":{"Aws":"*"},"Action":"*","Resource":"*"}}`, "unknown principal type"},
		{"bad AWS principal", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"keyline"},"Action":"*","Resource":"*"}}`, "not an account id"},
		{"wildcard in principal ARN", `{"Statement":{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/*"},"Action":"*","Resource":"*"}}`, "wildcards are not allowed"},
		{"unknown operator", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringMatches":{"a:b":"c"}}}}`, "unknown or unsupported condition operator"},
		{"null with set operator", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ForAnyValue:Null":{"a:b":"true"}}}}`, "Null takes no set operator"},
		{"numeric value not a number", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"ten"}}}}`, "not a number"},
		{"bool value", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"yes"}}}}`, "not true or false"},
		{"condition value object", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"a:b":{"x":1}}}}}`, "not a string, number or boolean"},
		{"condition not an object", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":["x"]}}`, "Condition"},
		{"policy variable", `{"Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/${aws:username}/*"}}`, "policy variables are not supported"},
		{"arn operator value", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"ArnLike":{"aws:SourceArn":"role/x"}}}}`, "is not an ARN"},
		{"trailing data", `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}} {}`, "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePolicy("p", []byte(tt.doc))
			if err == nil {
				t.Fatalf("ParsePolicy(%s) succeeded, want an error containing %q", tt.doc, tt.wantErr)
			}
			if !errors.Is(err, ErrMalformedPolicy) {
				t.Errorf("error %v does not wrap ErrMalformedPolicy", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestParsePolicyAcceptsForms(t *testing.T) {
	docs := []string{
		`{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}}`,
		`{"Version":"2008-10-17","Id":"x","Statement":[{"Sid":"a","Effect":"Deny","NotAction":["kms:Decrypt","s3:*"],"NotResource":"arn:aws:s3:::b/*"}]}`,
		`{"Statement":[{"Effect":"Allow","Principal":{"AWS":["111111111111","arn:aws:iam::222222222222:root","arn:aws:iam::000000000000:role/r"],"Service":"events.amazonaws.com"},"Action":"*","Resource":"*"}]}`,
		`{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:sts::000000000000:assumed-role/r/s"},"Action":"*","Resource":"*","Condition":{"ForAllValues:StringLikeIfExists":{"dynamodb:LeadingKeys":["a*",1,true]}}}]}`,
	}
	for _, d := range docs {
		p, err := ParsePolicy("p", []byte(d))
		if err != nil {
			t.Errorf("ParsePolicy(%s): %v", d, err)
			continue
		}
		if string(p.Document()) != d || p.Name() != "p" {
			t.Errorf("policy keeps document %s name %q", p.Document(), p.Name())
		}
	}
}
