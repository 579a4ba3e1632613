package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/fanout"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/provision"
)

// The demo org and its apps.
const (
	demoOrg        = "demo"
	demoManagedApp = "demo-managed"
	demoCMKApp1    = "demo-cmk-1"
	demoCMKApp2    = "demo-cmk-2"
	// seedMarker, in the data dir, says the demo seed completed.
	seedMarker = "seeded-demo"
	// seedProgressEvery: the seed prints a progress line after this many objects.
	seedProgressEvery = 250
)

// SeedSize is how much demo data the seed writes.
type SeedSize struct {
	// SmallObjects of 1–4 KiB, spread over the apps and their scopes (default 2000).
	SmallObjects int
	// LargeObjects of LargeBytes each (default 3 of 8 MiB).
	LargeObjects int
	LargeBytes   int
	// Concurrency of the writes (default 8).
	Concurrency int
}

func (z SeedSize) withDefaults() SeedSize {
	if z.SmallObjects == 0 && z.LargeObjects == 0 {
		z.SmallObjects, z.LargeObjects = 2000, 3
	}
	if z.LargeBytes == 0 {
		z.LargeBytes = 8 << 20
	}
	if z.Concurrency == 0 {
		z.Concurrency = 8
	}
	return z
}

// seedApp is one demo app and where its data goes.
type seedApp struct {
	id     string
	model  lineage.KeyModel
	scopes []objects.Scope
}

