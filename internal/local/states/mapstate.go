package states

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ItemSource reads Distributed Map items from S3.
type ItemSource interface {
	// ListObjectsV2 lists every object under prefix in bucket.
	ListObjectsV2(ctx context.Context, bucket, prefix string) ([]S3Object, error)
	// GetObject returns an object's content.
	GetObject(ctx context.Context, bucket, key string) ([]byte, error)
}

// S3Object is one listed object.
type S3Object struct {
	Key          string
	Size         int64
	ETag         string
	LastModified time.Time
	StorageClass string
}

const defaultInlineConcurrency = 40

func (r *stateRun) mapState(ctx context.Context) (any, *stateError) {
	st := r.st
	in, serr := r.inputPath()
	if serr != nil {
		return nil, serr
	}
	var items []any
	if st.ItemReader != nil {
		items, serr = r.readItems(ctx, in)
		if serr != nil {
			return nil, serr
		}
	} else {
		v := in
		if st.ItemsPath.e != nil {
			var err error
			v, err = st.ItemsPath.e.eval(in, r.ctx())
			if err != nil {
				return nil, r.pathErr(st.ItemsPath.src, err)
			}
		}
		a, ok := v.([]any)
		if !ok {
			src := st.ItemsPath.src
			if src == "" {
				src = "$"
			}
			return nil, r.runtime(fmt.Sprintf("Invalid path '%s': The ItemsPath field must reference an array, but found a %s: %s", src, typeName(v), encodeString(v)))
		}
		items = a
	}
	maxConc := st.MaxConcurrency
	if st.MaxConcurrencyPath != nil {
		v, err := st.MaxConcurrencyPath.eval(in, r.ctx())
		if err != nil {
			return nil, r.pathErr(st.MaxConcurrencyPath.String(), err)
		}
		n, ok := toInt(v)
		if !ok || n < 0 {
			shown := encodeString(v)
			if s, isStr := v.(string); isStr {
				shown = s
			}
			return nil, r.runtime(fmt.Sprintf("The MaxConcurrencyPath field refers to value \"%s\" which is not a valid integer: %s", shown, st.MaxConcurrencyPath.String()))
		}
		maxConc = n
	}
	tolPct, tolCount, serr := r.tolerance(in)
	if serr != nil {
		return nil, serr
	}
	// Per-item inputs.
	inputs := make([]any, len(items))
	for i, it := range items {
		if st.ItemSelector != nil {
			var co map[string]any
			if templateUsesCtx(st.ItemSelector) {
				co = r.e.ctxObject(st.Name, r.at, map[string]any{"Map": map[string]any{"Item": map[string]any{"Index": intValue(int64(i)), "Value": it}}})
			}
			v, serr := r.template(st.ItemSelector, in, co)
			if serr != nil {
				return nil, serr
			}
			inputs[i] = v
		} else {
			inputs[i] = it
		}
	}
	if st.Distributed {
		return r.distributed(ctx, in, inputs, maxConc, tolPct, tolCount)
	}
	r.e.emit("MapStateStarted", "mapStateStartedEventDetails", map[string]any{"length": len(inputs)})
	r.started = true
	results := make([]any, len(inputs))
	iterErrs := make([]*stateError, len(inputs))
	tolerant := tolPct != nil || tolCount != nil
	runOne := func(ctx context.Context, i int) *stateError {
		d := map[string]any{"name": st.Name, "index": i}
		r.e.emit("MapIterationStarted", "mapIterationStartedEventDetails", d)
		out, serr := r.e.runMachine(ctx, st.Processor, st.Processor.StartAt, inputs[i], false)
		if serr != nil {
			if serr.Error == errAbortedName {
				r.e.emit("MapIterationAborted", "mapIterationAbortedEventDetails", d)
			} else {
				r.e.emit("MapIterationFailed", "mapIterationFailedEventDetails", d)
			}
			iterErrs[i] = serr
			if tolerant {
				results[i] = serr.object()
			}
			return serr
		}
		results[i] = out
		r.e.emit("MapIterationSucceeded", "mapIterationSucceededEventDetails", d)
		return nil
	}
	failed := r.runPool(ctx, len(inputs), int(maxConc), defaultInlineConcurrency, tolerant, runOne)
	if failed != nil {
		return nil, failed
	}
	if tolerant {
		if serr := checkTolerance(iterErrs, tolPct, tolCount); serr != nil {
			return nil, serr
		}
	}
	r.e.emit("MapStateSucceeded", "", nil)
	return r.finishResult(results)
}

