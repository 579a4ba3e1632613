package s3

import (
	"sort"
	"strings"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
)

// keyDelimiter separates the directories of a key in the afero backend.
const keyDelimiter = "/"

// prefixListing is the afero backend with a listing by prefix that reads only the directories
// under the prefix. The backend itself walks the whole bucket for a prefix without a
// delimiter (under its lock), so listing one app's objects (apps/<id>/) cost as much as the
// bucket held: a scheduled run over thousands of apps went quadratic.
type prefixListing struct {
	*s3afero.MultiBucketBackend
}

// ListBucket lists without a delimiter (by prefix or all) directory by directory through the backend's
// delimited listing, in key order as S3 does; every other listing is the backend's.
func (b prefixListing) ListBucket(bucket string, prefix *gofakes3.Prefix, page gofakes3.ListBucketPage) (*gofakes3.ObjectList, error) {
	if prefix != nil && prefix.HasDelimiter || !page.IsEmpty() {
		return b.MultiBucketBackend.ListBucket(bucket, prefix, page)
	}
	if ok, err := b.BucketExists(bucket); err != nil {
		return nil, err
	} else if !ok {
		return nil, gofakes3.BucketNotFound(bucket)
	}
	want := ""
	if prefix != nil {
		want = prefix.Prefix
	}
	out := gofakes3.NewObjectList()
	var walk func(dir string) error
	walk = func(dir string) error {
		l, err := b.MultiBucketBackend.ListBucket(bucket, &gofakes3.Prefix{HasPrefix: true, Prefix: dir, HasDelimiter: true, Delimiter: keyDelimiter}, gofakes3.ListBucketPage{})
		if err != nil {
			// The backend answers NoSuchBucket for a directory that does not exist: nothing
			// is stored under it.
			if gofakes3.HasErrorCode(err, gofakes3.ErrNoSuchBucket) {
				return nil
			}
			return err
		}
		for _, c := range l.Contents {
			if strings.HasPrefix(c.Key, want) {
				out.Add(c)
			}
		}
		for _, cp := range l.CommonPrefixes {
			if strings.HasPrefix(cp.Prefix, want) {
				if err := walk(cp.Prefix); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// The deepest directory the prefix names; the rest of it filters that directory's entries.
	dir := want[:strings.LastIndex(want, keyDelimiter)+1]
	if err := walk(dir); err != nil {
		return nil, err
	}
	sort.Slice(out.Contents, func(i, j int) bool { return out.Contents[i].Key < out.Contents[j].Key })
	return out, nil
}