// seedDemo creates the demo org, a provider-managed app and two CMK apps (each on its own
// customer key in the local KMS), writes generated data through the data source and
// starts one backup of each app. It does nothing when the demo org exists.
func (s *Stack) seedDemo(ctx context.Context, size SeedSize, progress io.Writer) error {
	size = size.withDefaults()
	apps := []seedApp{
		{id: demoManagedApp, model: lineage.KeyModelManaged, scopes: []objects.Scope{objects.ScopeManaged}},
		{id: demoCMKApp1, model: lineage.KeyModelCMK, scopes: []objects.Scope{objects.ScopeCMK, objects.ScopeManaged}},
		{id: demoCMKApp2, model: lineage.KeyModelCMK, scopes: []objects.Scope{objects.ScopeCMK, objects.ScopeManaged}},
	}
	// The seed is done once the org and its apps exist and the backups were started (the
	// marker); a seed interrupted before that runs again at the next start, idempotently.
	marker := filepath.Join(s.DataDir, seedMarker)
	if _, err := s.Store.GetOrg(ctx, demoOrg); err == nil {
		if _, err := os.Stat(marker); err == nil {
			fmt.Fprintln(progress, "seed: the demo org exists; nothing to do")
			return nil
		}
	} else if !errors.Is(err, lineage.ErrNotFound) {
		return err
	}
	start := time.Now()
	// The seed does what the console does (creates apps, writes their objects), with the
	// console function's role: the customer keys admit keyline's roles, not its account root.
	cfg := functionConfig(s.AWSConfig(), infra.FnConsoleAPI)
	kmsc := awskms.NewFromConfig(cfg)
	kp := keys.NewKMS(kmsc, keys.Options{Clock: s.clock, Logger: s.logger.With("component", "keys")})
	prov := &provision.Provisioner{Store: s.Store, Keys: kp, ProviderKeyARN: s.state.ProviderKeyARN}

	if _, err := s.Store.CreateOrg(ctx, lineage.Org{ID: demoOrg, Name: "Demo Org", Accounts: []string{CustomerAccount}}); err != nil && !errors.Is(err, lineage.ErrDuplicate) {
		return fmt.Errorf("create org %s: %w", demoOrg, err)
	}
	for _, a := range apps {
		req := provision.Request{AppID: a.id, OrgID: demoOrg, KeyModel: a.model}
		if a.model == lineage.KeyModelCMK {
			if _, err := s.Store.GetApp(ctx, a.id); err == nil {
				continue // created by an interrupted seed, with its key
			}
			// The customer's key lives in the customer's account, with keyline's key policy
			// for the demo org.
			arn, err := s.CreateCustomerKey(ctx, CustomerAccount, demoOrg, "demo customer key for "+a.id, false)
			if err != nil {
				return err
			}
			req.KeyARN = arn
		}
		if _, err := prov.CreateApp(ctx, req, lineage.Cause{Actor: "seed"}); err != nil {
			return fmt.Errorf("create app %s: %w", a.id, err)
		}
		fmt.Fprintf(progress, "seed: app %s (%s)\n", a.id, a.model)
	}

	src, err := objects.NewS3(objects.Config{S3: s3Client(cfg), Bucket: s.state.DataBucket, Lineage: s.Store,
		Keys: kp, ProviderKeyARN: s.state.ProviderKeyARN,
		Logger: s.logger.With("component", "objects"), Clock: s.clock})
	if err != nil {
		return err
	}
	defer src.Close()
	if err := writeSeedObjects(ctx, src, apps, size, progress); err != nil {
		return err
	}

	for _, a := range apps {
		input, _ := json.Marshal(map[string]any{"appIds": []string{a.id}, "requestedBy": "seed"})
		arn, err := s.SFN.StartExecution(ctx, s.Machines[infra.SMBackup], "seed-backup-"+a.id, input)
		if err != nil {
			return fmt.Errorf("start backup of %s: %w", a.id, err)
		}
		fmt.Fprintf(progress, "seed: backup of %s started: %s\n", a.id, arn)
	}
	if err := os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
		return fmt.Errorf("seed marker: %w", err)
	}
	fmt.Fprintf(progress, "seed: done in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// seedObject is one object to write.
type seedObject struct {
	app   string
	scope objects.Scope
	path  string
	size  int
	seed  uint64
}

// writeSeedObjects writes the small objects round-robin over the apps and their scopes
// and one large object per app (while there are any), with progress lines.
func writeSeedObjects(ctx context.Context, src *objects.S3Source, apps []seedApp, size SeedSize, progress io.Writer) error {
	rng := rand.New(rand.NewPCG(1, 2))
	var work []seedObject
	for i := range size.SmallObjects {
		a := apps[i%len(apps)]
		sc := a.scopes[(i/len(apps))%len(a.scopes)]
		work = append(work, seedObject{app: a.id, scope: sc, path: fmt.Sprintf("docs/%04d/item-%05d.bin", i/100, i),
			size: 1024 + rng.IntN(3*1024+1), seed: rng.Uint64()})
	}
	for i := range size.LargeObjects {
		a := apps[i%len(apps)]
		work = append(work, seedObject{app: a.id, scope: a.scopes[0], path: fmt.Sprintf("media/large-%d.bin", i),
			size: size.LargeBytes, seed: rng.Uint64()})
	}
	total := len(work)
	// A seed that cannot write one object is of no use: the first failure ends the context,
	// so no further object starts (fanout.Each's rule), and the result names the failures.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var done atomic.Int64
	err := fanout.Each(ctx, size.Concurrency, work, func(ctx context.Context, o seedObject) error {
		r := io.LimitReader(rand.NewChaCha8(seedBytes(o.seed)), int64(o.size))
		if _, err := src.Put(ctx, o.app, o.scope, o.path, r); err != nil {
			err = fmt.Errorf("put %s/%s/%s: %w", o.app, o.scope, o.path, err)
			cancel(err)
			return err
		}
		if n := done.Add(1); n%seedProgressEvery == 0 || int(n) == total {
			fmt.Fprintf(progress, "seed: %d/%d objects\n", n, total)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seed objects: %w", err)
	}
	return nil
}

// seedBytes expands a number into a ChaCha8 seed.
func seedBytes(n uint64) [32]byte {
	var b [32]byte
	for i := range 8 {
		b[i] = byte(n >> (8 * i))
	}
	return b
}
