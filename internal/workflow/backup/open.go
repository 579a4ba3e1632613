package backup

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/sealing"
)

// Open streams a recorded backup from the backup bucket and opens it: the header must name the
// backup's key, generation and encryption context (checked before any KMS call), the data key
// is unwrapped through unwrap (one Decrypt, or none with a warm cache). The returned reader
// yields the snapshot plaintext; body errors surface from Read as sealing.ErrTampered or
// sealing.ErrTruncated. Close releases the download. orgID is the org of the backup's app.
func Open(ctx context.Context, client *s3.Client, bucket string, unwrap sealing.Unwrapper, orgID string, b lineage.Backup) (io.Reader, io.Closer, error) {
	key := b.ObjectKey
	if key == "" {
		key = ObjectKey(b.AppID, b.ID)
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return nil, nil, fmt.Errorf("%w: backup object %s is missing from the backup bucket", objects.ErrNotFound, key)
		}
		return nil, nil, fmt.Errorf("backup: download %s: %w", key, err)
	}
	r, _, err := sealing.NewReader(ctx, out.Body, unwrap, sealing.Expect{
		KeyARN: b.KeyARN, Generation: b.Generation, EncryptionContext: Context(orgID, b.AppID, b.Generation, b.ID),
	})
	if err != nil {
		out.Body.Close()
		return nil, nil, fmt.Errorf("backup %s: %w", b.ID, err)
	}
	return r, out.Body, nil
}
