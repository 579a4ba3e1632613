// Command cdk is keyline's CDK app: it turns infra.Description() and the state-machine
// definitions in infra/statemachines into one CloudFormation stack, checked by cdk-nag's
// AwsSolutions rules.
//
// It needs the function bootstraps (scripts/build-functions.sh) and writes the cloud
// assembly to $CDK_OUTDIR (set by the CDK CLI, or by scripts/synth.sh). It makes no AWS
// call: the stack is environment-agnostic unless CDK_DEFAULT_ACCOUNT/CDK_DEFAULT_REGION
// are set.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/keyline/keyline/infra"
)

// StackName is the name (and construct id) of keyline's stack.
const StackName = "Keyline"

// featureFlags are the CDK feature flags the app depends on, set in code so that the app,
// `cdk synth` and the tests build the same template.
var featureFlags = map[string]any{
	// Server access logging through a bucket policy, not the legacy log-delivery ACL.
	"@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": true,
}

// newApp returns the CDK app with keyline's context and the AwsSolutions checks.
func newApp(props *awscdk.AppProps) awscdk.App {
	if props == nil {
		props = &awscdk.AppProps{}
	}
	ctx := map[string]any{}
	if props.Context != nil {
		for k, v := range *props.Context {
			ctx[k] = v
		}
	}
	for k, v := range featureFlags {
		ctx[k] = v
	}
	props.Context = &ctx
	app := awscdk.NewApp(props)
	awscdk.Aspects_Of(app).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return app
}

// repoRoot walks up from dir to the directory whose go.mod declares keyline's module.
func repoRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		if f, err := os.Open(filepath.Join(d, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			sc.Scan()
			first := strings.TrimSpace(sc.Text())
			f.Close()
			if first == "module github.com/keyline/keyline" {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", errors.New("keyline repository root not found above " + dir)
		}
	}
}

// functionsDir is $KEYLINE_FUNCTIONS_DIR or <repo>/build/functions.
func functionsDir() (string, error) {
	if d := os.Getenv("KEYLINE_FUNCTIONS_DIR"); d != "" {
		return filepath.Abs(d)
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	root, err := repoRoot(wd)
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "build", "functions"), nil
}

func run() error {
	dir, err := functionsDir()
	if err != nil {
		return err
	}
	app := newApp(nil)
	var env *awscdk.Environment
	if acct, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); acct != "" && region != "" {
		env = &awscdk.Environment{Account: jsii.String(acct), Region: jsii.String(region)}
	}
	if _, err := New(app, StackName, Options{
		Deployment:   infra.Description(),
		FunctionsDir: dir,
		StackProps:   awscdk.StackProps{Env: env},
	}); err != nil {
		return err
	}
	app.Synth(nil)
	return nil
}

func main() {
	defer jsii.Close()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "keyline cdk:", err)
		jsii.Close()
		os.Exit(1)
	}
}
