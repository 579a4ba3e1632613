package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/handlers"
	consolefn "github.com/keyline/keyline/internal/handlers/console"
	"github.com/keyline/keyline/internal/lineage"
	localddb "github.com/keyline/keyline/internal/local/dynamodb"
	"github.com/keyline/keyline/internal/local/endpoint"
	"github.com/keyline/keyline/internal/local/eventbridge"
	"github.com/keyline/keyline/internal/local/fault"
	"github.com/keyline/keyline/internal/local/functions"
	localkms "github.com/keyline/keyline/internal/local/kms"
	"github.com/keyline/keyline/internal/local/lambda"
	locals3 "github.com/keyline/keyline/internal/local/s3"
	localsm "github.com/keyline/keyline/internal/local/secretsmanager"
	"github.com/keyline/keyline/internal/local/stepfunctions"
	"github.com/keyline/keyline/internal/secret/filesecret"
)

// Local resource names. They are fixed: one local deployment per data directory.
const (
	localRegion       = "us-east-1"
	localTable        = "keyline-lineage"
	localDataBucket   = "keyline-data"
	localBackupBucket = "keyline-backups"
	localEventBus     = "keyline"
	// localAccessKey is the static access key every in-process client signs with.
	localAccessKey = "keyline"
	// stackFile records what `keyline invoke` needs to rebuild a handler as the stack does.
	stackFile = "stack.json"
	// operatorTokenPrefix starts a generated operator token, so it is recognisable.
	operatorTokenPrefix = "klop_"
	// eventsFile holds the bus's rules, targets and schedules.
	eventsFile = "events.json"
	// stepFunctionsDir holds the state machines' executions.
	stepFunctionsDir = "stepfunctions"
)

// localSecretSuffix ends the local secret's ARN, as AWS appends six random characters.
const localSecretSuffix = "-local0"

// operatorTokenSecretARN is the ARN of the local operator token's secret.
func operatorTokenSecretARN() string {
	return fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s%s", localRegion, endpoint.DefaultAccountID,
		infra.OperatorTokenSecretName(infra.DefaultStackName), localSecretSuffix)
}

// Defaults of Options.
const (
	DefaultDataDir     = ".keyline"
	DefaultConsoleAddr = "127.0.0.1:8080"
)

// Seed modes of Options.Seed.
const (
	SeedNone = "none"
	SeedDemo = "demo"
)

// ErrOptions is wrapped by Start's errors about its options.
var ErrOptions = errors.New("keyline local: invalid options")

// Options configure Start.
type Options struct {
	// DataDir holds all local state (default .keyline).
	DataDir string
	// Addr is the AWS-compatible endpoint's loopback address (default 127.0.0.1:4566; port 0 picks one).
	Addr string
	// ConsoleAddr is the console API's loopback address (default 127.0.0.1:8080; port 0 picks one).
	ConsoleAddr string
	// Seed is SeedDemo or SeedNone (default).
	Seed string
	// SeedSize overrides the demo data's size (zero: the default demo).
	SeedSize SeedSize
	// OperatorToken is the console's operator token (empty: a new one is generated).
	OperatorToken string
	// Clock drives KMS deletion windows, schedules, Wait states and handlers (default real).
	Clock clock.Clock
	// Logger receives the stack's logs (default: discard).
	Logger *slog.Logger
	// Progress receives the seed's progress lines (default: discard).
	Progress io.Writer
	// CloudTrailDelay delays each KMS CloudTrail event by this long on Clock.
	CloudTrailDelay time.Duration
	// CloudTrailDrop loses the CloudTrail events of the KMS operations it returns true for.
	CloudTrailDrop func(eventName string) bool
	// DynamoDBJarDir is where DynamoDB Local is installed (default: <repo>/.local/dynamodb).
	DynamoDBJarDir string
	// DynamoDBInMemory keeps DynamoDB Local's tables in memory instead of under DataDir
	// (nothing survives a restart): for benchmarks, which measure keyline, not the disk.
	DynamoDBInMemory bool
	// IAM is IAMOn (the default: the endpoint evaluates every call's policies, as AWS does)
	// or IAMOff (debugging only; logged as a warning on every start).
	IAM string
	// Faults injects faults into the endpoint, the functions, the CloudTrail path and the
	// state transitions (nil: none).
	Faults *fault.Injector
	// RolePolicies replace the functions' identity policies (JSON documents by function
	// name) the endpoint evaluates their calls against; nil: the deployment contract's.
	RolePolicies map[string]json.RawMessage
}

