package console

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// Execution is a state-machine execution as the console reports it.
type Execution struct {
	Status string `json:"status"`
	Output string `json:"-"`
	Error  string `json:"error,omitempty"`
	Cause  string `json:"cause,omitempty"`
	Input  string `json:"-"`
}

// Executions starts and describes state-machine executions (Step Functions).
type Executions interface {
	Start(ctx context.Context, stateMachineARN, name string, input []byte) (string, error)
	Describe(ctx context.Context, executionARN string) (Execution, error)
}

// ErrNoExecution is an execution ARN that does not exist.
var ErrNoExecution = errors.New("console: no such execution")

// SFN is Executions on the Step Functions API (AWS, or keyline's local endpoint).
type SFN struct{ Client *sfn.Client }

// Start starts an execution; name makes the start idempotent.
func (s SFN) Start(ctx context.Context, machine, name string, input []byte) (string, error) {
	out, err := s.Client.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(machine),
		Name:            aws.String(name),
		Input:           aws.String(string(input)),
	})
	if err != nil {
		return "", fmt.Errorf("start execution of %s: %w", machine, err)
	}
	return aws.ToString(out.ExecutionArn), nil
}

// Describe returns an execution's status, input and result.
func (s SFN) Describe(ctx context.Context, arn string) (Execution, error) {
	out, err := s.Client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
	if err != nil {
		var nf *sfntypes.ExecutionDoesNotExist
		var inv *sfntypes.InvalidArn
		if errors.As(err, &nf) || errors.As(err, &inv) {
			return Execution{}, ErrNoExecution
		}
		return Execution{}, fmt.Errorf("describe execution: %w", err)
	}
	return Execution{
		Status: string(out.Status),
		Output: aws.ToString(out.Output),
		Error:  aws.ToString(out.Error),
		Cause:  aws.ToString(out.Cause),
		Input:  aws.ToString(out.Input),
	}, nil
}
