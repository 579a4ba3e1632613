// Command keyevent is the keyline Lambda function "keyevent" (see infra.Description).
package main

import "github.com/keyline/keyline/internal/handlers"

func main() { handlers.Main("keyevent") }
