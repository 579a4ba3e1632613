package keys_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/keyline/keyline/internal/keys"
)

func TestEncryptionContext(t *testing.T) {
	got := keys.EncryptionContext("org-1", "app-1", 3, keys.PurposeBackup)
	want := map[string]string{"keyline:org": "org-1", "keyline:app": "app-1", "keyline:generation": "3", "keyline:purpose": "backup"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s = %q, want %q (context %v)", k, got[k], v, got)
		}
	}
	// Fresh map per call.
	got["x"] = "y"
	if _, ok := keys.EncryptionContext("org-1", "app-1", 3, keys.PurposeBackup)["x"]; ok {
		t.Fatal("EncryptionContext returned a shared map")
	}
}

func TestResolve(t *testing.T) {
	const provider = "arn:aws:kms:us-east-1:111122223333:key/provider"
	const customer = "arn:aws:kms:us-east-1:444455556666:key/customer"
	tests := []struct {
		model          keys.Model
		keyARN, provAR string
		want           keys.KeyRef
		wantErr        bool
	}{
		{keys.ModelCustomer, customer, provider, keys.KeyRef{Model: keys.ModelCustomer, KeyARN: customer}, false},
		{keys.ModelCustomer, "", provider, keys.KeyRef{}, true},       // never falls back
		{keys.ModelCustomer, provider, provider, keys.KeyRef{}, true}, // may not name the provider key
		{keys.ModelManaged, "", provider, keys.KeyRef{Model: keys.ModelManaged, KeyARN: provider}, false},
		{keys.ModelManaged, provider, provider, keys.KeyRef{Model: keys.ModelManaged, KeyARN: provider}, false},
		{keys.ModelManaged, customer, provider, keys.KeyRef{}, true},
		{keys.ModelManaged, "", "", keys.KeyRef{}, true},
		{keys.Model("byok"), customer, provider, keys.KeyRef{}, true},
	}
	for _, tc := range tests {
		got, err := keys.Resolve(tc.model, tc.keyARN, tc.provAR)
		if tc.wantErr {
			if !errors.Is(err, keys.ErrInvalidKeyRef) {
				t.Errorf("Resolve(%q, %q, %q) err = %v, want ErrInvalidKeyRef", tc.model, tc.keyARN, tc.provAR, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Resolve(%q, %q, %q) = %+v, %v; want %+v", tc.model, tc.keyARN, tc.provAR, got, err, tc.want)
		}
	}
	if m, err := keys.ParseModel("cmk"); err != nil || m != keys.ModelCustomer {
		t.Errorf("ParseModel(cmk) = %q, %v", m, err)
	}
	if _, err := keys.ParseModel("CMK"); !errors.Is(err, keys.ErrInvalidKeyRef) {
		t.Errorf("ParseModel(CMK) err = %v", err)
	}
}

func TestDataKeyRedactedAndDestroyed(t *testing.T) {
	secret := bytes.Repeat([]byte{0xAB}, keys.DataKeySize)
	dk := keys.NewDataKey("arn:k", map[string]string{"a": "b"}, []byte("wrapped"), secret)
	secret[0] = 0 // NewDataKey copied
	if dk.Plaintext()[0] != 0xAB {
		t.Fatal("NewDataKey did not copy the plaintext")
	}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("k", "dk", dk)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("k", "dk", dk, "byvalue", *dk)
	outputs := []string{
		fmt.Sprint(dk), fmt.Sprintf("%v %+v %#v %s %q %x", dk, dk, dk, dk, dk, dk),
		fmt.Sprintf("%v", []*keys.DataKey{dk}), fmt.Sprintf("%v %+v %#v", *dk, *dk, []keys.DataKey{*dk}), logBuf.String(),
	}
	forbidden := []string{"171", "ab", "AB", "\xab"} // decimal, hex, raw
	for _, out := range outputs {
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("output lacks REDACTED: %s", out)
		}
		for _, f := range forbidden {
			if strings.Contains(strings.ReplaceAll(out, "arn:k", ""), f+f) {
				t.Errorf("output may show the plaintext (%q): %s", f, out)
			}
		}
	}
	pt := dk.Plaintext()
	dk.Destroy()
	if !bytes.Equal(pt, make([]byte, keys.DataKeySize)) {
		t.Fatal("Destroy did not zero the plaintext")
	}
	if dk.Plaintext() != nil || !dk.Destroyed() {
		t.Fatal("destroyed key still gives a plaintext")
	}
	dk.Destroy() // idempotent
}

func TestKeyErrorIsByClass(t *testing.T) {
	cases := map[keys.Class]error{keys.ClassRevoked: keys.ErrRevoked, keys.ClassTransient: keys.ErrTransient, keys.ClassBadRequest: keys.ErrBadRequest}
	for class, sentinel := range cases {
		err := fmt.Errorf("wrapped: %w", &keys.KeyError{Class: class, Op: "Decrypt", KeyARN: "arn:k", Code: "X", Err: context.Canceled})
		for c2, s2 := range cases {
			if got := errors.Is(err, s2); got != (c2 == class) {
				t.Errorf("class %s: errors.Is(%v) = %v", class, s2, got)
			}
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("class %s: cause not unwrapped", class)
		}
		if c, ok := keys.ClassOf(err); !ok || c != class {
			t.Errorf("ClassOf = %s, %v", c, ok)
		}
		_ = sentinel
	}
	if _, ok := keys.ClassOf(errors.New("plain")); ok {
		t.Error("ClassOf found a class in a plain error")
	}
}
