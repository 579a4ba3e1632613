package lineage_test

import (
	"strings"
	"testing"

	"github.com/keyline/keyline/internal/lineage"
)

// TestPrefixEnd: BETWEEN prefix AND PrefixEnd(prefix) holds exactly the keys that start with
// prefix (byte order, as DynamoDB compares strings), and PrefixEnd(prefix) itself, which is
// no sort key keyline writes (they are "<TYPE>#…" or "META").
func TestPrefixEnd(t *testing.T) {
	for _, pre := range []string{"ACTIVE#APP#", "PENDING#APP#", "GEN#", "AUDIT#", "ORG#", "APP#"} {
		end := lineage.PrefixEnd(pre)
		keys := []string{pre, pre + "a", pre + "app-1#GEN#00000001", pre + "~~~~", pre + "\u00ff",
			pre[:len(pre)-1], pre[:len(pre)-1] + "\"", pre[:len(pre)-1] + "$", pre[:len(pre)-1] + "$a", "", "zzz", strings.ToLower(pre)}
		for _, k := range keys {
			in := k >= pre && k <= end
			if want := strings.HasPrefix(k, pre) || k == end; in != want {
				t.Errorf("prefix %q, key %q: BETWEEN %q AND %q is %v, begins_with %v", pre, k, pre, end, in, want)
			}
		}
	}
}
