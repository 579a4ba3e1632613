package stepfunctions

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/local/invoke"
	"github.com/keyline/keyline/internal/local/states"
)

// listing is an in-memory ItemSource standing in for the bucket listing.
type listing struct{ keys []string }

func (l listing) ListObjectsV2(ctx context.Context, bucket, prefix string) ([]states.S3Object, error) {
	var out []states.S3Object
	for _, k := range l.keys {
		if strings.HasPrefix(k, prefix) {
			out = append(out, states.S3Object{Key: k, Size: 10, ETag: "abc", LastModified: time.Unix(1700000000, 0)})
		}
	}
	return out, nil
}

func (l listing) GetObject(ctx context.Context, bucket, key string) ([]byte, error) {
	return nil, fmt.Errorf("NoSuchKey: %s", key)
}

// A re-encryption shaped like the project's: validate, then a Distributed Map over the app's
// objects in batches, then commit; any failure is compensated by abort.
const reencryptDef = `{"StartAt":"Validate","States":{
 "Validate":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"${Fn_validate}","Payload":{"appId.$":"$.appId","executionArn.$":"$$.Execution.Id"}},"OutputPath":"$.Payload","Next":"Objects"},
 "Objects":{"Type":"Map","ItemReader":{"Resource":"arn:aws:states:::s3:listObjectsV2","Parameters":{"Bucket":"${DataBucket}","Prefix.$":"$.prefix"}},
   "ItemBatcher":{"MaxItemsPerBatch":50,"BatchInput":{"appId.$":"$.appId"}},"MaxConcurrency":10,
   "ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},"StartAt":"Batch","States":{
     "Batch":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"${Fn_batch}","Payload.$":"$"},"OutputPath":"$.Payload",
       "Retry":[{"ErrorEquals":["Transient"],"IntervalSeconds":2,"MaxAttempts":3,"BackoffRate":2,"JitterStrategy":"FULL"}],"End":true}}},
   "ResultPath":null,"Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"Abort"}],"Next":"Commit"},
 "Commit":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"${Fn_commit}","Payload.$":"$"},"OutputPath":"$.Payload","End":true},
 "Abort":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"${Fn_abort}","Payload.$":"$"},"OutputPath":"$.Payload","Next":"Aborted"},
 "Aborted":{"Type":"Fail","Error":"ReencryptionAborted","Cause":"compensated"}}}`

func TestDistributedMapReencryption(t *testing.T) {
	var keys []string
	for i := 0; i < 120; i++ {
		keys = append(keys, fmt.Sprintf("apps/a1/obj-%03d", i))
	}
	keys = append(keys, "apps/a2/other")
	var mu sync.Mutex
	calls := map[string]int{}
	batchItems := 0
	failBatches := false
	inv := invoke.InvokerFunc(func(ctx context.Context, fn string, payload []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		calls[fn]++
		switch fn {
		case "validate":
			return []byte(`{"appId":"a1","prefix":"apps/a1/"}`), nil
		case "batch":
			var in struct {
				Items      []map[string]any `json:"Items"`
				BatchInput struct {
					AppID string `json:"appId"`
				} `json:"BatchInput"`
			}
			if err := json.Unmarshal(payload, &in); err != nil || in.BatchInput.AppID != "a1" {
				return nil, &invoke.FunctionError{Type: "BadInput", Message: string(payload)}
			}
			if failBatches {
				return nil, &invoke.FunctionError{Type: "KeyDisabled", Message: "the target key is disabled"}
			}
			batchItems += len(in.Items)
			return []byte(`{"ok":true}`), nil
		case "commit":
			return []byte(`{"committed":true}`), nil
		case "abort":
			return []byte(`{"aborted":true}`), nil
		}
		return nil, &invoke.FunctionError{Type: "ResourceNotFound", Message: fn}
	})
	s := newService(t, Options{Invoker: inv, Items: listing{keys: keys}})
	def, err := infra.Substitute([]byte(reencryptDef), map[string]string{"Fn_validate": "validate", "Fn_batch": "batch", "Fn_commit": "commit", "Fn_abort": "abort", "DataBucket": "data"})
	if err != nil {
		t.Fatal(err)
	}
	smArn, err := s.RegisterStateMachine("reencrypt", string(def), "r")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	arn, err := s.StartExecution(ctx, smArn, "ok", []byte(`{"appId":"a1"}`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.WaitExecution(ctx, arn)
	if err != nil || d.Status != "SUCCEEDED" || string(d.Output) != `{"committed":true}` {
		t.Fatalf("%v %+v", err, d)
	}
	if calls["batch"] != 3 || batchItems != 120 || calls["abort"] != 0 {
		t.Fatalf("calls %v, items %d", calls, batchItems)
	}
	failBatches = true
	arn, err = s.StartExecution(ctx, smArn, "fails", []byte(`{"appId":"a1"}`))
	if err != nil {
		t.Fatal(err)
	}
	d, err = s.WaitExecution(ctx, arn)
	if err != nil || d.Status != "FAILED" || d.Error != "ReencryptionAborted" || calls["abort"] != 1 {
		t.Fatalf("%v %+v calls %v", err, d, calls)
	}
	x, _ := s.getExec(arn)
	var sawMapRunFailed bool
	for _, ev := range x.Events {
		if ev.Type == "MapRunFailed" && ev.Details["error"] == states.ErrExceedToleratedFailure {
			sawMapRunFailed = true
		}
	}
	if !sawMapRunFailed {
		t.Fatal("history lacks MapRunFailed with States.ExceedToleratedFailureThreshold")
	}
}
