// Command backuplistdue is the backuplistdue Lambda function.
package main

import (
	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/handlers"
	"github.com/keyline/keyline/internal/handlers/data"
)

func main() { handlers.Main(infra.FnBackupListDue, data.BackupListDue) }
