package kms_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
)

const customerAccount = "111111111111"

// accountClient is a KMS client signing with a 12-digit access key id: that account's root.
func accountClient(url, account string) *awskms.Client {
	return awskms.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider(account, "secret", ""),
		BaseEndpoint: aws.String(url),
	})
}

// TestKeysInACustomerAccount: a key created with a customer account's credentials belongs to
// that account (ARN, AWSAccountId, default key policy naming its root, CloudTrail), works
// by that ARN from any caller, and is not found under another account's ARN or by bare id
// from another account.
func TestKeysInACustomerAccount(t *testing.T) {
	e := newEnv(t, "", nil)
	ctx := context.Background()
	cust := accountClient(e.url, customerAccount)
	out, err := cust.CreateKey(ctx, &awskms.CreateKeyInput{Description: aws.String("customer key")})
	if err != nil {
		t.Fatal(err)
	}
	arn, id := aws.ToString(out.KeyMetadata.Arn), aws.ToString(out.KeyMetadata.KeyId)
	if !strings.Contains(arn, ":"+customerAccount+":key/") || aws.ToString(out.KeyMetadata.AWSAccountId) != customerAccount {
		t.Fatalf("CreateKey: ARN %s, account %s; want the customer's", arn, aws.ToString(out.KeyMetadata.AWSAccountId))
	}
	pol, err := cust.GetKeyPolicy(ctx, &awskms.GetKeyPolicyInput{KeyId: aws.String(arn), PolicyName: aws.String("default")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(aws.ToString(pol.Policy), "arn:aws:iam::"+customerAccount+":root") {
		t.Fatalf("default key policy does not delegate to the customer's root: %s", aws.ToString(pol.Policy))
	}
	// keyline (another account) uses it by its ARN; the ARNs it sees are the customer's.
	enc, err := e.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(arn), Plaintext: []byte("hi"), EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(enc.KeyId) != arn {
		t.Fatalf("Encrypt answered key %s, want %s", aws.ToString(enc.KeyId), arn)
	}
	dec, err := e.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
	if err != nil || aws.ToString(dec.KeyId) != arn || string(dec.Plaintext) != "hi" {
		t.Fatalf("Decrypt: %v %s", err, aws.ToString(dec.KeyId))
	}
	d, err := e.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(arn)})
	if err != nil || aws.ToString(d.KeyMetadata.AWSAccountId) != customerAccount {
		t.Fatalf("DescribeKey: %v", err)
	}
	// The same key under keyline's account, or by bare id from keyline: not found.
	wrong := strings.Replace(arn, customerAccount, "000000000000", 1)
	_, err = e.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(wrong)})
	wantAPIError(t, err, "NotFoundException", "Key '"+wrong+"' does not exist")
	_, err = e.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(id)})
	wantAPIError(t, err, "NotFoundException", "Key 'arn:aws:kms:us-east-1:000000000000:key/"+id+"' does not exist")
	// The customer by bare id: found.
	if _, err := cust.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(id)}); err != nil {
		t.Fatalf("customer DescribeKey by id: %v", err)
	}
	// The customer's DisableKey is recorded in the customer's CloudTrail.
	if _, err := cust.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	evs := e.sink.named("DisableKey")
	if len(evs) != 1 {
		t.Fatalf("%d DisableKey events", len(evs))
	}
	ev := evs[0]
	raw, _ := json.Marshal(ev)
	if ev.Account != customerAccount || ev.Detail.RecipientAccountID != customerAccount || ev.Detail.UserIdentity.AccountID != customerAccount ||
		len(ev.Detail.Resources) != 1 || ev.Detail.Resources[0].ARN != arn || strings.Contains(string(raw), ":000000000000:key/") {
		t.Fatalf("DisableKey event is not the customer's: %s", raw)
	}
	// Restarted, the key still belongs to the customer.
	_ = e.svc.Close()
	e2 := newEnv(t, e.dir, nil)
	if got := e2.svc.ResolveKeyARN(arn); got != arn {
		t.Fatalf("after a restart, %s resolves to %q", arn, got)
	}
	if p, ok := e2.svc.KeyPolicy(arn); !ok || !strings.Contains(p, customerAccount) {
		t.Fatalf("KeyPolicy after a restart: %q %v", p, ok)
	}
}
