// Command reencryptvalidate is the keyline Lambda function "reencryptvalidate" (see infra.Description).
package main

import "github.com/keyline/keyline/internal/handlers"

func main() { handlers.Main("reencryptvalidate") }
