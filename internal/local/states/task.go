package states

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TaskRunner runs the resource of a Task state.
type TaskRunner interface {
	// RunTask runs resource with the state's effective parameters and returns its JSON result.
	// A failure the state machine should see by name is returned as a *TaskError.
	RunTask(ctx context.Context, resource string, params json.RawMessage, tc TaskContext) (json.RawMessage, error)
}

// TaskRunnerFunc adapts a function to TaskRunner.
type TaskRunnerFunc func(ctx context.Context, resource string, params json.RawMessage, tc TaskContext) (json.RawMessage, error)

// RunTask calls f.
func (f TaskRunnerFunc) RunTask(ctx context.Context, resource string, params json.RawMessage, tc TaskContext) (json.RawMessage, error) {
	return f(ctx, resource, params, tc)
}

// TaskContext tells a TaskRunner where the task runs.
type TaskContext struct {
	ExecutionArn    string
	StateMachineArn string
	StateName       string
	// Context is the context object ($$) as JSON.
	Context json.RawMessage
	// Timeout and Heartbeat are the state's limits (zero: none).
	Timeout, Heartbeat time.Duration
	// TaskToken is set for ".waitForTaskToken" resources: the task completes when
	// TaskTokens.SendSuccess or SendFailure is called with it.
	TaskToken string
}

// TaskError is a named task failure (the States error name and its cause).
// (The name field is Name, not Error, because a Go type cannot have both a field and a method
// called Error.)
type TaskError struct {
	Name  string
	Cause string
}

func (e *TaskError) Error() string {
	if e.Cause == "" {
		return e.Name
	}
	return e.Name + ": " + e.Cause
}

var (
	errTaskTimeout      = errors.New("task timed out")
	errHeartbeatTimeout = errors.New("task heartbeat timed out")
)

