// Command reencryptbatch is the reencryptbatch Lambda function.
package main

import (
	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/handlers"
	"github.com/keyline/keyline/internal/handlers/key"
)

func main() { handlers.Main(infra.FnReencryptBatch, key.ReencryptBatch) }
