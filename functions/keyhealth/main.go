// Command keyhealth is the keyhealth Lambda function.
package main

import (
	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/handlers"
	"github.com/keyline/keyline/internal/handlers/key"
)

func main() { handlers.Main(infra.FnKeyHealth, key.KeyHealth) }
