package objects_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
)

// BenchmarkSnapshot streams a 64 MiB app (four 16 MiB objects) into io.Discard.
func BenchmarkSnapshot(b *testing.B) {
	const objSize, objs = 16 << 20, 4
	e := objectstest.New(b)
	e.Org(b, "org1")
	e.CMKApp(b, "org1", "big")
	chunk := bytes.Repeat([]byte("keyline-bench-data-"), objSize/19+1)[:objSize]
	for i := range objs {
		e.Put(b, "big", objects.ScopeCMK, fmt.Sprintf("obj-%d", i), chunk)
	}
	b.SetBytes(objSize * objs)
	b.ResetTimer()
	for range b.N {
		if _, err := e.Source.Snapshot(context.Background(), "big", io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
