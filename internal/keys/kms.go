package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/keyline/keyline/internal/clock"
)

// KMSAPI is the subset of *kms.Client that the KMS provider uses.
type KMSAPI interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
	DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error)
}

var _ KMSAPI = (*kms.Client)(nil)

// Options configure the KMS provider. The zero value is usable.
type Options struct {
	// MaxAttempts bounds the attempts of one call, transient errors only (default 5).
	// Revoked and bad-request errors are never retried.
	MaxAttempts int
	// BaseDelay is the first backoff delay (default 100ms); it doubles per attempt, with full
	// jitter, up to MaxDelay (default 5s).
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// Clock waits between attempts (default clock.Real()).
	Clock clock.Clock
	// Logger receives one record per retried or failed call (default slog.Default()).
	// Plaintext keys are never logged.
	Logger *slog.Logger
	// KeepSDKRetries leaves the SDK client's own retryer in place. By default the provider
	// disables it per call, so that its own classified retry is the only one.
	KeepSDKRetries bool
}

func (o Options) withDefaults() Options {
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.BaseDelay <= 0 {
		o.BaseDelay = 100 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 5 * time.Second
	}
	if o.MaxDelay < o.BaseDelay {
		o.MaxDelay = o.BaseDelay
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// KMSProvider is the Provider on AWS KMS. It serves both key models: the key ARN decides.
type KMSProvider struct {
	client KMSAPI
	opts   Options
}

var _ Provider = (*KMSProvider)(nil)

// NewKMS returns a Provider backed by client (usually a *kms.Client).
func NewKMS(client KMSAPI, opts Options) *KMSProvider {
	return &KMSProvider{client: client, opts: opts.withDefaults()}
}

func (p *KMSProvider) callOpts() []func(*kms.Options) {
	if p.opts.KeepSDKRetries {
		return nil
	}
	return []func(*kms.Options){func(o *kms.Options) { o.Retryer = aws.NopRetryer{} }}
}

// GenerateDataKey implements Provider.
func (p *KMSProvider) GenerateDataKey(ctx context.Context, keyARN string, encCtx map[string]string) (*DataKey, error) {
	const op = "GenerateDataKey"
	if err := checkArgs(op, keyARN, encCtx); err != nil {
		return nil, err
	}
	var out *kms.GenerateDataKeyOutput
	err := p.retry(ctx, op, keyARN, func(ctx context.Context) error {
		var err error
		out, err = p.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
			KeyId:             aws.String(keyARN),
			KeySpec:           types.DataKeySpecAes256,
			EncryptionContext: maps.Clone(encCtx),
		}, p.callOpts()...)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(out.Plaintext) != DataKeySize || len(out.CiphertextBlob) == 0 {
		clear(out.Plaintext)
		return nil, &KeyError{Class: ClassBadRequest, Op: op, KeyARN: keyARN, Code: "InvalidResponse",
			Err: fmt.Errorf("KMS returned a %d-byte key and a %d-byte blob", len(out.Plaintext), len(out.CiphertextBlob))}
	}
	dk := &DataKey{KeyARN: keyARN, EncryptionContext: maps.Clone(encCtx), Wrapped: out.CiphertextBlob, plaintext: out.Plaintext}
	return dk, nil
}

// Decrypt implements Provider.
func (p *KMSProvider) Decrypt(ctx context.Context, keyARN string, wrapped []byte, encCtx map[string]string) (*DataKey, error) {
	const op = "Decrypt"
	if err := checkArgs(op, keyARN, encCtx); err != nil {
		return nil, err
	}
	if len(wrapped) == 0 {
		return nil, &KeyError{Class: ClassBadRequest, Op: op, KeyARN: keyARN, Code: "EmptyCiphertext", Err: errors.New("no wrapped key")}
	}
	var out *kms.DecryptOutput
	err := p.retry(ctx, op, keyARN, func(ctx context.Context) error {
		var err error
		out, err = p.client.Decrypt(ctx, &kms.DecryptInput{
			KeyId:             aws.String(keyARN),
			CiphertextBlob:    wrapped,
			EncryptionContext: maps.Clone(encCtx),
		}, p.callOpts()...)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(out.Plaintext) != DataKeySize {
		clear(out.Plaintext)
		return nil, &KeyError{Class: ClassBadRequest, Op: op, KeyARN: keyARN, Code: "InvalidResponse",
			Err: fmt.Errorf("KMS returned a %d-byte key", len(out.Plaintext))}
	}
	return &DataKey{KeyARN: keyARN, EncryptionContext: maps.Clone(encCtx), Wrapped: append([]byte(nil), wrapped...), plaintext: out.Plaintext}, nil
}

// Check implements Provider: DescribeKey must say Enabled, then a GenerateDataKey/Decrypt round
// trip under the org's PurposeKeyCheck context must return the same key. A key in another state gives a
// *KeyError with Code "KeyState:<state>": ClassRevoked, except Creating/Updating (transient).
func (p *KMSProvider) Check(ctx context.Context, orgID, keyARN string) error {
	const op = "DescribeKey"
	if keyARN == "" {
		return &KeyError{Class: ClassBadRequest, Op: op, Code: "MissingKeyId", Err: errors.New("no key ARN")}
	}
	if orgID == "" {
		return &KeyError{Class: ClassBadRequest, Op: op, KeyARN: keyARN, Code: "MissingOrg", Err: errors.New("a key check runs in an org's context: no org given")}
	}
	var out *kms.DescribeKeyOutput
	err := p.retry(ctx, op, keyARN, func(ctx context.Context) error {
		var err error
		out, err = p.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyARN)}, p.callOpts()...)
		return err
	})
	if err != nil {
		return err
	}
	if out.KeyMetadata == nil {
		return &KeyError{Class: ClassTransient, Op: op, KeyARN: keyARN, Code: "InvalidResponse", Err: errors.New("no key metadata")}
	}
	switch st := out.KeyMetadata.KeyState; st {
	case types.KeyStateEnabled:
	case types.KeyStateCreating, types.KeyStateUpdating:
		// Passing states of multi-Region keys: not a revocation.
		return &KeyError{Class: ClassTransient, Op: op, KeyARN: keyARN, Code: "KeyState:" + string(st),
			Err: fmt.Errorf("key state is %s", st)}
	default: // Disabled, PendingDeletion, PendingReplicaDeletion, PendingImport, Unavailable
		return &KeyError{Class: ClassRevoked, Op: op, KeyARN: keyARN, Code: "KeyState:" + string(st),
			Err: fmt.Errorf("key state is %s", st)}
	}
	encCtx := EncryptionContext(orgID, KeyCheckApp, 0, PurposeKeyCheck)
	dk, err := p.GenerateDataKey(ctx, keyARN, encCtx)
	if err != nil {
		return err
	}
	defer dk.Destroy()
	back, err := p.Decrypt(ctx, keyARN, dk.Wrapped, encCtx)
	if err != nil {
		return err
	}
	defer back.Destroy()
	if !equalBytes(dk.plaintext, back.plaintext) {
		return &KeyError{Class: ClassBadRequest, Op: "Check", KeyARN: keyARN, Code: "RoundTripMismatch",
			Err: errors.New("decrypted test key differs from generated key")}
	}
	return nil
}

func equalBytes(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	var v byte
	for i := range a {
		v |= a[i] ^ b[i]
	}
	return v == 0
}

func checkArgs(op, keyARN string, encCtx map[string]string) error {
	if keyARN == "" {
		return &KeyError{Class: ClassBadRequest, Op: op, Code: "MissingKeyId", Err: errors.New("no key ARN")}
	}
	if len(encCtx) == 0 {
		return &KeyError{Class: ClassBadRequest, Op: op, KeyARN: keyARN, Code: "MissingEncryptionContext",
			Err: errors.New("every KMS call must carry an encryption context")}
	}
	return nil
}

// retry runs call until it succeeds, fails with a non-transient error, attempts run out or ctx
// ends. Errors come back classified as *KeyError.
func (p *KMSProvider) retry(ctx context.Context, op, keyARN string, call func(context.Context) error) error {
	var last *KeyError
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			if last != nil {
				return fmt.Errorf("%w (after %d attempts: %w)", last, attempt-1, err)
			}
			return &KeyError{Class: ClassTransient, Op: op, KeyARN: keyARN, Code: "ContextDone", Err: err}
		}
		err := call(ctx)
		if err == nil {
			return nil
		}
		last = Classify(op, keyARN, err)
		if last.Class != ClassTransient || attempt >= p.opts.MaxAttempts {
			p.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "kms call failed",
				slog.String("op", op), slog.String("key_arn", keyARN), slog.String("class", string(last.Class)),
				slog.String("code", last.Code), slog.Int("attempts", attempt))
			return last
		}
		d := p.backoff(attempt)
		p.opts.Logger.LogAttrs(ctx, slog.LevelInfo, "kms call retried",
			slog.String("op", op), slog.String("key_arn", keyARN), slog.String("code", last.Code),
			slog.Int("attempt", attempt), slog.Duration("delay", d))
		select {
		case <-ctx.Done():
		case <-p.opts.Clock.After(d):
		}
	}
}

// backoff returns the full-jitter delay before attempt+1: uniform in [0, min(max, base*2^(attempt-1))].
func (p *KMSProvider) backoff(attempt int) time.Duration {
	ceil := p.opts.BaseDelay
	for i := 1; i < attempt && ceil < p.opts.MaxDelay; i++ {
		ceil *= 2
	}
	ceil = min(ceil, p.opts.MaxDelay)
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}
