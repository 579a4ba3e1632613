package keyhealth

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// SFNExecutions reads executions' status through the Step Functions API (DescribeExecution).
type SFNExecutions struct{ Client *sfn.Client }

var _ Executions = SFNExecutions{}

// ExecutionStatus implements Executions.
func (s SFNExecutions) ExecutionStatus(ctx context.Context, executionArn string) (string, error) {
	out, err := s.Client.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(executionArn)})
	if err != nil {
		var nf *sfntypes.ExecutionDoesNotExist
		var inv *sfntypes.InvalidArn
		if errors.As(err, &nf) || errors.As(err, &inv) {
			return "", fmt.Errorf("%w: %s", ErrExecutionNotFound, executionArn)
		}
		return "", fmt.Errorf("keyhealth: describe execution %s: %w", executionArn, err)
	}
	return string(out.Status), nil
}
