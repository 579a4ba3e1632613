// Package functions is the local runtime's table of the deployment's functions: name →
// constructor, so `keyline local` and `keyline invoke` build every function in one
// process exactly as its own functions/<name>/main.go builds it in Lambda. Only the local
// runtime imports it: a Lambda binary links its own constructor and nothing else.
package functions

import (
	"context"
	"fmt"
	"sort"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/handlers"
	"github.com/keyline/keyline/internal/handlers/console"
	"github.com/keyline/keyline/internal/handlers/data"
	"github.com/keyline/keyline/internal/handlers/key"
)

// constructors is every function's constructor, by function name; it names the same
// constructor as the function's main.go (a test checks both against the deployment).
var constructors = map[string]handlers.Untyped{
	infra.FnBackupListDue: handlers.Erase(data.BackupListDue),
	infra.FnBackupLease:   handlers.Erase(data.BackupLease),
	infra.FnBackupUpload:  handlers.Erase(data.BackupUpload),
	infra.FnBackupRecord:  handlers.Erase(data.BackupRecord),
	infra.FnBackupFail:    handlers.Erase(data.BackupFail),
	infra.FnRestoreStart:  handlers.Erase(data.RestoreStart),
	infra.FnRestoreRun:    handlers.Erase(data.RestoreRun),
	infra.FnRestoreFinish: handlers.Erase(data.RestoreFinish),
	infra.FnRestoreFail:   handlers.Erase(data.RestoreFail),
	infra.FnDrillPlan:     handlers.Erase(data.DrillPlan),
	infra.FnDrillRun:      handlers.Erase(data.DrillRun),

	infra.FnKeyEvent:          handlers.Erase(key.KeyEvent),
	infra.FnKeyHealth:         handlers.Erase(key.KeyHealth),
	infra.FnKeyNotify:         handlers.Erase(key.KeyNotify),
	infra.FnKeyStateMigrate:   handlers.Erase(key.KeyStateMigrate),
	infra.FnReencryptValidate: handlers.Erase(key.ReencryptValidate),
	infra.FnReencryptBegin:    handlers.Erase(key.ReencryptBegin),
	infra.FnReencryptBatch:    handlers.Erase(key.ReencryptBatch),
	infra.FnReencryptCommit:   handlers.Erase(key.ReencryptCommit),
	infra.FnReencryptAbort:    handlers.Erase(key.ReencryptAbort),

	infra.FnConsoleAPI:        handlers.Erase(console.API),
	infra.FnConsoleAuthorizer: handlers.Erase(console.Authorizer),
}

// Constructor returns the named function's constructor.
func Constructor(name string) (handlers.Untyped, bool) {
	c, ok := constructors[name]
	return c, ok
}

// Names returns the names of the functions that have a constructor, sorted.
func Names() []string {
	out := make([]string, 0, len(constructors))
	for n := range constructors {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Build constructs the named function's handler from the dependencies deps returns.
func Build(ctx context.Context, name string, deps func(context.Context) (handlers.Deps, error)) (any, error) {
	c, ok := constructors[name]
	if !ok {
		return nil, fmt.Errorf("no function named %q (known: %v)", name, Names())
	}
	return handlers.Build(ctx, name, c, deps)
}
