package invariants

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/keyline/keyline/internal/decl"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/sealing"
)

// Sources are where Collect reads: the lineage store, the data bucket (objects at rest) and
// the Step Functions API.
type Sources struct {
	Store      *lineage.Store
	S3         *s3.Client
	DataBucket string
	// Prefix roots the apps' objects (default "apps/").
	Prefix string
	// SFN lists the executions; nil leaves I7's app check out.
	SFN *sfn.Client
	// KMS describes the keys the lineage names (I8); nil leaves their KMS state unknown.
	// It must be able to describe keys in the customers' accounts.
	KMS *kms.Client
}

// Collect observes every app (or only those named) through the sources.
func Collect(ctx context.Context, src Sources, now time.Time, only ...string) (Snapshot, error) {
	if src.Prefix == "" {
		src.Prefix = "apps/"
	}
	s := Snapshot{Now: now}
	var apps []lineage.App
	if len(only) > 0 {
		for _, id := range only {
			a, err := src.Store.GetApp(ctx, id)
			if err != nil {
				return s, fmt.Errorf("invariants: app %s: %w", id, err)
			}
			apps = append(apps, a)
		}
	} else {
		cursor := ""
		for {
			p, err := src.Store.ListApps(ctx, cursor, 100)
			if err != nil {
				return s, fmt.Errorf("invariants: list apps: %w", err)
			}
			apps = append(apps, p.Items...)
			if p.Next == "" {
				break
			}
			cursor = p.Next
		}
	}
	for _, a := range apps {
		st, err := collectApp(ctx, src, a)
		if err != nil {
			return s, err
		}
		s.Apps = append(s.Apps, st)
	}
	s.Keys = recordedKeys(s.Apps)
	if src.KMS != nil {
		for i := range s.Keys {
			d, err := src.KMS.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(s.Keys[i].ARN)})
			switch {
			case err == nil:
				s.Keys[i].KMS = string(d.KeyMetadata.KeyState)
			case strings.Contains(err.Error(), "NotFoundException"):
				s.Keys[i].KMS = "Deleted"
			default:
				return s, fmt.Errorf("invariants: describe key %s: %w", s.Keys[i].ARN, err)
			}
		}
	}
	if src.SFN != nil {
		ex, err := collectExecutions(ctx, src.SFN)
		if err != nil {
			return s, err
		}
		s.Executions, s.ExecutionsKnown = ex, true
	}
	return s, nil
}

// recordedKeys is each key the apps' lineage names, revoked when its key item says so.
func recordedKeys(apps []AppState) []KeyState {
	seen := map[string]int{}
	var out []KeyState
	for _, a := range apps {
		for _, g := range a.Generations {
			if g.KeyARN == "" {
				continue
			}
			i, ok := seen[g.KeyARN]
			if !ok {
				i = len(out)
				seen[g.KeyARN] = i
				out = append(out, KeyState{ARN: g.KeyARN})
			}
			if g.KeyRevoked {
				out[i].Revoked = true
			}
		}
	}
	return out
}

// stableReads bounds how often collectApp reads an app again to see it hold still.
const stableReads = 4

// collectApp observes one app. Its status, its generations' key states and its backups'
// restorability are each derived from the key items when read, so they are read together
// and kept only when the app reads the same before and after (a key event landing between
// the reads would otherwise show a deactivated app beside a usable key, which no instant
// had); the app listed earlier is only where to start.
func collectApp(ctx context.Context, src Sources, a lineage.App) (AppState, error) {
	st := AppState{App: a}
	var err error
	for attempt := 0; attempt < stableReads; attempt++ {
		before, err := src.Store.GetApp(ctx, a.ID)
		if err != nil {
			return st, fmt.Errorf("invariants: app %s: %w", a.ID, err)
		}
		if st.Generations, err = src.Store.ListGenerations(ctx, a.ID); err != nil {
			return st, fmt.Errorf("invariants: generations of %s: %w", a.ID, err)
		}
		if st.Backups, err = src.Store.ListBackups(ctx, a.ID); err != nil {
			return st, fmt.Errorf("invariants: backups of %s: %w", a.ID, err)
		}
		after, err := src.Store.GetApp(ctx, a.ID)
		if err != nil {
			return st, fmt.Errorf("invariants: app %s: %w", a.ID, err)
		}
		st.App = after
		if before.Version == after.Version && before.Status == after.Status && before.StatusReason == after.StatusReason {
			break
		}
	}
	if st.Audit, err = src.Store.ListAudit(ctx, a.ID); err != nil {
		return st, fmt.Errorf("invariants: audit of %s: %w", a.ID, err)
	}
	if st.Skips, err = src.Store.ListSkips(ctx, a.ID); err != nil {
		return st, fmt.Errorf("invariants: skips of %s: %w", a.ID, err)
	}
	if a.KeyModel != lineage.KeyModelCMK || src.S3 == nil {
		return st, nil
	}
	p := s3.NewListObjectsV2Paginator(src.S3, &s3.ListObjectsV2Input{Bucket: aws.String(src.DataBucket), Prefix: aws.String(src.Prefix + a.ID + "/cmk/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return st, fmt.Errorf("invariants: objects of %s: %w", a.ID, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			out, err := src.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(src.DataBucket), Key: o.Key})
			if err != nil {
				if strings.Contains(err.Error(), "NoSuchKey") {
					continue // deleted since the listing
				}
				return st, fmt.Errorf("invariants: object %s: %w", key, err)
			}
			h, err := sealing.ReadHeader(out.Body)
			out.Body.Close()
			if err != nil {
				return st, fmt.Errorf("invariants: header of %s: %w", key, err)
			}
			st.Objects = append(st.Objects, Object{Key: key, Generation: h.Generation, KeyARN: h.KeyARN,
				Org: h.EncryptionContext[decl.ContextKeyOrg], App: h.EncryptionContext[decl.ContextKeyApp]})
		}
	}
	return st, nil
}

func collectExecutions(ctx context.Context, c *sfn.Client) ([]Execution, error) {
	machines, err := c.ListStateMachines(ctx, &sfn.ListStateMachinesInput{})
	if err != nil {
		return nil, fmt.Errorf("invariants: list state machines: %w", err)
	}
	var out []Execution
	for _, m := range machines.StateMachines {
		name := aws.ToString(m.Name)
		short := name
		if i := strings.LastIndex(name, "-"); i >= 0 {
			short = name[i+1:]
		}
		p := sfn.NewListExecutionsPaginator(c, &sfn.ListExecutionsInput{StateMachineArn: m.StateMachineArn, StatusFilter: sfntypes.ExecutionStatusRunning})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("invariants: executions of %s: %w", name, err)
			}
			for _, e := range page.Executions {
				ex := Execution{Arn: aws.ToString(e.ExecutionArn), Machine: short, Status: string(e.Status), Started: aws.ToTime(e.StartDate)}
				if d, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: e.ExecutionArn}); err == nil {
					var in struct {
						AppID string `json:"appId"`
					}
					if json.Unmarshal([]byte(aws.ToString(d.Input)), &in) == nil {
						ex.AppID = in.AppID
					}
					ex.Status = string(d.Status) // it may have ended since the listing
				}
				out = append(out, ex)
			}
		}
	}
	return out, nil
}
