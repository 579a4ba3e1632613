package testenv

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
)

func TestKMSRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, endpoint := KMS(t)
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoint %q is not loopback", endpoint)
	}
	arn := NewKMSKey(t, c)
	if !strings.HasPrefix(arn, "arn:aws:kms:us-east-1:111122223333:key/") {
		t.Fatalf("unexpected key ARN %q", arn)
	}
	encCtx := map[string]string{"a": "b"}
	gen, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(arn), KeySpec: types.DataKeySpecAes256, EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(arn), CiphertextBlob: gen.CiphertextBlob, EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	if string(dec.Plaintext) != string(gen.Plaintext) || len(dec.Plaintext) != 32 {
		t.Fatal("round trip returned a different key")
	}
	if _, err := c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(arn), CiphertextBlob: gen.CiphertextBlob, EncryptionContext: map[string]string{"a": "c"}}); err == nil {
		t.Fatal("decrypt with another encryption context succeeded")
	}
	// A second call shares the server.
	c2, endpoint2 := KMS(t)
	if endpoint2 != endpoint {
		t.Fatalf("second server started: %s vs %s", endpoint2, endpoint)
	}
	if _, err := c2.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
}
