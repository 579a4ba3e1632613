package states

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keyline/keyline/internal/local/invoke"
)

// EventPutter sends an EventBridge PutEvents request (AWS JSON shape, Detail as a string) and
// returns the PutEvents response JSON.
type EventPutter interface {
	PutEvents(ctx context.Context, request json.RawMessage) (json.RawMessage, error)
}

// DynamoDBCaller runs one DynamoDB operation ("GetItem", "PutItem", "UpdateItem", "DeleteItem")
// with its raw AWS JSON request and returns the raw AWS JSON response. Errors carrying an AWS
// error code (an ErrorCode() string method, as smithy API errors have) become
// "DynamoDB.<code>" task errors.
type DynamoDBCaller interface {
	CallDynamoDB(ctx context.Context, operation string, request json.RawMessage) (json.RawMessage, error)
}

// ExecutionService starts nested executions and waits for them.
type ExecutionService interface {
	StartExecution(ctx context.Context, stateMachineArn, name string, input []byte) (string, error)
	WaitExecution(ctx context.Context, executionArn string) (ExecutionDescription, error)
}

// ExecutionDescription is a finished (or running) execution as DescribeExecution shows it.
type ExecutionDescription struct {
	ExecutionArn    string
	StateMachineArn string
	Name            string
	Status          string
	Input           json.RawMessage
	Output          json.RawMessage
	Error, Cause    string
	StartDate       time.Time
	StopDate        time.Time
}

// Integrations is the TaskRunner for the service integrations keyline supports locally:
// Lambda (arn:aws:states:::lambda:invoke and plain function ARNs), EventBridge PutEvents,
// DynamoDB GetItem/PutItem/UpdateItem/DeleteItem and nested Step Functions executions
// (startExecution, .sync and .sync:2). Nil fields make their integration fail the task.
type Integrations struct {
	Lambda     invoke.Invoker
	Events     EventPutter
	DynamoDB   DynamoDBCaller
	Executions ExecutionService
}

var dynamoOps = map[string]string{"getItem": "GetItem", "putItem": "PutItem", "updateItem": "UpdateItem", "deleteItem": "DeleteItem"}

type awsAPIError interface {
	ErrorCode() string
	ErrorMessage() string
}

// RunTask implements TaskRunner.
func (in *Integrations) RunTask(ctx context.Context, resource string, params json.RawMessage, tc TaskContext) (json.RawMessage, error) {
	if isLambdaFunctionArn(resource) {
		return in.lambda(ctx, functionName(resource), params, false)
	}
	svc, op := resourceParts(strings.TrimSuffix(resource, ".waitForTaskToken"))
	switch {
	case svc == "lambda" && op == "invoke":
		var p struct {
			FunctionName string          `json:"FunctionName"`
			Payload      json.RawMessage `json:"Payload"`
		}
		if err := json.Unmarshal(params, &p); err != nil || p.FunctionName == "" {
			return nil, &TaskError{Name: "States.Runtime", Cause: "lambda:invoke needs a FunctionName parameter"}
		}
		payload := []byte(p.Payload)
		if len(payload) == 0 {
			payload = []byte("{}")
		}
		return in.lambda(ctx, functionName(p.FunctionName), payload, true)
	case svc == "events" && op == "putEvents":
		if in.Events == nil {
			return nil, unsupported(resource)
		}
		req, err := stringifyDetails(params)
		if err != nil {
			return nil, &TaskError{Name: "States.Runtime", Cause: err.Error()}
		}
		out, err := in.Events.PutEvents(ctx, req)
		if err != nil {
			return nil, serviceError("EventBridge", "AmazonEventBridge", err)
		}
		return out, nil
	case svc == "dynamodb" && dynamoOps[op] != "":
		if in.DynamoDB == nil {
			return nil, unsupported(resource)
		}
		out, err := in.DynamoDB.CallDynamoDB(ctx, dynamoOps[op], params)
		if err != nil {
			return nil, serviceError("DynamoDB", "AmazonDynamoDBv2", err)
		}
		return out, nil
	case svc == "states" && (op == "startExecution" || op == "startExecution.sync" || op == "startExecution.sync:2"):
		if in.Executions == nil {
			return nil, unsupported(resource)
		}
		return in.startExecution(ctx, op, params)
	}
	return nil, unsupported(resource)
}

