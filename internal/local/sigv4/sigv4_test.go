package sigv4

import (
	"net/http"
	"testing"
)

func TestFromAuthorization(t *testing.T) {
	cases := []struct {
		auth string
		want Scope
		ok   bool
	}{
		{"AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab",
			Scope{"AKID", "20240101", "us-east-1", "kms"}, true},
		{"AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-1/s3/aws4_request,SignedHeaders=host,Signature=ab",
			Scope{"AKID", "20240101", "eu-west-1", "s3"}, true},
		{"AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1//aws4_request, Signature=ab", Scope{}, false},
		{"AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kms/aws5_request", Scope{}, false},
		{"Bearer token", Scope{}, false},
		{"", Scope{}, false},
	}
	for _, c := range cases {
		got, ok := FromAuthorization(c.auth)
		if ok != c.ok || got != c.want {
			t.Errorf("%q: got %+v %v, want %+v %v", c.auth, got, ok, c.want, c.ok)
		}
	}
}

func TestFromRequestPresigned(t *testing.T) {
	r, _ := http.NewRequest("GET", "http://127.0.0.1/b/k?X-Amz-Credential=AKID%2F20240101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=00", nil)
	got, ok := FromRequest(r)
	if !ok || got.Service != "s3" || got.AccessKeyID != "AKID" {
		t.Fatalf("presigned: %+v %v", got, ok)
	}
}
