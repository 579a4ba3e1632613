package handlers

import (
	"io"
	"os"
)

// MetricsOutput is where steps write CloudWatch embedded-metric-format lines: stdout in
// Lambda (CloudWatch Logs extracts the metrics from the function's log, no IAM needed),
// nowhere elsewhere (`keyline local` has no CloudWatch).
func MetricsOutput(d Deps) io.Writer {
	if d.Env("AWS_LAMBDA_FUNCTION_NAME") == "" {
		return nil
	}
	return os.Stdout
}