// runPool runs n jobs with at most maxConc at a time (0 = def). Unless tolerant, the first
// failure cancels the rest and is returned.
func (r *stateRun) runPool(ctx context.Context, n, maxConc, def int, tolerant bool, job func(context.Context, int) *stateError) *stateError {
	if maxConc <= 0 {
		maxConc = def
	}
	if maxConc == 1 {
		for i := 0; i < n; i++ {
			if ctx.Err() != nil {
				return newErr(errAbortedName, "")
			}
			if serr := job(ctx, i); serr != nil && (!tolerant || serr.Error == errAbortedName) {
				return serr
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first *stateError
		wg    sync.WaitGroup
	)
	next := make(chan int)
	workers := min(maxConc, n)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if ctx.Err() != nil {
					continue
				}
				serr := job(ctx, i)
				if serr != nil && (!tolerant || serr.Error == errAbortedName) {
					mu.Lock()
					if first == nil || (first.Error == errAbortedName && serr.Error != errAbortedName) {
						first = serr
					}
					mu.Unlock()
					cancel()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return newErr(errAbortedName, "")
	}
	return first
}

func (r *stateRun) tolerance(in any) (*float64, *int64, *stateError) {
	st := r.st
	pct, cnt := st.ToleratedFailurePercentage, st.ToleratedFailureCount
	if st.ToleratedFailurePercentagePath != nil {
		v, err := st.ToleratedFailurePercentagePath.eval(in, r.ctx())
		if err != nil {
			return nil, nil, r.pathErr(st.ToleratedFailurePercentagePath.String(), err)
		}
		f, ok := toFloat(v)
		if !ok || f < 0 || f > 100 {
			return nil, nil, r.runtime(fmt.Sprintf("The ToleratedFailurePercentagePath field refers to value \"%s\" which is not a valid percentage: %s", encodeString(v), st.ToleratedFailurePercentagePath.String()))
		}
		pct = &f
	}
	if st.ToleratedFailureCountPath != nil {
		v, err := st.ToleratedFailureCountPath.eval(in, r.ctx())
		if err != nil {
			return nil, nil, r.pathErr(st.ToleratedFailureCountPath.String(), err)
		}
		n, ok := toInt(v)
		if !ok || n < 0 {
			return nil, nil, r.runtime(fmt.Sprintf("The ToleratedFailureCountPath field refers to value \"%s\" which is not a valid integer: %s", encodeString(v), st.ToleratedFailureCountPath.String()))
		}
		cnt = &n
	}
	return pct, cnt, nil
}

func checkTolerance(errs []*stateError, pct *float64, cnt *int64) *stateError {
	failed := 0
	for _, e := range errs {
		if e != nil {
			failed++
		}
	}
	if failed == 0 {
		return nil
	}
	exceeded := true
	if cnt != nil && int64(failed) <= *cnt {
		exceeded = false
	}
	if pct != nil && len(errs) > 0 && float64(failed)*100/float64(len(errs)) <= *pct {
		exceeded = false
	}
	if !exceeded {
		return nil
	}
	return newErr(ErrExceedToleratedFailure, "The specified tolerated failure threshold was exceeded")
}

func (r *stateRun) readItems(ctx context.Context, in any) ([]any, *stateError) {
	rd := r.st.ItemReader
	fail := func(format string, a ...any) *stateError {
		return newErr(ErrItemReaderFailed, fmt.Sprintf(format, a...))
	}
	if r.e.opts.Items == nil {
		return nil, fail("no ItemReader source is configured for %s", rd.Resource)
	}
	var params map[string]any
	if rd.Parameters != nil {
		v, serr := r.template(rd.Parameters, in, r.ctx())
		if serr != nil {
			return nil, serr
		}
		params, _ = v.(map[string]any)
	}
	bucket, _ := params["Bucket"].(string)
	if bucket == "" {
		return nil, fail("the ItemReader Parameters need a Bucket")
	}
	var items []any
	switch rd.Resource {
	case "arn:aws:states:::s3:listObjectsV2":
		prefix, _ := params["Prefix"].(string)
		objs, err := r.e.opts.Items.ListObjectsV2(ctx, bucket, prefix)
		if err != nil {
			return nil, fail("%v", err)
		}
		for _, o := range objs {
			sc := o.StorageClass
			if sc == "" {
				sc = "STANDARD"
			}
			etag := o.ETag
			if etag != "" && !strings.HasPrefix(etag, "\"") {
				etag = strconv.Quote(etag)
			}
			items = append(items, map[string]any{
				"Etag": etag, "Key": o.Key, "LastModified": intValue(o.LastModified.Unix()),
				"Size": intValue(o.Size), "StorageClass": sc,
			})
		}
	case "arn:aws:states:::s3:getObject":
		key, _ := params["Key"].(string)
		if key == "" {
			return nil, fail("the ItemReader Parameters need a Key")
		}
		if rd.InputType != "" && rd.InputType != "JSON" {
			return nil, fail("ReaderConfig InputType %q is not supported", rd.InputType)
		}
		b, err := r.e.opts.Items.GetObject(ctx, bucket, key)
		if err != nil {
			return nil, fail("%v", err)
		}
		v, err := decodeJSON(b)
		if err != nil {
			return nil, fail("the object s3://%s/%s is not valid JSON: %v", bucket, key, err)
		}
		a, ok := v.([]any)
		if !ok {
			return nil, fail("the object s3://%s/%s must contain a JSON array", bucket, key)
		}
		items = a
	default:
		return nil, fail("unsupported ItemReader resource %q", rd.Resource)
	}
	if rd.MaxItems > 0 && int64(len(items)) > rd.MaxItems {
		items = items[:rd.MaxItems]
	}
	if items == nil {
		items = []any{}
	}
	return items, nil
}

func (r *stateRun) distributed(ctx context.Context, in any, inputs []any, maxConc int64, tolPct *float64, tolCount *int64) (any, *stateError) {
	st := r.st
	if b := st.ItemBatcher; b != nil {
		var batchInput any
		if b.BatchInput != nil {
			v, serr := r.template(b.BatchInput, in, r.ctx())
			if serr != nil {
				return nil, serr
			}
			batchInput = v
		}
		var batches []any
		var cur []any
		curBytes := 0
		flush := func() {
			if len(cur) == 0 {
				return
			}
			o := map[string]any{"Items": cur}
			if batchInput != nil {
				o["BatchInput"] = batchInput
			}
			batches = append(batches, o)
			cur, curBytes = nil, 0
		}
		for _, it := range inputs {
			sz := payloadSize(it, MaxPayloadBytes)
			if len(cur) > 0 && ((b.MaxItemsPerBatch > 0 && int64(len(cur)) >= b.MaxItemsPerBatch) ||
				(b.MaxInputBytesPerBatch > 0 && int64(curBytes+sz) > b.MaxInputBytesPerBatch)) {
				flush()
			}
			cur = append(cur, it)
			curBytes += sz
		}
		flush()
		inputs = batches
	}
	runArn := r.e.opts.Execution.ID + "/" + st.Name
	r.e.emit("MapStateStarted", "mapStateStartedEventDetails", map[string]any{"length": len(inputs)})
	r.started = true
	r.e.emit("MapRunStarted", "mapRunStartedEventDetails", map[string]any{"mapRunArn": runArn})
	child := &execution{m: r.e.m, opts: r.e.opts, clk: r.e.clk, input: r.e.input, execO: r.e.execO, smO: r.e.smO, log: r.e.log, quiet: true}
	results := make([]any, len(inputs))
	errs := make([]*stateError, len(inputs))
	job := func(ctx context.Context, i int) *stateError {
		out, serr := child.runMachine(ctx, st.Processor, st.Processor.StartAt, inputs[i], false)
		if serr != nil {
			errs[i] = serr
			results[i] = serr.object()
			return serr
		}
		results[i] = out
		return nil
	}
	conc := int(maxConc)
	if conc <= 0 || (r.e.opts.MaxChildConcurrency > 0 && conc > r.e.opts.MaxChildConcurrency) {
		conc = r.e.opts.MaxChildConcurrency
	}
	if conc <= 0 {
		conc = defaultDistributedConcurrency
	}
	if serr := r.runPool(ctx, len(inputs), conc, defaultDistributedConcurrency, true, job); serr != nil {
		return nil, serr
	}
	if tolPct == nil && tolCount == nil {
		zero := int64(0)
		tolCount = &zero
	}
	if serr := checkTolerance(errs, tolPct, tolCount); serr != nil {
		r.e.emit("MapRunFailed", "mapRunFailedEventDetails", map[string]any{"error": serr.Error, "cause": serr.Cause})
		return nil, serr
	}
	r.e.emit("MapRunSucceeded", "", nil)
	r.e.emit("MapStateSucceeded", "", nil)
	return r.finishResult(results)
}