func unsupported(resource string) error {
	return &TaskError{Name: "States.Runtime", Cause: fmt.Sprintf("The resource '%s' is not supported by the local Step Functions", resource)}
}

func serviceError(prefix, service string, err error) error {
	var te *TaskError
	if errors.As(err, &te) {
		return te
	}
	var ae awsAPIError
	if errors.As(err, &ae) {
		return &TaskError{Name: prefix + "." + ae.ErrorCode(), Cause: fmt.Sprintf("%s (Service: %s; Status Code: 400; Error Code: %s; Request ID: %s; Proxy: null)", ae.ErrorMessage(), service, ae.ErrorCode(), requestID())}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &TaskError{Name: prefix + ".SdkClientException", Cause: err.Error()}
}

// functionName takes a Lambda function name out of a name or (partial) ARN.
func functionName(s string) string {
	if i := strings.Index(s, ":function:"); i >= 0 {
		rest := s[i+len(":function:"):]
		if j := strings.IndexByte(rest, ':'); j >= 0 {
			return rest[:j]
		}
		return rest
	}
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

type lambdaErrorCause struct {
	ErrorMessage string   `json:"errorMessage"`
	ErrorType    string   `json:"errorType"`
	Trace        []string `json:"trace,omitempty"`
}

func (in *Integrations) lambda(ctx context.Context, fn string, payload []byte, wrapped bool) (json.RawMessage, error) {
	if in.Lambda == nil {
		return nil, &TaskError{Name: "Lambda.ResourceNotFoundException", Cause: "no Lambda functions are available here"}
	}
	out, err := in.Lambda.Invoke(ctx, fn, payload)
	if err != nil {
		if fe, ok := invoke.AsFunctionError(err); ok {
			name := fe.Type
			if name == "" {
				name = "Lambda.Unknown"
			}
			cause, _ := json.Marshal(lambdaErrorCause{ErrorMessage: fe.Message, ErrorType: fe.Type, Trace: fe.StackTrace})
			return nil, &TaskError{Name: name, Cause: string(cause)}
		}
		var te *TaskError
		if errors.As(err, &te) {
			return nil, te
		}
		if errors.Is(err, invoke.ErrTooManyRequests) {
			return nil, &TaskError{Name: "Lambda.TooManyRequestsException", Cause: err.Error()}
		}
		if errors.Is(err, invoke.ErrRequestTooLarge) {
			return nil, &TaskError{Name: "Lambda.RequestTooLargeException", Cause: invoke.RequestTooLargeMessage}
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, &TaskError{Name: "Lambda.ServiceException", Cause: err.Error()}
	}
	if len(out) == 0 {
		out = []byte("null")
	}
	if !wrapped {
		return out, nil
	}
	var pv any
	if v, err := decodeJSON(out); err == nil {
		pv = v
	} else {
		pv = string(out)
	}
	rid := requestID()
	date := time.Now().UTC().Format(time.RFC1123)
	n := strconv.Itoa(len(out))
	res := map[string]any{
		"ExecutedVersion": "$LATEST",
		"Payload":         pv,
		"SdkHttpMetadata": map[string]any{
			"AllHttpHeaders": map[string]any{
				"X-Amz-Executed-Version": []any{"$LATEST"}, "x-amzn-Remapped-Content-Length": []any{"0"},
				"Connection": []any{"keep-alive"}, "x-amzn-RequestId": []any{rid}, "Content-Length": []any{n},
				"Date": []any{date}, "Content-Type": []any{"application/json"},
			},
			"HttpHeaders": map[string]any{
				"Connection": "keep-alive", "Content-Length": n, "Content-Type": "application/json", "Date": date,
				"X-Amz-Executed-Version": "$LATEST", "x-amzn-Remapped-Content-Length": "0", "x-amzn-RequestId": rid,
			},
			"HttpStatusCode": 200,
		},
		"SdkResponseMetadata": map[string]any{"RequestId": rid},
		"StatusCode":          200,
	}
	return encodeJSON(res), nil
}

// stringifyDetails turns object Detail fields of PutEvents entries into JSON strings, as the
// Step Functions integration does.
func stringifyDetails(params json.RawMessage) (json.RawMessage, error) {
	v, err := decodeJSON(params)
	if err != nil {
		return nil, fmt.Errorf("putEvents parameters are not valid JSON: %w", err)
	}
	o, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("putEvents parameters must be an object")
	}
	entries, _ := o["Entries"].([]any)
	for i, e := range entries {
		eo, ok := e.(map[string]any)
		if !ok {
			continue
		}
		if d, ok := eo["Detail"]; ok {
			if _, isStr := d.(string); !isStr {
				c := make(map[string]any, len(eo))
				for k, v := range eo {
					c[k] = v
				}
				c["Detail"] = encodeString(d)
				entries[i] = c
			}
		}
	}
	return encodeJSON(o), nil
}

func (in *Integrations) startExecution(ctx context.Context, op string, params json.RawMessage) (json.RawMessage, error) {
	var p struct {
		StateMachineArn string          `json:"StateMachineArn"`
		Name            string          `json:"Name"`
		Input           json.RawMessage `json:"Input"`
	}
	if err := json.Unmarshal(params, &p); err != nil || p.StateMachineArn == "" {
		return nil, &TaskError{Name: "States.Runtime", Cause: "startExecution needs a StateMachineArn parameter"}
	}
	input := []byte(p.Input)
	if len(input) > 0 && input[0] == '"' {
		var s string
		if err := json.Unmarshal(input, &s); err == nil {
			input = []byte(s)
		}
	}
	if len(input) == 0 || string(input) == "null" {
		input = []byte("{}")
	}
	arn, err := in.Executions.StartExecution(ctx, p.StateMachineArn, p.Name, input)
	if err != nil {
		var te *TaskError
		if errors.As(err, &te) {
			return nil, te
		}
		return nil, &TaskError{Name: "StepFunctions.AWSStepFunctionsException", Cause: err.Error()}
	}
	if op == "startExecution" {
		return encodeJSON(map[string]any{"ExecutionArn": arn, "StartDate": intValue(time.Now().UnixMilli())}), nil
	}
	d, err := in.Executions.WaitExecution(ctx, arn)
	if err != nil {
		return nil, err
	}
	o := map[string]any{
		"ExecutionArn": d.ExecutionArn, "StateMachineArn": d.StateMachineArn, "Name": d.Name, "Status": d.Status,
		"StartDate": intValue(d.StartDate.UnixMilli()), "StopDate": intValue(d.StopDate.UnixMilli()),
		"RedriveCount": intValue(0), "RedriveStatus": "NOT_REDRIVABLE",
		"InputDetails": map[string]any{"Included": true}, "OutputDetails": map[string]any{"Included": true},
	}
	if op == "startExecution.sync:2" {
		o["Input"], _ = decodeJSON(d.Input)
		if len(d.Output) > 0 {
			o["Output"], _ = decodeJSON(d.Output)
		}
	} else {
		o["Input"] = string(d.Input)
		if len(d.Output) > 0 {
			o["Output"] = string(d.Output)
		}
	}
	if d.Status != StatusSucceeded {
		delete(o, "Output")
		delete(o, "OutputDetails")
		if d.Error != "" {
			o["Error"] = d.Error
		}
		if d.Cause != "" {
			o["Cause"] = d.Cause
		}
		return nil, &TaskError{Name: ErrTaskFailed, Cause: encodeString(o)}
	}
	return encodeJSON(o), nil
}
