// Command reencryptcommit is the keyline Lambda function "reencryptcommit" (see infra.Description).
package main

import "github.com/keyline/keyline/internal/handlers"

func main() { handlers.Main("reencryptcommit") }
