//go:build conformance

package kms_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

// conformanceDir finds ../shared/conformance from $KEYLINE_CONFORMANCE_DIR or the repo root.
func conformanceDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("KEYLINE_CONFORMANCE_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/keyline/keyline\n")) {
			d := filepath.Join(dir, "..", "shared", "conformance")
			if _, err := os.Stat(d); err != nil {
				t.Fatalf("conformance data not found at %s; set KEYLINE_CONFORMANCE_DIR", d)
			}
			return d
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("conformance data not found: set KEYLINE_CONFORMANCE_DIR or run inside the keyline repo next to ../shared")
		}
		dir = parent
	}
}

type recordedError struct {
	Code, Message string
}

// recorded returns the error AWS answered in test `name`, recording `rec`.
func recorded(t *testing.T, snap map[string]map[string]json.RawMessage, name, rec string) recordedError {
	t.Helper()
	for k, v := range snap {
		if !strings.HasSuffix(k, "::"+name) {
			continue
		}
		var content map[string]struct {
			Error recordedError
		}
		if err := json.Unmarshal(v["recorded-content"], &content); err != nil {
			t.Fatal(err)
		}
		if e, ok := content[rec]; ok && e.Error.Code != "" {
			return e.Error
		}
	}
	t.Fatalf("no recorded error %s / %s in the snapshot", name, rec)
	return recordedError{}
}

func TestConformanceKMSErrorTexts(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(conformanceDir(t), "kms", "test_kms.snapshot.json"))
	if err != nil {
		t.Fatal(err)
	}
	var snap map[string]map[string]json.RawMessage
	if err := json.Unmarshal(b, &snap); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "", nil)
	ctx := context.Background()
	arn := e.createKey(t)

	check := func(what string, want recordedError, keyArn string, err error) {
		t.Helper()
		msg := strings.NewReplacer("<key-arn>", keyArn, "arn:<partition>:kms:<region>:111111111111:key/<key-id:1>", keyArn).Replace(want.Message)
		var ae smithy.APIError
		if !errors.As(err, &ae) {
			t.Errorf("%s: want %s %q, got %v", what, want.Code, msg, err)
			return
		}
		if ae.ErrorCode() != want.Code || ae.ErrorMessage() != msg {
			t.Errorf("%s:\n want %s: %q\n  got %s: %q", what, want.Code, msg, ae.ErrorCode(), ae.ErrorMessage())
		}
	}

	// Wrong or missing encryption context: InvalidCiphertextException with an empty message.
	enc, err := e.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(arn), Plaintext: []byte("p"), EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	check("decrypt without context", recorded(t, snap, "test_encrypt_decrypt_encryption_context", "decrypt_response_without_encryption_context"), arn, err)

	// Plaintext over 4096 bytes.
	_, err = e.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(arn), Plaintext: bytes.Repeat([]byte("a"), 4097), EncryptionContext: encCtx})
	check("plaintext too long", recorded(t, snap, "test_plaintext_size_for_encrypt", "invalid-plaintext-size-encrypt"), arn, err)

	// GenerateRandom bounds.
	_, err = e.client.GenerateRandom(ctx, &awskms.GenerateRandomInput{NumberOfBytes: aws.Int32(0)})
	check("GenerateRandom 0", recorded(t, snap, "test_generate_random_invalid_number_of_bytes[0]", "generate-random-exc"), arn, err)
	_, err = e.client.GenerateRandom(ctx, &awskms.GenerateRandomInput{NumberOfBytes: aws.Int32(1025)})
	check("GenerateRandom 1025", recorded(t, snap, "test_generate_random_invalid_number_of_bytes[1025]", "generate-random-exc"), arn, err)

	// A key that does not exist.
	missing := "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555"
	_, err = e.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(missing)})
	check("DescribeKey missing", recorded(t, snap, "test_get_key_does_not_exist", "describe-nonexistent-with-arn"), missing, err)

	// Key material not imported yet.
	ext, err := e.client.CreateKey(ctx, &awskms.CreateKeyInput{Origin: types.OriginTypeExternal})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: ext.KeyMetadata.KeyId, Plaintext: []byte("p"), EncryptionContext: encCtx})
	check("pending import", recorded(t, snap, "test_import_key_symmetric", "encrypt-before-import-error"), *ext.KeyMetadata.Arn, err)

	// A disabled key: the same text for every cryptographic operation.
	if _, err := e.client.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	disabled := recorded(t, snap, "test_rotate_key_on_demand_raises_error_given_key_is_disabled", "error-response")
	_, err = e.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(keyID(arn)), Plaintext: []byte("p"), EncryptionContext: encCtx})
	check("Encrypt disabled", disabled, arn, err)
	_, err = e.client.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(arn), KeySpec: types.DataKeySpecAes256, EncryptionContext: encCtx})
	check("GenerateDataKey disabled", disabled, arn, err)
	_, err = e.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
	check("Decrypt disabled", disabled, arn, err)
}