// stackState is <data dir>/stack.json: the local deployment's resource names and each
// function's environment, so that `keyline invoke` builds handlers as the stack does.
type stackState struct {
	Region         string `json:"region"`
	Account        string `json:"account"`
	TableName      string `json:"tableName"`
	DataBucket     string `json:"dataBucket"`
	BackupBucket   string `json:"backupBucket"`
	EventBusName   string `json:"eventBusName"`
	ProviderKeyARN string `json:"providerKeyArn"`
	// OperatorTokenSecret is the ARN of the operator token's secret (its value is in
	// OperatorTokenFile, served by the endpoint's Secrets Manager).
	OperatorTokenSecret string                       `json:"operatorTokenSecret"`
	Endpoint            string                       `json:"endpoint,omitempty"`
	StateMachines       map[string]string            `json:"stateMachines"`
	Functions           map[string]map[string]string `json:"functions"`
}

// Stack is a running local deployment: the AWS-compatible endpoint with every service,
// the deployment's functions, state machines, rules and schedules on it, and the console.
type Stack struct {
	// Endpoint is the AWS-compatible endpoint's URL (http://127.0.0.1:port).
	Endpoint string
	// Console is the console API's URL.
	Console string
	// OperatorToken is the console's operator token.
	OperatorToken string
	// DataDir is where the stack's state lives.
	DataDir string

	// Bus is the local EventBridge.
	Bus *eventbridge.Bus
	// SFN is the local Step Functions service.
	SFN *stepfunctions.Service
	// Lambda is the registry of the deployment's functions.
	Lambda *lambda.Registry
	// KMS is the local KMS with its fidelity layer.
	KMS *localkms.Service
	// Store is the lineage store on the local table.
	Store *lineage.Store
	// Machines maps each state machine's name to its ARN.
	Machines map[string]string

	state  stackState
	clock  clock.Clock
	logger *slog.Logger

	// IAM is whether the endpoint evaluates policies (IAMOn) or not (IAMOff).
	IAM      string
	policies *stackPolicies

	router     *endpoint.Server
	secrets    *localsm.Service
	ddb        *localddb.Process
	cloudTrail *fault.CloudTrailPath
	console    *http.Server
	cancel     context.CancelFunc

	closeOnce sync.Once
}

// TableName is the lineage table's name.
func (s *Stack) TableName() string { return s.state.TableName }

// DataBucket is the bucket of the apps' sealed objects.
func (s *Stack) DataBucket() string { return s.state.DataBucket }

// BackupBucket is the bucket of the sealed backups.
func (s *Stack) BackupBucket() string { return s.state.BackupBucket }

// EventBusName is keyline's event bus (audit events, `source: keyline`).
func (s *Stack) EventBusName() string { return s.state.EventBusName }

// ProviderKeyARN is the provider's KMS key (created once per data directory).
func (s *Stack) ProviderKeyARN() string { return s.state.ProviderKeyARN }

// AWSConfig returns an SDK configuration for the stack's endpoint (region us-east-1,
// static credentials, checksums only when required).
func (s *Stack) AWSConfig() aws.Config { return localAWSConfig(s.Endpoint) }

// localAWSConfig is the configuration every in-process client of the stack uses.
func localAWSConfig(endpoint string) aws.Config {
	return aws.Config{
		Region:                     localRegion,
		Credentials:                credentials.NewStaticCredentialsProvider(localAccessKey, "keyline-local-secret", ""),
		BaseEndpoint:               aws.String(endpoint),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
}

// s3Client returns a path-style S3 client for cfg.
func s3Client(cfg aws.Config) *awss3.Client {
	return awss3.NewFromConfig(cfg, func(o *awss3.Options) { o.UsePathStyle = true })
}

// Start starts the whole local deployment and returns when it serves. On error,
// whatever was started is stopped again.
//
// The steps run in this order; DynamoDB Local (a Java process, the slow part) starts
// first and the rest proceeds meanwhile until the table is needed.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b, err := newBoot(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			b.abandonDynamoDB()
			b.st.Close()
		}
	}()
	for _, step := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"dynamodb", b.startDynamoDB},
		{"event bus", b.openBus},
		{"kms", b.startKMS},
		{"endpoint", b.startEndpoint},
		{"resources", b.createResources},
		{"table", b.awaitDynamoDB},
		{"functions", b.registerFunctions},
		{"step functions", b.startStepFunctions},
		{"events", b.wireEvents},
		{"console", b.startConsole},
		{"seed", b.seed},
	} {
		if err := step.run(ctx); err != nil {
			return nil, fmt.Errorf("start %s: %w", step.name, err)
		}
	}
	b.log.Info("stack ready", "endpoint", b.st.Endpoint, "console", b.st.Console, "dataDir", b.st.DataDir)
	return b.st, nil
}

