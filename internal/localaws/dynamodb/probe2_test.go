package dynamodb_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"os"
	"strings"
	"testing"

	"github.com/keyline/keyline/internal/localaws/dynamodb"
)

func TestProbe2(t *testing.T) {
	if os.Getenv("PROBE2") == "" {
		return
	}
	p, err := dynamodb.Start(context.Background(), dynamodb.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	srv := httptest.NewServer(p)
	defer srv.Close()
	for _, u := range []string{p.Endpoint(), srv.URL} {
		req, _ := http.NewRequest("POST", u, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		req.Header.Set("X-Amz-Target", "DynamoDB_20120810.ListTables")
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := httputil.DumpResponse(resp, true)
		t.Logf("%s:\n%s", u, b)
	}
}