// awaitToken waits for the outcome reported for a task token, failing when no heartbeat comes
// within heartbeat (when set).
func (r *stateRun) awaitToken(ctx context.Context, tw *tokenWait, heartbeat time.Duration) (json.RawMessage, error) {
	for {
		var hb <-chan time.Time
		if heartbeat > 0 {
			hb = r.e.clk.After(heartbeat)
		}
		select {
		case res := <-tw.done:
			if res.err != nil {
				return nil, res.err
			}
			return res.output, nil
		case <-tw.heartbeat:
			continue
		case <-hb:
			return nil, errHeartbeatTimeout
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// resourceParts splits a service integration ARN into the history's resourceType and resource.
func resourceParts(res string) (string, string) {
	if rest, ok := strings.CutPrefix(res, "arn:aws:states:::"); ok {
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			return rest[:i], rest[i+1:]
		}
		return rest, ""
	}
	if strings.HasPrefix(res, "arn:aws:lambda:") {
		return "lambda", res
	}
	return "", res
}

func isLambdaFunctionArn(res string) bool {
	return strings.HasPrefix(res, "arn:aws:lambda:") && strings.Contains(res, ":function:")
}

func (r *stateRun) task(ctx context.Context) (any, *stateError) {
	st := r.st
	waitToken := strings.HasSuffix(st.Resource, ".waitForTaskToken")
	var (
		token string
		tw    *tokenWait
	)
	if waitToken {
		if r.e.opts.TaskTokens == nil {
			return nil, r.runtime(fmt.Sprintf("The resource '%s' needs task tokens, which are not available here", st.Resource))
		}
		token, tw = r.e.opts.TaskTokens.issue()
		defer r.e.opts.TaskTokens.release(token)
		r.extra, r.ctxObj = map[string]any{"Task": map[string]any{"Token": token}}, nil
	}
	in, serr := r.effectiveInput()
	if serr != nil {
		return nil, serr
	}
	timeout := seconds(st.TimeoutSeconds)
	if st.TimeoutSecondsPath != nil {
		v, err := st.TimeoutSecondsPath.eval(r.raw, r.ctx())
		if err != nil {
			return nil, r.pathErr(st.TimeoutSecondsPath.String(), err)
		}
		n, ok := toInt(v)
		if !ok || n <= 0 {
			return nil, r.runtime(fmt.Sprintf("The TimeoutSecondsPath parameter does not reference a positive integer: %s == %s", st.TimeoutSecondsPath.String(), encodeString(v)))
		}
		timeout = seconds(n)
	}
	heartbeat := seconds(st.HeartbeatSeconds)
	if st.HeartbeatSecondsPath != nil {
		v, err := st.HeartbeatSecondsPath.eval(r.raw, r.ctx())
		if err != nil {
			return nil, r.pathErr(st.HeartbeatSecondsPath.String(), err)
		}
		n, ok := toInt(v)
		if !ok || n <= 0 {
			return nil, r.runtime(fmt.Sprintf("The HeartbeatSecondsPath parameter does not reference a positive integer: %s == %s", st.HeartbeatSecondsPath.String(), encodeString(v)))
		}
		heartbeat = seconds(n)
	}
	if r.e.opts.Tasks == nil {
		return nil, r.runtime(fmt.Sprintf("The resource '%s' cannot be run: no service integrations are available here", st.Resource))
	}
	params := encodeJSON(in)
	rtype, rname := resourceParts(st.Resource)
	lambdaArn := isLambdaFunctionArn(st.Resource)
	region := regionOf(r.e.opts.Execution.StateMachineID)
	if lambdaArn {
		d := map[string]any{"resource": st.Resource, "input": string(params), "inputDetails": map[string]any{"truncated": false}}
		if timeout > 0 {
			d["timeoutInSeconds"] = int64(timeout / time.Second)
		}
		r.e.emit("LambdaFunctionScheduled", "lambdaFunctionScheduledEventDetails", d)
		r.e.emit("LambdaFunctionStarted", "", nil)
	} else {
		d := map[string]any{"resourceType": rtype, "resource": rname, "region": region, "parameters": string(params)}
		if timeout > 0 {
			d["timeoutInSeconds"] = int64(timeout / time.Second)
		}
		if heartbeat > 0 {
			d["heartbeatInSeconds"] = int64(heartbeat / time.Second)
		}
		r.e.emit("TaskScheduled", "taskScheduledEventDetails", d)
		r.e.emit("TaskStarted", "taskStartedEventDetails", map[string]any{"resourceType": rtype, "resource": rname})
	}
	tctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if timeout > 0 {
		timer := r.e.clk.After(timeout)
		go func() {
			select {
			case <-timer:
				cancel(errTaskTimeout)
			case <-tctx.Done():
			}
		}()
	}
	tc := TaskContext{
		ExecutionArn: r.e.opts.Execution.ID, StateMachineArn: r.e.opts.Execution.StateMachineID, StateName: st.Name,
		Context: encodeJSON(r.ctx()), Timeout: timeout, Heartbeat: heartbeat,
	}
	tc.TaskToken = token
	raw, err := r.e.opts.Tasks.RunTask(tctx, st.Resource, params, tc)
	if err == nil && tctx.Err() != nil {
		err = context.Cause(tctx)
	}
	if err == nil && waitToken {
		r.e.emit("TaskSubmitted", "taskSubmittedEventDetails", map[string]any{"resourceType": rtype, "resource": rname, "output": string(raw), "outputDetails": map[string]any{"truncated": false}})
		raw, err = r.awaitToken(tctx, tw, heartbeat)
		if err == nil && tctx.Err() != nil {
			err = context.Cause(tctx)
		}
	}
	var result any
	if err == nil {
		if len(raw) == 0 {
			raw = []byte("null")
		}
		v, derr := decodeJSON(raw)
		if derr != nil {
			err = &TaskError{Name: ErrTaskFailed, Cause: "the task returned invalid JSON: " + derr.Error()}
		}
		result = v
	}
	if err != nil {
		var se *stateError
		var te *TaskError
		switch {
		case errors.Is(context.Cause(tctx), errTaskTimeout) || errors.Is(err, errTaskTimeout):
			se = newErr(ErrTimeout, "")
		case errors.Is(err, errHeartbeatTimeout):
			se = newErr(ErrHeartbeatTimeout, "")
		case ctx.Err() != nil:
			return nil, newErr(errAbortedName, "")
		case errors.As(err, &te):
			se = &stateError{Error: te.Name, Cause: te.Cause, hasError: true, hasCause: te.Cause != ""}
		default:
			se = newErr(ErrTaskFailed, err.Error())
		}
		switch {
		case se.Error == ErrTimeout && lambdaArn:
			r.e.emit("LambdaFunctionTimedOut", "lambdaFunctionTimedOutEventDetails", map[string]any{"error": se.Error, "cause": se.Cause})
		case se.Error == ErrTimeout || se.Error == ErrHeartbeatTimeout:
			r.e.emit("TaskTimedOut", "taskTimedOutEventDetails", map[string]any{"resourceType": rtype, "resource": rname, "error": se.Error, "cause": se.Cause})
		case lambdaArn:
			r.e.emit("LambdaFunctionFailed", "lambdaFunctionFailedEventDetails", map[string]any{"error": se.Error, "cause": se.Cause})
		default:
			r.e.emit("TaskFailed", "taskFailedEventDetails", map[string]any{"resourceType": rtype, "resource": rname, "error": se.Error, "cause": se.Cause})
		}
		return nil, se
	}
	if tooLarge(result) {
		return nil, r.dataLimit()
	}
	out := string(encodeJSON(result))
	if lambdaArn {
		r.e.emit("LambdaFunctionSucceeded", "lambdaFunctionSucceededEventDetails", map[string]any{"output": out, "outputDetails": map[string]any{"truncated": false}})
	} else {
		r.e.emit("TaskSucceeded", "taskSucceededEventDetails", map[string]any{"resourceType": rtype, "resource": rname, "output": out, "outputDetails": map[string]any{"truncated": false}})
	}
	return r.finishResult(result)
}

// regionOf returns the region field of an ARN.
func regionOf(arn string) string {
	parts := strings.SplitN(arn, ":", 5)
	if len(parts) >= 4 {
		return parts[3]
	}
	return ""
}