// withDefaults fills in the defaults of the options and checks them.
func (o Options) withDefaults() (Options, error) {
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	if o.Addr == "" {
		o.Addr = endpoint.DefaultAddr
	}
	if o.ConsoleAddr == "" {
		o.ConsoleAddr = DefaultConsoleAddr
	}
	switch o.IAM {
	case "":
		o.IAM = IAMOn
	case IAMOn, IAMOff:
	default:
		return o, fmt.Errorf("%w: --iam %q: want on or off", ErrOptions, o.IAM)
	}
	switch o.Seed {
	case "":
		o.Seed = SeedNone
	case SeedNone, SeedDemo:
	default:
		return o, fmt.Errorf("%w: --seed %q: want demo or none", ErrOptions, o.Seed)
	}
	for _, a := range []string{o.Addr, o.ConsoleAddr} {
		if err := endpoint.CheckLoopback(a); err != nil {
			return o, fmt.Errorf("%w: %s: %w", ErrOptions, a, err)
		}
	}
	if o.Clock == nil {
		o.Clock = clock.Real()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.OperatorToken != "" && len(o.OperatorToken) < MinOperatorTokenLen {
		return o, fmt.Errorf("%w: the operator token must be at least %d characters (KEYLINE_OPERATOR_TOKEN); unset it to have one generated", ErrOptions, MinOperatorTokenLen)
	}
	return o, nil
}

// boot is a start in progress: the stack being assembled and what the steps hand on.
type boot struct {
	opts Options
	st   *Stack
	log  *slog.Logger
	dep  infra.Deployment
	// runCtx is for long-lived background work (the scheduler, resumed executions): it
	// lives until Close, not until the caller's start-up context ends.
	runCtx context.Context
	cfg    aws.Config
	s3     *awss3.Client

	ddbDone     chan ddbResult
	ddbReceived bool

	// sfnMu guards st.SFN, which the bus reads to start executions.
	sfnMu sync.RWMutex
}

// ddbResult is what starting DynamoDB Local gave.
type ddbResult struct {
	p   *localddb.Process
	err error
}

// newBoot prepares the data directory and the stack's recorded state (the provider key
// survives restarts; everything else is rebuilt).
func newBoot(ctx context.Context, opts Options) (*boot, error) {
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if opts.OperatorToken, err = operatorToken(dir, opts.OperatorToken); err != nil {
		return nil, err
	}
	prev, err := readStackState(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	st := &Stack{DataDir: dir, OperatorToken: opts.OperatorToken, clock: opts.Clock, logger: opts.Logger, Machines: map[string]string{}, IAM: opts.IAM}
	st.policies = &stackPolicies{st: st}
	if err := st.policies.setRolePolicies(opts.RolePolicies); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	st.state = stackState{
		Region: localRegion, Account: endpoint.DefaultAccountID,
		TableName: localTable, DataBucket: localDataBucket, BackupBucket: localBackupBucket, EventBusName: localEventBus,
		ProviderKeyARN:      prev.ProviderKeyARN,
		OperatorTokenSecret: operatorTokenSecretARN(),
		StateMachines:       map[string]string{}, Functions: map[string]map[string]string{},
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	st.cancel = cancel
	return &boot{opts: opts, st: st, log: opts.Logger, dep: infra.Description(), runCtx: runCtx}, nil
}

// startDynamoDB starts DynamoDB Local in the background; awaitDynamoDB takes it over.
func (b *boot) startDynamoDB(ctx context.Context) error {
	b.ddbDone = make(chan ddbResult, 1)
	go func() {
		p, err := localddb.Start(ctx, localddb.Options{DataDir: b.st.DataDir, InMemory: b.opts.DynamoDBInMemory, JarDir: b.opts.DynamoDBJarDir, Logger: b.log.With("service", "dynamodb")})
		b.ddbDone <- ddbResult{p, err}
	}()
	return nil
}

// abandonDynamoDB stops DynamoDB Local when it arrives if start-up failed before
// awaitDynamoDB took it over.
func (b *boot) abandonDynamoDB() {
	if b.ddbDone == nil || b.ddbReceived {
		return
	}
	go func() {
		if r := <-b.ddbDone; r.p != nil {
			_ = r.p.Stop()
		}
	}()
}

// openBus opens the local EventBridge (rules and schedules persist in the data directory)
// and the Lambda registry it invokes. The bus starts executions through the Step
// Functions service, which exists only once the functions are registered.
func (b *boot) openBus(context.Context) error {
	b.st.Lambda = lambda.New(lambda.Options{Region: localRegion, AccountID: endpoint.DefaultAccountID, Logger: b.log.With("service", "lambda"), Faults: b.opts.Faults})
	startExecution := func(ctx context.Context, arn string, input []byte) error {
		b.sfnMu.RLock()
		svc := b.st.SFN
		b.sfnMu.RUnlock()
		if svc == nil {
			return errors.New("step functions not started yet")
		}
		_, err := svc.StartExecution(ctx, arn, "", input)
		return err
	}
	bus, err := eventbridge.Open(eventbridge.Options{
		Clock: b.opts.Clock, Invoker: b.st.Lambda, StartExecution: startExecution,
		Logger: b.log.With("service", "events"), Region: localRegion, Account: endpoint.DefaultAccountID,
		StateFile: filepath.Join(b.st.DataDir, eventsFile),
	})
	if err != nil {
		return err
	}
	b.st.Bus = bus
	return nil
}

// startKMS starts the local KMS; its CloudTrail events reach keyline (keyline's own on the
// default bus, a customer account's forwarded to the customer bus: deliverCloudTrail) along
// a path that may lose, repeat, hold or reorder them (faults).
func (b *boot) startKMS(context.Context) error {
	st := b.st
	st.cloudTrail = b.opts.Faults.CloudTrail(st.deliverCloudTrail, b.opts.Clock)
	svc, err := localkms.New(localkms.Options{
		DataDir: b.st.DataDir, Region: localRegion, AccountID: endpoint.DefaultAccountID, Clock: b.opts.Clock,
		Sink: localkms.EventSinkFunc(func(ctx context.Context, ev localkms.CloudTrailEvent) error {
			raw, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			return st.cloudTrail.Publish(ctx, ev.Detail.EventName, raw)
		}),
		CloudTrailDelay: b.opts.CloudTrailDelay, CloudTrailDrop: b.opts.CloudTrailDrop,
		Logger: b.log.With("service", "kms"),
	})
	if err != nil {
		return err
	}
	b.st.KMS = svc
	return nil
}

// startEndpoint serves the AWS-compatible endpoint: KMS, S3, EventBridge and Lambda at
// once; DynamoDB and Step Functions answer "starting" until they are up.
func (b *boot) startEndpoint(context.Context) error {
	s3svc, err := locals3.New(locals3.Options{DataDir: b.st.DataDir, Logger: b.log.With("service", "s3")})
	if err != nil {
		return fmt.Errorf("s3: %w", err)
	}
	r := endpoint.New(endpoint.Options{Addr: b.opts.Addr, AccountID: endpoint.DefaultAccountID, Logger: b.log.With("service", "endpoint"), Faults: b.opts.Faults})
	b.st.router = r
	r.Register(endpoint.ServiceKMS, b.st.KMS)
	r.Register(endpoint.ServiceS3, s3svc)
	r.Register(endpoint.ServiceEvents, b.st.Bus)
	r.Register(endpoint.ServiceLambda, b.st.Lambda)
	// The operator token's secret, served from its 0600 file as Secrets Manager serves it in AWS.
	b.st.secrets = localsm.New(b.log.With("service", "secretsmanager"))
	b.st.secrets.Declare(b.st.state.OperatorTokenSecret, infra.OperatorTokenSecretName(infra.DefaultStackName),
		filesecret.New(filepath.Join(b.st.DataDir, OperatorTokenFile)))
	r.Register(endpoint.ServiceSecretsManager, b.st.secrets)
	r.Register(endpoint.ServiceDynamoDB, unavailable("DynamoDB Local is starting"))
	r.Register(endpoint.ServiceStates, unavailable("Step Functions is starting"))
	if err := r.Start(b.runCtx); err != nil {
		return err
	}
	b.st.Endpoint = r.URL()
	b.st.state.Endpoint = b.st.Endpoint
	b.cfg = b.st.AWSConfig()
	b.s3 = s3Client(b.cfg)
	b.log.Info("endpoint listening", "url", b.st.Endpoint)
	return nil
}

// createResources creates what needs only KMS, S3 and the bus: the buckets, the provider
// key (once per data directory) and keyline's event bus; then it names the state
// machines (their ARNs are known before they exist: the functions' environment needs
// them) and records each function's environment.
func (b *boot) createResources(ctx context.Context) error {
	for _, bucket := range []string{b.st.state.DataBucket, b.st.state.BackupBucket} {
		if err := ensureBucket(ctx, b.s3, bucket); err != nil {
			return err
		}
	}
	if b.st.state.ProviderKeyARN == "" {
		arn, err := createKey(ctx, awskms.NewFromConfig(b.cfg), "keyline provider key (managed-scope data)")
		if err != nil {
			return fmt.Errorf("provider key: %w", err)
		}
		b.st.state.ProviderKeyARN = arn
	}
	if _, err := b.st.Bus.CreateEventBus(b.st.state.EventBusName); err != nil && !errors.Is(err, eventbridge.ErrAlreadyExists) {
		return fmt.Errorf("event bus %s: %w", b.st.state.EventBusName, err)
	}
	for _, m := range b.dep.StateMachines {
		arn := fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:%s", localRegion, endpoint.DefaultAccountID, m.Name)
		b.st.Machines[m.Name] = arn
		b.st.state.StateMachines[m.Name] = arn
	}
	for _, f := range b.dep.Functions {
		b.st.state.Functions[f.Name] = f.Environment(b.st.state.resources(nil, b.dep))
	}
	return nil
}

// awaitDynamoDB waits for DynamoDB Local, serves it on the endpoint and creates the
// lineage table.
func (b *boot) awaitDynamoDB(ctx context.Context) error {
	var r ddbResult
	select {
	case r = <-b.ddbDone:
		b.ddbReceived = true
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.err != nil {
		return r.err
	}
	b.st.ddb = r.p
	b.st.router.Register(endpoint.ServiceDynamoDB, b.st.ddb)
	if b.st.IAM == IAMOn && b.opts.RolePolicies == nil {
		// The deployment contract's role policies, as CDK deploys them.
		docs, err := b.st.Policies()
		if err != nil {
			return fmt.Errorf("role policies: %w", err)
		}
		raw := make(map[string]json.RawMessage, len(docs))
		for fn, d := range docs {
			if raw[fn], err = json.Marshal(d); err != nil {
				return fmt.Errorf("role policy of %s: %w", fn, err)
			}
		}
		if err := b.st.policies.setRolePolicies(raw); err != nil {
			return err
		}
	}
	if b.st.IAM == IAMOn {
		names := make([]string, 0, len(b.dep.Functions))
		for _, f := range b.dep.Functions {
			names = append(names, f.Name)
		}
		b.st.enableIAM(names)
	} else {
		b.log.Warn("IAM evaluation is OFF: the local endpoint allows every call (debugging only; AWS would not)")
	}
	ddbc := awsddb.NewFromConfig(b.cfg)
	if err := lineage.CreateTable(ctx, ddbc, b.st.state.TableName); err != nil {
		return fmt.Errorf("lineage table: %w", err)
	}
	b.st.Store = lineage.New(ddbc, b.st.state.TableName, lineage.Options{Clock: b.opts.Clock, Logger: b.log.With("component", "lineage")})
	// Items written by earlier versions (per-app revocations) move onto the key item: the
	// same idempotent step the one-off keystatemigrate function runs in AWS.
	if rep, err := b.st.Store.Migrate(ctx); err != nil {
		return fmt.Errorf("lineage upgrade: %w", err)
	} else if rep != (lineage.MigrationReport{}) {
		b.log.Info("lineage upgraded", "apps", rep.Apps, "generations", rep.Generations, "keys", rep.Keys, "clocks", rep.Clocks, "accounts", rep.Accounts)
	}
	return nil
}

// registerFunctions builds every function of the deployment in process, exactly as
// Lambda builds it, and registers it with its timeout and reserved concurrency.
func (b *boot) registerFunctions(ctx context.Context) error {
	return registerFunctions(ctx, b.st.Lambda, b.dep, b.st.state, b.cfg, b.opts.Clock, b.log)
}

// startStepFunctions starts the Step Functions service (it resumes what was running)
// and registers the deployment's state machines.
func (b *boot) startStepFunctions(context.Context) error {
	svc, err := stepfunctions.New(stepfunctions.Options{
		Dir: filepath.Join(b.st.DataDir, stepFunctionsDir), Clock: b.opts.Clock,
		Invoker: b.st.Lambda, Events: busPutter{b.st.Bus}, DynamoDB: ddbCaller{b.st.ddb},
		Items:  s3Items{b.s3},
		Logger: b.log.With("service", "states"), Region: localRegion, Account: endpoint.DefaultAccountID,
		Faults: b.opts.Faults,
	})
	if err != nil {
		return err
	}
	b.sfnMu.Lock()
	b.st.SFN = svc
	b.sfnMu.Unlock()
	b.st.router.Register(endpoint.ServiceStates, svc)
	return registerMachines(b.dep, b.st.state, b.st.Lambda, svc)
}

// wireEvents puts the rules and schedules on the bus, records the stack's state for
// `keyline invoke` and starts delivering.
func (b *boot) wireEvents(context.Context) error {
	if err := wireEvents(b.runCtx, b.dep, b.st.Bus, b.st.state.EventBusName, b.st.Lambda, b.st.Machines); err != nil {
		return err
	}
	if err := writeStackState(b.st.DataDir, b.st.state); err != nil {
		return err
	}
	b.st.Bus.Start(b.runCtx)
	return nil
}

// startConsole serves the console API.
func (b *boot) startConsole(context.Context) error {
	return b.st.startConsole(b.opts.ConsoleAddr, b.cfg)
}

// seed writes the demo data when asked to.
func (b *boot) seed(ctx context.Context) error {
	if b.opts.Seed != SeedDemo {
		return nil
	}
	return b.st.seedDemo(ctx, b.opts.SeedSize, b.opts.Progress)
}

// Close stops the console, the bus, Step Functions (running executions resume at the next
// start), the endpoint, KMS and DynamoDB Local, in that order. It is safe to call twice.
func (s *Stack) Close() {
	s.closeOnce.Do(func() {
		if s.console != nil {
			sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.console.Shutdown(sctx); err != nil {
				s.logger.Warn("console shutdown", "error", err)
			}
			c()
		}
		// The bus and Step Functions (running executions stay RUNNING on disk) before the
		// endpoint, the endpoint before KMS and DynamoDB Local.
		order := []func() error{}
		if s.cancel != nil {
			order = append(order, func() error { s.cancel(); return nil })
		}
		if s.cloudTrail != nil {
			order = append(order, func() error { s.cloudTrail.Close(); return nil })
		}
		if s.Bus != nil {
			order = append(order, s.Bus.Close)
		}
		if s.SFN != nil {
			order = append(order, s.SFN.Close)
		}
		if s.router != nil {
			order = append(order, func() error {
				sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
				defer c()
				return s.router.Shutdown(sctx)
			})
		}
		if s.KMS != nil {
			order = append(order, s.KMS.Close)
		}
		if s.ddb != nil {
			order = append(order, s.ddb.Stop)
		}
		for _, f := range order {
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.logger.Warn("stop", "error", err)
			}
		}
	})
}

// WaitIdle waits until the bus has delivered every event and no execution of the
// deployment's machines is running, and stays so across one more round (a finished
// execution may have emitted events that start others).
func (s *Stack) WaitIdle(ctx context.Context) error {
	client := sfn.NewFromConfig(s.AWSConfig())
	names := make([]string, 0, len(s.Machines))
	for n := range s.Machines {
		names = append(names, n)
	}
	sort.Strings(names)
	quiet := 0
	for {
		if err := s.Bus.Drain(ctx); err != nil {
			return fmt.Errorf("drain bus: %w", err)
		}
		var running []string
		for _, n := range names {
			p := sfn.NewListExecutionsPaginator(client, &sfn.ListExecutionsInput{
				StateMachineArn: aws.String(s.Machines[n]), StatusFilter: sfntypes.ExecutionStatusRunning,
			})
			for p.HasMorePages() {
				out, err := p.NextPage(ctx)
				if err != nil {
					return fmt.Errorf("list executions of %s: %w", n, err)
				}
				for _, e := range out.Executions {
					running = append(running, aws.ToString(e.ExecutionArn))
				}
			}
		}
		if len(running) == 0 {
			// Idle twice in a row: nothing delivered in between started anything.
			if quiet++; quiet == 2 {
				return nil
			}
			continue
		}
		quiet = 0
		for _, arn := range running {
			if _, err := s.SFN.WaitExecution(ctx, arn); err != nil {
				return fmt.Errorf("wait for %s: %w", arn, err)
			}
		}
	}
}

// startConsole serves the console API on addr: the console-api function's own server
// (consolefn.NewServer), built from that function's environment, over plain HTTP.
func (s *Stack) startConsole(addr string, cfg aws.Config) error {
	env := s.state.Functions[infra.FnConsoleAPI]
	api, err := consolefn.NewServer(handlers.Deps{AWS: functionConfig(cfg, infra.FnConsoleAPI), Env: func(k string) string { return env[k] },
		Logger: s.logger.With("component", "console"), Clock: s.clock})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	// Loopback host names and the console's own origin only (DNS rebinding, cross-site requests).
	s.console = &http.Server{Handler: endpoint.LoopbackGuard(api), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn)}
	go func() {
		if err := s.console.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("console stopped", "error", err)
		}
	}()
	s.Console = "http://" + ln.Addr().String()
	return nil
}

// resources are the local deployment's resources as the contract (infra) takes them. The
// functions' ARNs are the local Lambda registry's.
func (st stackState) resources(reg *lambda.Registry, dep infra.Deployment) infra.Resources {
	r := infra.Resources{
		Partition: "aws", Region: st.Region, Account: st.Account,
		TableName:  st.TableName,
		TableARN:   fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", st.Region, st.Account, st.TableName),
		DataBucket: st.DataBucket, BackupBucket: st.BackupBucket,
		ProviderKeyARN: st.ProviderKeyARN, EventBusName: st.EventBusName,
		StateMachineARNs: st.StateMachines, FunctionARNs: map[string]string{},
		OperatorTokenSecretARN: st.OperatorTokenSecret, S3PathStyle: true,
	}
	if reg != nil {
		for _, f := range dep.Functions {
			r.FunctionARNs[f.Name] = reg.ARN(f.Name)
		}
	}
	return r
}

// Policies are the deployment's function policies on the local resources, keyed by function
// name: the same documents the CDK app deploys.
func (s *Stack) Policies() (map[string]infra.PolicyDocument, error) {
	return infra.Description().Policies(s.state.resources(s.Lambda, infra.Description()))
}

// registerFunctions builds every function of the deployment that has a handler and
// registers it with its timeout and reserved concurrency.
func registerFunctions(ctx context.Context, reg *lambda.Registry, dep infra.Deployment, st stackState, cfg aws.Config, clk clock.Clock, log *slog.Logger) error {
	for _, f := range dep.Functions {
		if _, ok := functions.Constructor(f.Name); !ok {
			log.Warn("function has no handler yet; not registered", "function", f.Name)
			continue
		}
		// Each function calls with its own role's credentials.
		h, err := buildHandler(ctx, f.Name, st.Functions[f.Name], functionConfig(cfg, f.Name), clk, log)
		if err != nil {
			return err
		}
		reg.RegisterFunction(lambda.Function{Name: f.Name, Handler: h, Timeout: f.Timeout, ReservedConcurrency: f.ReservedConcurrency})
	}
	return nil
}

// buildHandler builds one function's handler from its recorded environment.
func buildHandler(ctx context.Context, name string, env map[string]string, cfg aws.Config, clk clock.Clock, log *slog.Logger) (any, error) {
	return functions.Build(ctx, name, func(context.Context) (handlers.Deps, error) {
		return handlers.Deps{AWS: cfg, Env: func(k string) string { return env[k] }, Logger: log.With("function", name), Clock: clk}, nil
	})
}

// registerMachines creates (or updates) every state machine from its ASL.
func registerMachines(dep infra.Deployment, st stackState, reg *lambda.Registry, svc *stepfunctions.Service) error {
	res := st.resources(reg, dep)
	role := fmt.Sprintf("arn:aws:iam::%s:role/keyline-states", endpoint.DefaultAccountID)
	for _, m := range dep.StateMachines {
		def, err := dep.Definition(m, res)
		if err != nil {
			return err
		}
		arn, err := svc.RegisterStateMachine(m.Name, string(def), role)
		if err != nil {
			return fmt.Errorf("state machine %s: %w", m.Name, err)
		}
		if arn != st.StateMachines[m.Name] {
			return fmt.Errorf("state machine %s: ARN %s, expected %s", m.Name, arn, st.StateMachines[m.Name])
		}
	}
	return nil
}

// targetARN is the ARN a rule or schedule target names.
func targetARN(t infra.Target, reg *lambda.Registry, machines map[string]string) (string, error) {
	switch {
	case t.Function != "" && t.StateMachine == "":
		return reg.ARN(t.Function), nil
	case t.StateMachine != "" && t.Function == "":
		arn, ok := machines[t.StateMachine]
		if !ok {
			return "", fmt.Errorf("no state machine %q", t.StateMachine)
		}
		return arn, nil
	}
	return "", errors.New("a target names exactly one of function and state machine")
}

// wireEvents puts the deployment's rules (on the default bus, where CloudTrail events
// arrive, CloudTrail KMS ones mirrored on the customer bus) and schedules on the bus. Both replace what a previous start stored.
func wireEvents(ctx context.Context, dep infra.Deployment, bus *eventbridge.Bus, keylineBus string, reg *lambda.Registry, machines map[string]string) error {
	for _, r := range dep.Rules {
		arn, err := targetARN(r.Target, reg, machines)
		if err != nil {
			return fmt.Errorf("rule %s: %w", r.Name, err)
		}
		busName := eventbridge.DefaultBusName
		if r.Bus == infra.BusKeyline {
			busName = keylineBus
		}
		if _, err := bus.PutRule(ctx, eventbridge.RuleInput{Name: r.Name, EventBusName: busName, EventPattern: string(r.EventPattern), Description: r.Description}); err != nil {
			return fmt.Errorf("rule %s: %w", r.Name, err)
		}
		tgt := eventbridge.Target{ID: "target", Arn: arn}
		if len(r.Target.Input) > 0 {
			tgt.Input = string(r.Target.Input)
		}
		if err := bus.PutTargets(ctx, busName, r.Name, []eventbridge.Target{tgt}); err != nil {
			return fmt.Errorf("rule %s targets: %w", r.Name, err)
		}
		if r.MatchesCloudTrailKMS() {
			if err := mirrorOnCustomerBus(ctx, bus, r, tgt); err != nil {
				return err
			}
		}
	}
	for _, sc := range dep.Schedules {
		arn, err := targetARN(sc.Target, reg, machines)
		if err != nil {
			return fmt.Errorf("schedule %s: %w", sc.Name, err)
		}
		if err := bus.PutSchedule(sc.Name, sc.Expression, sc.Timezone, arn, sc.Target.Input); err != nil {
			return fmt.Errorf("schedule %s: %w", sc.Name, err)
		}
	}
	return nil
}

func readStackState(dir string) (stackState, error) {
	var st stackState
	b, err := os.ReadFile(filepath.Join(dir, stackFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, stackFile), err)
	}
	return st, nil
}

func writeStackState(dir string, st stackState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stackFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write stack state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, stackFile)); err != nil {
		return fmt.Errorf("write stack state: %w", err)
	}
	return nil
}

// unavailable answers a service that is not up yet.
func unavailable(msg string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, `{"__type":"ServiceUnavailableException","message":%q}`, msg)
	})
}
